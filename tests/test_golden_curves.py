"""The loss curves of the suite's two seeded trainings (the demo preset at toy size on the bundled genome, and a
text-tiny MDLM) against stored golden values, so a change that moves training fails here instead of surfacing weeks
later as an unexplained benchmark drift.

A change meant to move them (new noise draws, another data order, a fixed bug) updates the file and says why in
its commit message:

    MDLM_BIO_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_curves.py
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "loss_curves.json"
# Float rounding across CPUs (vector widths, thread counts) moves these curves by about 1e-6 relative over their
# few dozen steps; a changed noise draw, data order or loss moves a single step's loss by percents.
RELATIVE_TOLERANCE = 1e-3
METRICS = ("train/loss", "val/nelbo")


def curve(run: Path) -> dict[str, dict[str, float]]:
    """Each metric by step, from the run's first launch (a later resume would add another log version)."""
    rows = list(csv.DictReader((run / "logs" / "version_0" / "metrics.csv").open()))
    return {key: {row["step"]: float(row[key]) for row in rows if row.get(key)} for key in METRICS}


def test_seeded_training_follows_its_golden_loss_curve(run_dir, mdlm_run):
    curves = {"demo at toy size (tests/dna_runs.py), 30 steps": curve(run_dir),
              "text-tiny MDLM (tests/text_runs.py), 100 steps": curve(mdlm_run[0])}
    if os.environ.get("MDLM_BIO_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(curves, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert set(curves) == set(golden)
    for name, metrics in golden.items():
        for key, values in metrics.items():
            assert curves[name][key].keys() == values.keys(), f"{name}: {key} logged at other steps"
            for step, value in values.items():
                assert curves[name][key][step] == pytest.approx(value, rel=RELATIVE_TOLERANCE), \
                    f"{name}: {key} at step {step} moved from its golden value (see this file's docstring)"

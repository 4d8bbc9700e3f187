"""Command lines and error capture for the DNA-track tests (the shared run and genome are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdlm_bio.cli import main

TINY = [
    "model.overrides.d_model=32",
    "model.overrides.n_layer=2",
    "data.window=64",
    "data.batch_size=8",
    "data.valid_windows=16",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=5",
    "trainer.enable_progress_bar=false",
]


def train_args(run_dir: Path, data_dir: Path, steps: int, every: int = 10, preset: str = "demo") -> list[str]:
    return ["train", preset, f"run_dir={run_dir}", f"data.data_dir={data_dir}", f"trainer.max_steps={steps}",
            f"checkpoint_every_n_steps={every}", f"trainer.val_check_interval={every}", *TINY]


def error_of(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err

"""bench/gpu_acceptance.py on a machine without CUDA: a clear skip, and every check at toy sizes with --allow-cpu
(its kernel checks run through the packages' reference code in tests/test_kernel_paths.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_acceptance.py"
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the script runs the real checks")


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_without_cuda_it_says_so_and_exits_0(tmp_path):
    finished = run_script("--out-dir", str(tmp_path / "out"))
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stdout.startswith("SKIP: no CUDA device here")
    assert not (tmp_path / "out").exists()


def test_every_check_runs_at_toy_sizes_on_the_cpu(tmp_path):
    finished = run_script("--allow-cpu", "--out-dir", str(tmp_path))
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu_acceptance.json").read_text())["rows"]
    statuses = {row["check"]: row["status"] for row in rows}
    assert set(statuses.values()) <= {"pass", "skipped"}, statuses
    assert statuses["mdlm-bio train demo, then sample"] == "pass"
    assert [check for check, status in statuses.items() if "training step" in check and status == "pass"] == [
        "float32 training step dit-tiny L=128", "float32 training step caduceus-tiny L=128",
        "longest caduceus-tiny training step that fits (batch 1, tried up to 512)"]
    report = (tmp_path / "gpu_acceptance.md").read_text()
    assert report.startswith("# GPU acceptance") and report.count("\n| ") == len(rows) + 2

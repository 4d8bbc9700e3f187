"""Command lines, launchers and output parsing for the text-track tests (fixtures in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tiny_text_run(root: Path, name: str, tokenizer: str, steps: int, *extra: str) -> list[str]:
    """`mdlm-bio train text-tiny` arguments for a run in root/name on the texts written by the `texts` fixture."""
    return ["train", "text-tiny", f"run_dir={root / name}", f"data.tokenizer={root / tokenizer}",
            f"data.train_files=[{root / 'train.txt'}]", f"data.valid_files=[{root / 'valid.txt'}]",
            f"data.cache_dir={root / 'cache'}", f"trainer.max_steps={steps}", "trainer.enable_progress_bar=false", *extra]


def validation_curve(output: str) -> list[float]:
    return [float(line.split("bits/token")[1].split()[0]) for line in output.splitlines() if "val bits/token" in line]


def run_launcher(script: str, *args: str, env: dict[str, str] | None = None,
                 folder: str = "text") -> subprocess.CompletedProcess:
    """Run a launcher script (text/ by default) with this interpreter's `mdlm-bio` first on PATH, plus any extra
    environment."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(["bash", str(REPO / folder / script), *args], env={**os.environ, "PATH": path, **(env or {})},
                          capture_output=True, text=True)

"""`mdlm-bio demo`: the quickstart in one command: train the tiny demo model, sample beyond its window, report."""

from __future__ import annotations

from pathlib import Path

from ..diffusion.first_hitting_sampler import FirstHittingSampler
from ..dna.genome import held_out_reference
from ..training.config import load_config
from ..training.run import train
from .generate import sample
from .report import report

SAMPLES, SAMPLE_BATCH, REPORT_KS = 16, 16, [3, 6]


def demo(*, out_dir: Path, steps: int | None, seed: int) -> None:
    """Train the `demo` preset under out_dir/run, sample 16 sequences of twice its window (semi-autoregressively)
    and report them against the held-out records."""
    overrides = [f"run_dir={out_dir / 'run'}", f"data.data_dir={out_dir / 'data'}", f"seed={seed}"]
    if steps:
        overrides.append(f"trainer.max_steps={steps}")
    config = load_config("demo", overrides)
    history = train(config).history
    samples, reference = out_dir / "samples.fa", out_dir / "heldout.fa"
    sample(config.run_dir, out=samples, num=SAMPLES, length=2 * config.data.window, sampler=FirstHittingSampler(),
           seed=seed, batch_size=SAMPLE_BATCH, prompt=None, stop_entropy=None,
           stop_window=256, device="cpu", ignore_memory_limit=False)
    held_out_reference(config.data.data_dir, reference)
    report(samples, reference=reference, out_dir=out_dir / "report", k=REPORT_KS)
    if history:
        first, last = history[0][1], history[-1][1]
        print(f"validation bits/base: {first:.3f} at step {history[0][0]} -> {last:.3f} at step {history[-1][0]} "
              f"(uniform: 2.000)")

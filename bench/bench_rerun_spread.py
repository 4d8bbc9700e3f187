"""How far two runs of the same seeded training drift apart when only float rounding differs: bench_fidelity's
State of the Union MDLM trained with the same command, seed and data on 1 and on 2 CPU threads (so reductions
round differently), printing where their loss curves first differ, how the difference grows, and their final
validation perplexities.

This is the yardstick for "the same command gave another number": bench/RESULTS.md's SOTU MDLM moved from
<= 221.1 to <= 229.1 between two commits; a bisect on a short seeded run (issue 28) found no commit that changes
training beyond rounding, and this measures what rounding alone does.

    python bench/bench_rerun_spread.py --steps 500 --threads 1 2
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

from bench_fidelity import final_validation, run_commands
from harness import write_json


def train_loss(run: Path) -> dict[int, float]:
    rows = csv.DictReader(next((run / "logs").glob("version_0/metrics.csv")).open())
    return {int(row["step"]): float(row["train/loss"]) for row in rows if row.get("train/loss")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("bench-results/rerun_spread"))
    args = parser.parse_args()
    runs = {}
    for threads in args.threads:
        out = args.out / f"threads-{threads}"
        command = [*run_commands("text", args.steps, out)["mdlm"], "trainer.log_every_n_steps=1"]
        if not (out / "text-mdlm" / "checkpoints" / "last.ckpt").is_file():
            print(f"OMP_NUM_THREADS={threads} mdlm-bio " + " ".join(command), flush=True)
            subprocess.run([sys.executable, "-m", "mdlm_bio.cli", *command], check=True,
                           env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        runs[threads] = out / "text-mdlm"
    first, *others = args.threads
    base = train_loss(runs[first])
    rows = {"final": {threads: final_validation(run) for threads, run in runs.items()}, "divergence": {}}
    for threads in others:
        curve = train_loss(runs[threads])
        steps = sorted(set(base) & set(curve))
        relative = {step: abs(curve[step] - base[step]) / abs(base[step]) for step in steps}
        differing = next((step for step in steps if relative[step] > 0), None)
        windows = [(begin, min(begin * 2, steps[-1] + 1)) for begin in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
                   if begin <= steps[-1]]
        growth = {f"{a}-{b - 1}": max((relative[s] for s in steps if a <= s < b), default=math.nan) for a, b in windows}
        rows["divergence"][threads] = {"first_differing_step": differing, "max_relative_by_steps": growth}
        print(f"{first} vs {threads} threads: train loss first differs at step {differing}; max relative difference "
              f"by step range: " + ", ".join(f"{key}: {value:.1e}" for key, value in growth.items()))
    for threads, row in rows["final"].items():
        print(f"{threads} thread(s): step {row['step']}, validation PPL <= {row['ppl']:.2f}")
    values = [row["ppl"] for row in rows["final"].values()]
    print(f"spread of the final PPL: {(max(values) - min(values)) / min(values):.1%}")
    write_json(args.out / "spread.json", rows)


if __name__ == "__main__":
    main()

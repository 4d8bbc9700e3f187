"""Small-scale fidelity: does MDLM approach the autoregressive baseline at our scale?

Trains an MDLM and an AR model with the same backbone size, data, batch and number of steps (so the same
token budget) through `mdlm-bio train`, one after the other, and prints the final validation NLL of
each: an upper bound (the NELBO) for MDLM, exact for AR. Two tracks:

- dna: the `demo` preset (Caduceus-PS, bidirectional) vs `demo-ar` (causal Mamba) on the bundled
  C. elegans sample, validated on its 25 kb of held-out records;
- text: `text-tiny` widened to a 128 x 4-block DiT, bidirectional vs causal, on the US State of the
  Union addresses (bench/sotu_corpus.py; every tenth address held out) with an 8k byte-level BPE.

The paper's yardstick at scale is OpenWebText PPL 23.21 (MDLM, bound) vs 17.54 (AR) after 1M steps.

    python bench/bench_fidelity.py --track dna --steps 4000      # about 30 min on 2 CPU cores
    python bench/bench_fidelity.py --track text --steps 2000     # about 40 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
from pathlib import Path

from harness import write_json
from sotu_corpus import prepare_sotu

TEXT_MODEL = ["model.overrides.hidden_size=128", "model.overrides.n_blocks=4", "model.overrides.n_heads=4",
              "model.overrides.cond_dim=64", "data.window=128", "data.batch_size=16"]


def run_dir(out: Path, track: str, kind: str) -> Path:
    return out / f"{track}-{kind}"


def run_commands(track: str, steps: int, out: Path) -> dict[str, list[str]]:
    """The two `mdlm-bio train` command lines of a track, keyed by objective ("mdlm", "ar")."""
    common = [f"trainer.max_steps={steps}", f"trainer.val_check_interval={max(steps // 4, 1)}",
              "trainer.limit_val_batches=1.0", f"checkpoint_every_n_steps={max(steps // 2, 1)}",
              "trainer.enable_progress_bar=false"]
    if track == "dna":
        return {kind: ["train", preset, f"run_dir={run_dir(out, track, kind)}", *common]
                for kind, preset in (("mdlm", "demo"), ("ar", "demo-ar"))}
    corpus = prepare_sotu(out / "sotu")
    text = [f"data.tokenizer={corpus['tokenizer']}", f"data.train_files=[{corpus['train']}]",
            f"data.valid_files=[{corpus['valid']}]", f"data.cache_dir={out / 'sotu' / 'cache'}", *TEXT_MODEL, *common]
    return {"mdlm": ["train", "text-tiny", f"run_dir={run_dir(out, track, 'mdlm')}", *text],
            "ar": ["train", "text-tiny", f"run_dir={run_dir(out, track, 'ar')}", "objective.kind=ar",
                   "model.overrides.causal=true", *text]}


def final_validation(run: Path) -> dict[str, float]:
    """The last validation pass in the run's newest CSV log: NLL in nats per token, PPL = exp(NLL)."""
    logs = sorted((run / "logs").glob("version_*/metrics.csv"), key=lambda path: int(path.parent.name.split("_")[1]))
    rows = [row for row in csv.DictReader(logs[-1].open()) if row.get("val/nelbo")]
    nll = float(rows[-1]["val/nelbo"])
    return {"step": int(rows[-1]["step"]), "nll": nll, "bits": nll / math.log(2), "ppl": math.exp(nll)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--track", choices=["dna", "text"], required=True)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=Path("bench-results/fidelity"))
    args = parser.parse_args()

    rows = {}
    for kind, command in run_commands(args.track, args.steps, args.out).items():
        print("mdlm-bio " + " ".join(command), flush=True)
        subprocess.run([sys.executable, "-m", "mdlm_bio.cli", *command], check=True)
        rows[kind] = final_validation(run_dir(args.out, args.track, kind))
    write_json(args.out / f"{args.track}.json", rows)
    unit = "base" if args.track == "dna" else "token"
    print(f"{'model':<6}{'step':>7}{'NLL nats':>10}{f'bits/{unit}':>12}{'PPL':>9}")
    for kind, row in rows.items():
        bound = "<=" if kind == "mdlm" else "  "
        print(f"{kind:<6}{row['step']:>7}{bound:>4}{row['nll']:>6.4f}{row['bits']:>12.4f}{row['ppl']:>9.3f}")
    gap = rows["mdlm"]["ppl"] / rows["ar"]["ppl"]
    print(f"PPL ratio MDLM/AR: {gap:.3f} (the paper at 1M steps on OpenWebText: 23.21 / 17.54 = {23.21 / 17.54:.3f})")


if __name__ == "__main__":
    main()

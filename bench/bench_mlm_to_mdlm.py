"""MDLM section 4 at the scale of this machine: a small BERT pretrained here with masked language modelling on the
State of the Union addresses, then fine-tuned with the MDLM objective; its NELBO bound before and after, and its
accuracy on a labelled task of the same text before and after, fine-tuned through `mdlm-bio finetune glue`.

The control is the same pretrained model trained as long again with masked language modelling, so "after" is
not just "trained longer". The labelled task, in the `glue` schema as a local sst2 table: was a 64-word passage
spoken before 1900 or after? (Training passages from the training addresses, validation from the held-out ones.)

The paper's version (MosaicBERT, C4, GLUE) needs the hub and GPUs: `text/glue_comparison.sh`.

    python bench/bench_mlm_to_mdlm.py --mlm-steps 1500 --steps 300     # about 40 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

from harness import write_json
from sotu_corpus import HOLD_OUT_EVERY, download_sotu, prepare_sotu, read_addresses

# A 2-layer BERT of width 128, on the SOTU BPE; 128-token wrapped blocks as the other SOTU benches.
BERT = ["model.preset=bert-tiny", "data.window=128", "data.batch_size=16"]
PASSAGE_WORDS = 64
ERA_SPLIT = 1900


def era_table(folder: Path, seed: int = 0) -> Path:
    """`folder/sst2/{train,validation}.jsonl`: 64-word passages labelled 1 if spoken in 1900 or later; as many
    passages of each label per split, from the same addresses the language models train and validate on."""
    rng = random.Random(seed)
    passages: dict[str, list[dict]] = {"train": [], "validation": []}
    for index, address in enumerate(read_addresses(download_sotu())):
        split = "validation" if index % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1 else "train"
        words = address["text"].split()
        for start in range(0, len(words) - PASSAGE_WORDS, PASSAGE_WORDS * 4):
            passages[split].append({"sentence": " ".join(words[start : start + PASSAGE_WORDS]),
                                    "label": int(address["year"] >= ERA_SPLIT)})
    for split, rows in passages.items():
        by_label = [[row for row in rows if row["label"] == label] for label in (0, 1)]
        size = min(len(group) for group in by_label)
        balanced = [row for group in by_label for row in rng.sample(group, size)]
        rng.shuffle(balanced)
        path = folder / "sst2" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({**row, "idx": i}) + "\n" for i, row in enumerate(balanced)))
    return folder


def mdlm_bio(*argv: str) -> None:
    print("mdlm-bio " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "mdlm_bio.cli", *argv], check=True)


def train(out: Path, name: str, corpus: dict[str, Path], steps: int, *extra: str) -> Path:
    run = out / name
    if not (run / "checkpoints" / "last.ckpt").is_file():
        mdlm_bio("train", "text-tiny", f"run_dir={run}", f"data.tokenizer={corpus['tokenizer']}",
                 f"data.train_files=[{corpus['train']}]", f"data.valid_files=[{corpus['valid']}]",
                 f"data.cache_dir={out / 'sotu' / 'cache'}", *BERT, f"trainer.max_steps={steps}",
                 f"trainer.val_check_interval={max(steps // 4, 1)}", "trainer.limit_val_batches=1.0",
                 f"checkpoint_every_n_steps={steps}", "trainer.enable_progress_bar=false", *extra)
    return run


def held_out_bits(out: Path, run: Path, corpus: dict[str, Path], draws: int) -> float:
    """The NELBO on the held-out addresses in bits per token, `draws` noise draws per block."""
    folder = out / "perplexity" / run.name
    if not (folder / "perplexity.json").is_file():
        mdlm_bio("eval-ppl", "--ckpt", str(run), "--corpora", "openwebtext", "--text-file",
                 f"openwebtext={corpus['valid']}", "--cache-dir", str(out / "sotu" / "cache"), "--mc", str(draws),
                 "--out-dir", str(folder))
    (row,) = json.loads((folder / "perplexity.json").read_text())["rows"]
    return row["nll_per_token"] / 0.6931471805599453


def era_accuracy(out: Path, run: Path, table: Path, seeds: int, lrs: str) -> dict:
    folder = out / "era" / run.name
    mdlm_bio("finetune", "glue", f"grid.lr={lrs}", "epochs_per_task={sst2: 3}", "data.batch_size=32",
             "trainer.enable_progress_bar=false", "--ckpt", str(run), "--data-dir", str(table), "--run-dir",
             str(folder), "--seeds", str(seeds), "--datasets", "sst2")
    return json.loads((folder / "results.json").read_text())["summary"]["sst2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlm-steps", type=int, default=1500, help="masked language modelling pretraining")
    parser.add_argument("--steps", type=int, default=300, help="MDLM fine-tuning, and the MLM control")
    parser.add_argument("--draws", type=int, default=4, help="noise draws per held-out block")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--lrs", default="[1e-4,3e-4]", help="the era task's learning-rate grid")
    parser.add_argument("--out", type=Path, default=Path("bench-results/mlm_to_mdlm"))
    args = parser.parse_args()
    corpus = prepare_sotu(args.out / "sotu")
    table = era_table(args.out / "era-task")
    pretrained = train(args.out, "mlm", corpus, args.mlm_steps, "objective.kind=mlm", "objective.mask_rate=0.15")
    # Both continuations keep the pretraining's EMA (0.99): checkpoints hold EMA weights, so "before" is one too.
    after = {"mdlm": train(args.out, "mlm+mdlm", corpus, args.steps, f"init_from={pretrained}", "optim.lr=1e-4",
                           "optim.warmup_steps=10"),
             "mlm": train(args.out, "mlm+mlm", corpus, args.steps, f"init_from={pretrained}", "optim.lr=1e-4",
                          "optim.warmup_steps=10", "objective.kind=mlm", "objective.mask_rate=0.15")}
    rows = {}
    for label, run in (("MLM pretrained", pretrained), ("+ MDLM fine-tune", after["mdlm"]),
                       ("+ as long again with MLM (control)", after["mlm"])):
        era = era_accuracy(args.out, run, table, args.seeds, args.lrs)
        rows[label] = {"run": str(run), "nelbo_bits_per_token": held_out_bits(args.out, run, corpus, args.draws),
                       "era_accuracy": era["mean"], "era_std": era["std"], "era_lr": era["lr"]}
    print(f"{'model':<36}{'held-out NELBO bits/token':>27}{'era accuracy %':>18}")
    for label, row in rows.items():
        print(f"{label:<36}{row['nelbo_bits_per_token']:>27.3f}{row['era_accuracy']:>12.1f} ± {row['era_std']:.1f}")
    write_json(args.out / "mlm_to_mdlm.json", {"mlm_steps": args.mlm_steps, "steps": args.steps, "rows": rows})


if __name__ == "__main__":
    main()

"""Block diffusion on Mamba (issue 30): its likelihood bound beside Caduceus MDLM and the Mamba AR baseline, and the
memory and speed of sampling long DNA with a carried state beside a transformer's key/value cache and MDLM's
semi-autoregressive windows.

- `likelihood`: trains, through `mdlm-bio train`, the demo's Caduceus-PS MDLM (`demo`), its causal Mamba LM
  (`demo-ar`) and Mamba block diffusion (`demo-bd3-mamba`) at block sizes 4 (the clipped schedule U[0.45, 0.95]
  of the preset), 16 and 64 (U[eps, 1]), same data, batch and steps (a run already in --out is reused); prints
  held-out bits per base (a bound for the diffusion models, --mc draws per window) and the fraction of the
  MDLM-to-AR gap each closes; plots bits against block size.
- `memory`: one fresh process per row: bases/s and memory while sampling 1k to 64k bases (first-hitting inside
  blocks of 4, batch 1) from untrained CPU-sized models (speed and memory do not depend on training): Mamba block
  diffusion (caduceus-ph-tiny, carried state), the DiT's block diffusion with its key/value cache (dit-tiny with a
  context as long as the sample, so the cache holds all of it), and Caduceus MDLM's semi-autoregressive windows
  (caduceus-tiny, context 128, ancestral 128 steps per window). Memory is the process's peak RSS above what it
  held before sampling, and the bytes the sampler keeps of the past at the end (state or cache).

    python bench/bench_block_mamba.py likelihood --steps 2000     # ~45 min on 2 cores
    python bench/bench_block_mamba.py memory                      # ~15 min on 2 cores
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_block_diffusion import held_out_nll
from bench_fidelity import final_validation
from harness import device_description, peak_memory_mib, run_isolated, write_json

from mdlm_bio.diffusion import FirstHittingSampler, make_sampler
from mdlm_bio.models.block_diffusion_model import BlockDiffusionModel, CachedBlocks, CarriedStates
from mdlm_bio.models.diffusion_model import DiffusionModel
from mdlm_bio.models.network import LanguageModel
from mdlm_bio.models.spec import ModelSpec, ObjectiveSettings

MODELS = {"ar": ["demo-ar"], "mdlm": ["demo"], "bd3-mamba-4": ["demo-bd3-mamba"],
          "bd3-mamba-16": ["demo-bd3-mamba", "objective.block_size=16", "objective.clip=null"],
          "bd3-mamba-64": ["demo-bd3-mamba", "objective.block_size=64", "objective.clip=null"]}


def likelihood(steps: int, out: Path, mc: int) -> dict:
    common = [f"trainer.max_steps={steps}", f"trainer.val_check_interval={max(steps // 4, 1)}",
              "trainer.limit_val_batches=1.0", f"checkpoint_every_n_steps={max(steps // 2, 1)}",
              "trainer.enable_progress_bar=false"]
    rows = {}
    for name, (preset, *extra) in MODELS.items():
        run = out / name
        if not (run / "checkpoints" / "last.ckpt").is_file():
            command = ["train", preset, f"run_dir={run}", *extra, *common]
            print("mdlm-bio " + " ".join(command), flush=True)
            subprocess.run([sys.executable, "-m", "mdlm_bio.cli", *command], check=True)
        rows[name] = {**final_validation(run), **held_out_nll(run, mc), "mc": mc}
    gap = rows["mdlm"]["nll"] - rows["ar"]["nll"]
    print(f"{'model':<14}{'step':>6}{'bits/base':>14}{'gap closed':>12}")
    for name, row in rows.items():
        row["gap_closed"] = (rows["mdlm"]["nll"] - row["nll"]) / gap if gap > 0 else float("nan")
        bound = "  " if name == "ar" else "<="
        print(f"{name:<14}{row['step']:>6}{bound:>6}{row['bits']:>8.4f}{row['gap_closed']:>12.1%}")
    return rows


def plot_likelihood(rows: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    axis.axhline(rows["ar"]["bits"], linestyle="--", color="gray", label="Mamba AR (exact)")
    axis.axhline(rows["mdlm"]["bits"], linestyle=":", color="gray", label="Caduceus-PS MDLM (bound)")
    sizes = [4, 16, 64]
    axis.plot(sizes, [rows[f"bd3-mamba-{size}"]["bits"] for size in sizes], marker="o",
              label="Mamba block diffusion (bound; 4 clipped)")
    axis.set(xscale="log", xlabel="block size L'", ylabel="held-out bits/base",
             title="Block diffusion on Mamba, bundled C. elegans DNA")
    axis.set_xticks(sizes, [str(size) for size in sizes])
    axis.minorticks_off()
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


SPEC_DNA = {"vocab_size": 16, "output_ids": (7, 8, 9, 10), "mask_id": 3}
TINY_MAMBA = {"architecture": "caduceus", "vocab_size": 16, "d_model": 32, "n_layer": 4, "bidirectional": True,
              "d_state": 8, "d_conv": 4, "expand": 2,
              "complement_map": [0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11, 12, 13, 14, 15]}
TINY_DIT = {"architecture": "dit", "vocab_size": 16, "hidden_size": 64, "cond_dim": 32, "n_blocks": 2,
            "n_heads": 4, "dropout": 0.0, "causal": False, "time_conditioning": False}


def untrained(kind: str, context: int):
    """The three samplers' models, untrained (a fixed seed)."""
    torch.manual_seed(0)
    if kind == "mdlm-semi-ar":
        objective = ObjectiveSettings(kind="mdlm", schedule={"name": "loglinear"}, sampling_eps=1e-3, antithetic=True)
        backbone = {**TINY_MAMBA, "rcps": True}
    else:
        objective = ObjectiveSettings(kind="bd3", schedule={"name": "loglinear"}, sampling_eps=1e-3, antithetic=True,
                                      block_size=4)
        backbone = TINY_DIT if kind == "bd3-dit-kv-cache" else {**TINY_MAMBA, "rcps": False}
    spec = ModelSpec(backbone, objective, mask_id=SPEC_DNA["mask_id"], context=context, track="dna",
                     output_ids=SPEC_DNA["output_ids"])
    network = LanguageModel(spec).eval()
    return (DiffusionModel if kind == "mdlm-semi-ar" else BlockDiffusionModel)(network, "untrained", kind)


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def kept_bytes(memory: object) -> int:
    """Bytes of the tensors a block context keeps of the past (a state's or a cache's)."""
    if isinstance(memory, CarriedStates):
        parts = [] if memory.state is None else [t for layer in memory.state.layers for t in (layer.conv, layer.scan)]
    else:
        parts = [*memory.cache.keys, *memory.cache.values]
    return sum(t.numel() * t.element_size() for t in parts)


def memory_row(kind: str, length: int) -> dict:
    model = untrained(kind, length if kind == "bd3-dit-kv-cache" else 128)
    contexts = []
    if isinstance(model, BlockDiffusionModel):  # keep a handle on the block context, to weigh what it keeps
        reader = CarriedStates if kind == "bd3-mamba-state" else CachedBlocks
        original = reader.__init__

        def remembered(self, *args):
            original(self, *args)
            contexts.append(self)

        reader.__init__ = remembered
    sampler = make_sampler("ancestral", steps=128) if kind == "mdlm-semi-ar" else FirstHittingSampler()
    before = resident_mib()
    start = time.perf_counter()
    out = model.sample(sampler, num=1, length=length, seed=0, batch_size=1)
    seconds = time.perf_counter() - start
    return {"kind": kind, "length": length, "bases_per_s": length / seconds, "seconds": seconds,
            "calls": out.num_calls, "peak_above_start_mib": peak_memory_mib("cpu") - before,
            "kept_mib": kept_bytes(contexts[-1]) / 2**20 if contexts else 0.0}


KINDS = ("bd3-mamba-state", "bd3-dit-kv-cache", "mdlm-semi-ar")


def memory(lengths: list[int], dit_max: int, mdlm_max: int) -> list[dict]:
    rows = []
    for kind in KINDS:
        limit = {"bd3-dit-kv-cache": dit_max, "mdlm-semi-ar": mdlm_max}.get(kind, max(lengths))
        for length in (n for n in lengths if n <= limit):
            rows.append(run_isolated(memory_row, kind, length))
            print(rows[-1], flush=True)
    print(f"{device_description('cpu')}; blocks of 4 (first-hitting), batch 1; MDLM: windows of 128, 128 steps each")
    print(f"{'sampler':<20}{'bases':>7}{'bases/s':>10}{'peak MiB above start':>22}{'kept MiB':>10}")
    for r in rows:
        print(f"{r['kind']:<20}{r['length']:>7}{r['bases_per_s']:>10.1f}{r['peak_above_start_mib']:>22.1f}"
              f"{r['kept_mib']:>10.3f}")
    return rows


def plot_memory(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3))
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        lengths = [r["length"] for r in mine]
        left.plot(lengths, [r["peak_above_start_mib"] for r in mine], marker="o", label=kind)
        right.plot(lengths, [r["bases_per_s"] for r in mine], marker="o", label=kind)
    left.set(xscale="log", xlabel="generated bases", ylabel="peak RSS above start (MiB)", title="Memory")
    right.set(xscale="log", yscale="log", xlabel="generated bases", ylabel="bases/s", title="Speed (2 CPU cores)")
    left.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    first = parts.add_parser("likelihood")
    first.add_argument("--steps", type=int, default=2000)
    first.add_argument("--mc", type=int, default=32, help="noise draws per held-out window")
    first.add_argument("--out", type=Path, default=Path("bench-results/block_mamba"))
    first.add_argument("--plot", type=Path, default=Path("bench/block_mamba_likelihood.png"))
    second = parts.add_parser("memory")
    second.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    second.add_argument("--dit-max", type=int, default=16384, help="longest DiT sample (its cache grows by copying)")
    second.add_argument("--mdlm-max", type=int, default=16384, help="longest MDLM sample")
    second.add_argument("--out", type=Path, default=Path("bench-results/block_mamba"))
    second.add_argument("--plot", type=Path, default=Path("bench/block_mamba_memory.png"))
    args = parser.parse_args()
    if args.part == "likelihood":
        rows = likelihood(args.steps, args.out, args.mc)
        write_json(args.out / "likelihood.json", rows)
        plot_likelihood(rows, args.plot)
    else:
        rows = memory(args.lengths, args.dit_max, args.mdlm_max)
        write_json(args.out / "memory.json", {"rows": rows, "device": device_description("cpu")})
        plot_memory(rows, args.plot)


if __name__ == "__main__":
    main()

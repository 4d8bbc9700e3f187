"""Block diffusion (BD3-LM) at our scale: its likelihood bound against MDLM and AR at equal budget, and the speed
of block sampling with and without the key/value cache.

- `likelihood --track dna|text`: trains, through `mdlm-bio train`, the same DiT as an AR model, as MDLM, and as
  block diffusion at block sizes 16, 8 and 4, with the same data, batch and steps (a run already trained in
  --out is reused); prints each NLL (a bound for the diffusion models; for DNA over the held-out records with
  --mc draws per window, else the final validation) and the fraction of the MDLM-to-AR gap each block size
  closes (the paper: 41% at block size 4 on OpenWebText); block size 4 also on the clipped schedule
  U[0.45, 0.95]. DNA: `demo-bd3`'s dit-tiny on the bundled genome;
  text: bench_fidelity.py's DiT on the State of the Union addresses.
- `generation`: samples of 1024 bases, MDLM's semi-autoregressive windows against block diffusion (blocks of 4,
  clipped), their bits per base under the AR model of the likelihood part and their entropy, against network calls.
- `lengths`: block diffusion's samples ending at the entropy rule, beside the same rule read on held-out DNA.
- `cache`: tokens/s of block-by-block sampling (first-hitting inside blocks of 4) with the cache and recomputing
  the prefix, at 1024 and 4096 tokens, on an untrained dit-tiny of context 4096 (speed does not depend on training).

    python bench/bench_block_diffusion.py likelihood --track dna --steps 2000    # ~25 min on 2 cores
    python bench/bench_block_diffusion.py cache
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_fidelity import TEXT_MODEL, final_validation
from bench_variant_scores import bundled_sequences
from harness import device_description, run_isolated, write_json
from sotu_corpus import prepare_sotu

from mdlm_bio.diffusion import FirstHittingSampler, make_sampler
from mdlm_bio.diffusion.stopping import StopRule, unigram_entropy
from mdlm_bio.dna.genome import BUNDLED_VALID_RECORDS
from mdlm_bio.dna.report import reference_windows
from mdlm_bio.dna.tokenizer import encode
from mdlm_bio.models import load_model
from mdlm_bio.models.block_diffusion_model import BlockDiffusionModel
from mdlm_bio.models.network import LanguageModel
from mdlm_bio.models.spec import ModelSpec, ObjectiveSettings
from mdlm_bio.tasks.generative_perplexity import reference_tokens
from mdlm_bio.text.tokenizer import load_tokenizer

BLOCK_SIZES = (16, 8, 4)
CLIP_4 = (0.45, 0.95)  # the clipped schedule BD3-LM's search found for block size 4 (on LM1B)


def likelihood_commands(track: str, steps: int, out: Path) -> dict[str, list[str]]:
    """`mdlm-bio train` command lines keyed by model: ar, mdlm, bd3-16, bd3-8, bd3-4."""
    common = [f"trainer.max_steps={steps}", f"trainer.val_check_interval={max(steps // 4, 1)}",
              "trainer.limit_val_batches=1.0", f"checkpoint_every_n_steps={max(steps // 2, 1)}",
              "trainer.enable_progress_bar=false"]
    if track == "dna":
        base = ["demo-bd3", *common]
    else:
        corpus = prepare_sotu(out / "sotu")
        base = ["text-tiny", f"data.tokenizer={corpus['tokenizer']}", f"data.train_files=[{corpus['train']}]",
                f"data.valid_files=[{corpus['valid']}]", f"data.cache_dir={out / 'sotu' / 'cache'}", *TEXT_MODEL,
                *common]
    kinds = {"ar": ["objective.kind=ar", "objective.block_size=null", "objective.clip=null",
                    "model.overrides.causal=true"],
             "mdlm": ["objective.kind=mdlm", "objective.block_size=null", "objective.clip=null"],
             **{f"bd3-{size}": ["objective.kind=bd3", f"objective.block_size={size}", "objective.clip=null"]
                for size in BLOCK_SIZES},
             "bd3-4-clip": ["objective.kind=bd3", "objective.block_size=4", f"objective.clip=[{CLIP_4[0]},{CLIP_4[1]}]"]}
    return {name: ["train", base[0], f"run_dir={out / f'{track}-{name}'}", *base[1:], *extra]
            for name, extra in kinds.items()}


def held_out_nll(run: Path, mc: int) -> dict[str, float]:
    """NELBO (or exact NLL) per base of the bundled genome's held-out records, `mc` noise draws per window: the
    validation log's few fixed draws are too noisy to rank block sizes a few hundredths of a bit apart."""
    model, sequences = load_model(run), bundled_sequences()
    scores = [model.score(encode(sequences[name]), mc, seed=0) for name in BUNDLED_VALID_RECORDS]
    nll = sum(score.nats for score in scores) / sum(score.tokens for score in scores)
    return {"nll": nll, "bits": nll / math.log(2), "ppl": math.exp(nll)}


def likelihood(track: str, steps: int, out: Path, mc: int, models: list[str] | None = None) -> dict:
    rows = {}
    for name, command in likelihood_commands(track, steps, out).items():
        if models and name not in models:
            continue
        if not (out / f"{track}-{name}" / "checkpoints" / "last.ckpt").is_file():
            print("mdlm-bio " + " ".join(command), flush=True)
            subprocess.run([sys.executable, "-m", "mdlm_bio.cli", *command], check=True)
        rows[name] = final_validation(out / f"{track}-{name}")
        if track == "dna":
            rows[name] = {**rows[name], **held_out_nll(out / f"{track}-{name}", mc), "mc": mc}
    gap = rows["mdlm"]["nll"] - rows["ar"]["nll"]
    for name, row in rows.items():
        row["gap_closed"] = (rows["mdlm"]["nll"] - row["nll"]) / gap if gap > 0 else float("nan")
    unit = "base" if track == "dna" else "token"
    print(f"{'model':<12}{'step':>7}{'NLL nats':>12}{f'bits/{unit}':>12}{'PPL':>10}{'gap closed':>12}")
    for name, row in rows.items():
        bound = "  " if name == "ar" else "<="
        print(f"{name:<12}{row['step']:>7}{bound:>4}{row['nll']:>8.4f}{row['bits']:>12.4f}{row['ppl']:>10.3f}"
              f"{row['gap_closed']:>12.1%}")
    return rows


def plot(rows: dict, track: str, path: Path) -> None:
    """Bits per token against block size, MDLM and AR as lines: the interpolation block diffusion promises."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    unit = "base" if track == "dna" else "token"
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for name, style in (("ar", "--"), ("mdlm", ":")):
        axis.axhline(rows[name]["bits"], linestyle=style, color="gray", label=f"{name.upper()} (bits/{unit})")
    sizes = sorted(int(name.split("-")[1]) for name in rows if name.startswith("bd3-") and name.count("-") == 1)
    axis.plot(sizes, [rows[f"bd3-{size}"]["bits"] for size in sizes], marker="o", label="BD3-LM, U[eps, 1]")
    if "bd3-4-clip" in rows:
        axis.plot([4], [rows["bd3-4-clip"]["bits"]], marker="*", markersize=12, linestyle="",
                  label=f"BD3-LM, clipped U[{CLIP_4[0]}, {CLIP_4[1]}]")
    axis.set(xscale="log", xlabel="block size L'", ylabel=f"bits/{unit} (NELBO; AR exact)",
             title=f"Block diffusion on {'the bundled DNA' if track == 'dna' else 'State of the Union text'}")
    ticks = sorted(set(sizes) | ({4} if "bd3-4-clip" in rows else set()))
    axis.set_xticks(ticks, [str(size) for size in ticks])
    axis.minorticks_off()
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


def judge_bits(judge, rows: torch.Tensor, track: str) -> list[float]:
    """Each row's bits per token under the AR judge: its exact NLL (text: the first token is the given BOS)."""
    if track == "dna":
        return [judge.score(row.numpy().astype("uint8"), 1, 0).bits_per_token for row in rows]
    generator, bits = torch.Generator().manual_seed(0), []
    for row in rows:
        total, count = judge.nll(row[None], torch.ones_like(row[None]), generator, 1, None)
        bits.append(total / count / math.log(2))
    return bits


def judged(model, sampler, judge, track: str, num: int, length: int, start_token: int | None) -> dict:
    """Samples' bits per token under the AR judge, their unigram entropy, and calls per sample."""
    begin = time.perf_counter()
    out = model.sample(sampler, num=num, length=length, seed=0, batch_size=num, start_token=start_token)
    seconds = time.perf_counter() - begin
    bits = judge_bits(judge, out.tokens, track)
    return {"model": model.describe_sampling(sampler), "calls_per_sample": out.row_calls / num,
            "judge_bits": float(np.mean(bits)), "judge_se": float(np.std(bits, ddof=1) / math.sqrt(num)),
            "entropy_nats": float(unigram_entropy(out.tokens).mean()), "seconds": seconds}


def held_out_rows(track: str, out: Path, num: int, length: int) -> tuple[str, torch.Tensor]:
    """`num` held-out windows of `length` tokens, tokenized as training saw them: the yardstick row."""
    if track == "dna":
        sequences = bundled_sequences()
        records = [encode(sequences[name]) for name in BUNDLED_VALID_RECORDS]
        length = min(length, min(len(record) for record in records))
        windows = reference_windows(records, [length] * num, np.random.default_rng(0))
        return "held-out DNA", torch.as_tensor(np.stack(windows)).long()
    corpus = prepare_sotu(out / "sotu")
    rows = reference_tokens(load_tokenizer(str(corpus["tokenizer"])), "openwebtext", num=num, length=length,
                            cache_dir=out / "sotu" / "cache", text_files=[str(corpus["valid"])])
    return "held-out addresses", rows


def bos_of(track: str, out: Path) -> int | None:
    """Text samples start at the tokenizer's BOS, as every training block does; DNA has none."""
    return None if track == "dna" else load_tokenizer(str(prepare_sotu(out / "sotu")["tokenizer"])).bos_id


def generation(track: str, out: Path, num: int, length: int) -> list[dict]:
    """MDLM (semi-autoregressive windows beyond its context) against block diffusion (blocks of 4, clipped):
    sample quality against network calls, judged by the AR model of the likelihood part (the runs in `out`)."""
    judge, mdlm, blocks = (load_model(out / f"{track}-{name}") for name in ("ar", "mdlm", "bd3-4-clip"))
    first = bos_of(track, out)
    settings = [(mdlm, make_sampler("ancestral", steps=steps)) for steps in (16, 32, 64, 128)]
    settings += [(mdlm, make_sampler("first-hitting"))]
    settings += [(blocks, make_sampler("ancestral", steps=steps)) for steps in (1, 2, 4)]
    settings += [(blocks, make_sampler("first-hitting"))]
    rows = []
    for model, sampler in settings:
        rows.append({"kind": model.kind, **judged(model, sampler, judge, track, num, length, first)})
        print(rows[-1], flush=True)
    name, real = held_out_rows(track, out, num, length)
    bits = judge_bits(judge, real, track)
    rows.append({"kind": name, "model": f"{name}, windows of {real.shape[1]}", "calls_per_sample": 0.0,
                 "judge_bits": float(np.mean(bits)), "judge_se": float(np.std(bits, ddof=1) / math.sqrt(num)),
                 "entropy_nats": float(unigram_entropy(real).mean()), "seconds": 0.0})
    unit = "base" if track == "dna" else "token"
    print(f"{'samples':<58}{'calls':>8}{f'judge bits/{unit}':>17}{'entropy':>9}{'s':>8}")
    for r in rows:
        print(f"{r['model'][:57]:<58}{r['calls_per_sample']:>8.0f}{r['judge_bits']:>11.4f} ± {r['judge_se']:.4f}"
              f"{r['entropy_nats']:>9.4f}{r['seconds']:>8.1f}")
    return rows


def as_generated(rule: StopRule, tokens: torch.Tensor, block_size: int) -> torch.Tensor:
    """The lengths `rule` gives sequences checked as generation checks them: after every block, on what exists."""
    lengths = torch.full((len(tokens),), tokens.shape[1])
    for end in range(block_size, tokens.shape[1] + 1, block_size):
        stopped = (lengths == tokens.shape[1]) & (rule.lengths(tokens[:, :end]) < end)
        lengths[stopped] = rule.lengths(tokens[:, :end])[stopped]
    return lengths


def lengths(track: str, out: Path, num: int, max_length: int, entropy: float | None, window: int) -> dict:
    """Block diffusion's samples of variable length against the same rule read on held-out windows: DNA ends at
    the entropy rule, text at its end-of-sequence token (and the entropy rule if given)."""
    model, first = load_model(out / f"{track}-bd3-4-clip"), bos_of(track, out)
    rule = StopRule(token=first, entropy=entropy, window=window)  # text: BOS and EOS are one token
    drawn = model.sample(make_sampler("ancestral", steps=2), num=num, length=max_length, seed=0, batch_size=num,
                         start_token=first, stop=rule)
    name, real = held_out_rows(track, out, num, max_length)
    real_lengths = as_generated(rule, real, model.block_size)
    summary = {label: {"quantiles": np.quantile(values.numpy(), [0.1, 0.5, 0.9]).tolist(),
                       "stopped": float((values < width).float().mean())}
               for label, values, width in (("samples", drawn.lengths, max_length),
                                            (name, real_lengths, real.shape[1]))}
    print(f"rule: {rule.describe()}; samples up to {max_length}, held-out windows of {real.shape[1]}")
    for label, row in summary.items():
        print(f"{label:<20} stopped {row['stopped']:.0%}, length quantiles 10/50/90%: {row['quantiles']}")
    return summary


def untrained_block_model(context: int) -> BlockDiffusionModel:
    torch.manual_seed(0)
    backbone = {"architecture": "dit", "vocab_size": 16, "hidden_size": 64, "cond_dim": 32, "n_blocks": 2,
                "n_heads": 4, "dropout": 0.0, "causal": False, "time_conditioning": False}
    objective = ObjectiveSettings(kind="bd3", schedule={"name": "loglinear"}, sampling_eps=1e-3, antithetic=True,
                                  block_size=4)
    network = LanguageModel(ModelSpec(backbone, objective, mask_id=3, context=context, track="dna",
                                      output_ids=(7, 8, 9, 10))).eval()
    return BlockDiffusionModel(network, "untrained dit-tiny", "dit-tiny")


def cache_row(length: int, kv_cache: bool) -> dict:
    model = untrained_block_model(4096)
    model.kv_cache = kv_cache
    start = time.perf_counter()
    out = model.sample(FirstHittingSampler(), num=1, length=length, seed=0, batch_size=1)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens_per_s": length / seconds, "calls": out.num_calls,
            "checksum": int((out.tokens * torch.arange(1, length + 1)).sum())}


def cache(lengths: list[int]) -> list[dict]:
    rows = []
    for length in lengths:
        cached, recomputed = run_isolated(cache_row, length, True), run_isolated(cache_row, length, False)
        rows.append({"length": length, "cached_tokens_per_s": cached["tokens_per_s"],
                     "recomputed_tokens_per_s": recomputed["tokens_per_s"],
                     "speedup": cached["tokens_per_s"] / recomputed["tokens_per_s"], "calls": cached["calls"],
                     "same_samples": cached["checksum"] == recomputed["checksum"]})
        print(rows[-1], flush=True)
    print(f"{device_description('cpu')}; dit-tiny, context 4096, blocks of 4, first-hitting, batch 1")
    print(f"{'tokens':>7}{'cached tok/s':>14}{'recomputed tok/s':>18}{'speedup':>9}{'same samples':>14}")
    for r in rows:
        print(f"{r['length']:>7}{r['cached_tokens_per_s']:>14.1f}{r['recomputed_tokens_per_s']:>18.1f}"
              f"{r['speedup']:>9.2f}{str(r['same_samples']):>14}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    first = parts.add_parser("likelihood")
    first.add_argument("--track", choices=["dna", "text"], required=True)
    first.add_argument("--steps", type=int, default=2000)
    first.add_argument("--mc", type=int, default=32, help="noise draws per held-out window (DNA)")
    first.add_argument("--plot", type=Path, default=Path("bench/block_diffusion.png"))
    first.add_argument("--models", nargs="+", default=None, help="a subset of ar mdlm bd3-16 bd3-8 bd3-4 bd3-4-clip "
                       "(ar and mdlm are needed for the gap)")
    first.add_argument("--out", type=Path, default=Path("bench-results/block_diffusion"))
    third = parts.add_parser("generation")
    third.add_argument("--track", choices=["dna", "text"], default="dna")
    third.add_argument("--out", type=Path, default=Path("bench-results/block_diffusion"))
    third.add_argument("--num", type=int, default=32)
    third.add_argument("--length", type=int, default=1024)
    fourth = parts.add_parser("lengths")
    fourth.add_argument("--track", choices=["dna", "text"], default="dna")
    fourth.add_argument("--out", type=Path, default=Path("bench-results/block_diffusion"))
    fourth.add_argument("--num", type=int, default=64)
    fourth.add_argument("--max-length", type=int, default=4096)
    fourth.add_argument("--entropy", type=float, default=None, help="nats (DNA: 1.2 unless given; text: off)")
    fourth.add_argument("--window", type=int, default=128)
    second = parts.add_parser("cache")
    second.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096])
    second.add_argument("--out", type=Path, default=Path("bench-results/block_diffusion"))
    args = parser.parse_args()
    if args.part == "likelihood":
        rows = likelihood(args.track, args.steps, args.out, args.mc, args.models)
        write_json(args.out / f"likelihood-{args.track}.json", rows)
        plot(rows, args.track, args.plot)
    elif args.part == "generation":
        write_json(args.out / f"generation-{args.track}.json",
                   {"rows": generation(args.track, args.out, args.num, args.length)})
    elif args.part == "lengths":
        entropy = 1.2 if args.entropy is None and args.track == "dna" else args.entropy
        write_json(args.out / f"lengths-{args.track}.json",
                   lengths(args.track, args.out, args.num, args.max_length, entropy, args.window))
    else:
        write_json(args.out / "cache.json", {"rows": cache(args.lengths)})


if __name__ == "__main__":
    main()

"""Sample quality against network calls: ancestral, cached, first-hitting, ReMDM and confidence decoding.

Each sampler draws the same number of sequences from one trained model at budgets of 16 to 256 network
calls, and ancestral, cached and ReMDM-loop at 1024 as well (NFE: network evaluations per sample, row calls
/ samples, so the cached sampler's per-row savings count); a model that did not make them judges them.

- DNA: the `demo` model (`--dna-ckpt`), judged by the exact NLL (bits per base, with its standard error over
  the samples) under the `demo-ar` model (`--dna-judge`), the 3-mer and 6-mer Jensen-Shannon distances to the
  held-out records, and the report's discriminator AUROC against held-out windows (0.5: indistinguishable).
- Text: the State of the Union MDLM of bench_fidelity.py (`--text-ckpt`), judged by its AR model
  (`--text-judge`): generative perplexity, with each sample's unigram entropy (nats) beside it, since a sampler
  that lowers entropy fakes a low perplexity.

Writes a table per track, JSON and a PNG (quality against NFE, one line per sampler). A run keeps the other
track's rows already in `--out`, so the tracks can run one at a time.

    python bench/bench_fidelity.py --track text --steps 2000 --out FID      # the text models (about 40 min)
    python bench/bench_sampler_quality.py --dna-ckpt DEMO/run --dna-judge AR_RUN \\
        --text-ckpt FID/text-mdlm --text-judge FID/text-ar
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_variant_scores import bundled_sequences  # noqa: E402
from harness import write_json  # noqa: E402

from mdlm_bio.diffusion import Sampler, make_sampler  # noqa: E402
from mdlm_bio.diffusion.stopping import unigram_entropy  # noqa: E402
from mdlm_bio.dna.autoregressive import score_autoregressive  # noqa: E402
from mdlm_bio.dna.discriminator import discriminate  # noqa: E402
from mdlm_bio.dna.genome import BUNDLED_VALID_RECORDS  # noqa: E402
from mdlm_bio.dna.metrics import jensen_shannon_distance, kmer_spectrum  # noqa: E402
from mdlm_bio.dna.report import reference_windows  # noqa: E402
from mdlm_bio.dna.tokenizer import encode  # noqa: E402
from mdlm_bio.models import load_model  # noqa: E402
from mdlm_bio.models.handle import Model  # noqa: E402

BUDGETS = (16, 32, 64, 128, 256)
REFERENCE_BUDGET = 1024
ERRORS = {"judge_bits_per_base": "judge_se"}  # metric -> its standard error, drawn as error bars
PANELS = [("dna", "judge_bits_per_base", "DNA: bits/base under demo-ar (lower is better)"),
          ("dna", "discriminator_auroc", "DNA: discriminator AUROC (0.5 is best)"),
          ("text", "gen_ppl", "Text: generative perplexity under the AR model"),
          ("text", "entropy_nats", "Text: unigram entropy per sample (nats)")]


def plans(model: Model, budgets: tuple[int, ...], reference: int) -> list[tuple[str, int, Sampler]]:
    """(sampler label, budget, sampler): every sampler at every budget it can spend, and at the `reference` budget
    the ancestral sampler (the goal's yardstick), its cached twin and ReMDM-loop (ReMDM's published setting)."""
    out = [("ancestral", reference, make_sampler("ancestral", steps=reference)),
           ("cached", reference, make_sampler("cached", steps=reference)),
           ("remdm loop", reference, make_sampler("remdm", steps=reference))]
    for budget in budgets:
        out += [("ancestral", budget, make_sampler("ancestral", steps=budget)),
                ("cached", budget, make_sampler("cached", steps=budget)),
                ("remdm loop", budget, make_sampler("remdm", steps=budget)),
                ("remdm cap", budget, make_sampler("remdm", steps=budget, remask="cap"))]
        if budget <= model.context:  # confidence decoding spends at most one call per position
            out.append(("confidence", budget, make_sampler("confidence", steps=budget)))
    return out + [("first-hitting", model.context, make_sampler("first-hitting"))]


def draw(model: Model, sampler: Sampler, num: int, length: int, batch_size: int) -> tuple[torch.Tensor, float, float]:
    """(samples, NFE per sample, seconds)."""
    begin = time.perf_counter()
    out = model.sample(sampler, num=num, length=length, seed=0, batch_size=batch_size)
    return out.tokens, out.row_calls / num, time.perf_counter() - begin


def dna_quality(samples: torch.Tensor, judge: Model, held_out: list[np.ndarray], seed: int) -> dict:
    sequences = [row.numpy().astype(np.uint8) for row in samples]
    bits = np.array([score_autoregressive(judge.network.causal_network, s, judge.context).bits_per_token
                     for s in sequences])
    spectra = {k: kmer_spectrum(held_out, k) for k in (3, 6)}
    windows = reference_windows(held_out, [len(s) for s in sequences], np.random.default_rng(seed))
    return {"judge_bits_per_base": float(bits.mean()), "judge_se": float(bits.std(ddof=1) / math.sqrt(len(bits))),
            **{f"js{k}": jensen_shannon_distance(kmer_spectrum(sequences, k), spectra[k]) for k in (3, 6)},
            "discriminator_auroc": discriminate(sequences, windows, seed).auroc,
            "entropy_nats": float(unigram_entropy(samples).mean())}


def text_quality(samples: torch.Tensor, judge: Model) -> dict:
    """Generative perplexity under the AR judge (every token after the first, given the ones before it)."""
    with torch.no_grad():
        log_probs = judge.network.causal_network(samples)[:, :-1].double().log_softmax(-1)
    nll = -log_probs.gather(-1, samples[:, 1:, None])[..., 0].mean()
    return {"gen_ppl": float(nll.exp()), "entropy_nats": float(unigram_entropy(samples).mean())}


def run_track(track: str, model: Model, judge_quality: Callable[[torch.Tensor], dict], budgets: tuple[int, ...],
              reference: int, num: int, batch_size: int) -> list[dict]:
    rows = []
    for label, budget, sampler in plans(model, budgets, reference):
        samples, nfe, seconds = draw(model, sampler, num, model.context, batch_size)
        row = {"track": track, "sampler": label, "budget": budget, "num": num, "nfe": nfe, "seconds": seconds,
               "plan": sampler.describe(), **judge_quality(samples)}
        print({key: round(value, 4) if isinstance(value, float) else value for key, value in row.items()}, flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict], metrics: list[str]) -> str:
    lines = ["| sampler | budget | NFE | " + " | ".join(metrics) + " | s |",
             "| --- | ---: | ---: | " + " | ".join("---:" for _ in metrics) + " | ---: |"]
    for row in rows:
        lines.append(f"| {row['sampler']} | {row['budget']} | {row['nfe']:.0f} | "
                     + " | ".join(f"{row[m]:.4g}" for m in metrics) + f" | {row['seconds']:.1f} |")
    return "\n".join(lines)


def plot(rows: list[dict], panels: list[tuple[str, str, str]], out: Path) -> None:
    columns = min(2, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(6.5 * columns, 4.5 * lines), squeeze=False)
    for axis, (track, metric, title) in zip(axes.flat, panels):
        chosen = [row for row in rows if row["track"] == track]
        for sampler in dict.fromkeys(row["sampler"] for row in chosen):
            points = sorted((row["nfe"], row[metric], row.get(ERRORS.get(metric, ""), 0.0))
                            for row in chosen if row["sampler"] == sampler)
            nfe, value, error = zip(*points)
            axis.errorbar(nfe, value, yerr=error, marker="o", capsize=3, label=sampler)
        axis.set(xscale="log", xlabel="network calls per sample (NFE)", ylabel=metric, title=title)
        axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dna-ckpt", type=Path, default=None)
    parser.add_argument("--dna-judge", type=Path, default=None)
    parser.add_argument("--text-ckpt", type=Path, default=None)
    parser.add_argument("--text-judge", type=Path, default=None)
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS), help="NFE for every sampler")
    parser.add_argument("--reference-budget", type=int, default=REFERENCE_BUDGET,
                        help="NFE for ancestral, cached and ReMDM-loop only (default: 1024)")
    parser.add_argument("--num", type=int, default=64, help="samples per sampler and budget (default: 64)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/bench-results/sampler_quality.json"))
    parser.add_argument("--plot", type=Path, default=Path("bench/sampler_quality.png"))
    options = parser.parse_args()
    torch.manual_seed(options.seed)
    budgets, rows = tuple(options.budgets), []
    if options.dna_ckpt:
        sequences = bundled_sequences()
        held_out = [encode(sequences[name]) for name in BUNDLED_VALID_RECORDS]
        judge = load_model(options.dna_judge)
        rows += run_track("dna", load_model(options.dna_ckpt), lambda s: dna_quality(s, judge, held_out, options.seed),
                          budgets, options.reference_budget, options.num, options.batch_size)
    if options.text_ckpt:
        text_judge = load_model(options.text_judge)
        rows += run_track("text", load_model(options.text_ckpt), lambda s: text_quality(s, text_judge), budgets,
                          options.reference_budget, options.num, options.batch_size)
    # the other track's rows from an earlier run are kept, so the tracks can run one at a time (or side by side)
    ran = {row["track"] for row in rows}
    if options.out.is_file():
        rows += [row for row in json.loads(options.out.read_text())["rows"] if row["track"] not in ran]
    write_json(options.out, {"rows": rows, "seed": options.seed})
    panels = [panel for panel in PANELS if any(row["track"] == panel[0] for row in rows)]
    for track, metrics in (("dna", ["judge_bits_per_base", "judge_se", "js3", "js6", "discriminator_auroc",
                                    "entropy_nats"]),
                           ("text", ["gen_ppl", "entropy_nats"])):
        chosen = [row for row in rows if row["track"] == track]
        if chosen:
            print(f"\n{track}\n" + table(chosen, metrics))
    if panels:
        plot(rows, panels, options.plot)


if __name__ == "__main__":
    main()

"""Sampler speed and quality: ancestral vs cached vs first-hitting, and semi-autoregressive beyond the context.

For each length L and number of steps T, every sampler draws the same number of sequences through
`generate` (the path `mdlm-bio sample` takes) in one window of L; a further row set draws a length beyond
the model's training window semi-autoregressively. Reported: wall time, network calls, samples/s, the
ratio to ancestral at the same (L, T), and two quality checks that must agree across samplers:

- k-mer JS: the Jensen-Shannon distance (bits) of the samples' 3-mer spectrum to the held-out DNA, next
  to the same distance for as many held-out windows (the floor set by sample size alone);
- NELBO: the model's own bits per base on its samples (cut into training-length windows), next to its
  bits per base on held-out windows: a sampler that strays from the model's distribution scores worse.

The model is a trained run (`--checkpoint`, e.g. from `mdlm-bio train demo`); its held-out records are
the reference. Ratios are within one run.

    mdlm-bio train demo && python bench/bench_samplers.py --checkpoint runs/demo    # about 10 min on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import torch
from harness import peak_memory_mib, write_json

from mdlm_bio.diffusion import make_sampler
from mdlm_bio.dna.genome import split_sequences
from mdlm_bio.dna.metrics import jensen_shannon_distance, kmer_spectrum
from mdlm_bio.dna.report import reference_windows
from mdlm_bio.models import load_model
from mdlm_bio.models.handle import Model

K = 3
# the exact-or-MDLM samplers; ReMDM and confidence decoding are judged against calls in bench_sampler_quality.py
SAMPLERS = ("ancestral", "cached", "first-hitting")


def model_bits_per_base(model: Model, sequences: torch.Tensor, seed: int = 0) -> float:
    """The model's NELBO in bits per base, over training-length windows of the sequences (16 noise draws)."""
    window = min(model.context, sequences.shape[1])
    windows = sequences[:, : sequences.shape[1] // window * window].reshape(-1, window)
    generator = torch.Generator().manual_seed(seed)
    losses = [model.network.objective(windows, None, generator).loss for _ in range(16)]
    return float(torch.stack(losses).mean()) / math.log(2)


def quality(model: Model, tokens: torch.Tensor, reference_spectrum: np.ndarray) -> dict[str, float]:
    spectrum = kmer_spectrum([row.numpy().astype(np.uint8) for row in tokens], K)
    return {"js": jensen_shannon_distance(spectrum, reference_spectrum), "bits_per_base": model_bits_per_base(model, tokens)}


def with_context(model: Model, context: int) -> Model:
    """The model told its context is `context`: Mamba runs at any length, so one window of that many bases per
    sample measures the samplers at lengths the demo model was not trained on."""
    model.network.spec = dataclasses.replace(model.network.spec, context=context)
    return model


def measure(model: Model, sampler: str, steps: int, num: int, length: int, reference: np.ndarray) -> dict:
    """`num` samples of `length` bases from `model` with the sampler registered as `sampler`."""
    chosen = make_sampler(sampler) if sampler == "first-hitting" else make_sampler(sampler, steps=steps)
    start = time.perf_counter()
    out = model.sample(chosen, num=num, length=length, seed=0, batch_size=num)
    seconds = time.perf_counter() - start
    return {"sampler": sampler, "steps": steps, "length": length, "context": model.context, "num": num,
            "seconds": seconds, "calls": out.num_calls, "row_calls": out.row_calls, "samples_per_s": num / seconds,
            **quality(model, out.tokens, reference)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a DNA MDLM run folder or .ckpt (mdlm-bio train demo)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--tokens", type=int, default=2048, help="bases per row: num = tokens // L sequences")
    parser.add_argument("--semi-ar-length", type=int, default=1024, help="length drawn beyond the model's context")
    parser.add_argument("--json", default="bench-results/samplers.json")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = load_model(args.checkpoint)
    reference_records = [tokens for _, tokens in split_sequences(model.config["data"]["data_dir"])]
    reference = kmer_spectrum(reference_records, K)
    rows = []
    with torch.inference_mode():
        # Warm-up (thread pool, allocator), so the first timed row does not pay for it.
        trained_context = model.context
        measure(model, "ancestral", 10, 2, trained_context, reference)
        cases = [(length, steps, length) for length in args.lengths for steps in args.steps]
        cases += [(args.semi_ar_length, steps, trained_context) for steps in args.steps[:1]]
        first_hitting = {}  # it ignores T: one run per (length, context) serves every T
        for length, steps, context in cases:
            num = max(1, args.tokens // length)
            case = {}
            for sampler in SAMPLERS:
                if sampler == "first-hitting" and (length, context) in first_hitting:
                    case[sampler] = {**first_hitting[length, context], "steps": steps}
                    continue
                case[sampler] = measure(with_context(model, context), sampler, steps, num, length, reference)
                print(case[sampler], flush=True)
            first_hitting[length, context] = case["first-hitting"]
            for row in case.values():
                rows.append({**row, "time_vs_ancestral": row["seconds"] / case["ancestral"]["seconds"]})
        floors = {}
        for length in sorted({case[0] for case in cases}):
            windows = reference_windows(reference_records, [length] * max(1, args.tokens // length), np.random.default_rng(0))
            floors[length] = quality(model, torch.as_tensor(np.stack(windows), dtype=torch.long), reference)
    peak_mib = peak_memory_mib("cpu")
    write_json(args.json, {"checkpoint": model.source, "rows": rows, "held_out_windows": floors, "peak_rss_mib": peak_mib})
    print(f"{'sampler':<14}{'L':>6}{'ctx':>5}{'T':>6}{'calls':>7}{'rows':>7}{'seconds':>9}{'samples/s':>11}{'time/anc':>10}"
          f"{f'JS {K}-mer':>10}{'bits/base':>11}")
    for r in rows:
        print(f"{r['sampler']:<14}{r['length']:>6}{r['context']:>5}{r['steps']:>6}{r['calls']:>7}{r['row_calls']:>7}"
              f"{r['seconds']:>9.2f}"
              f"{r['samples_per_s']:>11.2f}{r['time_vs_ancestral']:>10.2f}{r['js']:>10.4f}{r['bits_per_base']:>11.3f}")
    for length, floor in floors.items():
        print(f"{'held-out':<14}{length:>6}{'':>38}{floor['js']:>10.4f}{floor['bits_per_base']:>11.3f}")
    print(f"peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()

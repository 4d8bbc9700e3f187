"""Text sampling speed and memory: where ancestral sampling spends its time with a 50k-token vocabulary.

The baseline is ancestral sampling that applies SUBS to all of [B, L, V] and draws float64 Gumbel noise
for every position and token on each step, then keeps the revealed positions (how MDLM samples); the
engine's samplers apply SUBS and draw only at the revealed positions. Also timed: the cached sampler,
first-hitting, and the AR baseline's left-to-right sampling (no KV cache). Each row runs in a fresh
process, so its peak memory (CPU RSS, or CUDA allocated) is its own.
The DiT is untrained `dit-tiny` with GPT-2's vocabulary: the numbers measure sampler cost, not quality.

    python bench/bench_text_sampling.py --batch 8 --length 128 --steps 128
"""

from __future__ import annotations

import argparse
import time

import torch
from harness import device_description, peak_memory_mib, run_isolated, synchronize, write_json

from mdlm_bio.backbones import build_backbone, load_preset
from mdlm_bio.diffusion import (
    LogLinearSchedule,
    all_masked,
    ancestral_sample,
    autoregressive_sample,
    first_hitting_sample,
    sample_categorical,
    subs_log_probs,
    time_grid,
)

MASK = 50257
SAMPLERS = ("ancestral, full-tensor draws (baseline)", "ancestral", "cached", "first-hitting", "autoregressive")


def full_draw_ancestral(network, z: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """The baseline: a categorical draw at every position on every step that reveals anything."""
    schedule = LogLinearSchedule()
    times = time_grid(schedule, steps)
    for step in range(steps):
        t, s = times[step], times[step + 1]
        sigma = schedule.total_noise(torch.full((z.shape[0],), float(t)))
        log_probs = subs_log_probs(network(z, sigma), z, MASK)
        unmask_prob = float((schedule.alpha(s) - schedule.alpha(t)) / (1 - schedule.alpha(t)))
        update = (z == MASK) & ((torch.rand(z.shape, generator=generator, dtype=torch.float64) < unmask_prob)
                                | (step == steps - 1))
        z = torch.where(update, sample_categorical(log_probs, generator), z)
    return z


def run_one(sampler: str, batch: int, length: int, steps: int, device: str) -> dict[str, float]:
    torch.manual_seed(0)
    causal = sampler == "autoregressive"
    network = build_backbone(load_preset("dit-tiny", [f"causal={causal}"])).to(device).eval()
    schedule = LogLinearSchedule()
    generator = torch.Generator(device=device).manual_seed(0)
    z = all_masked(batch, length, MASK, device)

    def denoise(tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return network(tokens, schedule.total_noise(t))

    runs = {
        SAMPLERS[0]: lambda: full_draw_ancestral(network, z, steps, generator),
        "ancestral": lambda: ancestral_sample(denoise, z, schedule, MASK, steps=steps, generator=generator).tokens,
        "cached": lambda: ancestral_sample(denoise, z, schedule, MASK, steps=steps, cache=True, generator=generator).tokens,
        "first-hitting": lambda: first_hitting_sample(denoise, z, schedule, MASK, generator=generator).tokens,
        "autoregressive": lambda: autoregressive_sample(lambda x: network(x, None), z[:, :1] * 0, length,
                                                        generator=generator).tokens,
    }
    with torch.inference_mode():
        start = time.perf_counter()
        runs[sampler]()
        synchronize(device)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mib": peak_memory_mib(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default="bench-results/text_sampling.json")
    args = parser.parse_args()
    rows = [(sampler, run_isolated(run_one, sampler, args.batch, args.length, args.steps, args.device))
            for sampler in SAMPLERS]
    base = rows[0][1]
    device = device_description(args.device)
    write_json(args.json, {"device": device, "batch": args.batch, "length": args.length, "steps": args.steps,
                           "rows": [{"sampler": sampler, **row} for sampler, row in rows]})
    print(f"batch {args.batch}, length {args.length}, T={args.steps}, vocabulary 50258, {device}")
    print(f"{'sampler':<42}{'seconds':>9}{'tokens/s':>10}{'samples/s':>11}{'speedup':>9}{'peak MiB':>10}{'memory ratio':>14}")
    for sampler, r in rows:
        print(f"{sampler:<42}{r['seconds']:>9.2f}{args.batch * args.length / r['seconds']:>10.0f}"
              f"{args.batch / r['seconds']:>11.2f}{base['seconds'] / r['seconds']:>9.2f}{r['peak_mib']:>10.0f}"
              f"{r['peak_mib'] / base['peak_mib']:>14.2f}")


if __name__ == "__main__":
    main()

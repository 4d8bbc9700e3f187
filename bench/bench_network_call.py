"""Seconds per network call while sampling: one no-grad forward of a preset on a batch of masked windows,
the unit every sampler pays T (or L) times.

Each row runs in its own process (peak memory per row). To compare with another version of the code, run
the script once per version (e.g. `PYTHONPATH=/path/to/old/checkout`) and feed both JSON files to
bench/compare.py.

    python bench/bench_network_call.py --rows caduceus-tiny:16:128 caduceus-tiny:16:256 --json call.json
"""

from __future__ import annotations

import argparse
import time

import torch
from harness import device_description, peak_memory_mib, run_isolated, synchronize, write_json

from mdlm_bio.backbones.registry import build_backbone, count_parameters
from mdlm_bio.training.data import preset_backbone

CPU_ROWS = ["caduceus-tiny:16:128", "caduceus-tiny:16:256", "caduceus-tiny:1:1024", "caduceus-ps:8:1024"]


def measure(preset: str, batch: int, length: int, repeats: int, device: str) -> dict[str, float]:
    """Best-of-`repeats` seconds of one forward pass on half-masked tokens (sampling's typical input)."""
    torch.manual_seed(0)
    config = preset_backbone(preset)
    model = build_backbone(config).to(device).eval()
    mask_id = config["vocab_size"] - 1
    tokens = torch.randint(0, mask_id, (batch, length), device=device)
    tokens[torch.rand(batch, length, device=device) < 0.5] = mask_id
    sigma = torch.ones(batch, device=device)
    best = float("inf")
    with torch.no_grad():
        model(tokens, sigma)  # warm-up
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            model(tokens, sigma)
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return {"parameters": count_parameters(model), "seconds_per_call": best, "bases_per_s": batch * length / best,
            "peak_mib": peak_memory_mib(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=CPU_ROWS, metavar="PRESET:BATCH:LENGTH")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default="bench-results/network_call.json")
    args = parser.parse_args()
    rows = []
    for spec in args.rows:
        preset, batch, length = spec.rsplit(":", 2)
        row = run_isolated(measure, preset, int(batch), int(length), args.repeats, args.device)
        rows.append({"preset": preset, "batch": int(batch), "length": int(length), **row})
    device = device_description(args.device)
    write_json(args.json, {"device": device, "rows": rows})
    print(f"{device}; best of {args.repeats} no-grad forward passes")
    print(f"{'preset':<15}{'batch':>6}{'L':>7}{'s/call':>10}{'bases/s':>12}{'peak MiB':>10}")
    for r in rows:
        print(f"{r['preset']:<15}{r['batch']:>6}{r['length']:>7}{r['seconds_per_call']:>10.4f}"
              f"{r['bases_per_s']:>12,.0f}{r['peak_mib']:>10,.0f}")


if __name__ == "__main__":
    main()

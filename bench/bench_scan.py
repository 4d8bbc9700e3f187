"""Selective-scan speed, three tables, each as ratios against a baseline measured in the same run.

1. Training (forward + backward): our chunked scan (custom autograd) vs a position-by-position torch
   loop, with the activation memory saved for backward (bytes of tensors autograd keeps, measured with
   saved-tensor hooks). On CUDA with mamba-ssm installed it adds the fused kernel.
2. Training at a larger batch: the chunked scan on the whole batch at once vs in batch slices whose
   states stay under STATE_SLICE_BYTES (what selective_scan_torch does).
3. Inference (forward, no grad): materialised [L, B, E, N] states vs the stepwise state-only scan.

    python bench/bench_scan.py --lengths 1024 4096 --json scan.json
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from harness import synchronize, write_json

from mdlm_bio.backbones import scan
from mdlm_bio.backbones.kernels import selective_scan_kernel
from mdlm_bio.backbones.scan import _scan_outputs_stepwise, _scan_outputs_with_states, selective_scan_torch


def loop_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True):
    """The straightforward implementation: one autograd step per position."""
    delta = F.softplus(delta + delta_bias[:, None])
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    outputs = []
    for pos in range(u.shape[-1]):
        step = delta[..., pos, None]
        state = torch.exp(step * A) * state + step * B[:, None, :, pos] * u[..., pos, None]
        outputs.append((state * C[:, None, :, pos]).sum(-1))
    return (torch.stack(outputs, dim=-1) + D[:, None] * u) * F.silu(z)


def inputs(batch: int, inner: int, state: int, length: int, device: str) -> dict[str, torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(0)
    shape = (batch, inner, length)
    return dict(
        u=torch.randn(shape, generator=g, device=device),
        delta=torch.randn(shape, generator=g, device=device) - 3,
        A=-torch.rand(inner, state, generator=g, device=device) * 8,
        B=torch.randn(batch, state, length, generator=g, device=device),
        C=torch.randn(batch, state, length, generator=g, device=device),
        D=torch.randn(inner, generator=g, device=device),
        z=torch.randn(shape, generator=g, device=device),
        delta_bias=torch.randn(inner, generator=g, device=device),
    )


def measure(fn, args: dict[str, torch.Tensor], repeats: int) -> tuple[float, int]:
    """Seconds per forward+backward, and bytes autograd saves for backward."""
    params = {k: v.clone().requires_grad_() for k, v in args.items()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(**params, delta_softplus=True)
    out.sum().backward()
    start = time.perf_counter()
    for _ in range(repeats):
        fn(**params, delta_softplus=True).sum().backward()
    synchronize(str(args["u"].device))
    return (time.perf_counter() - start) / repeats, sum(saved.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--d-inner", type=int, default=128, help="Mamba's expanded width E (2 x d_model)")
    parser.add_argument("--d-state", type=int, default=16)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--large-batch", type=int, default=32, help="batch of the slicing table")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    implementations = {"torch loop (baseline)": loop_scan, "chunked scan": selective_scan_torch}
    if args.device == "cuda" and selective_scan_kernel() is not None:
        implementations["mamba-ssm kernel"] = selective_scan_kernel()
    rows = []
    for length in args.lengths:
        data = inputs(args.batch, args.d_inner, args.d_state, length, args.device)
        results = {name: measure(fn, data, args.repeats) for name, fn in implementations.items()}
        base_seconds, base_bytes = results["torch loop (baseline)"]
        for name, (seconds, saved) in results.items():
            rows.append(dict(implementation=name, length=length, tokens_per_s=args.batch * length / seconds,
                             speedup=base_seconds / seconds, saved_mib=saved / 2**20, memory_ratio=saved / base_bytes))
    slicing, inference = [], []
    for length in args.lengths:
        data = inputs(args.large_batch, args.d_inner, args.d_state, length, args.device)
        sliced, _ = measure(selective_scan_torch, data, args.repeats)
        default_slice, scan.STATE_SLICE_BYTES = scan.STATE_SLICE_BYTES, 2**62
        whole, _ = measure(selective_scan_torch, data, args.repeats)
        scan.STATE_SLICE_BYTES = default_slice
        slicing += speed_rows({"whole batch (baseline)": whole, "batch slices": sliced}, args.large_batch, length)
        data = inputs(args.batch, args.d_inner, args.d_state, length, args.device)
        timings = {name: time_inference(fn, data, args.repeats)
                   for name, fn in (("states (baseline)", _scan_outputs_with_states), ("stepwise", _scan_outputs_stepwise))}
        inference += speed_rows(timings, args.batch, length)
    if args.json:
        write_json(args.json, {"device": args.device, "batch": args.batch, "d_inner": args.d_inner, "rows": rows,
                               "slicing": slicing, "inference": inference})
    print(f"device {args.device}, batch {args.batch}, d_inner {args.d_inner}, d_state {args.d_state}; forward + backward")
    print(f"{'implementation':<24}{'L':>7}{'tokens/s':>12}{'speedup':>9}{'saved MiB':>11}{'mem ratio':>11}")
    for r in rows:
        print(f"{r['implementation']:<24}{r['length']:>7}{r['tokens_per_s']:>12,.0f}{r['speedup']:>9.2f}"
              f"{r['saved_mib']:>11.1f}{r['memory_ratio']:>11.2f}")
    tables = {f"batch {args.large_batch}; forward + backward": slicing, f"batch {args.batch}; forward only": inference}
    for title, table in tables.items():
        print(f"\n{title}\n{'implementation':<24}{'L':>7}{'tokens/s':>12}{'speedup':>9}")
        for r in table:
            print(f"{r['implementation']:<24}{r['length']:>7}{r['tokens_per_s']:>12,.0f}{r['speedup']:>9.2f}")


def speed_rows(seconds: dict[str, float], batch: int, length: int) -> list[dict]:
    """Rows of tokens/s and speedup against the first entry (the baseline)."""
    base = next(iter(seconds.values()))
    return [dict(implementation=name, length=length, tokens_per_s=batch * length / t, speedup=base / t)
            for name, t in seconds.items()]


def time_inference(outputs, args: dict[str, torch.Tensor], repeats: int) -> float:
    """Seconds per no-grad evaluation of the scan's outputs y = C . h (the part the two paths differ in)."""
    core = {k: args[k] for k in ("u", "delta", "A", "B", "C")}
    with torch.no_grad():
        outputs(**core)
        start = time.perf_counter()
        for _ in range(repeats):
            outputs(**core)
        synchronize(str(args["u"].device))
    return (time.perf_counter() - start) / repeats


if __name__ == "__main__":
    main()

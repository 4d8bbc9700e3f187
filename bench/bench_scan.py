"""Selective-scan speed, two tables, each as ratios against a baseline measured in the same run.

1. Training (forward + backward): the torch scan (the path it picks) and the compiled scan (scan_native, where
   it builds) vs a position-by-position torch loop, with the activation memory saved for backward (bytes of
   tensors autograd keeps, measured with saved-tensor hooks). On CUDA with mamba-ssm it adds the fused kernel.
2. Path choice of the torch scan: the materialised path vs the chunk-sequential one, forced, for training and
   inference at several batch sizes: where the crossover that selective_scan_torch uses lies (B E N state
   elements per position; see MATERIALISE_BELOW_* in mdlm_bio/backbones/scan.py).

    python bench/bench_scan.py --lengths 1024 4096 --json scan.json
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from harness import environment_variable, synchronize, write_json

from mdlm_bio.backbones import scan, scan_native
from mdlm_bio.backbones.kernels import selective_scan_kernel
from mdlm_bio.backbones.scan import selective_scan_torch


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
    parser.add_argument("--path-batches", type=int, nargs="+", default=[2, 8, 32],
                        help="batches of the path-choice table (each strand counts: Caduceus-PS doubles it)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    # name -> (function, the context its forward and backward run in)
    implementations = {"torch loop (baseline)": (loop_scan, contextlib.nullcontext),
                       "torch scan": (selective_scan_torch, compiled_scan_off)}
    if args.device == "cpu" and scan_native.applies(torch.zeros(1, 1, 1), torch.zeros(1, 1)):
        implementations["compiled scan"] = (selective_scan_torch, contextlib.nullcontext)
    if args.device == "cuda" and selective_scan_kernel() is not None:
        implementations["mamba-ssm kernel"] = (selective_scan_kernel(), contextlib.nullcontext)
    rows = []
    for length in args.lengths:
        data = inputs(args.batch, args.d_inner, args.d_state, length, args.device)
        results = {}
        for name, (fn, context) in implementations.items():
            with context():
                results[name] = measure(fn, data, args.repeats)
        base_seconds, base_bytes = results["torch loop (baseline)"]
        for name, (seconds, saved) in results.items():
            rows.append(dict(implementation=name, length=length, tokens_per_s=args.batch * length / seconds,
                             speedup=base_seconds / seconds, saved_mib=saved / 2**20, memory_ratio=saved / base_bytes))
    choice = [path_choice_row(batch, args.d_inner, args.d_state, length, args.device, args.repeats, training)
              for training in (True, False) for batch in args.path_batches for length in args.lengths]
    if args.json:
        write_json(args.json, {"device": args.device, "batch": args.batch, "d_inner": args.d_inner, "rows": rows,
                               "path_choice": choice})
    print(f"device {args.device}, batch {args.batch}, d_inner {args.d_inner}, d_state {args.d_state}; forward + backward")
    print(f"{'implementation':<24}{'L':>7}{'tokens/s':>12}{'speedup':>9}{'saved MiB':>11}{'mem ratio':>11}")
    for r in rows:
        print(f"{r['implementation']:<24}{r['length']:>7}{r['tokens_per_s']:>12,.0f}{r['speedup']:>9.2f}"
              f"{r['saved_mib']:>11.1f}{r['memory_ratio']:>11.2f}")
    print(f"\npath choice: chunk-sequential vs materialised (baseline); d_inner {args.d_inner}, d_state {args.d_state}")
    print(f"{'pass':<10}{'batch':>6}{'B E N':>8}{'L':>7}{'materialised s':>16}{'chunk-seq s':>13}{'speedup':>9}{'picked':>15}")
    for r in choice:
        print(f"{r['pass']:<10}{r['batch']:>6}{r['state_per_position']:>8}{r['length']:>7}{r['materialised_s']:>16.4f}"
              f"{r['chunk_sequential_s']:>13.4f}{r['speedup']:>9.2f}{r['picked']:>15}")


def compiled_scan_off() -> contextlib.AbstractContextManager[None]:
    return environment_variable("MDLM_BIO_NATIVE_SCAN", "off")


@contextlib.contextmanager
def forced_path(materialise: bool) -> Iterator[None]:
    """Make selective_scan_torch take one torch path whatever the shape (the compiled scan off)."""
    saved = scan.MATERIALISE_BELOW_INFERENCE, scan.MATERIALISE_BELOW_TRAINING, scan.MATERIALISED_STATE_BYTES
    threshold = 2**62 if materialise else 0
    scan.MATERIALISE_BELOW_INFERENCE = scan.MATERIALISE_BELOW_TRAINING = threshold
    scan.MATERIALISED_STATE_BYTES = 2**62
    try:
        with compiled_scan_off():
            yield
    finally:
        scan.MATERIALISE_BELOW_INFERENCE, scan.MATERIALISE_BELOW_TRAINING, scan.MATERIALISED_STATE_BYTES = saved


def path_choice_row(batch: int, inner: int, state: int, length: int, device: str, repeats: int,
                    training: bool) -> dict:
    """Seconds of each path on one shape, and the path selective_scan_torch picks there."""
    data = inputs(batch, inner, state, length, device)
    seconds = {}
    for materialise in (True, False):
        with forced_path(materialise):
            seconds[materialise] = (measure(selective_scan_torch, data, repeats)[0] if training
                                    else time_inference(selective_scan_torch, data, repeats))
    below = scan.MATERIALISE_BELOW_TRAINING if training else scan.MATERIALISE_BELOW_INFERENCE
    with compiled_scan_off():
        picked = scan._materialises(data["u"], data["A"], below)
    return {"pass": "training" if training else "inference", "batch": batch, "length": length,
            "state_per_position": batch * inner * state, "materialised_s": seconds[True],
            "chunk_sequential_s": seconds[False], "speedup": seconds[True] / seconds[False],
            "picked": "materialised" if picked else "chunk-seq"}


def time_inference(fn, args: dict[str, torch.Tensor], repeats: int) -> float:
    """Seconds per no-grad evaluation."""
    with torch.no_grad():
        fn(**args, delta_softplus=True)
        start = time.perf_counter()
        for _ in range(repeats):
            fn(**args, delta_softplus=True)
        synchronize(str(args["u"].device))
    return (time.perf_counter() - start) / repeats


if __name__ == "__main__":
    main()

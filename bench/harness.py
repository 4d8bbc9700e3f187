"""What every bench script shares: isolated runs (so peak memory is per row), peak memory, the machine's
measured matmul rate (the MFU denominator), and JSON output."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import platform
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch


def run_isolated(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run `function(*args)` in a fresh process: a process's peak RSS only grows, so rows measured in
    one process would all report the largest row's memory."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


@contextlib.contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    """An environment variable set for the duration (mdlm-bio reads its switches at each call)."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]
        else:
            os.environ[name] = previous


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory_mib(device: str) -> float:
    """CUDA: peak allocated by torch. CPU: the process's peak RSS (imports included, ~0.5 GB)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_flops_per_second(device: str, dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """The best of `repeats` square matmuls: what this machine really sustains, measured in the same run."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def write_json(path: Path | str, payload: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")

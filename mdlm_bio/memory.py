"""What a request will allocate, estimated before it allocates anything, and the check against what is free.

A model's activation memory grows with the number of tokens it processes at once. So the request's own code (a
training loss, a sampling call) runs once on a small probe on the same device, counting the bytes of every tensor
it creates and keeps alive at once, plus what autograd saves for backward; the count is scaled to the requested
batch and length, and the weights (with gradients and optimizer state when training) and the outputs kept on the
side are added. On the training steps measured (bench/bench_memory_estimate.py) the estimate lies between 0.7x
and 1.5x the real peak, and above that for long Mamba stacks, which recompute their activations in backward
while the small probe measures plain autograd (an upper bound): it exists to refuse what cannot fit before it
reaches the allocator (or the kernel's out-of-memory killer), not to budget tightly.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

GIB = 2**30
# Probe size: at most the request itself, so the probe fits whenever the request could. Scaled from 256 tokens,
# Caduceus-PS steps come out 1.3-2.6x high and small Caduceus steps ~30% low (bench/RESULTS.md).
PROBE_TOKENS = 256


class MemoryLimitError(ValueError):
    """A request whose estimated memory exceeds what the device has free."""


@dataclass
class MemoryEstimate:
    """Bytes by what needs them."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        return " + ".join(f"{name} {size / GIB:.2f} GiB" for name, size in self.parts.items())


def _storage_key(tensor: Tensor) -> int:
    """One key per underlying storage, shared by all its views."""
    return tensor.untyped_storage()._cdata


class _LiveTensorBytes(TorchDispatchMode):
    """Bytes of the storages that ops create, alive while Python holds a tensor on them or autograd saved them
    for backward (`saved`, filled by a saved-tensors hook), and their peak."""

    def __init__(self, excluded: set[int], saved: set[int]) -> None:
        super().__init__()
        self.excluded, self.saved = excluded, saved
        self.storages: dict[int, list[int]] = {}  # storage -> [bytes, tensors holding it]
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, Tensor) and _storage_key(tensor) not in self.excluded:
                self._hold(tensor)
        return out

    def _hold(self, tensor: Tensor) -> None:
        key = _storage_key(tensor)
        entry = self.storages.setdefault(key, [tensor.untyped_storage().nbytes(), 0])
        if entry[1] == 0:
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.storages[key]
        entry[1] -= 1
        if entry[1] == 0 and key not in self.saved:  # what backward keeps stays counted
            self.current -= entry[0]
            del self.storages[key]


def activation_bytes(run: Callable[[], object], excluded: Iterable[Tensor]) -> int:
    """Peak bytes of the tensors `run()` creates and holds at once, plus, under autograd, what it saves for
    backward; storages of the `excluded` tensors (weights, inputs) do not count."""
    excluded_keys = {_storage_key(tensor) for tensor in excluded}
    saved: set[int] = set()

    def keep(tensor: Tensor) -> Tensor:
        saved.add(_storage_key(tensor))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor), _LiveTensorBytes(excluded_keys, saved) as live:
        run()
    return live.peak


def probe_length(length: int) -> int:
    return max(1, min(length, PROBE_TOKENS))


def scaled(probe_bytes: int, probe_tokens: int, tokens: int) -> int:
    """Activation memory grows with the tokens processed at once; scale the probe's count to the request."""
    return probe_bytes * tokens // probe_tokens


def available_bytes(device: torch.device | str) -> int:
    """Free memory: a GPU's free bytes, or what the operating system can still hand out (MemAvailable)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # no /proc (macOS): all physical memory


def check_fits(estimate: Callable[[], MemoryEstimate], device: torch.device | str, request: str, smaller: str,
               override: str) -> None:
    """Refuse a request whose estimate exceeds the device's free memory, naming both numbers, what to make
    smaller, and how to insist. Free memory is read before the probe runs, which the allocator may keep."""
    free = available_bytes(device)
    estimate = estimate()
    if estimate.total > free:
        raise MemoryLimitError(
            f"{request} needs about {estimate.total / GIB:.1f} GiB ({estimate.describe()}), more than the "
            f"{free / GIB:.1f} GiB free on {device}; {smaller}, or pass {override} to try anyway")

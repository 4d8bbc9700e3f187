"""Optional GPU kernels: mamba-ssm's selective scan, causal-conv1d's convolution, flash-attn's attention, and
torch's FlexAttention for block diffusion's block-sparse mask.

Each package is imported once, on first use. A backbone calls a kernel only when the package imports and the
tensors are on a device the kernels run on; otherwise it takes its pure-torch path, so everything also runs on
a CPU. `MDLM_BIO_KERNELS=off` keeps the torch path on a GPU too: for parity checks and for ruling a kernel out
when debugging.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from types import ModuleType

from torch import Tensor

# Where the compiled kernels run. Tests widen it to "cpu" to drive the kernel branches through the packages'
# own reference code (tests/kernel_standins.py).
KERNEL_DEVICE_TYPES = frozenset({"cuda"})


def kernels_apply(tensor: Tensor) -> bool:
    """Whether a kernel may be used for this tensor (its device, and the MDLM_BIO_KERNELS switch)."""
    return tensor.device.type in KERNEL_DEVICE_TYPES and os.environ.get("MDLM_BIO_KERNELS", "auto") != "off"


@functools.cache
def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _entry_point(module: str, name: str) -> Callable | None:
    """The function `name` of an optional package, read on every call (so it can be swapped in tests)."""
    found = _optional_module(module)
    return None if found is None else getattr(found, name)


def selective_scan_kernel() -> Callable | None:
    """mamba-ssm's fused selective scan, with the argument layout of `scan.selective_scan_torch`."""
    return _entry_point("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")


def causal_conv1d_kernel() -> Callable | None:
    """causal-conv1d's depthwise causal convolution with a fused SiLU."""
    return _entry_point("causal_conv1d", "causal_conv1d_fn")


def flash_attention_kernel() -> Callable | None:
    """flash-attn's attention over packed qkv with cumulative sequence lengths (as MDLM's DiT calls it)."""
    return _entry_point("flash_attn", "flash_attn_varlen_qkvpacked_func")


@functools.cache
def flex_attention_kernel() -> Callable | None:
    """torch's FlexAttention, compiled (block diffusion's block-sparse mask on CUDA); None where torch lacks it."""
    found = _optional_module("torch.nn.attention.flex_attention")
    if found is None:
        return None
    import torch

    return torch.compile(found.flex_attention, dynamic=False)


def forget_imports() -> None:
    """Look the packages up again on next use (after installing one, or in tests that stand one in)."""
    _optional_module.cache_clear()

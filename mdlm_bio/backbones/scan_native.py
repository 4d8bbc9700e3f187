"""An optional compiled selective scan for the CPU: selective_scan.c, built on first use with the system's C
compiler and loaded through ctypes.

It computes exactly what the chunk-sequential torch path computes, with the same chunk checkpoints, but keeps
each row's state in registers, so it is several times faster in training and sampling (bench/bench_scan.py).
Nothing is downloaded and no torch headers are needed: one C file, compiled in under a second into the user
cache, keyed by the source and compiler flags. If there is no compiler, no OpenMP or no glibc libmvec, or if
`MDLM_BIO_NATIVE_SCAN=off`, the torch path runs instead (with one warning when a build fails).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor

SOURCES = ("selective_scan.c", "selective_scan_body.h")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
LIBRARIES = ("-lmvec", "-lm")
MAX_STATE = 64  # the C code's per-row buffers; wider states take the torch path
CHUNK = 32  # positions per checkpoint; the torch scan (scan.py) uses the same, so either can continue the other
_TYPES = {torch.float32: "_f32", torch.float64: "_f64"}


def enabled() -> bool:
    return os.environ.get("MDLM_BIO_NATIVE_SCAN", "auto").lower() not in {"off", "0", "false", "no"}


def applies(u: Tensor, A: Tensor) -> bool:
    """Whether the compiled scan can take this scan: on, built, CPU tensors of float32/64, state <= MAX_STATE."""
    return (enabled() and u.device.type == "cpu" and u.dtype in _TYPES and A.shape[-1] <= MAX_STATE
            and _library() is not None)


@functools.cache
def _library() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(str(_build()))
    except (OSError, subprocess.CalledProcessError) as error:
        reason = str(error)
        if isinstance(error, subprocess.CalledProcessError) and error.stderr:
            reason += ": " + error.stderr.decode(errors="replace").strip().splitlines()[-1]
        warnings.warn(f"the compiled selective scan is unavailable ({reason}); using the torch scan "
                      "(set MDLM_BIO_NATIVE_SCAN=off to silence this)", RuntimeWarning, stacklevel=2)
        return None


def _build() -> Path:
    """The shared library, compiled into the cache unless a build of the same source and flags is there."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise FileNotFoundError("no C compiler found (set CC)")
    package = resources.files("mdlm_bio.backbones")
    sources = {name: package.joinpath(name).read_bytes() for name in SOURCES}
    # -march=native code runs only on CPUs like this one, and a cache in a shared home serves many machines
    signature = " ".join((compiler, *FLAGS, *LIBRARIES, platform.machine(), _cpu_features()))
    key = hashlib.sha256(b"".join(sources.values()) + signature.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mdlm-bio" / "native"
    library = cache / f"selective_scan-{key}.so"
    if library.exists():
        return library
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        for name, text in sources.items():
            Path(work, name).write_bytes(text)
        built = Path(work, library.name)
        subprocess.run([compiler, *FLAGS, str(Path(work, SOURCES[0])), "-o", str(built), *LIBRARIES],
                       check=True, capture_output=True)
        os.replace(built, library)  # atomic: concurrent builds (DDP ranks) each install a whole file
    return library


def _cpu_features() -> str:
    """The CPU's model and instruction-set flags (Linux), or what the platform module knows elsewhere."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(next((line for line in lines if line.startswith(key)), "") for key in ("model name", "flags"))


def _pointer(t: Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def chunk_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
               keep_checkpoints: bool = False) -> tuple[Tensor, Tensor | None]:
    """scan._chunk_scan, compiled: outputs [B, E, L] and, if asked, the state entering each chunk."""
    batch, inner, length = u.shape
    u_l, delta_l = (x.transpose(1, 2).contiguous() for x in (u, delta))  # delta usually is length-major already
    B_l, C_l, A_t = B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(), A.t().contiguous()
    y = torch.empty_like(u_l)
    checkpoints = u.new_empty(-(-length // CHUNK), batch, inner, A.shape[1]) if keep_checkpoints else None
    getattr(_library(), "scan_forward" + _TYPES[u.dtype])(
        _pointer(u_l), _pointer(delta_l), _pointer(A_t), _pointer(B_l), _pointer(C_l), _pointer(y),
        None if checkpoints is None else _pointer(checkpoints),
        ctypes.c_long(batch), ctypes.c_long(inner), ctypes.c_long(length), ctypes.c_long(A.shape[1]),
        ctypes.c_long(CHUNK), ctypes.c_int(torch.get_num_threads()))
    return y.transpose(1, 2), checkpoints


def chunk_scan_gradients(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, grad_y: Tensor,
                         checkpoints: Tensor) -> tuple[Tensor, ...]:
    """scan._chunk_scan_gradients, compiled: gradients for (u, delta, A, B, C)."""
    batch, inner, length = u.shape
    u_l, delta_l, grad_y_l = (x.transpose(1, 2).contiguous() for x in (u, delta, grad_y))
    B_l, C_l, A_t = B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(), A.t().contiguous()
    grad_u, grad_delta, grad_A = torch.empty_like(u_l), torch.empty_like(u_l), torch.empty_like(A_t)
    grad_B, grad_C = torch.empty_like(B_l), torch.empty_like(C_l)
    getattr(_library(), "scan_backward" + _TYPES[u.dtype])(
        *(_pointer(t) for t in (u_l, delta_l, A_t, B_l, C_l, grad_y_l, checkpoints.contiguous(), grad_u, grad_delta,
                                grad_A, grad_B, grad_C)),
        ctypes.c_long(batch), ctypes.c_long(inner), ctypes.c_long(length), ctypes.c_long(A.shape[1]),
        ctypes.c_long(CHUNK), ctypes.c_int(torch.get_num_threads()))
    return (grad_u.transpose(1, 2), grad_delta.transpose(1, 2), grad_A.t(), grad_B.transpose(1, 2),
            grad_C.transpose(1, 2))

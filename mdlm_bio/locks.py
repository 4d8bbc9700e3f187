"""One writer per folder: a run, a data folder or an output being written is held by one process, and a second
writer is refused at once with the holder's pid instead of both resuming from the same checkpoint and overwriting
each other's files.

The lock is an advisory `flock` on a file inside the folder. The OS releases it when the holder exits, however it
exits, so a kill -9 never leaves a stale lock: the file may stay behind, but it is not the lock. POSIX only (fcntl).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".mdlm-bio.lock"
# Set by torchrun, Lightning's DDP launcher (in the processes it starts) and SLURM; absent in a plain process.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


class FolderInUseError(OSError):
    """Another living process holds the folder."""


def is_rank_zero() -> bool:
    """True in the process that owns a run: a plain process, or rank 0 of a distributed job. The other ranks
    share rank 0's folder and must not ask for its lock."""
    return all(int(os.environ.get(name) or 0) == 0 for name in RANK_VARIABLES)


@contextmanager
def exclusive(folder: str | Path, what: str) -> Iterator[None]:
    """Hold `folder` (created if absent) for the life of the block; `what` names it in the refusal
    ('run folder', 'data folder', 'output')."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise FolderInUseError(f"{what} {folder} is in use by another process (pid {holder}); wait for it to end "
                               f"or stop it, or use another folder") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing the descriptor releases the lock


@contextmanager
def exclusive_on_rank_zero(folder: str | Path, what: str) -> Iterator[None]:
    """`exclusive` in the process that owns the run; nothing in the other ranks of a distributed job."""
    if not is_rank_zero():
        yield
        return
    with exclusive(folder, what):
        yield

"""Files, for every layer above the backbones: inputs opened the way a shell user passes them (a path, `-` for
standard input, or a pipe such as `<(zcat x.fa.gz)`; gzip recognised from the bytes, so nothing needs to seek),
and outputs written atomically (a temporary file renamed into place), including JSON + Markdown result pairs."""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"


def check_input_path(path: str | Path, what: str) -> None:
    """A missing file or a folder is an error naming the path; '-' (standard input) and pipes pass."""
    if str(path) == STDIN:
        return
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, not a file")


def check_writable(path: str | Path) -> None:
    """Fail before the long work, not after it, when an output file cannot be created where it is asked for."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent, prefix=f".{path.name}."):
            pass
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None


@contextmanager
def open_input(path: str | Path, what: str) -> Iterator[IO[bytes]]:
    """A buffered binary stream of the file's content, decompressed if it is gzip; it supports peek()."""
    check_input_path(path, what)
    owned = None if str(path) == STDIN else open(path, "rb")
    raw = sys.stdin.buffer if owned is None else owned
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
    try:
        if buffered.peek(2)[:2] == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=buffered) as unpacked:
                yield unpacked
        else:
            yield buffered
    finally:
        if owned is not None:
            owned.close()


@contextmanager
def atomic_output(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file next to `path` and rename it into place only on success,
    so an interrupted or failed run never leaves a half-written file behind."""
    path = Path(path)
    check_writable(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, mode) as handle:
            yield handle
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def file_identity(path: str | Path) -> dict[str, object] | None:
    """A file as a resumable job's fingerprint sees it: where it is, its size and when it last changed; None for
    standard input or a pipe, which cannot be recognised again."""
    if str(path) == STDIN or not Path(path).is_file():
        return None
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_json_and_markdown(out_dir: Path, stem: str, payload: Any, markdown: str) -> Path:
    """`stem.json` (the numbers) and `stem.md` (the table people read), each written atomically; returns the .md."""
    with atomic_output(Path(out_dir) / f"{stem}.json") as handle:
        handle.write(json.dumps(payload, indent=2) + "\n")
    with atomic_output(Path(out_dir) / f"{stem}.md") as handle:
        handle.write(markdown)
    return Path(out_dir) / f"{stem}.md"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current

"""Opening input files the way a shell user passes them: a path, `-` for standard input, or a pipe such as
`<(zcat x.fa.gz)`; gzip is recognised from the bytes, not the name, so nothing needs to seek."""

from __future__ import annotations

import gzip
import io
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

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

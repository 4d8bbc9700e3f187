"""Outputs of long jobs, written in committed steps so that a job killed at 90% continues where it stopped.

The files grow in a folder next to the first output, `.NAME.partial/`, which also holds `state.json`: what the
job is (a fingerprint of its inputs and settings), how many units of work are done, each file's size at that
point, and whatever the job needs to go on exactly (a random generator's state). Rerunning the same command cuts
the files back to the last commit (a kill between a write and its commit leaves a tail no commit vouches for),
skips the units done, and ends with the same bytes as an uninterrupted run; other settings start over. The folder
is held by one process (locks.py), and the outputs appear under their names only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from .io import atomic_output, check_writable
from .locks import exclusive

STATE_NAME = "state.json"


def partial_folder(output: Path) -> Path:
    return output.with_name(f".{output.name}.partial")


class ResumableOutputs:
    """Text files written in committed steps. `done` and `extra` say where the last run stopped; `files` are
    open for appending in the order of `outputs`; `commit` after each unit of work; `finish` once at the end.
    The partial folder stays when the block raises, for the next run to resume. A job whose `fingerprint` is
    None always starts over."""

    def __init__(self, outputs: Sequence[Path], fingerprint: Mapping[str, object] | None) -> None:
        self.outputs = [Path(path) for path in outputs]
        for path in self.outputs:
            check_writable(path)
        self.folder = partial_folder(self.outputs[0])
        # as it reads back from state.json; None: a job that cannot be recognised again (it reads a pipe)
        self.fingerprint = None if fingerprint is None else json.loads(json.dumps(dict(fingerprint)))
        self.done, self.extra, self.resumed = 0, {}, False
        self.files: list[IO[str]] = []
        self._stack = ExitStack()

    def _parts(self) -> list[Path]:
        return [self.folder / f"{index}.{path.name}.part" for index, path in enumerate(self.outputs)]

    def __enter__(self) -> ResumableOutputs:
        with ExitStack() as stack:
            stack.enter_context(exclusive(self.folder, "output"))
            state = self._read_state()
            parts = self._parts()
            if state is None:
                for part in parts:
                    part.unlink(missing_ok=True)
            else:
                self.done, self.extra, self.resumed = state["done"], state["extra"], True
                for part, size in zip(parts, state["sizes"]):
                    with open(part, "r+b") as handle:
                        handle.truncate(size)
            self.files = [stack.enter_context(open(part, "a", encoding="utf-8", newline="")) for part in parts]
            self._stack = stack.pop_all()
        return self

    def _read_state(self) -> dict[str, Any] | None:
        """The last commit of a run of this very job, or None (none, another job's, or unreadable)."""
        try:
            state = json.loads((self.folder / STATE_NAME).read_text())
        except (OSError, ValueError):
            return None
        if (self.fingerprint is None or state.get("fingerprint") != self.fingerprint
                or len(state.get("sizes", [])) != len(self.outputs)):
            return None
        parts_present = all(part.is_file() and part.stat().st_size >= size
                            for part, size in zip(self._parts(), state["sizes"]))
        return state if parts_present else None

    def commit(self, done: int, extra: Mapping[str, Any] | None = None) -> None:
        """`done` units are written in full: flush them and record the files' sizes."""
        for handle in self.files:
            handle.flush()
        self.done, self.extra = done, dict(extra or {})
        state = {"fingerprint": self.fingerprint, "done": done, "extra": self.extra,
                 "sizes": [os.fstat(handle.fileno()).st_size for handle in self.files]}
        with atomic_output(self.folder / STATE_NAME) as handle:
            handle.write(json.dumps(state) + "\n")

    def finish(self, publishers: Mapping[Path, Callable[[Path, Path], None]] | None = None) -> None:
        """Move each complete file under its name (`publishers[output](part, output)` where given, e.g. to
        compress it; otherwise a rename), then remove the partial folder."""
        for handle in self.files:
            handle.close()
        for part, output in zip(self._parts(), self.outputs):
            (publishers or {}).get(output, os.replace)(part, output)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Close the files and release the folder (closing a file twice is harmless)."""
        self._stack.__exit__(kind, error, traceback)

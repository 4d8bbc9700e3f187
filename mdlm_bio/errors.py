"""Errors that several layers raise and the command line reports as one line (`mdlm-bio CMD: error: ...`)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint that does not fit the layout it claims to be."""


def first_line(error: BaseException) -> str:
    """The gist of an exception for a one-line message: its first line, or its type when it has no text."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

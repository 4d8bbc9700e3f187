"""The `mdlm-bio` command: argparse only. Each verb (verbs.py) calls one function of mdlm_bio.tasks with its options
as keyword arguments (the options' names are the function's parameter names), and a sampling verb with one sampler
object built from its sampler options (sampling.py).

Nothing heavy is imported before the options are checked: the parser needs no torch (for `--device cpu`), and the
tasks check their inputs before they load a model."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..dna.download import DownloadError
from .sampling import build_sampler
from .verbs import VERBS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdlm-bio", description="Masked diffusion language models for DNA and text.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, verb in VERBS.items():
        verb.add_to(commands, name)
    return parser


def _out_of_memory(error: RuntimeError) -> bool:
    """torch's allocators fail with RuntimeErrors (torch.OutOfMemoryError on CUDA) whose text says so."""
    text = str(error).lower()
    return "out of memory" in text or "can't allocate memory" in text


def main(argv: Sequence[str] | None = None) -> None:
    options = vars(build_parser().parse_args(argv))
    command = options.pop("command")
    verb = VERBS[command]
    module, function = verb.task.split(":")
    try:
        if verb.sampler is not None:
            options["sampler"] = build_sampler(options, verb.sampler)
        getattr(importlib.import_module(f"mdlm_bio.tasks.{module}"), function)(**options)
    except (ValueError, OSError, DownloadError) as error:
        print(f"mdlm-bio {command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except RuntimeError as error:
        if not _out_of_memory(error):
            raise
        print(f"mdlm-bio {command}: error: out of memory ({str(error).strip().splitlines()[0]}); make the request "
              f"smaller (batch size, window, length)", file=sys.stderr)
        raise SystemExit(2) from None

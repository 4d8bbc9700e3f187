"""Option types and options shared by several verbs. Each type checks its value when the command line is parsed,
so a typo is reported before anything loads (exit status 2, `mdlm-bio VERB: error: argument --X: ...`)."""

from __future__ import annotations

import argparse
from pathlib import Path

CPU = "cpu"


def device(spec: str) -> str:
    """A --device value, checked before anything loads: a typo or a missing GPU is named as such, not blamed on
    the checkpoint that happens to be read first. `cpu` needs no torch to be accepted."""
    if spec == CPU:
        return spec
    import torch  # only to ask for a device other than the CPU

    try:
        parsed = torch.device(spec)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{spec!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise argparse.ArgumentTypeError(f"{spec}: CUDA is not available here ({why}); use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise argparse.ArgumentTypeError(f"{spec}: no such GPU; {count} visible (cuda:0 to cuda:{count - 1})")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{spec}: MPS is not available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{spec}: mdlm-bio runs on cpu, cuda or mps")
    return spec


def device_list(spec: str) -> list[str]:
    """A comma-separated --device list (cuda:0,cuda:1): one worker per entry, each entry checked as --device."""
    entries = [entry.strip() for entry in spec.split(",")]
    if not all(entries):
        raise argparse.ArgumentTypeError(f"{spec!r} has an empty entry; list devices as cuda:0,cuda:1")
    return [device(entry) for entry in entries]


def positive_int(text: str) -> int:
    """Counts (--num, --length, --mc, ...) are positive integers."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def guidance_method(text: str) -> str | float:
    """A --guidance value: cfg or cbg, or a number (the form before cbg existed: classifier-free guidance with that
    weight)."""
    if text in ("cfg", "cbg"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be cfg, cbg or a classifier-free guidance weight, not {text!r}") from None


def add_device(parser: argparse.ArgumentParser, several: bool = False) -> None:
    if several:
        parser.add_argument("--device", dest="devices", type=device_list, default=[CPU], metavar="DEVICE[,DEVICE...]",
                            help="cpu, cuda, cuda:1, ...; a comma-separated list (cuda:0,cuda:1) spreads the work "
                            "over one copy of the model per device, with the same output (default: cpu)")
    else:
        parser.add_argument("--device", type=device, default=CPU, help="cpu, cuda, cuda:1, ... (default: cpu)")


def add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: 0)")


def add_memory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ignore-memory-limit", action="store_true", help="start even when the estimated memory "
                        "exceeds what the device has free (the estimate is checked before anything is allocated)")


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-checkpoint", action="store_true", help="unpickle a published checkpoint that holds "
                        "Python objects (a Lightning .ckpt); this can run code, so only for files you trust")


def add_guidance_options(parser: argparse.ArgumentParser, several_weights: bool) -> None:
    """--guidance, --weight, and classifier-based guidance's --noisy-classifier and --first-order."""
    parser.add_argument("--guidance", type=guidance_method, nargs="+" if several_weights else None,
                        default=None, metavar="{cfg,cbg}", help="how samples are steered toward --class: cfg = "
                        "classifier-free, with a class-conditional model (default); cbg = classifier-based, with "
                        "--noisy-classifier, guiding any masked or uniform-state diffusion model (a conditional "
                        "one's unconditional branch); a number W means --guidance cfg --weight W")
    weights = "weights (default: 0 1 2)" if several_weights else "weight (default: 1)"
    parser.add_argument("--weight", type=float, nargs="+" if several_weights else None, default=None,
                        help=f"guidance {weights}: 0 = unguided, 1 = the class's distribution, > 1 = pushed further "
                        "toward the class")
    parser.add_argument("--noisy-classifier", type=Path, default=None, metavar="CKPT", help="cbg: the noisy-input "
                        "classifier (from mdlm-bio train-classifier: its best.ckpt or its run folder)")
    parser.add_argument("--first-order", action="store_true", help="cbg: score every single-base change from one "
                        "gradient of the classifier instead of one classifier call per change: far cheaper, but it can "
                        "steer much less than the exact scores (README)")

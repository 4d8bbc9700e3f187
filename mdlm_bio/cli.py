"""The `mdlm-bio` command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdlm-bio", description="Masked diffusion language models for DNA and text.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train a tiny denoiser on the bundled C. elegans DNA, then write samples as FASTA"
    )
    demo.add_argument("--out", type=Path, default=Path("demo_samples.fa"), help="FASTA file for the samples")
    demo.add_argument("--steps", type=int, default=600, help="training steps (default: 600)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    describe = commands.add_parser("describe", help="build a backbone preset and print its parameter counts")
    describe.add_argument("preset", help="a preset in configs/backbone (e.g. caduceus-ps, dit-small)")
    describe.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override preset values, e.g. n_layer=8")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .engine_demo import DemoConfig, run_demo

        if args.steps < 1:
            raise SystemExit("mdlm-bio demo: --steps must be a positive integer")
        run_demo(args.out, DemoConfig(steps=args.steps, seed=args.seed))
    elif args.command == "describe":
        from .backbones import build_backbone, describe, load_preset

        try:
            model = build_backbone(load_preset(args.preset, args.overrides))
        except ValueError as error:
            raise SystemExit(f"mdlm-bio describe: {error}") from None
        print(describe(model))


if __name__ == "__main__":
    main()

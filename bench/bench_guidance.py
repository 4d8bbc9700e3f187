"""Guided sampling speed: classifier-free guidance as one batched network call per step vs the engine's
generic two calls (conditional, then unconditional), on a class-conditional model of the `conditional`
preset (untrained: the numbers measure cost, not quality). Ratios are against the two-call baseline
measured in the same run; first-hitting sampling, one network call per generated base.

    python bench/bench_guidance.py --batch 1 16 --length 128
"""

from __future__ import annotations

import argparse
import time

import torch
from harness import peak_memory_mib

from mdlm_bio.diffusion import all_masked, first_hitting_sample, guided_denoiser
from mdlm_bio.dna.tokenizer import MASK
from mdlm_bio.training.config import load_config, to_plain
from mdlm_bio.training.data import DNA_VOCABULARY
from mdlm_bio.training.module import DiffusionLM
from mdlm_bio.training.run import model_spec
from mdlm_bio.training.settings import run_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--weight", type=float, default=2.0)
    parser.add_argument("--overrides", nargs="*", default=[], help="training-config overrides, e.g. model.preset=...")
    args = parser.parse_args()

    torch.manual_seed(0)
    settings = run_settings(to_plain(load_config("conditional", args.overrides)))
    module = DiffusionLM(model_spec(settings, DNA_VOCABULARY, "dna", classes=("a", "b"))).eval()
    schedule = module.engine.schedule
    denoisers = {
        "two calls (baseline)": guided_denoiser(module.sampling_denoiser(1), module.sampling_denoiser(None),
                                                args.weight),
        "one batched call": module.sampling_denoiser(1, args.weight),
    }
    print(f"{'guidance':<22}{'batch':>6}{'seconds':>9}{'samples/s':>11}{'speedup':>9}")
    with torch.inference_mode():
        for batch in args.batch:
            seconds = {}
            for name, denoiser in denoisers.items():
                start = time.perf_counter()
                first_hitting_sample(denoiser, all_masked(batch, args.length, MASK), schedule, MASK, generator=0)
                seconds[name] = time.perf_counter() - start
            base = seconds["two calls (baseline)"]
            for name, value in seconds.items():
                print(f"{name:<22}{batch:>6}{value:>9.2f}{batch / value:>11.2f}{base / value:>9.2f}")
    print(f"peak RSS {peak_memory_mib('cpu'):.0f} MiB")


if __name__ == "__main__":
    main()

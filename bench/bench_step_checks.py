"""Input checks at the engine's boundary vs inside every step: the demo model's training step, both ways, in one run.

"Checked" composes the engine's public functions as the loss did before (sample_times, mask_tokens with its
[0, 1] and mask-id checks, nelbo_weights, schedule.total_noise): each check reads a tensor back to the host, which
on a GPU blocks until the device catches up. "Boundary" is MaskedDiffusion.loss now: it checks its inputs once
and runs the unchecked forms inside. Both draw the same noise, so the losses must agree exactly. Reported: host
reads per step (Tensor.__bool__ / .item() calls, counted) and seconds per step (forward + backward), with the
ratio against the checked step.

    python bench/bench_step_checks.py
    python bench/bench_step_checks.py --device cuda --steps 50
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator

import torch
from harness import synchronize, write_json

from mdlm_bio.diffusion import mask_tokens, masked_diffusion_loss, nelbo_weights, sample_times
from mdlm_bio.training.config import load_config, to_plain
from mdlm_bio.training.data import DNA_VOCABULARY
from mdlm_bio.training.module import DiffusionLM
from mdlm_bio.training.run import model_spec, training_settings
from mdlm_bio.training.settings import run_settings


def checked_loss(module: DiffusionLM, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The training loss composed from the checked public functions, as MaskedDiffusion.loss used to be."""
    engine, schedule = module.engine, module.engine.schedule
    t = sample_times(tokens.shape[0], sampling_eps=engine.sampling_eps, antithetic=engine.antithetic,
                     generator=generator, device=tokens.device)
    z_t = mask_tokens(tokens, schedule.alpha(t), engine.mask_id, generator)
    weights = nelbo_weights(schedule, t, None)
    logits = module.restrict(module.backbone(z_t, schedule.total_noise(t)))
    return masked_diffusion_loss(logits, tokens, z_t, weights, engine.mask_id).loss


def boundary_loss(module: DiffusionLM, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return module.engine.loss(module.denoiser, tokens, generator=generator).loss


@contextlib.contextmanager
def counted_host_reads() -> Iterator[list[int]]:
    """Count Tensor.__bool__ and Tensor.item calls: each reads a value back to the host."""
    count, originals = [0], {name: getattr(torch.Tensor, name) for name in ("__bool__", "item")}

    def counting(original: Callable) -> Callable:
        def read(self, *args, **kwargs):
            count[0] += 1
            return original(self, *args, **kwargs)
        return read

    for name, original in originals.items():
        setattr(torch.Tensor, name, counting(original))
    try:
        yield count
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant (interleaved)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default="bench-results/step_checks.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    settings = run_settings(to_plain(load_config("demo")))
    module = DiffusionLM(model_spec(settings, DNA_VOCABULARY, "dna"), training_settings(settings)).to(args.device)
    tokens = torch.randint(7, 11, (settings.data.batch_size, settings.data.window), device=args.device)
    variants = {"checked in every step (before)": checked_loss, "checked at the boundary (now)": boundary_loss}
    losses, reads, seconds = {}, {}, {name: 0.0 for name in variants}
    for name, loss in variants.items():
        with counted_host_reads() as count:
            losses[name] = float(loss(module, tokens, torch.Generator(args.device).manual_seed(0)))
        reads[name] = count[0]
    for _ in range(args.steps + 1):  # the first round warms up
        for name, loss in variants.items():
            synchronize(args.device)
            start = time.perf_counter()
            loss(module, tokens, torch.Generator(args.device).manual_seed(0)).backward()
            synchronize(args.device)
            seconds[name] += time.perf_counter() - start if _ else 0.0
    module.zero_grad(set_to_none=True)
    if len(set(losses.values())) != 1:
        raise SystemExit(f"the two losses differ: {losses}")
    base = seconds[next(iter(variants))]
    rows = [{"variant": name, "host_reads_per_step": reads[name], "step_ms": 1e3 * seconds[name] / args.steps,
             "time_ratio": seconds[name] / base} for name in variants]
    write_json(args.json, {"device": args.device, "batch": settings.data.batch_size, "window": settings.data.window,
                           "loss": losses[next(iter(variants))], "rows": rows})
    print(f"demo model (caduceus-tiny), batch {settings.data.batch_size} x {settings.data.window} on {args.device}; "
          f"same loss {losses[next(iter(variants))]:.6f} both ways; {args.steps} steps each, interleaved")
    print(f"{'variant':<34}{'host reads':>11}{'ms/step':>10}{'ratio':>8}")
    for row in rows:
        print(f"{row['variant']:<34}{row['host_reads_per_step']:>11}{row['step_ms']:>10.1f}{row['time_ratio']:>8.3f}")


if __name__ == "__main__":
    main()

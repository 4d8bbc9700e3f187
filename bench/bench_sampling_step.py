"""Seconds per sampling step with logits read only where a sampler reads them, against the same sampler given
the network's full logits (the baseline, measured in the same run), and one large inference call in row chunks
against one call.

Rows (untrained weights; these measure cost, not quality):
- `dit-tiny` with the GPT-2 vocabulary (50,258 tokens), batch 8 x 256, ancestral at 64 steps, and first-hitting:
  the output layer is a text model's largest matmul, and a sampler reads logits at the few positions it reveals;
- the DNA demo model's shape (`caduceus-tiny`, 16 x 128, as `mdlm-bio demo` samples), ancestral at 64 steps;
- `caduceus-ps`, one no-grad call on 8 x 1024 bases: one call vs the network's row chunks (TOKENS_PER_CALL).
Both sides of a sampling row draw the same samples for the same seed (checked here, and in the tests).

    python bench/bench_sampling_step.py                    # about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from harness import device_description, peak_memory_mib, run_isolated, write_json

from mdlm_bio.diffusion import AncestralSampler, FirstHittingSampler, Sampler, all_masked
from mdlm_bio.models.network import TOKENS_PER_CALL, LanguageModel
from mdlm_bio.models.spec import ModelSpec, ObjectiveSettings
from mdlm_bio.training.data import preset_backbone

OBJECTIVE = ObjectiveSettings(kind="mdlm", schedule={"name": "loglinear"}, sampling_eps=1e-3, antithetic=True)
SAMPLING_ROWS = [("dit-tiny", 8, 256, "ancestral"), ("dit-tiny", 8, 256, "first-hitting"),
                 ("caduceus-tiny", 16, 128, "ancestral")]
CALL_ROWS = [("caduceus-ps", 8, 1024)]


def network(preset: str) -> LanguageModel:
    torch.manual_seed(0)
    backbone = preset_backbone(preset)
    vocab = backbone["vocab_size"]
    dna = "complement_map" in backbone
    spec = ModelSpec(backbone=backbone, objective=OBJECTIVE, mask_id=3 if dna else vocab - 1, context=1 << 20,
                     track="dna" if dna else "text", output_ids=(7, 8, 9, 10) if dna else None)
    return LanguageModel(spec).eval()


def sampler_named(name: str) -> Sampler:
    return AncestralSampler(steps=64) if name == "ancestral" else FirstHittingSampler()


def timed(run: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = run()
    return out, time.perf_counter() - start


def sampling_row(preset: str, batch: int, length: int, sampler_name: str, positions: bool) -> dict:
    """Seconds per network call of one sampling run (best of two), and the samples' checksum."""
    model, sampler = network(preset), sampler_named(sampler_name)
    denoiser = model.sampling_denoiser() if positions else (lambda z_t, t: model.denoiser(z_t, t))
    z = all_masked(batch, length, model.mask_id)
    best, out = float("inf"), None
    with torch.no_grad():
        for _ in range(2):
            out, seconds = timed(lambda: sampler.sample(denoiser, z, model.engine.schedule, model.mask_id, 0))
            best = min(best, seconds)
    return {"seconds_per_step": best / out.num_calls, "calls": out.num_calls, "seconds": best,
            "samples_checksum": int((out.tokens * torch.arange(1, length + 1)).sum()), "peak_mib": peak_memory_mib("cpu")}


def call_row(preset: str, batch: int, length: int, chunked: bool) -> dict:
    model = network(preset)
    denoiser = model.sampling_denoiser() if chunked else (lambda z_t, t: model.denoiser(z_t, t))
    z = torch.randint(7, 11, (batch, length), generator=torch.Generator().manual_seed(0))
    z[torch.rand(batch, length, generator=torch.Generator().manual_seed(1)) < 0.5] = model.mask_id
    t = torch.full((batch,), 0.5)
    with torch.no_grad():
        denoiser(z[:1], t[:1])  # warm-up
        best = min(timed(lambda: denoiser(z, t))[1] for _ in range(2))
    return {"seconds_per_call": best, "peak_mib": peak_memory_mib("cpu")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="bench-results/sampling_step.json")
    args = parser.parse_args()
    rows = []
    for preset, batch, length, sampler in SAMPLING_ROWS:
        full = run_isolated(sampling_row, preset, batch, length, sampler, False)
        at = run_isolated(sampling_row, preset, batch, length, sampler, True)
        assert full["samples_checksum"] == at["samples_checksum"], "logits at positions changed the samples"
        rows.append({"preset": preset, "batch": batch, "length": length, "sampler": sampler,
                     "baseline_s_per_step": full["seconds_per_step"], "s_per_step": at["seconds_per_step"],
                     "speedup": full["seconds_per_step"] / at["seconds_per_step"], "calls": at["calls"],
                     "baseline_peak_mib": full["peak_mib"], "peak_mib": at["peak_mib"]})
        print(rows[-1], flush=True)
    for preset, batch, length in CALL_ROWS:
        one, chunked = (run_isolated(call_row, preset, batch, length, flag) for flag in (False, True))
        rows.append({"preset": preset, "batch": batch, "length": length, "sampler": f"one call vs chunks of "
                     f"{TOKENS_PER_CALL} tokens", "baseline_s_per_step": one["seconds_per_call"],
                     "s_per_step": chunked["seconds_per_call"],
                     "speedup": one["seconds_per_call"] / chunked["seconds_per_call"], "calls": 1,
                     "baseline_peak_mib": one["peak_mib"], "peak_mib": chunked["peak_mib"]})
        print(rows[-1], flush=True)
    device = device_description("cpu")
    write_json(args.json, {"device": device, "rows": rows})
    print(f"{device}; baseline: the same sampler given full logits (sampling rows) or one call (call rows)")
    print(f"{'preset':<15}{'B x L':>10}  {'sampler':<34}{'base s/step':>12}{'s/step':>9}{'speedup':>9}"
          f"{'base MiB':>10}{'MiB':>7}")
    for r in rows:
        print(f"{r['preset']:<15}{r['batch']:>4} x {r['length']:<4} {r['sampler']:<34}{r['baseline_s_per_step']:>12.4f}"
              f"{r['s_per_step']:>9.4f}{r['speedup']:>9.2f}{r['baseline_peak_mib']:>10.0f}{r['peak_mib']:>7.0f}")


if __name__ == "__main__":
    main()

"""The masked-diffusion engine: schedules, forward masking, SUBS, NELBO and samplers.

Pure torch. It imports nothing else from mdlm_bio, and reaches a network only
through `denoiser(z_t[B, L], t[B]) -> logits[B, L, V]`.

The names below load with their module on first use, so that the sampler declarations (torch-free, see
sampler.py) can be imported by the command line without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "confidence": ("confidence_sample",),
    "engine": ("MaskedDiffusion",),
    "denoiser": ("PositionalDenoiser", "SampleOutput", "logits_at"),
    "generation": ("generate", "in_batches", "infill"),
    "objectives": ("LossOutput", "autoregressive_loss", "masked_diffusion_loss", "nelbo_weights", "subs_log_probs"),
    "process": ("make_generator", "mask_tokens", "sample_times"),
    "remasking": ("Remasking",),
    "sampler": ("Sampler", "option"),
    "sampler_registry": ("SAMPLERS", "make_sampler", "register"),
    "ancestral_sampler": ("AncestralSampler",),
    "first_hitting_sampler": ("FirstHittingSampler",),
    "confidence_sampler": ("ConfidenceSampler",),
    "samplers": (
        "all_masked",
        "ancestral_sample",
        "autoregressive_sample",
        "clamp_for_infilling",
        "classifier_free_guidance",
        "first_hitting_sample",
        "guided_denoiser",
        "sample_categorical",
        "semi_autoregressive_sample",
        "time_grid",
        "top_p_filter",
    ),
    "schedules": (
        "CosineSchedule",
        "GeometricSchedule",
        "LinearSigmaSchedule",
        "LogLinearSchedule",
        "NoiseSchedule",
        "PolynomialSchedule",
        "make_schedule",
    ),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

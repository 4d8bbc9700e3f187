"""The masked-diffusion engine: schedules, forward masking, SUBS, NELBO and samplers.

Pure torch. It imports nothing else from mdlm_bio, and reaches a network only
through `denoiser(z_t[B, L], t[B]) -> logits[B, L, V]`.
"""

from .confidence import ConfidenceRule, confidence_sample
from .engine import MaskedDiffusion
from .generation import SamplingPlan, generate
from .objectives import LossOutput, autoregressive_loss, masked_diffusion_loss, nelbo_weights, subs_log_probs
from .process import make_generator, mask_tokens, sample_times
from .remasking import Remasking
from .samplers import (
    SampleOutput,
    all_masked,
    ancestral_sample,
    autoregressive_sample,
    clamp_for_infilling,
    classifier_free_guidance,
    first_hitting_sample,
    guided_denoiser,
    remdm_sample,
    sample_categorical,
    semi_autoregressive_sample,
    time_grid,
    top_p_filter,
)
from .schedules import (
    CosineSchedule,
    GeometricSchedule,
    LinearSigmaSchedule,
    LogLinearSchedule,
    NoiseSchedule,
    PolynomialSchedule,
    make_schedule,
)

__all__ = [
    "ConfidenceRule",
    "CosineSchedule",
    "GeometricSchedule",
    "LinearSigmaSchedule",
    "LogLinearSchedule",
    "LossOutput",
    "MaskedDiffusion",
    "NoiseSchedule",
    "PolynomialSchedule",
    "Remasking",
    "SampleOutput",
    "SamplingPlan",
    "all_masked",
    "ancestral_sample",
    "autoregressive_loss",
    "autoregressive_sample",
    "clamp_for_infilling",
    "classifier_free_guidance",
    "confidence_sample",
    "first_hitting_sample",
    "generate",
    "guided_denoiser",
    "make_generator",
    "make_schedule",
    "mask_tokens",
    "masked_diffusion_loss",
    "nelbo_weights",
    "remdm_sample",
    "sample_categorical",
    "sample_times",
    "semi_autoregressive_sample",
    "subs_log_probs",
    "time_grid",
    "top_p_filter",
]

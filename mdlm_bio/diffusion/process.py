"""The forward (noising) process q(z_t | x) of absorbing diffusion and its time sampling."""

from __future__ import annotations

import torch
from torch import Tensor

from .schedules import check_unit_interval


def make_generator(seed_or_generator: int | torch.Generator | None, device: torch.device | str) -> torch.Generator | None:
    """Accept a seed or a Generator, so every random entry point is reproducible the same way."""
    if seed_or_generator is None or isinstance(seed_or_generator, torch.Generator):
        return seed_or_generator
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed_or_generator))
    return generator


def check_tokens(tokens: Tensor, name: str = "tokens") -> None:
    """Token batches are integer tensors of shape [B, L]."""
    if tokens.dim() != 2:
        raise ValueError(f"{name} must have shape [batch, length]; got shape {tuple(tokens.shape)}")
    if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{name} must be an integer tensor; got dtype {tokens.dtype}")


def check_mask_id(mask_id: int, vocab_size: int) -> None:
    """The mask token must be one of the vocab_size logits the denoiser outputs."""
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id {mask_id} must index the vocabulary [0, {vocab_size})")


def sample_times(
    batch_size: int,
    *,
    sampling_eps: float = 1e-3,
    antithetic: bool = True,
    discrete_steps: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw diffusion times t[B] for a training batch.

    Antithetic (low-discrepancy) sampling spreads one uniform over the batch as
    t_b = (u + b/B) mod 1, which cuts the variance of the batch NELBO estimate.
    Continuous times are mapped into [sampling_eps, 1], where the weight
    -alpha'/(1-alpha) stays finite. With `discrete_steps` T the times are the grid
    points i/T, i in {1, ..., T}, of the discrete-time NELBO.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    if not 0.0 <= sampling_eps < 1.0:
        raise ValueError(f"sampling_eps must lie in [0, 1); got {sampling_eps}")
    if discrete_steps is not None and discrete_steps < 1:
        raise ValueError(f"discrete_steps must be a positive integer; got {discrete_steps}")
    if antithetic:
        offset = torch.rand(1, generator=generator, device=device, dtype=torch.float64)
        u = (offset + torch.arange(batch_size, device=device, dtype=torch.float64) / batch_size) % 1.0
    else:
        u = torch.rand(batch_size, generator=generator, device=device, dtype=torch.float64)
    if discrete_steps is not None:
        step = torch.floor(u * discrete_steps).clamp_max(discrete_steps - 1) + 1.0
        return (step / discrete_steps).to(dtype)
    return (sampling_eps + (1.0 - sampling_eps) * u).to(dtype)


def mask_tokens(
    tokens: Tensor,
    alpha_t: Tensor,
    mask_id: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample z_t ~ q(z_t | x): each token is independently replaced by `mask_id`
    with probability 1 - alpha_t (alpha_t has one entry per sequence)."""
    check_tokens(tokens)
    check_unit_interval(alpha_t, "alpha_t")
    if alpha_t.shape != tokens.shape[:1]:
        raise ValueError(
            f"alpha_t must have shape [batch] = {tuple(tokens.shape[:1])}; got {tuple(alpha_t.shape)}"
        )
    if bool((tokens == mask_id).any()):
        raise ValueError(f"clean tokens must not contain the mask id {mask_id}")
    return mask_where(tokens, position_draws(tokens.shape, generator, tokens.device), alpha_t, mask_id)


def position_draws(shape: torch.Size | tuple[int, ...], generator: torch.Generator | None,
                   device: torch.device | str) -> Tensor:
    """One float64 uniform per position, the noise that decides which positions are masked."""
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float64)


def mask_where(tokens: Tensor, draws: Tensor, alpha_t: Tensor, mask_id: int) -> Tensor:
    """z_t given the per-position uniforms: a position is masked where its draw is at least alpha_t (one level per
    sequence [B], or per position [B, L])."""
    alpha = alpha_t.to(torch.float64)
    masked = draws >= (alpha[:, None] if alpha.dim() == 1 else alpha)
    return torch.where(masked, torch.full_like(tokens, mask_id), tokens)

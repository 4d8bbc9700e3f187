"""Reverse-process samplers for absorbing diffusion: the algorithms (each sampler's settings object, found by
name in sampler_registry.py, calls one of these).

Every sampler talks to the network through one call, `denoiser(z_t, t) -> logits` with z_t [B, L] and t [B],
asks it for logits only at the positions it reads (through `denoiser.at` where the denoiser has it, see
denoiser.py), applies SUBS itself there, draws categoricals in float64 by default, takes a seed or
torch.Generator, and reports how many network calls it made. Infilling is the same samplers started from a
partly clamped z: SUBS carries unmasked positions over, so clamped tokens never change.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
from torch import Tensor

from .denoiser import (
    CausalNetwork,
    CountingDenoiser,
    Denoiser,
    PositionalDenoiser,
    Positions,
    SampleOutput,
    logits_at,
    start_state,
)
from .objectives import subs_at_masked
from .process import check_tokens, make_generator
from .remasking import Remasking
from .schedules import CosineSchedule, NoiseSchedule

TimeGrid = Literal["uniform", "cosine"]


# --------------------------------------------------------------------------- categorical draws


def gumbel_from_uniform(u: Tensor) -> Tensor:
    """Gumbel(0, 1) noise from uniforms u in (0, 1).

    Its range is set by the float format of u: the largest float below 1 caps the
    noise at about 16.6 in float32 but 36.7 in float64. Any token whose log-prob
    sits more than ~19.4 nats under the leader (16.6 plus the 2.8 floor of the
    leader's own noise) can therefore never be drawn in float32. That silently
    lowers the sampling temperature (Zheng et al. 2024), hence float64 by default.
    """
    tiny = torch.finfo(u.dtype).tiny
    return -torch.log(-torch.log(u.clamp_min(tiny)))


def top_p_filter(log_probs: Tensor, top_p: float) -> Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose mass
    reaches top_p (always at least the top token), renormalised."""
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1]; got {top_p}")
    if top_p == 1.0:
        return log_probs
    sorted_log_probs, order = log_probs.sort(dim=-1, descending=True)
    mass_before = sorted_log_probs.exp().cumsum(dim=-1) - sorted_log_probs.exp()
    drop_sorted = mass_before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return log_probs.masked_fill(drop, float("-inf")).log_softmax(dim=-1)


def sample_categorical(
    log_probs: Tensor,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    top_p: float | None = None,
) -> Tensor:
    """Draw one index per row of `log_probs` [..., V] by Gumbel-max in `dtype`."""
    log_probs = log_probs.to(dtype)
    if top_p is not None:
        log_probs = top_p_filter(log_probs, top_p)
    u = torch.rand(log_probs.shape, generator=generator, device=log_probs.device, dtype=dtype)
    return (log_probs + gumbel_from_uniform(u)).argmax(dim=-1)


# --------------------------------------------------------------------------- time grids


def time_grid(schedule: NoiseSchedule, steps: int, grid: TimeGrid = "uniform") -> Tensor:
    """Decreasing float64 times t_0 = 1 > ... > t_steps = 0 for an ancestral sampler.

    "uniform" spaces steps evenly in t. "cosine" spaces them so that alpha follows
    MD4's cosine schedule whatever the model was trained with: it picks the cosine
    alpha levels and maps them back to t through the schedule's inverse.
    """
    if steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")
    uniform = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    if grid == "uniform":
        return uniform
    if grid == "cosine":
        grid_times = schedule.t_of_alpha(CosineSchedule().alpha(uniform))
        grid_times[0], grid_times[-1] = 1.0, 0.0
        return grid_times
    raise ValueError(f"unknown time grid {grid!r}; choose 'uniform' or 'cosine'")


# --------------------------------------------------------------------------- shared plumbing


def all_masked(batch_size: int, length: int, mask_id: int, device: torch.device | str = "cpu") -> Tensor:
    """The prior sample z_1: every position masked."""
    return torch.full((batch_size, length), mask_id, dtype=torch.long, device=device)


def clamp_for_infilling(tokens: Tensor, clamp: Tensor, mask_id: int) -> Tensor:
    """Start state for infilling: keep tokens where `clamp` is True, mask the rest."""
    check_tokens(tokens)
    if clamp.shape != tokens.shape or clamp.dtype != torch.bool:
        raise ValueError(f"clamp must be a bool tensor of shape {tuple(tokens.shape)}")
    return torch.where(clamp, tokens.long(), torch.full_like(tokens, mask_id, dtype=torch.long))


def _draw_tokens(
    logits: Tensor, mask_id: int, generator: torch.Generator | None, dtype: torch.dtype, top_p: float | None, greedy: bool
) -> Tensor:
    """One token per row of masked-position logits [N, V], under SUBS."""
    log_probs = subs_at_masked(logits, mask_id)
    if greedy:
        return log_probs.argmax(dim=-1)
    return sample_categorical(log_probs, generator, dtype=dtype, top_p=top_p)


# --------------------------------------------------------------------------- ancestral / cached


def ancestral_sample(
    denoiser: Denoiser,
    z_init: Tensor,
    schedule: NoiseSchedule,
    mask_id: int,
    *,
    steps: int,
    grid: TimeGrid = "uniform",
    cache: bool = False,
    top_p: float | None = None,
    greedy_final: bool = False,
    remasking: Remasking | None = None,
    generator: int | torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> SampleOutput:
    """MDLM's ancestral sampler on a grid of `steps` steps from t=1 to t=0.

    On a step t -> s a masked position unmasks with probability
    (alpha_s - alpha_t) / (1 - alpha_t), taking a token drawn from x_theta;
    unmasked positions never change. At s = 0 (alpha = 1) every remaining mask
    is filled, so the output holds no mask token.

    cache=True extends MDLM's ddpm_cache from the batch to each row: a row whose
    tokens did not change since its last network call keeps that call's output,
    and only the changed rows run again (a call is made whenever any row changed).
    It is exact only for denoisers that ignore t (no time conditioning) and treat
    rows independently; random draws are identical with and without the cache.
    greedy_final takes the argmax instead of a draw on the last step.

    `remasking` makes it ReMDM (see remasking.py): a token this sampler revealed is masked again with
    probability sigma_t, and masked ones are revealed at the matching higher rate. Tokens of `z_init` (a prompt,
    the known bases of an infilling) are never remasked. With eta = 0, "cap" and "rescale" draw exactly what the
    plain sampler draws, and so return its samples; "loop" at eta = 0 is the plain sampler on the loop's own alpha
    path (alpha held at alpha_on between t_on and t_off), not on the schedule's.
    """
    z = start_state(z_init, mask_id)
    generated = z == mask_id  # the positions this sampler fills, the only ones ReMDM may mask again
    net = CountingDenoiser(denoiser, mask_id)
    generator = make_generator(generator, z.device)
    times = time_grid(schedule, steps, grid)
    batch = z.shape[0]
    cached: Tensor | None = None  # cache=True: logits [B, L, V], current at the masked positions of fresh rows
    stale = torch.ones(batch, dtype=torch.bool, device=z.device)  # rows changed since their logits were computed
    for step in range(steps):
        if remasking is None:
            t, alpha_t, alpha_s, sigma = times[step], schedule.alpha(times[step]), schedule.alpha(times[step + 1]), 0.0
        else:
            levels = remasking.levels(schedule, times, step)
            t, alpha_t, alpha_s, sigma = levels.t, levels.alpha_t, levels.alpha_s, levels.sigma
        masked = z == mask_id
        any_masked = bool(masked.any())
        if not any_masked and (remasking is None or remasking.rate == 0.0):
            break
        unmask = torch.rand(z.shape, generator=generator, device=z.device, dtype=torch.float64) < reveal_probability(
            alpha_t, alpha_s, sigma)
        is_last = step == steps - 1
        if is_last:
            unmask = torch.ones_like(unmask)
        update = masked & unmask
        # with nothing masked (possible under remasking) there is nothing to reveal, so no call
        if any_masked and not cache:
            revealed = net.at(z, torch.full((batch,), float(t), device=z.device), update.nonzero(as_tuple=True))
        elif any_masked and bool(stale.any()):
            cached = _refresh(net, cached, z, masked, stale.nonzero().squeeze(-1), float(t))
            stale[:] = False
        if bool(update.any()):
            # Logits and draws only where a token is revealed: with T >> L that is a few positions per step, and
            # neither the output layer nor the float64 Gumbel noise runs over [B, L, V] (6.6 GB for 16 x 1024
            # GPT-2 tokens).
            logits = cached[update] if cache else revealed
            z[update] = _draw_tokens(logits, mask_id, generator, dtype, top_p, greedy=greedy_final and is_last)
        stale |= update.any(dim=-1)
        if sigma > 0.0 and not is_last:
            remask = generated & ~masked & (torch.rand(z.shape, generator=generator, device=z.device,
                                                       dtype=torch.float64) < sigma)
            z[remask] = mask_id
            stale |= remask.any(dim=-1)
    return SampleOutput(tokens=z, num_calls=net.calls, row_calls=net.rows)


def _refresh(net: CountingDenoiser, cached: Tensor | None, z: Tensor, masked: Tensor, rows: Tensor, t: float) -> Tensor:
    """The cache with `rows` re-run at their masked positions (allocated [B, L, V] on the first call)."""
    sub_rows, columns = masked[rows].nonzero(as_tuple=True)
    logits = net.at(z[rows], torch.full((len(rows),), t, device=z.device), (sub_rows, columns), rows)
    if cached is None:
        cached = logits.new_empty((*z.shape, logits.shape[-1]))
    cached[rows[sub_rows], columns] = logits
    return cached


def reveal_probability(alpha_t: Tensor | float, alpha_s: Tensor | float, sigma: float) -> float:
    """P(a masked position is revealed on t -> s): (alpha_s - (1 - sigma) alpha_t) / (1 - alpha_t), in [0, 1]."""
    alpha_t, alpha_s = torch.as_tensor(alpha_t, dtype=torch.float64), torch.as_tensor(alpha_s, dtype=torch.float64)
    return float(((alpha_s - (1.0 - sigma) * alpha_t) / (1.0 - alpha_t).clamp_min(1e-300)).clamp(0.0, 1.0))


# --------------------------------------------------------------------------- first hitting


def first_hitting_sample(
    denoiser: Denoiser,
    z_init: Tensor,
    schedule: NoiseSchedule,
    mask_id: int,
    *,
    top_p: float | None = None,
    generator: int | torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> SampleOutput:
    """Exact first-hitting sampler (Zheng et al. 2024): one unmasking event per call.

    Given n masked positions at time t, each was masked at an independent time
    whose conditional CDF is (1 - alpha_s) / (1 - alpha_t) for s <= t, so the
    next reverse event is at s with 1 - alpha_s = (1 - alpha_t) u^(1/n), u ~ U(0, 1).
    One uniformly chosen masked position is unmasked there, with a token drawn
    from x_theta(z, s). No time discretisation error, and at most L calls.
    """
    z = start_state(z_init, mask_id)
    net = CountingDenoiser(denoiser, mask_id)
    generator = make_generator(generator, z.device)
    batch = z.shape[0]
    rows = torch.arange(batch, device=z.device)
    t = torch.ones(batch, dtype=torch.float64, device=z.device)
    while True:
        masked = z == mask_id
        num_masked = masked.sum(dim=-1)
        active = num_masked > 0
        if not bool(active.any()):
            break
        u = torch.rand(batch, generator=generator, device=z.device, dtype=torch.float64)
        exponent = 1.0 / num_masked.clamp_min(1).to(torch.float64)
        one_minus_alpha_s = (1.0 - schedule.alpha(t)) * u.pow(exponent)
        s = torch.where(active, schedule.t_of_alpha(1.0 - one_minus_alpha_s), t)
        # Pick one masked position per row uniformly (Gumbel-max over the masked set), then ask for its logits only.
        choice_noise = torch.rand(z.shape, generator=generator, device=z.device, dtype=torch.float64)
        position = choice_noise.masked_fill(~masked, -1.0).argmax(dim=-1)
        logits = net.at(z, s.to(torch.float32), (rows, position))
        tokens = _draw_tokens(logits, mask_id, generator, dtype, top_p, greedy=False)
        z[rows[active], position[active]] = tokens[active]
        t = s
    return SampleOutput(tokens=z, num_calls=net.calls, row_calls=net.rows)


# --------------------------------------------------------------------------- semi-autoregressive


BlockSampler = Callable[[Tensor], SampleOutput]


def semi_autoregressive_sample(
    sample_block: BlockSampler,
    *,
    batch_size: int,
    length: int,
    block_length: int,
    stride: int,
    mask_id: int,
    prompt: Tensor | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> SampleOutput:
    """Generate `length` tokens with a model whose context is `block_length`.

    The first window is sampled with the prompt (if any) clamped at its start.
    Each further window keeps the last block_length - stride generated tokens
    (more for a shorter final window, so every window is full) as a clamped
    prefix and samples `stride` new masked positions after it, so any length is
    reachable. `sample_block(z_init)` is any sampler above, partially
    applied, e.g. functools.partial(ancestral_sample, net, schedule=..., ...).
    `progress(n)` is told the number of new tokens after each window.
    """
    if not 0 < stride <= block_length:
        raise ValueError(f"stride must lie in [1, block_length={block_length}]; got {stride}")
    if length < 1:
        raise ValueError(f"length must be positive; got {length}")
    prefix = torch.empty((batch_size, 0), dtype=torch.long, device=device)
    if prompt is not None:
        check_tokens(prompt, "prompt")
        if prompt.shape[0] != batch_size:
            raise ValueError(f"prompt batch {prompt.shape[0]} differs from batch_size {batch_size}")
        if prompt.shape[1] >= min(length, block_length):
            raise ValueError(
                f"prompt length {prompt.shape[1]} must be shorter than both length={length} "
                f"and block_length={block_length}"
            )
        prefix = prompt.long().to(device)
    first_window = min(length, block_length)
    z = torch.cat([prefix, all_masked(batch_size, first_window - prefix.shape[1], mask_id, device)], dim=1)
    out = sample_block(z)
    generated, calls, rows = out.tokens, out.num_calls, out.row_calls
    if progress is not None:
        progress(batch_size * (first_window - prefix.shape[1]))
    while generated.shape[1] < length:
        new = min(stride, length - generated.shape[1])
        context = generated[:, generated.shape[1] - (block_length - new) :]
        out = sample_block(torch.cat([context, all_masked(batch_size, new, mask_id, device)], dim=1))
        generated = torch.cat([generated, out.tokens[:, context.shape[1] :]], dim=1)
        calls, rows = calls + out.num_calls, rows + out.row_calls
        if progress is not None:
            progress(batch_size * new)
    return SampleOutput(tokens=generated, num_calls=calls, row_calls=rows)


# --------------------------------------------------------------------------- autoregressive baseline


def autoregressive_sample(
    network: CausalNetwork,
    prompt: Tensor,
    length: int,
    *,
    top_p: float | None = None,
    generator: int | torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    progress: Callable[[int], None] | None = None,
) -> SampleOutput:
    """Left-to-right sampling from a causal LM, for the AR baseline's samples.

    `network(tokens[B, l]) -> logits[B, l, V]`, position j predicting token j + 1. The prompt (at least
    the BOS) is kept. Draws use the same float64 Gumbel-max as the diffusion samplers, so the two are
    compared at the same temperature. Without a KV cache each call re-reads the prefix: length - P calls.
    `progress(n)` is told of the n tokens drawn by each call.
    """
    check_tokens(prompt, "prompt")
    if prompt.shape[1] < 1:
        raise ValueError("prompt must hold at least one token (e.g. the BOS) to condition the first draw on")
    if length <= prompt.shape[1]:
        raise ValueError(f"length={length} must exceed the prompt length {prompt.shape[1]}")
    generator = make_generator(generator, prompt.device)
    tokens = prompt.long()
    for _ in range(length - prompt.shape[1]):
        log_probs = network(tokens)[:, -1].to(dtype).log_softmax(dim=-1)
        tokens = torch.cat([tokens, sample_categorical(log_probs, generator, dtype=dtype, top_p=top_p)[:, None]], dim=1)
        if progress is not None:
            progress(tokens.shape[0])
    calls = length - prompt.shape[1]
    return SampleOutput(tokens=tokens, num_calls=calls, row_calls=calls * prompt.shape[0])


# --------------------------------------------------------------------------- guidance


def classifier_free_guidance(cond_logits: Tensor, uncond_logits: Tensor, weight: float) -> Tensor:
    """Log of p_cond^w p_uncond^(1-w), renormalised per position (Schiff et al. 2024).

    w = 1 is plain conditional sampling, w = 0 unconditional, w > 1 pushes samples
    further toward the condition.
    """
    if cond_logits.shape != uncond_logits.shape:
        raise ValueError(
            f"conditional and unconditional logits differ in shape: "
            f"{tuple(cond_logits.shape)} vs {tuple(uncond_logits.shape)}"
        )
    if not math.isfinite(weight):
        raise ValueError(f"guidance weight must be finite; got {weight}")
    cond = cond_logits.float().log_softmax(dim=-1)
    uncond = uncond_logits.float().log_softmax(dim=-1)
    # Avoid inf * 0 = nan where both branches rule a token out (e.g. the mask token).
    mixed = torch.where(
        torch.isinf(cond) & torch.isinf(uncond), cond, weight * cond + (1.0 - weight) * uncond
    )
    return mixed.log_softmax(dim=-1)


def guided_denoiser(cond: Denoiser, uncond: Denoiser, weight: float) -> PositionalDenoiser:
    """A denoiser whose output is the CFG mixture of two others (two passes per call), at positions too."""

    def denoise(z: Tensor, t: Tensor) -> Tensor:
        return classifier_free_guidance(cond(z, t), uncond(z, t), weight)

    def at(z: Tensor, t: Tensor, positions: Positions) -> Tensor:
        return classifier_free_guidance(logits_at(cond, z, t, positions), logits_at(uncond, z, t, positions), weight)

    return PositionalDenoiser(denoise, at)

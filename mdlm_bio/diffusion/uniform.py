"""Uniform-state discrete diffusion (UDLM; Schiff et al. 2024, "Simple Guidance Mechanisms for Discrete Diffusion
Models"): noise moves a token to a uniformly drawn one of the N states, so a token can change more than once and
the reverse process can correct itself, which is what guidance on a small vocabulary (DNA's four bases) needs.

Forward: q(z_t | x) = Cat(alpha_t x + (1 - alpha_t) / N) independently per position (a position not among the
states, such as N in DNA or padding, is left as it is and not scored). The model gives x_theta(z_t, t), a
distribution over the states, and everything below follows from it:

- the posterior q(z_s | z_t, x) for s < t, with x one-hot or x_theta (the ancestral sampler's step and the
  discrete-time bound);
- the continuous-time NELBO per position (the guidance paper's closed form, for any schedule):
  alpha'_t / (N alpha_t) [N / xbar_i - N / xbar_theta_i - sum_j (xbar_j / xbar_i) log(xbar_theta_i xbar_j /
  (xbar_theta_j xbar_i))], with xbar = N alpha_t x + 1 - alpha_t, xbar_theta likewise from x_theta, and i the state
  z_t holds; zero when x_theta is the exact posterior mean, so the bound is tight for an exact denoiser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .denoiser import Denoiser
from .objectives import LossOutput, check_logits, valid_positions
from .process import check_tokens, sample_times
from .reverse_chain import ReverseStep, per_position, state_log_probs
from .schedules import NoiseSchedule


@dataclass
class UniformDiffusion:
    """One Monte-Carlo NELBO estimate per call for any time-conditioned denoiser(z_t, t) -> logits [B, L, V], of
    which the `states` columns are read (DNA: the four bases).

    discrete_steps=None gives the continuous-time NELBO over t in [sampling_eps, 1] (the slice below sampling_eps
    is left out, as MDLM leaves it); an integer T gives the discrete-time bound, which tightens as T grows.
    """

    schedule: NoiseSchedule
    states: Sequence[int]
    sampling_eps: float = 1e-3
    antithetic: bool = True
    discrete_steps: int | None = None

    def __post_init__(self) -> None:
        self.states = tuple(int(state) for state in self.states)
        if len(self.states) < 2 or len(set(self.states)) != len(self.states):
            raise ValueError(f"uniform diffusion needs at least two distinct states; got {list(self.states)}")

    @property
    def num_states(self) -> int:
        return len(self.states)

    def noise_level(self, t: Tensor) -> Tensor:
        """sigma(t), what a time-conditioned denoiser reads (as MaskedDiffusion gives it)."""
        return self.schedule.total_noise(t, check=False)

    # ------------------------------------------------------------------ the forward process

    def state_index(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Each token's index among the states [B, L] (0 where it is not one) and whether it is one."""
        beyond = max(self.states) + 1  # every larger id reads this -1 (no device sync to find the largest)
        table = torch.full((beyond + 1,), -1, dtype=torch.long, device=tokens.device)
        table[list(self.states)] = torch.arange(self.num_states, device=tokens.device)
        index = table[tokens.long().clamp(0, beyond)]
        return index.clamp_min(0), index >= 0

    def noise(self, tokens: Tensor, t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """z_t ~ q(z_t | x) for times t [B] (or [B, L])."""
        keep = torch.rand(tokens.shape, generator=generator, device=tokens.device, dtype=torch.float64)
        drawn = torch.randint(0, self.num_states, tokens.shape, generator=generator, device=tokens.device)
        return self.noise_given(tokens, t, keep, drawn)

    def noise_given(self, tokens: Tensor, t: Tensor, keep: Tensor, drawn: Tensor) -> Tensor:
        """z_t for given uniforms `keep` [B, L] (a position keeps its token where keep < alpha_t) and replacement
        state indices `drawn` [B, L]; positions that are not states stay."""
        alpha = self.schedule.alpha(t, check=False).to(torch.float64)
        alpha = alpha[:, None] if alpha.dim() == 1 else alpha
        _, is_state = self.state_index(tokens)
        return torch.where((keep >= alpha) & is_state, self.tokens_of(drawn), tokens)

    def posterior(self, x: Tensor, z_t: Tensor, alpha_s: Tensor, alpha_t: Tensor) -> Tensor:
        """q(z_s | z_t, x) over the states [B, L, N] for s < t: `x` a distribution over the states [B, L, N]
        (one-hot for the true posterior, x_theta for the model's), z_t as state indices [B, L], signal levels
        alpha_s >= alpha_t [B] or [B, L]."""
        alpha_s, alpha_t = (per_position(a, z_t).to(x.dtype) for a in (alpha_s, alpha_t))
        alpha_ts = alpha_t / alpha_s
        at_z = F.one_hot(z_t, self.num_states).to(x.dtype)
        n = self.num_states
        numerator = (n * alpha_t * x * at_z + (alpha_ts - alpha_t) * at_z + (alpha_s - alpha_t) * x
                     + (1 - alpha_ts) * (1 - alpha_s) / n)
        return numerator / (n * alpha_t * (x * at_z).sum(-1, keepdim=True) + 1 - alpha_t)

    # ------------------------------------------------------------------ the bound

    def draw_times(self, batch_size: int, generator: torch.Generator | None, device: torch.device | str) -> Tensor:
        return sample_times(batch_size, sampling_eps=self.sampling_eps, antithetic=self.antithetic,
                            discrete_steps=self.discrete_steps, generator=generator, device=device)

    def loss(self, denoiser: Denoiser, tokens: Tensor, attention_mask: Tensor | None = None,
             generator: torch.Generator | None = None) -> LossOutput:
        check_tokens(tokens)
        t = self.draw_times(tokens.shape[0], generator, tokens.device)
        return self.loss_given_noise(denoiser, tokens, t, self.noise(tokens, t, generator), attention_mask)

    def loss_given_noise(self, denoiser: Denoiser, tokens: Tensor, t: Tensor, z_t: Tensor,
                         attention_mask: Tensor | None = None) -> LossOutput:
        """The NELBO estimate for given times t [B] and noisy tokens z_t [B, L]."""
        logits = denoiser(z_t, t)
        check_logits(logits, tokens)
        log_x_theta = state_log_probs(logits, self.states)
        x, is_state = self.state_index(tokens)
        z, _ = self.state_index(z_t)
        if self.discrete_steps is None:
            terms = self.continuous_terms(log_x_theta, x, z, t)
        else:
            terms = self.discrete_terms(log_x_theta, x, z, t)
        scored = valid_positions(tokens, attention_mask) & is_state
        return LossOutput(token_loss=torch.where(scored, terms, 0.0), num_tokens=scored.sum())

    def continuous_terms(self, log_x_theta: Tensor, x: Tensor, z: Tensor, t: Tensor) -> Tensor:
        """The continuous-time NELBO integrand per position [B, L] (x and z as state indices). Computed in float64:
        the bracket is a difference of nearly equal terms, of order alpha^2 as alpha -> 0, where the coefficient
        grows as 1 / alpha (cheap with a small vocabulary). At alpha = 0 the integrand's limit, 0, is what it gives:
        every xbar is then exactly 1."""
        n, work = self.num_states, torch.float64
        alpha = per_position(self.schedule.alpha(t, check=False), z).to(work).clamp_min(torch.finfo(work).tiny)
        alpha_prime = per_position(self.schedule.alpha_prime(t, check=False), z).to(work)
        x_bar = n * alpha * F.one_hot(x, n).to(work) + 1 - alpha
        log_x_bar_theta = torch.log(n * alpha * log_x_theta.to(work).exp() + 1 - alpha)
        x_bar_z = x_bar.gather(-1, z[..., None])
        log_x_bar_theta_z = log_x_bar_theta.gather(-1, z[..., None])
        ratio = x_bar / x_bar_z
        inside = n / x_bar_z - n / log_x_bar_theta_z.exp() - (
            ratio * (log_x_bar_theta_z - log_x_bar_theta + torch.log(ratio))).sum(-1, keepdim=True)
        return (alpha_prime / (n * alpha) * inside)[..., 0].to(log_x_theta.dtype)

    def discrete_terms(self, log_x_theta: Tensor, x: Tensor, z: Tensor, t: Tensor) -> Tensor:
        """T times KL(q(z_s | z_t, x) || q(z_s | z_t, x_theta)), s = t - 1/T, per position [B, L]."""
        s = (t - 1.0 / self.discrete_steps).clamp_min(0.0)
        alpha_s, alpha_t = self.schedule.alpha(s, check=False), self.schedule.alpha(t, check=False)
        true = self.posterior(F.one_hot(x, self.num_states).to(log_x_theta.dtype), z, alpha_s, alpha_t)
        model = self.posterior(log_x_theta.exp(), z, alpha_s, alpha_t)
        kl = torch.xlogy(true, true) - true * model.clamp_min(torch.finfo(model.dtype).tiny).log()
        return self.discrete_steps * kl.sum(-1)

    # ------------------------------------------------------------------ sampling

    def log_x_theta(self, denoiser: Denoiser, z: Tensor, t: Tensor) -> Tensor:
        """log x_theta over the states [B, L, N] for z_t given as state indices [B, L]."""
        return state_log_probs(denoiser(self.tokens_of(z), t.float()), self.states)

    def tokens_of(self, z: Tensor) -> Tensor:
        """State indices -> token ids."""
        return torch.as_tensor(self.states, device=z.device)[z]

    def start(self, shape: tuple[int, int], generator: torch.Generator | None, device: torch.device | str) -> Tensor:
        """Where sampling starts: uniform noise, the process's distribution at t = 1."""
        return torch.randint(0, self.num_states, shape, generator=generator, device=device)

    def movable(self, z: Tensor) -> Tensor:
        """Positions a step may change: all of them."""
        return torch.ones_like(z, dtype=torch.bool)

    def model_step(self, denoiser: Denoiser) -> ReverseStep:
        """The model's reverse step: q(z_s | z_t, x_theta)."""
        def step(z: Tensor, s: Tensor, t: Tensor) -> Tensor:
            return self.posterior(self.log_x_theta(denoiser, z, t).exp(), z, self.schedule.alpha(s),
                                  self.schedule.alpha(t))

        return step

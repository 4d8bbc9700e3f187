"""Reverse diffusion as a chain over a finite set of states, one step at a time: the form classifier-based guidance
reweights, for either noise.

A chain names its states (token ids; masked diffusion's include the mask), where sampling starts, and the model's
reverse step q(z_s | z_t, x_theta) as a distribution over the states at every position. Uniform-state diffusion
(uniform.py) is such a chain; `MaskedChain` views masked diffusion as one, over the tokens the model emits plus the
mask. Sampling is the same loop for both (`run_chain`): from the start state at t = 1, every position drawn from the
step's distribution at each of `steps` equal steps down to t = 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .denoiser import Denoiser
from .process import make_generator
from .schedules import NoiseSchedule

ReverseStep = Callable[[Tensor, Tensor, Tensor], Tensor]  # (z_t state indices, s, t) -> p(z_s) [B, L, N]


class StateChain(Protocol):
    """What guidance and `run_chain` read of a reverse process on states."""

    states: Sequence[int]

    @property
    def num_states(self) -> int: ...

    def tokens_of(self, z: Tensor) -> Tensor: ...

    def model_step(self, denoiser: Denoiser) -> ReverseStep: ...

    def start(self, shape: tuple[int, int], generator: torch.Generator | None, device: torch.device | str) -> Tensor: ...

    def movable(self, z: Tensor) -> Tensor: ...


def state_log_probs(logits: Tensor, states: Sequence[int]) -> Tensor:
    """log x_theta over the states [B, L, N] from a denoiser's logits over the vocabulary, in at least float32."""
    return logits[..., list(states)].to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1)


def per_position(values: Tensor, like: Tensor) -> Tensor:
    """Per-sequence values [B] as [B, 1, 1]; per-position values [B, L] as [B, L, 1]."""
    return values[:, None, None] if values.dim() == 1 else values[..., None]


@torch.no_grad()
def run_chain(chain: StateChain, step: ReverseStep, shape: tuple[int, int], steps: int,
              seed: int | torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
    """Token ids [B, L] drawn by `step` (the chain's model_step, or a guided one) over `steps` equal steps from
    t = 1 to 0; the last step's distribution, at s = 0, is the clean token's."""
    generator = make_generator(seed, device)
    z = chain.start(shape, generator, device)
    for index in range(steps, 0, -1):
        t = torch.full((shape[0],), index / steps, device=device, dtype=torch.float64)
        probs = step(z, torch.full_like(t, (index - 1) / steps), t)
        z = torch.multinomial(probs.reshape(-1, chain.num_states), 1, generator=generator).view(shape)
    return chain.tokens_of(z)


@dataclass
class MaskedChain:
    """Masked diffusion as a chain over the tokens the model emits (`outputs`) and the mask, the last state: a
    masked position is revealed as token v with probability (alpha_s - alpha_t) / (1 - alpha_t) x_theta(v) and
    stays masked otherwise; a revealed one keeps its token. MDLM's ancestral sampler on the uniform grid, drawn
    from the full step distribution, so that guidance can reweight it."""

    schedule: NoiseSchedule
    mask_id: int
    outputs: Sequence[int]

    def __post_init__(self) -> None:
        self.outputs = tuple(int(token) for token in self.outputs)
        if self.mask_id in self.outputs:
            raise ValueError(f"the mask id {self.mask_id} cannot be one of the tokens the model emits")
        self.states = (*self.outputs, self.mask_id)

    @property
    def num_states(self) -> int:
        return len(self.states)

    @property
    def masked_state(self) -> int:
        return len(self.outputs)

    def tokens_of(self, z: Tensor) -> Tensor:
        return torch.as_tensor(self.states, device=z.device)[z]

    def start(self, shape: tuple[int, int], generator: torch.Generator | None, device: torch.device | str) -> Tensor:
        return torch.full(shape, self.masked_state, dtype=torch.long, device=device)

    def movable(self, z: Tensor) -> Tensor:
        """Positions a step may change: the masked ones."""
        return z == self.masked_state

    def model_step(self, denoiser: Denoiser) -> ReverseStep:
        def step(z: Tensor, s: Tensor, t: Tensor) -> Tensor:
            x_theta = state_log_probs(denoiser(self.tokens_of(z), t.float()), self.outputs).exp().to(torch.float64)
            alpha_s, alpha_t = (per_position(self.schedule.alpha(time).to(torch.float64), z) for time in (s, t))
            reveal = (alpha_s - alpha_t) / (1 - alpha_t)
            masked = torch.cat([reveal * x_theta, (1 - reveal).expand(*z.shape, 1)], dim=-1)
            return torch.where(self.movable(z)[..., None], masked, F.one_hot(z, self.num_states).to(torch.float64))

        return step

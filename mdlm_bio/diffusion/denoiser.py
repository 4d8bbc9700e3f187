"""The one call the engine makes to a network, and the bookkeeping every sampler does around it.

A denoiser is any callable `denoiser(z_t[B, L], t[B]) -> logits[B, L, V]`. One that can also give logits at chosen
positions only, `denoiser.at(z_t, t, (rows, columns)) -> logits[N, V]`, spares its output layer everywhere else:
samplers read logits where they reveal a token and the loss where a token is masked, and with a 50k vocabulary
the output layer is a text model's largest matmul. `PositionalDenoiser` pairs the two forms; `logits_at` asks
either kind for the rows it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from .objectives import check_logits
from .process import check_mask_id, check_tokens

Denoiser = Callable[[Tensor, Tensor], Tensor]
Positions = tuple[Tensor, Tensor]  # (rows, columns) of N positions, row-major
PositionLogits = Callable[[Tensor, Tensor, Positions], Tensor]  # (z_t [B, L], t [B], positions) -> [N, V]
CausalNetwork = Callable[[Tensor], Tensor]  # tokens [B, l] -> logits [B, l, V], position j predicting token j + 1


@dataclass(frozen=True)
class PositionalDenoiser:
    """A denoiser together with its positions-only form; called like the plain one. A denoiser that holds state
    per row (block diffusion's cache of the blocks before) also says how to run on some of its rows (`rows`), for
    samplers that re-run only the rows that changed."""

    full: Denoiser
    at: PositionLogits
    rows: Callable[[Tensor], Denoiser] | None = None

    def __call__(self, z_t: Tensor, t: Tensor) -> Tensor:
        return self.full(z_t, t)


def for_rows(denoiser: Denoiser, rows: Tensor) -> Denoiser:
    """The denoiser to call on z[rows]: itself, unless it holds per-row state."""
    select = getattr(denoiser, "rows", None)
    return denoiser if select is None else select(rows)


def logits_at(denoiser: Denoiser, z_t: Tensor, t: Tensor, positions: Positions) -> Tensor:
    """Logits [N, V] at `positions` only: through `denoiser.at` where it has one, else read off the full output."""
    at = getattr(denoiser, "at", None)
    return denoiser(z_t, t)[positions] if at is None else at(z_t, t, positions)


@dataclass(frozen=True)
class SampleOutput:
    """Samples, the network calls that made them, and the rows those calls ran (a call on a batch of B rows is B
    row calls; the cached sampler re-runs only the rows that changed). `lengths` [B]: where each row ends, for
    samples of variable length (None: every row is whole)."""

    tokens: Tensor
    num_calls: int
    row_calls: int
    lengths: Tensor | None = None

    def rows(self) -> list[Tensor]:
        """Each sample, cut to its length."""
        if self.lengths is None:
            return list(self.tokens)
        return [row[: int(length)] for row, length in zip(self.tokens, self.lengths)]


class CountingDenoiser:
    """Calls the network, counts calls and rows, and checks its raw logits ([B, L, V], or [N, V] at positions)."""

    def __init__(self, denoiser: Denoiser, mask_id: int) -> None:
        self.denoiser, self.mask_id, self.calls, self.rows = denoiser, mask_id, 0, 0

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        return self._checked(self.denoiser, z, t)

    def at(self, z: Tensor, t: Tensor, positions: Positions, rows: Tensor | None = None) -> Tensor:
        """Logits at `positions` of z; `rows`: which of the sampler's rows z holds (None: all)."""
        denoiser = self.denoiser if rows is None else for_rows(self.denoiser, rows)
        own = getattr(denoiser, "at", None)
        if own is None:
            return self._checked(denoiser, z, t)[positions]
        self._count(z)
        logits = own(z, t, positions)
        if logits.dim() != 2 or logits.shape[0] != positions[0].numel():
            raise ValueError(f"logits at {positions[0].numel()} positions must have shape [positions, vocab]; "
                             f"got {tuple(logits.shape)}")
        check_mask_id(self.mask_id, logits.shape[-1])
        return logits

    def _checked(self, denoiser: Denoiser, z: Tensor, t: Tensor) -> Tensor:
        self._count(z)
        logits = denoiser(z, t)
        check_logits(logits, z)
        check_mask_id(self.mask_id, logits.shape[-1])
        return logits

    def _count(self, z: Tensor) -> None:
        self.calls += 1
        self.rows += z.shape[0]


def start_state(z_init: Tensor, mask_id: int) -> Tensor:
    """A sampler's working copy of its start tokens [B, L] (masked where it will generate), checked once."""
    check_tokens(z_init, "z_init")
    if mask_id < 0:
        raise ValueError(f"mask_id must be non-negative; got {mask_id}")
    return z_init.long().clone()


"""Likelihood results, whatever was scored (a DNA record, a text corpus, generated samples, a variant): one value
type for an NLL or NELBO, and one for an estimate with its standard error."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Nll:
    """-log p in nats summed over `tokens` scored tokens (bases for DNA): an exact NLL, or a NELBO, which bounds
    it from above. Per token, in bits and as a perplexity (exp of the per-token value), it reads the same for
    every model kind and track."""

    nats: float
    tokens: int

    @property
    def per_token(self) -> float:
        return self.nats / self.tokens if self.tokens else float("nan")

    @property
    def bits_per_token(self) -> float:
        return self.per_token / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.per_token)


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo estimate in nats (a log-likelihood ratio, say) and its standard error (None when exact, nan
    from a single draw)."""

    value: float
    standard_error: float | None

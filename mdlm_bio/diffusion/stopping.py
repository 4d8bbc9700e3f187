"""Where a sample of variable length ends (block diffusion generates until a rule says stop, or `length`).

Two rules, BD3-LM's: a stop token (text: the end-of-sequence token, found after the first position, which may be
the same token as a beginning of sequence) ends the sample after it; and a sample whose last `window` tokens have
a unigram entropy below `entropy` nats has fallen into repetition, so those tokens are cut and it ends there
(BD3-LM uses 4 nats over 256 tokens of GPT-2 text; DNA's four bases cannot exceed log 4 = 1.39 nats, so a DNA
threshold must sit well below that).

The rule is a settings object the command line builds, so this module imports torch only where it counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class StopRule:
    token: int | None = None
    entropy: float | None = None
    window: int = 256

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"the entropy window must be positive; got {self.window}")
        if self.entropy is not None and not 0.0 < self.entropy <= math.log(2**32):
            raise ValueError(f"the stop entropy must be a positive number of nats; got {self.entropy}")

    def describe(self) -> str:
        words = [] if self.token is None else [f"stop_token={self.token}"]
        return " ".join(words + ([] if self.entropy is None else [f"stop_entropy={self.entropy:g}/{self.window}"]))

    def lengths(self, tokens: Tensor) -> Tensor:
        """Each row's length [B] under the rule (the full width where it does not apply)."""
        import torch

        batch, width = tokens.shape
        lengths = torch.full((batch,), width, dtype=torch.long, device=tokens.device)
        if self.token is not None:
            hits = (tokens[:, 1:] == self.token).long()
            first = torch.where(hits.any(dim=1), hits.argmax(dim=1) + 2, lengths)  # keep the stop token itself
            lengths = torch.minimum(lengths, first)
        if self.entropy is not None and width > self.window:
            low = unigram_entropy(tokens[:, -self.window :]) < self.entropy
            lengths = torch.where(low, torch.minimum(lengths, torch.tensor(width - self.window)), lengths)
        return lengths


def unigram_entropy(tokens: Tensor) -> Tensor:
    """The entropy in nats of each row's token frequencies [B]."""
    import torch

    counts = torch.zeros(tokens.shape[0], int(tokens.max()) + 1, dtype=torch.float64, device=tokens.device)
    counts.scatter_add_(1, tokens.long(), torch.ones_like(tokens, dtype=torch.float64))
    probs = counts / tokens.shape[1]
    return -(probs * probs.clamp_min(1e-300).log()).sum(dim=1)

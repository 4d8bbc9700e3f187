"""The other strand of DNA token batches, as tensors on any device (the numpy form is tokenizer.reverse_complement)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..backbones.caduceus import reverse_complement_tokens
from .tokenizer import COMPLEMENT_MAP


def other_strand(tokens: Tensor) -> Tensor:
    """[..., L] DNA token ids -> the other strand, read 5' to 3', on their device."""
    return reverse_complement_tokens(tokens, torch.as_tensor(COMPLEMENT_MAP, device=tokens.device))

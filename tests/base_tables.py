"""Toy DNA 'models' for exact checks: logits that put a known distribution over A, C, G, T at every position,
chosen by one conditioning token (a table row per base, uniform after anything else)."""

from __future__ import annotations

import torch

from mdlm_bio.dna.tokenizer import BASE_IDS

VOCAB = 16


def base_table_logits(condition: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """[*, VOCAB] float64 logits: log table[condition - A] over the bases where `condition` is a base, uniform
    over the bases elsewhere, -inf for every other token."""
    logits = torch.full((*condition.shape, VOCAB), float("-inf"), dtype=torch.float64)
    rows = torch.full((*condition.shape, 4), 0.25, dtype=torch.float64)
    is_base = (condition >= BASE_IDS[0]) & (condition <= BASE_IDS[-1])
    rows[is_base] = table[condition[is_base] - BASE_IDS[0]]
    logits[..., list(BASE_IDS)] = rows.log()
    return logits

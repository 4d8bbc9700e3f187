"""What a transformer's attention sees for block diffusion (BD3-LM): the mask of its one-pass training input, and
the cache of clean keys and values that block-by-block sampling carries.

Training reads the noisy sequence x_t and the clean one x_0 as one input of 2L tokens, both at positions 0..L-1.
A noisy token of block b attends the noisy tokens of its own block and the clean tokens of blocks before b; a clean
token of block b attends the clean tokens of blocks up to b; clean tokens never see noisy ones. So the clean
half's hidden states at every layer depend on the clean blocks up to their own alone, which is what lets sampling
keep them, block by block, as a cache of keys and values (exactly, not approximately).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
from torch import Tensor


def block_diffusion_mask(length: int, block_size: int, device: torch.device | str = "cpu") -> Tensor:
    """[2L, 2L] bool, True where query i may attend key j, for the input [x_t, x_0]."""
    block = torch.arange(length, device=device) // block_size
    query, key = block[:, None], block[None, :]
    noisy_to_noisy = query == key
    noisy_to_clean = key < query
    clean_to_clean = key <= query
    never = torch.zeros(length, length, dtype=torch.bool, device=device)
    return torch.cat([torch.cat([noisy_to_noisy, noisy_to_clean], dim=1), torch.cat([never, clean_to_clean], dim=1)])


def block_diffusion_mask_mod(length: int, block_size: int):
    """block_diffusion_mask as FlexAttention's mask_mod (query index, key index -> may attend), so the attention
    of [x_t, x_0] can skip the blocks the mask rules out."""
    def may_attend(batch: Tensor, head: Tensor, query: Tensor, key: Tensor) -> Tensor:
        query_noisy, key_noisy = query < length, key < length
        query_block = torch.where(query_noisy, query, query - length) // block_size
        key_block = torch.where(key_noisy, key, key - length) // block_size
        return ((query_noisy & key_noisy & (query_block == key_block))
                | (query_noisy & ~key_noisy & (key_block < query_block))
                | (~query_noisy & ~key_noisy & (key_block <= query_block)))

    return may_attend


@functools.cache
def flex_block_mask(length: int, block_size: int, device: str):
    """FlexAttention's block mask of block_diffusion_mask for [x_t, x_0] of 2L tokens (built once per shape)."""
    from torch.nn.attention.flex_attention import create_block_mask

    return create_block_mask(block_diffusion_mask_mod(length, block_size), None, None, 2 * length, 2 * length,
                             device=device)


def block_causal_mask(length: int, block_size: int, device: torch.device | str = "cpu") -> Tensor:
    """[L, L] bool: a token attends the tokens of its own block and of the blocks before it (the clean half's
    view; over [clean prefix, noisy block] it is also what the noisy block sees)."""
    block = torch.arange(length, device=device) // block_size
    return block[None, :] <= block[:, None]


def block_diffusion_positions(length: int, device: torch.device | str = "cpu") -> Tensor:
    """Positions 0..L-1 for both halves of [x_t, x_0]: a noisy token and its clean twin share a position."""
    positions = torch.arange(length, device=device)
    return torch.cat([positions, positions])


@dataclass
class KeyValueCache:
    """Per layer, the keys (rotated at their positions 0..P-1 in the window) and values [B, heads, P, head_dim] of
    the P clean tokens generated so far, for attention over them without recomputing them."""

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def past(self, layer: int) -> tuple[Tensor, Tensor] | None:
        return (self.keys[layer], self.values[layer]) if layer < len(self.keys) else None

    def rows(self, rows: Tensor) -> KeyValueCache:
        """The cache of some rows of the batch (a copy)."""
        return KeyValueCache([keys[rows] for keys in self.keys], [values[rows] for values in self.values])

    def keep_last(self, count: int) -> None:
        """Forget all but the last `count` cached tokens (a window sliding past the context)."""
        self.keys = [keys[:, :, keys.shape[2] - count :] for keys in self.keys]
        self.values = [values[:, :, values.shape[2] - count :] for values in self.values]

    def append(self, layer: int, keys: Tensor, values: Tensor) -> None:
        if layer < len(self.keys):
            self.keys[layer] = torch.cat([self.keys[layer], keys], dim=2)
            self.values[layer] = torch.cat([self.values[layer], values], dim=2)
        else:
            self.keys.append(keys)
            self.values.append(values)


@dataclass
class AttentionView:
    """What one forward pass's attention sees besides its own tokens: their positions (default 0..L-1), which
    query-key pairs may attend (`mask` [L, P + L], None for all), the cache of P earlier keys and values, and
    whether this pass's keys and values join the cache (`extend`: a finished clean block)."""

    positions: Tensor | None = None
    mask: Tensor | None = None
    cache: KeyValueCache | None = None
    extend: bool = False
    block_size: int | None = None  # the mask is block diffusion's training mask with blocks of this size

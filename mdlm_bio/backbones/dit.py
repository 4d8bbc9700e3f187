"""MDLM's diffusion transformer (DiT): rotary attention with adaLN conditioning on the noise level.

Module and parameter names mirror MDLM's `models/dit.py` so that the published
OWT checkpoint maps onto this model by renaming keys alone (see pretrained.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .block_attention import (
    AttentionView,
    KeyValueCache,
    block_causal_mask,
    block_diffusion_mask,
    block_diffusion_positions,
    flex_block_mask,
)
from .kernels import flash_attention_kernel, flex_attention_kernel, kernels_apply

FREQUENCY_DIM = 256


class LayerNorm(nn.Module):
    """LayerNorm with a scale and no bias, evaluated in float32 (as in MDLM)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            normed = F.layer_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return normed * self.weight


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of a scalar noise level ([cos, sin], 256 wide), then a 2-layer SiLU MLP."""

    def __init__(self, cond_dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        half = FREQUENCY_DIM // 2
        self.register_buffer(
            "frequencies", torch.exp(-math.log(max_period) * torch.arange(half) / half), persistent=False
        )
        self.mlp = nn.Sequential(nn.Linear(FREQUENCY_DIM, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, noise_level: Tensor) -> Tensor:
        angles = noise_level.float()[:, None] * self.frequencies[None]
        return self.mlp(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1))

    def condition(self, noise_level: Tensor | None, tokens: Tensor) -> Tensor:
        """The conditioning vector [B, C] a backbone's adaLN layers read: SiLU of the embedding of the noise level
        [B] (None: level 0 for every row of `tokens`)."""
        if noise_level is None:
            noise_level = torch.zeros(tokens.shape[0], device=tokens.device)
        return F.silu(self(noise_level))


class Rotary(nn.Module):
    """Rotary position embedding, rotate-half convention, base 10000, on q and k."""

    def __init__(self, head_dim: int, base: float = 10_000.0) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim))

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """x: [B, heads, L, head_dim], at `positions` [L] (default 0..L-1, computed afresh; given positions are
        read from a table kept across calls, since block sampling rotates its whole cache at every call)."""
        if positions is None:
            angles = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)[:, None] * self.inv_freq[None]
            cos, sin = torch.cos(angles).repeat(1, 2), torch.sin(angles).repeat(1, 2)
        else:
            cos, sin = self._table(int(positions.max()) + 1, x.device)
            cos, sin = cos[positions], sin[positions]
        x32 = x.float()
        first, second = x32.chunk(2, dim=-1)
        return (x32 * cos + torch.cat([-second, first], dim=-1) * sin).to(x.dtype)

    def shift(self, x: Tensor, offset: int) -> Tensor:
        """x rotated by `offset` positions more (negative: fewer): rotary at p then shift(offset) is rotary at
        p + offset."""
        angles = offset * self.inv_freq[None].to(x.device)
        cos, sin = torch.cos(angles).repeat(1, 2), torch.sin(angles).repeat(1, 2)
        x32 = x.float()
        first, second = x32.chunk(2, dim=-1)
        return (x32 * cos + torch.cat([-second, first], dim=-1) * sin).to(x.dtype)

    def _table(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """cos and sin [N, head_dim] for positions 0..N-1, N at least `length` (grown by doubling)."""
        table = getattr(self, "_cos_sin", None)
        if table is None or table[0].shape[0] < length or table[0].device != device:
            size = 1 << max(length - 1, 1).bit_length()
            angles = torch.arange(size, device=device, dtype=torch.float32)[:, None] * self.inv_freq.to(device)[None]
            table = (torch.cos(angles).repeat(1, 2), torch.sin(angles).repeat(1, 2))
            self._cos_sin = table
        return table


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


HALF_PRECISION = (torch.float16, torch.bfloat16)


def attention(qkv: Tensor, rotary: Rotary, causal: bool, view: AttentionView | None = None, layer: int = 0) -> Tensor:
    """qkv [B, L, 3, heads, d] -> [B, L, heads * d]: rotary on q and k, then attention over every position, or
    over what `view` allows (block diffusion's mask, cached keys and values; see block_attention.py).

    flash-attn for half precision where kernels apply and every position attends every other, called as MDLM
    calls it: packed qkv with one cumulative-length entry per row (padding tokens are attended to, as in MDLM);
    SDPA otherwise.
    """
    batch, length, _, heads, head_dim = qkv.shape
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    if view is not None:
        return _viewed_attention(q, k, v, rotary, view, layer).transpose(1, 2).reshape(batch, length, heads * head_dim)
    q, k = rotary(q), rotary(k)
    flash = flash_attention_kernel() if kernels_apply(qkv) and qkv.dtype in HALF_PRECISION else None
    if flash is not None:
        packed = torch.stack([q, k, v]).permute(1, 3, 0, 2, 4).reshape(batch * length, 3, heads, head_dim)
        row_starts = torch.arange(0, (batch + 1) * length, length, dtype=torch.int32, device=qkv.device)
        return flash(packed, row_starts, length, causal=causal).reshape(batch, length, heads * head_dim)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return out.transpose(1, 2).reshape(batch, length, heads * head_dim)


def _viewed_attention(q: Tensor, k: Tensor, v: Tensor, rotary: Rotary, view: AttentionView, layer: int) -> Tensor:
    """SDPA over the cached keys and values and this pass's, under the view's mask; this pass's keys and values
    join the cache when the view says so. Cached keys are rotated at their positions in the window, which a
    window sliding past the context re-bases (`Rotary.shift`): rotary attention depends on position differences
    alone, so only this pass's queries and keys need rotating."""
    past = None if view.cache is None else view.cache.past(layer)
    cached = 0 if past is None else past[0].shape[2]
    positions = view.positions if view.positions is not None else torch.arange(cached, cached + q.shape[2],
                                                                               device=q.device)
    q, k = rotary(q, positions), rotary(k, positions)
    if view.extend:
        view.cache.append(layer, k, v)
    keys, values = (k, v) if past is None else (torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2))
    flex = flex_attention_kernel() if view.block_size is not None and kernels_apply(q) else None
    if flex is not None:  # the block-sparse mask on CUDA: blocks the mask rules out are skipped, not computed
        return flex(q, keys, values, block_mask=flex_block_mask(q.shape[2] // 2, view.block_size, str(q.device)))
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=view.mask)


class TokenEmbedding(nn.Module):
    """A bare [V, H] table (MDLM stores it as `vocab_embed.embedding`, not an nn.Embedding)."""

    def __init__(self, vocab_size: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab_size, hidden_size))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.embedding[tokens]


class DiTBlock(nn.Module):
    """Pre-norm attention and MLP, each modulated (shift, scale) and gated by the conditioning vector."""

    def __init__(self, hidden_size: int, n_heads: int, cond_dim: int, dropout: float, causal: bool) -> None:
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"hidden_size {hidden_size} must be divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.causal = causal
        self.norm1 = LayerNorm(hidden_size)
        self.attn_qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.attn_out = nn.Linear(hidden_size, hidden_size, bias=False)
        self.norm2 = LayerNorm(hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, 4 * hidden_size), nn.GELU(approximate="tanh"), nn.Linear(4 * hidden_size, hidden_size)
        )
        self.dropout = nn.Dropout(dropout)
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * hidden_size)
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def forward(self, x: Tensor, cond: Tensor, rotary: Rotary, view: AttentionView | None = None, layer: int = 0) -> Tensor:
        batch, length, hidden = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(cond)[:, None].chunk(6, dim=2)
        qkv = self.attn_qkv(modulate(self.norm1(x), shift_msa, scale_msa))
        out = attention(qkv.view(batch, length, 3, self.n_heads, hidden // self.n_heads), rotary, self.causal, view,
                        layer)
        x = x + gate_msa * self.dropout(self.attn_out(out))
        return x + gate_mlp * self.dropout(self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp)))


class FinalLayer(nn.Module):
    """Modulated norm then a zero-initialised projection to the vocabulary, so training starts uniform."""

    def __init__(self, hidden_size: int, vocab_size: int, cond_dim: int) -> None:
        super().__init__()
        self.norm_final = LayerNorm(hidden_size)
        self.linear = nn.Linear(hidden_size, vocab_size)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * hidden_size)
        for layer in (self.linear, self.adaLN_modulation):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, cond: Tensor, rows: Tensor | None = None) -> Tensor:
        """x [B, L, H] with cond [B, C]; or x [N, H], positions gathered from batch rows `rows` [N]."""
        shift, scale = self.adaLN_modulation(cond).chunk(2, dim=-1)
        shift, scale = (shift[:, None], scale[:, None]) if rows is None else (shift[rows], scale[rows])
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiT(nn.Module):
    """tokens [B, L] and noise level [B] (or None) -> logits [B, L, V].

    MDLM conditions on the total noise sigma(t); with `time_conditioning` off
    (MDLM's default, and the published OWT model) the level is fixed at 0, which
    is what lets the cached sampler reuse outputs. `causal=True` turns the same
    network into the autoregressive baseline.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 768,
        cond_dim: int = 128,
        n_blocks: int = 12,
        n_heads: int = 12,
        dropout: float = 0.1,
        causal: bool = False,
        time_conditioning: bool = False,
    ) -> None:
        super().__init__()
        self.time_conditioning = time_conditioning
        self.vocab_embed = TokenEmbedding(vocab_size, hidden_size)
        self.sigma_map = TimestepEmbedding(cond_dim)
        self.rotary_emb = Rotary(hidden_size // n_heads)
        self.blocks = nn.ModuleList(DiTBlock(hidden_size, n_heads, cond_dim, dropout, causal) for _ in range(n_blocks))
        self.output_layer = FinalLayer(hidden_size, vocab_size, cond_dim)

    @property
    def reads_time(self) -> bool:
        """Whether the noise level reaches the network (time_conditioning)."""
        return self.time_conditioning

    def features(self, tokens: Tensor, t: Tensor | None = None, view: AttentionView | None = None) -> tuple[Tensor, Tensor]:
        """Final hidden states [B, L, H] and the conditioning vector [B, C]; `view`: what attention sees besides
        the tokens themselves (block_attention.py)."""
        cond = self.sigma_map.condition(t if self.time_conditioning else None, tokens)
        x = self.vocab_embed(tokens)
        for layer, block in enumerate(self.blocks):
            x = block(x, cond, self.rotary_emb, view, layer)
        return x, cond

    def forward(self, tokens: Tensor, t: Tensor | None = None) -> Tensor:
        return self.output_layer(*self.features(tokens, t))

    def logits_at(self, tokens: Tensor, t: Tensor | None, positions: tuple[Tensor, Tensor],
                  view: AttentionView | None = None) -> Tensor:
        """Logits [N, V] at N (row, column) positions only: the output layer, the largest matmul with a big
        vocabulary, runs where a loss or a sampler reads it."""
        x, cond = self.features(tokens, t, view)
        return self.output_layer(x[positions], cond, rows=positions[0])

    def block_features(self, noisy: Tensor, clean: Tensor, block_size: int) -> tuple[Tensor, Tensor]:
        """Block diffusion's one-pass training input [x_t, x_0] under its mask: the noisy half's hidden states
        [B, L, H] and the conditioning vector (time conditioning is per sequence, so block diffusion runs without
        it, as BD3-LM does)."""
        if self.time_conditioning:
            raise ValueError("block diffusion gives every block its own time; this DiT conditions on one time per "
                             "sequence (time_conditioning: true); build it with time_conditioning: false")
        length = noisy.shape[1]
        view = AttentionView(block_diffusion_positions(length, noisy.device),
                             block_diffusion_mask(length, block_size, noisy.device), block_size=block_size)
        x, cond = self.features(torch.cat([noisy, clean], dim=1), None, view)
        return x[:, :length], cond

    def cached_logits(self, block: Tensor, cache: KeyValueCache, positions: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Logits of a noisy block [B, L'] that attends itself and the clean tokens whose keys and values `cache`
        holds: [B, L', V], or [N, V] at N positions of the block. What block diffusion's one-pass input gives the
        block, without the clean half (see block_attention.py)."""
        x, cond = self.features(block, None, AttentionView(cache=cache))
        if positions is None:
            return self.output_layer(x, cond)
        return self.output_layer(x[positions], cond, rows=positions[0])

    def forget(self, cache: KeyValueCache, keep: int) -> None:
        """Keep the last `keep` cached tokens only, re-based to positions 0..keep-1 (a window sliding past the
        context)."""
        dropped = cache.length - keep
        if dropped > 0:
            cache.keep_last(keep)
            cache.keys = [self.rotary_emb.shift(keys, -dropped) for keys in cache.keys]

    def prefix_logits(self, prefix: Tensor, block: Tensor, block_size: int) -> Tensor:
        """The logits `cached_logits` gives, computed from the clean prefix itself (blocks aligned at its start),
        as block diffusion samples without a cache: [B, L', V]."""
        sequence = torch.cat([prefix, block], dim=1)
        view = AttentionView(mask=block_causal_mask(sequence.shape[1], block_size, sequence.device))
        x, cond = self.features(sequence, None, view)
        return self.output_layer(x[:, prefix.shape[1] :], cond)

    def extend_cache(self, block: Tensor, cache: KeyValueCache) -> None:
        """Add a finished (clean) block's keys and values to `cache`: one pass, as the clean half computes them."""
        self.features(block, None, AttentionView(cache=cache, extend=True))

    def block_logits(self, noisy: Tensor, clean: Tensor, block_size: int,
                     positions: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Logits of the noisy half of [x_t, x_0]: [B, L, V], or [N, V] at N positions of it."""
        x, cond = self.block_features(noisy, clean, block_size)
        if positions is None:
            return self.output_layer(x, cond)
        return self.output_layer(x[positions], cond, rows=positions[0])

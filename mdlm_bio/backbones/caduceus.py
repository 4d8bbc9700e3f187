"""Caduceus: BiMamba stacks for DNA, optionally reverse-complement equivariant (Schiff et al. 2024).

Caduceus-PS shares parameters between strands: the hidden state is 2D wide, the
second half holds the reverse-complement strand with its channels reversed, and
every layer applies the same module to both halves. Then
logits(RC(z)) = RC(logits(z)) holds exactly, for any input, masks included.
Caduceus-Ph is the plain (D wide) model; it gains RC invariance post hoc by
averaging over both strands (`PostHocConjoined`).

The layer arithmetic (including the per-layer half swap of the fused residual
path) follows the published implementation, so its checkpoints load unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from . import block_mamba
from .block_mamba import CarriedState
from .dit import TimestepEmbedding
from .mamba import BiMamba, Mamba, RMSNorm, add_to_residual


def check_complement_map(complement_map: Sequence[int], vocab_size: int) -> None:
    """A complement map must be an involution on [0, V): complementing twice gives the token back."""
    if len(complement_map) != vocab_size:
        raise ValueError(f"complement_map has {len(complement_map)} entries but vocab_size is {vocab_size}")
    if sorted(complement_map) != list(range(vocab_size)) or any(
        complement_map[complement_map[i]] != i for i in range(vocab_size)
    ):
        raise ValueError("complement_map must be an involution on [0, vocab_size), e.g. A<->T, C<->G, specials fixed")


def reverse_complement_tokens(tokens: Tensor, complement_map: Tensor) -> Tensor:
    """[B, L] token ids (or [B, L, V] weight rows over the vocabulary) -> the reverse complement strand."""
    if tokens.is_floating_point():
        return tokens[..., complement_map].flip(1)
    return complement_map[tokens].flip(-1)


def reverse_complement_logits(logits: Tensor, complement_map: Tensor) -> Tensor:
    """[B, L, V] per-position scores -> the same scores in reverse-complement coordinates."""
    return logits.flip(1)[..., complement_map]


def flip_strand(hidden: Tensor) -> Tensor:
    """Reverse both length and channels: how an RCPS half maps to the other strand."""
    return hidden.flip(1, 2)


class Caduceus(nn.Module):
    """tokens [B, L] -> logits [B, L, V]; `t` is accepted and ignored (MDLM trains DNA without it).

    `bidirectional=False` (with `rcps=False`) gives a causal Mamba LM whose
    logits at position l predict token l + 1: the autoregressive DNA baseline.

    `num_classes > 0` makes it class-conditional: a learned label vector is added to every position's input
    embedding. Label `num_classes` is the null label of the unconditional branch (classifier-free guidance);
    `labels=None` means null.

    `time_conditioning=True` reads the noise level `t` (MDLM's sigma), which a uniform-noise model needs (its
    inputs do not show which positions are noise): an embedding of it modulates every layer's normed input
    (shift, scale) and gates its output, and modulates the final norm, adaLN as in the DiT and as DiMamba does
    for UDLM, zero-initialised. Each strand of Caduceus-PS is modulated in its own frame, so equivariance holds.
    """

    def __init__(
        self,
        vocab_size: int,
        complement_map: Sequence[int] | None = None,
        d_model: int = 256,
        n_layer: int = 16,
        rcps: bool = True,
        bidirectional: bool = True,
        bidirectional_weight_tie: bool = True,
        norm_eps: float = 1e-5,
        num_classes: int = 0,
        time_conditioning: bool = False,
        cond_dim: int = 128,
        **mamba_kwargs,
    ) -> None:
        super().__init__()
        if complement_map is not None:
            check_complement_map(complement_map, vocab_size)
        elif rcps:
            raise ValueError("rcps (Caduceus-PS) needs a complement_map: the token permutation of the other strand")
        if rcps and not bidirectional:
            raise ValueError("rcps needs bidirectional=True: the reverse strand of a causal model would see the future")
        self.rcps = rcps
        self.d_model = d_model
        # The vocabulary's complement, supplied by the DNA track (which owns the table); a buffer, so checkpoints
        # carry it. Without it a model cannot be run on the other strand (rcps, conjoining).
        self.complement_map: Tensor | None
        self.register_buffer(
            "complement_map", None if complement_map is None else torch.tensor(complement_map, dtype=torch.long))
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.num_classes = num_classes
        self.class_embedding = nn.Embedding(num_classes + 1, d_model) if num_classes > 0 else None
        conditioned = cond_dim if time_conditioning else 0
        self.sigma_map = TimestepEmbedding(cond_dim) if time_conditioning else None
        self.layers = nn.ModuleList(
            CaduceusLayer(d_model, bidirectional, bidirectional_weight_tie, norm_eps, conditioned, **mamba_kwargs)
            for _ in range(n_layer)
        )
        self.norm_f = RMSNorm(d_model, norm_eps)
        self.final_modulation = zero_linear(cond_dim, 2 * d_model) if time_conditioning else None
        self._init_weights(n_layer)

    def _init_weights(self, n_layer: int) -> None:
        """Caduceus's init: small embeddings, zero linear biases, out_proj shrunk by sqrt(depth)."""
        nn.init.normal_(self.embedding.weight, std=0.02)
        if self.class_embedding is not None:
            nn.init.normal_(self.class_embedding.weight, std=0.02)
        for mamba in self.layers.modules():
            if isinstance(mamba, Mamba):
                nn.init.kaiming_uniform_(mamba.out_proj.weight, a=math.sqrt(5))
                with torch.no_grad():
                    mamba.out_proj.weight /= math.sqrt(n_layer)

    @property
    def width(self) -> int:
        """Channels of the hidden state: 2D for RCPS (both strands), D otherwise."""
        return 2 * self.d_model if self.rcps else self.d_model

    def _strandwise(self, module: Callable[..., Tensor], hidden: Tensor, cond: Tensor | None = None) -> Tensor:
        """Apply one module (of the hidden states and the time embedding, if any) to both RCPS halves, the second
        in its own strand's frame, in one batched call."""
        extra = () if cond is None else (cond,)
        if not self.rcps:
            return module(hidden, *extra)
        forward, reverse = hidden.split(self.d_model, dim=-1)
        out = module(torch.cat([forward, flip_strand(reverse)], dim=0), *(c.repeat(2, 1) for c in extra))
        out_forward, out_reverse = out.chunk(2, dim=0)
        return torch.cat([out_forward, flip_strand(out_reverse)], dim=-1)

    def _label_vectors(self, tokens: Tensor, labels: Tensor | None) -> Tensor | None:
        """[B, 1, D] label embeddings (null label when `labels` is None), or None for an unconditional model."""
        if self.class_embedding is None:
            if labels is not None:
                raise ValueError("labels given to a Caduceus built without num_classes")
            return None
        if labels is None:
            labels = torch.full(tokens.shape[:1], self.num_classes, dtype=torch.long, device=tokens.device)
        if labels.shape != tokens.shape[:1]:
            raise ValueError(f"labels must have shape [{tokens.shape[0]}], got {tuple(labels.shape)}")
        return self.class_embedding(labels)[:, None, :]

    def embed(self, tokens: Tensor, labels: Tensor | None = None) -> Tensor:
        """The first layer's input [B, L, width]: token embeddings (for RCPS, both strands), plus the label's.
        `tokens` are ids [B, L] or rows of weights over the vocabulary [B, L, V]: one-hot rows give the ids'
        embeddings, differentiably in the rows (what first-order classifier guidance takes gradients through)."""
        hidden = self._token_vectors(tokens)
        label = self._label_vectors(tokens, labels)
        if label is not None:
            hidden = hidden + label
        if not self.rcps:
            return hidden
        reverse = self._token_vectors(tokens, complemented=True)
        if label is not None:  # the label is strand-free: the RC strand gets the same vector
            reverse = reverse + label
        return torch.cat([hidden, reverse.flip(-1)], dim=-1)

    def _token_vectors(self, tokens: Tensor, complemented: bool = False) -> Tensor:
        """Embeddings of ids [B, L] or of weight rows [B, L, V], each token complemented if asked (a row's
        complement permutes its columns by the complement map, an involution)."""
        if not tokens.is_floating_point():
            return self.embedding(self.complement_map[tokens] if complemented else tokens)
        rows = tokens[..., self.complement_map] if complemented else tokens
        return rows.to(self.embedding.weight.dtype) @ self.embedding.weight

    def _swap_halves(self, hidden: Tensor) -> Tensor:
        forward, reverse = hidden.split(self.d_model, dim=-1)
        return torch.cat([reverse, forward], dim=-1)

    @property
    def reads_time(self) -> bool:
        """Whether the noise level reaches the network (time_conditioning)."""
        return self.sigma_map is not None

    def time_embedding(self, tokens: Tensor, t: Tensor | None) -> Tensor | None:
        """The conditioning vector [B, cond_dim] of the noise level t [B] (None: level 0), or None for a model
        without time conditioning (which ignores t)."""
        return None if self.sigma_map is None else self.sigma_map.condition(t, tokens)

    def hidden_states(self, tokens: Tensor, labels: Tensor | None = None, t: Tensor | None = None) -> Tensor:
        """Final normed hidden states [B, L, width]."""
        cond = self.time_embedding(tokens, t)
        hidden, residual = self.embed(tokens, labels), None
        for layer in self.layers:
            residual = add_to_residual(residual, hidden)
            if self.rcps:
                residual = self._swap_halves(residual)
            hidden = self._strandwise(layer, residual, cond)
        return self._strandwise(self.final_norm, residual + hidden, cond)

    def final_norm(self, residual: Tensor, cond: Tensor | None = None) -> Tensor:
        """norm_f, modulated by the time embedding where there is one."""
        normed = self.norm_f(residual)
        if cond is None:
            return normed
        shift, scale = self.final_modulation(cond)[:, None].chunk(2, dim=-1)
        return normed * (1 + scale) + shift

    def features(self, tokens: Tensor, t: Tensor | None = None, labels: Tensor | None = None) -> Tensor:
        """Per-position features [B, L, D] for downstream heads; for RCPS the two strands are averaged,
        so features(RC(z)) = features(z) reversed along length, and mean pooling is RC invariant."""
        hidden = self.hidden_states(tokens, labels, t)
        if not self.rcps:
            return hidden
        forward, reverse = hidden.split(self.d_model, dim=-1)
        return (forward + reverse.flip(-1)) / 2

    def forward(self, tokens: Tensor, t: Tensor | None = None, labels: Tensor | None = None) -> Tensor:
        return self.head(self.hidden_states(tokens, labels, t))

    def logits_at(self, tokens: Tensor, t: Tensor | None, positions: tuple[Tensor, Tensor],
                  labels: Tensor | None = None) -> Tensor:
        """Logits [N, V] at N (row, column) positions only. The head reads each position's own hidden state
        (for RCPS, its two strands' channels), so gathering first changes nothing, equivariance included."""
        return self.head(self.hidden_states(tokens, labels, t)[positions])

    # ------------------------------------------------------------------ block diffusion (block_mamba.py)

    carries_state = True  # block sampling keeps a fixed-size state per layer, not the finished blocks

    def check_block_diffusion(self) -> None:
        block_mamba.check_block_diffusion(self)

    def block_logits(self, noisy: Tensor, clean: Tensor, block_size: int,
                     positions: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Block diffusion's one-pass training input: logits of every noisy block [B, L, V] (or [N, V] at N
        positions), each block read from the clean blocks before it and within itself."""
        self.check_block_diffusion()
        hidden = block_mamba.noisy_hidden(self, noisy, clean, block_size)
        return self.head(hidden if positions is None else hidden[positions])

    def cached_logits(self, block: Tensor, state: CarriedState | None,
                      positions: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Logits of a noisy block [B, L', V] (or [N, V] at N positions) after the clean blocks `state` carries
        (None: none yet): what the DiT's cached_logits gives from its key/value cache, in a fixed size."""
        hidden = block_mamba.block_hidden(self, block, state, keep_state=False)[0]
        return self.head(hidden if positions is None else hidden[positions])

    def advance(self, block: Tensor, state: CarriedState | None) -> CarriedState:
        """The carried state after one more finished (clean) block [B, L']: one pass over the block."""
        return block_mamba.block_hidden(self, block, state, keep_state=True)[1]

    def prefix_logits(self, prefix: Tensor, block: Tensor, block_size: int) -> Tensor:
        """The logits `cached_logits` gives, with the state computed from the clean prefix itself in one pass (as
        training reads the clean sequence): what the carried state is checked against."""
        return self.cached_logits(block, block_mamba.prefix_state(self, prefix, block_size))

    def head(self, hidden: Tensor) -> Tensor:
        """Hidden states [..., width] -> logits [..., V] through the tied embedding (for RCPS the reverse
        strand's channels through the complemented one)."""
        weight = self.embedding.weight
        if not self.rcps:
            return hidden @ weight.T
        forward, reverse = hidden.split(self.d_model, dim=-1)
        return forward @ weight.T + reverse.flip(-1) @ weight[self.complement_map].T


class CaduceusLayer(nn.Module):
    """norm then (Bi)Mamba, applied to one strand's residual stream."""

    def __init__(self, d_model: int, bidirectional: bool, weight_tie: bool, norm_eps: float, cond_dim: int = 0,
                 **mamba_kwargs) -> None:
        super().__init__()
        self.mixer = BiMamba(d_model, weight_tie, **mamba_kwargs) if bidirectional else Mamba(d_model, **mamba_kwargs)
        self.norm = RMSNorm(d_model, norm_eps)
        self.adaLN_modulation = zero_linear(cond_dim, 3 * d_model) if cond_dim else None

    def forward(self, residual: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            return self.mixer(self.norm(residual))
        shift, scale, gate = self.adaLN_modulation(cond)[:, None].chunk(3, dim=-1)
        return gate * self.mixer(self.norm(residual) * (1 + scale) + shift)


def zero_linear(inputs: int, outputs: int) -> nn.Linear:
    """A linear map that starts at zero: a modulation that starts as none (and a gate that starts closed)."""
    layer = nn.Linear(inputs, outputs)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class PostHocConjoined(nn.Module):
    """Caduceus-Ph inference: average a model over a sequence and its reverse complement.

    Logits from the RC strand are mapped back to forward coordinates before
    averaging, so the result is exactly RC-equivariant whatever the model.
    """

    def __init__(self, model: Caduceus) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, t: Tensor | None = None, labels: Tensor | None = None) -> Tensor:
        cmap = self.model.complement_map
        if cmap is None:
            raise ValueError("conjoining both strands needs the model's complement_map")
        logits_rc = self.model(reverse_complement_tokens(tokens, cmap), t, labels)
        return (self.model(tokens, t, labels) + reverse_complement_logits(logits_rc, cmap)) / 2

    def features(self, tokens: Tensor, t: Tensor | None = None) -> Tensor:
        return conjoined_features(self.model, tokens, t)


def conjoined_features(model: Caduceus, tokens: Tensor, t: Tensor | None = None) -> Tensor:
    """Per-position features averaged over a sequence and its reverse complement (aligned to forward positions)."""
    if model.complement_map is None:
        raise ValueError("conjoining both strands needs the model's complement_map")
    features_rc = model.features(reverse_complement_tokens(tokens, model.complement_map), t)
    return (model.features(tokens, t) + features_rc.flip(1)) / 2


def strand_features(model: Caduceus, tokens: Tensor, conjoin: bool) -> Tensor:
    """Per-position embeddings [B, L, D] of the forward strand, or (`conjoin`) averaged with the reverse-complement
    strand's, aligned to forward positions. Caduceus-PS holds both strands in its hidden state (the second half is
    the other strand's view, channels flipped), so it needs no second pass; other models run the other strand."""
    if model.rcps:
        return model.features(tokens) if conjoin else model.hidden_states(tokens)[..., : model.d_model]
    return conjoined_features(model, tokens) if conjoin else model.features(tokens)

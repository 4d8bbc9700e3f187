"""Block diffusion on Mamba (issue 30): causal across blocks through the scan's state, bidirectional within a block.

A BiMamba layer reads a block in two directions: forward from the state the clean blocks before it left (the
convolution's last inputs and the scan's state: everything left of the block, in a fixed size) and backward
within the block only. Clean blocks pass through the same layers the same way, which is what the block-causal
attention mask of BD3-LM gives a transformer. Training runs the clean sequence in one pass per layer, its forward
scan over the whole sequence giving the state at every block boundary (any scan path, mamba-ssm's kernel
included), and every noisy block at once from those states, as [B * J, L'] rows. Sampling carries one state per
layer: a finished block advances it by one pass over the block, and nothing else of the past is kept.

One block of the whole length is the bidirectional Caduceus itself; blocks of one position make an autoregressive
model. A left-to-right order has a direction, so the reverse-complement parameter sharing of Caduceus-PS cannot
hold: block diffusion runs on Caduceus without it, and strand symmetry is had post hoc by scoring both strands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from .mamba import BiMamba, Mamba, MixerState, add_to_residual


class LayerStack(Protocol):
    """What block diffusion reads of a Caduceus: its embedding, its (norm, mixer) layers and final norm, and the
    settings it refuses."""

    rcps: bool
    class_embedding: nn.Module | None
    sigma_map: nn.Module | None
    layers: Sequence[nn.Module]
    norm_f: Callable[[Tensor], Tensor]

    def embed(self, tokens: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class CarriedState:
    """Per layer, the forward mixer's state after the clean blocks read so far: all that sampling keeps."""

    layers: tuple[MixerState, ...]

    def rows(self, rows: Tensor | slice) -> CarriedState:
        return CarriedState(tuple(state.rows(rows) for state in self.layers))


def blocks_of(x: Tensor, block: int) -> tuple[Tensor, Tensor | None]:
    """[B, L, ...] -> its whole blocks as rows [B * J, L', ...] and what follows them [B, L mod L', ...] (or None)."""
    whole = x.shape[1] // block * block
    return x[:, :whole].reshape(-1, block, *x.shape[2:]), (x[:, whole:] if whole < x.shape[1] else None)


def joined(blocks: Tensor, rest: Tensor | None, batch: int) -> Tensor:
    """The inverse of `blocks_of`."""
    x = blocks.reshape(batch, -1, *blocks.shape[2:])
    return x if rest is None else torch.cat([x, rest], dim=1)


def projected(mixer: BiMamba, forward: Tensor, backward: Tensor) -> Tensor:
    """Both directions' mixed outputs [..., E] through out_proj (one call when the directions share it)."""
    if mixer.weight_tie:
        return mixer.mamba_fwd.out_proj(forward + backward)
    return mixer.mamba_fwd.out_proj(forward) + mixer.mamba_rev.out_proj(backward)


def backward_within(mamba: Mamba, xz: Tensor) -> Tensor:
    """`mamba.mix(xz, reverse=True)` on rows of one short block each, through the short-piece convolution."""
    return mamba.mix_from_state(xz.flip(1), None, keep_state=False)[0].flip(1)


def within_blocks(mixer: BiMamba, hidden: Tensor, before: MixerState | None,
                  keep_state: bool) -> tuple[Tensor, MixerState | None]:
    """Rows of one block each [B', L', D]: forward from `before` (None: a sequence start), backward within the row;
    with `keep_state`, also the forward state after the row."""
    xz = mixer.mamba_fwd.in_proj(hidden)
    forward, after = mixer.mamba_fwd.mix_from_state(xz, before, keep_state)
    reverse_xz = xz if mixer.weight_tie else mixer.mamba_rev.in_proj(hidden)
    return projected(mixer, forward, backward_within(mixer.mamba_rev, reverse_xz)), after


def across_blocks(mixer: BiMamba, hidden: Tensor, block: int) -> tuple[Tensor, MixerState]:
    """A clean sequence [B, L, D]: forward over all of it, backward within each block; also the forward state after
    each whole block ([B, J, ...])."""
    xz = mixer.mamba_fwd.in_proj(hidden)
    forward, after = mixer.mamba_fwd.mix_with_boundaries(xz, block)
    blocks, rest = blocks_of(xz if mixer.weight_tie else mixer.mamba_rev.in_proj(hidden), block)
    reverse = backward_within(mixer.mamba_rev, blocks) if blocks.shape[0] else blocks[..., : forward.shape[-1]]
    rest = None if rest is None else backward_within(mixer.mamba_rev, rest)
    return projected(mixer, forward, joined(reverse, rest, hidden.shape[0])), after


def states_before_blocks(after: MixerState) -> MixerState:
    """The states after each whole block [B, J, ...] -> the state each block starts from, as rows [B * J, ...]: the
    first block starts from zero (a sequence start, as the causal padding is)."""
    def shifted(states: Tensor) -> Tensor:
        return torch.cat([torch.zeros_like(states[:, :1]), states[:, :-1]], dim=1).flatten(0, 1)

    return MixerState(shifted(after.conv), shifted(after.scan))


def last_state(after: MixerState) -> MixerState | None:
    """The state after the last whole block (None if there is none)."""
    return after.rows((slice(None), -1)) if after.scan.shape[1] else None


def check_block_diffusion(model: LayerStack) -> None:
    """Refuse the Caduceus variants block diffusion cannot run on, with the reason."""
    if model.rcps:
        raise ValueError("block diffusion reads blocks left to right, which has a direction, so Caduceus-PS's "
                         "reverse-complement parameter sharing cannot hold; build the Caduceus with rcps: false "
                         "(strand symmetry post hoc: mdlm-bio score --both-strands)")
    if not all(isinstance(layer.mixer, BiMamba) for layer in model.layers):
        raise ValueError("block diffusion on Caduceus needs bidirectional: true (each block is read both ways)")
    if model.class_embedding is not None:
        raise ValueError("block diffusion does not take class labels; build the Caduceus with num_classes: 0")
    if model.sigma_map is not None:
        raise ValueError("block diffusion gives every block its own time; build the Caduceus with "
                         "time_conditioning: false, as BD3-LM trains without it")


def noisy_hidden(model: LayerStack, noisy: Tensor, clean: Tensor, block: int) -> Tensor:
    """Final normed hidden states [B, L, D] of every noisy block, each read from the clean blocks before it: the
    clean and the noisy streams go through the layers together, the clean one giving the block-start states."""
    batch = noisy.shape[0]
    hidden_clean, hidden_noisy = model.embed(clean), model.embed(noisy)
    residual_clean = residual_noisy = None
    for layer in model.layers:
        residual_clean = add_to_residual(residual_clean, hidden_clean)
        residual_noisy = add_to_residual(residual_noisy, hidden_noisy)
        hidden_clean, after = across_blocks(layer.mixer, layer.norm(residual_clean), block)
        blocks, rest = blocks_of(layer.norm(residual_noisy), block)
        if blocks.shape[0]:
            blocks = within_blocks(layer.mixer, blocks, states_before_blocks(after), keep_state=False)[0]
        if rest is not None:
            rest = within_blocks(layer.mixer, rest, last_state(after), keep_state=False)[0]
        hidden_noisy = joined(blocks, rest, batch)
    return model.norm_f(residual_noisy + hidden_noisy)


def block_hidden(model: LayerStack, tokens: Tensor, state: CarriedState | None,
                 keep_state: bool) -> tuple[Tensor, CarriedState | None]:
    """One block [B, L'] read from a carried state (None: at the sequence start): its final normed hidden states
    and, with `keep_state`, the state after it."""
    hidden, residual, after = model.embed(tokens), None, []
    for index, layer in enumerate(model.layers):
        residual = add_to_residual(residual, hidden)
        hidden, state_after = within_blocks(layer.mixer, layer.norm(residual),
                                            None if state is None else state.layers[index], keep_state)
        after.append(state_after)
    return model.norm_f(residual + hidden), CarriedState(tuple(after)) if keep_state else None


def prefix_state(model: LayerStack, prefix: Tensor, block: int) -> CarriedState | None:
    """The carried state after a clean prefix of whole blocks, from one pass over it (as training reads the clean
    sequence): the reference the carried state is checked against."""
    if prefix.shape[1] % block:
        raise ValueError(f"a prefix of {prefix.shape[1]} tokens is not made of whole blocks of {block}")
    if not prefix.shape[1]:
        return None
    hidden, residual, after = model.embed(prefix), None, []
    for layer in model.layers:
        residual = add_to_residual(residual, hidden)
        hidden, states = across_blocks(layer.mixer, layer.norm(residual), block)
        after.append(last_state(states))
    return CarriedState(tuple(after))

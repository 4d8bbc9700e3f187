"""A block diffusion model (BD3-LM) behind the model handle: blocks left to right, any sampler inside a block,
samples of variable length, NELBO scores.

What the network keeps of the finished blocks depends on its backbone. A transformer keeps their keys and values
(a cache that grows with the context; past it, the window slides by whole blocks, as BD3-LM's does). Mamba keeps
one fixed-size state per layer (block_mamba.py), so DNA of any length costs the same memory per block. Both are
exact: a finished block passes through the network once more, as the clean half of the training input does
(tests/test_block_sampling.py and tests/test_block_mamba.py check them against recomputing the prefix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..backbones.block_attention import KeyValueCache
from ..diffusion.block_generation import BlockContext, generate_blocks
from ..diffusion.denoiser import Denoiser, PositionalDenoiser, Positions, SampleOutput
from ..diffusion.sampler import Sampler
from ..diffusion.stopping import StopRule
from ..dna.generate import score_sequence
from ..likelihood import Nll
from .handle import Conditioning, Model, ModelMismatchError, WithoutVariantScores
from .network import LanguageModel


class CachedBlocks:
    """The finished blocks as the network's keys and values, read once each."""

    def __init__(self, network: LanguageModel, context: int) -> None:
        self.network, self.cache, self.keep = network, KeyValueCache(), context - network.engine.block_size

    def denoiser(self) -> Denoiser:
        return remembering_denoiser(self.network, self.cache)

    def append(self, block: Tensor) -> None:
        self.network.backbone.extend_cache(block, self.cache)
        self.network.backbone.forget(self.cache, self.keep)


class CarriedStates:
    """The finished blocks as a state-space backbone's state after them, one of fixed size per layer: each block
    is read once, and nothing else of the past is kept."""

    def __init__(self, network: LanguageModel, context: int) -> None:
        self.network, self.state = network, None

    def denoiser(self) -> Denoiser:
        return remembering_denoiser(self.network, self.state)

    def append(self, block: Tensor) -> None:
        self.state = self.network.backbone.advance(block, self.state)


def remembering_denoiser(network: LanguageModel, memory: Any) -> PositionalDenoiser:
    """The next block's denoiser over what the backbone remembers of the blocks before (a key/value cache, a
    carried state, or None at the start); on some rows, over theirs (the cached sampler re-runs only those)."""
    def denoise(z: Tensor, t: Tensor) -> Tensor:
        return network.restrict(network.backbone.cached_logits(z, memory))

    def at(z: Tensor, t: Tensor, positions: Positions) -> Tensor:
        return network.restrict(network.backbone.cached_logits(z, memory, positions))

    return PositionalDenoiser(denoise, at, lambda rows: remembering_denoiser(
        network, None if memory is None else memory.rows(rows)))


class RecomputedBlocks:
    """The finished blocks themselves, read again at every call: what the cache or the state saves, and their
    reference. A transformer reads the last context's worth; a state-space backbone, all of them."""

    def __init__(self, network: LanguageModel, context: int) -> None:
        self.network, self.prefix = network, None
        self.keep = None if carries_state(network) else context - network.engine.block_size

    def denoiser(self) -> Denoiser:
        return prefix_denoiser(self.network, self.prefix)

    def append(self, block: Tensor) -> None:
        self.prefix = block if self.prefix is None else torch.cat([self.prefix, block], dim=1)
        if self.keep is not None:
            self.prefix = self.prefix[:, -self.keep :]


def carries_state(network: LanguageModel) -> bool:
    """Whether the backbone remembers finished blocks as a fixed-size state (Mamba) rather than a cache."""
    return getattr(network.backbone, "carries_state", False)


def prefix_denoiser(network: LanguageModel, prefix: Tensor | None) -> PositionalDenoiser:
    """The next block's denoiser from the clean `prefix` itself."""
    def denoise(z: Tensor, t: Tensor) -> Tensor:
        before = z[:, :0] if prefix is None else prefix
        return network.restrict(network.backbone.prefix_logits(before, z, network.engine.block_size))

    def at(z: Tensor, t: Tensor, positions: Positions) -> Tensor:
        return denoise(z, t)[positions]

    return PositionalDenoiser(denoise, at, lambda rows: prefix_denoiser(network, None if prefix is None else prefix[rows]))


class BlockDiffusionModel(WithoutVariantScores, Model):
    kind: ClassVar[str] = "bd3"
    kind_name: ClassVar[str] = "block diffusion"
    score_name: ClassVar[str] = "nelbo_nats"
    snv_method: ClassVar[str] = "nelbo-difference"
    window_method: ClassVar[str] = "nelbo-difference"
    kv_cache: bool = True  # False: recompute the prefix at every call (for its benchmark and tests)

    @property
    def block_size(self) -> int:
        return self.network.engine.block_size

    @torch.no_grad()
    def sample(self, sampler: Sampler, *, num: int, length: int, seed: int | torch.Generator, batch_size: int,
               prompt: np.ndarray | None = None, start_token: int | None = None,
               condition: Conditioning = Conditioning(), stop: StopRule | None = None,
               progress: Callable[[int], None] | None = None) -> SampleOutput:
        """Blocks left to right from the prompt, or from `start_token` (a text model's blocks begin with it, as
        BD3-LM samples do), up to `length` tokens or where `stop` ends every row."""
        self.require_masked_sampler(sampler)
        if prompt is None and start_token is not None:
            prompt = np.array([start_token])
        reader = RecomputedBlocks if not self.kv_cache else CarriedStates if carries_state(self.network) else CachedBlocks

        def new_context(batch: int) -> BlockContext:
            return reader(self.network, self.context)

        return generate_blocks(new_context, sampler, self.network.engine.schedule, block_size=self.block_size,
                               mask_id=self.mask_id, num=num, length=length, seed=seed, batch_size=batch_size,
                               prompt=None if prompt is None else torch.as_tensor(np.asarray(prompt, dtype=np.int64)),
                               stop=stop, device=self.device, progress=progress)

    def describe_sampling(self, sampler: Sampler) -> str:
        return f"{sampler.describe()} block_size={self.block_size}"

    def infill(self, tokens: np.ndarray, fill: np.ndarray, sampler: Sampler, seed: int) -> SampleOutput:
        raise ModelMismatchError(f"{self.source} holds a block diffusion model; infill needs a masked-diffusion (mdlm) "
                                 f"model: a block is generated from the blocks before it only, so a gap cannot be "
                                 f"filled from both sides")

    def score(self, tokens: np.ndarray, mc: int, seed: int) -> Nll:
        return score_sequence(self.network.block_network, self.network.engine, tokens, self.context, mc, seed,
                              self.device)

    @torch.no_grad()
    def nll(self, tokens: Tensor, attention_mask: Tensor, generator: torch.Generator, draws: int,
            discrete_steps: int | None) -> tuple[float, int]:
        if discrete_steps is not None:
            raise ValueError("--discrete-steps: block diffusion reports its NELBO in continuous time")
        total = 0.0
        for _ in range(draws):
            out = self.network.objective(tokens, attention_mask, generator)
            total += float(out.total) / draws
        return total, int(out.num_tokens)

"""The network of a trained model: a backbone and the objective it was trained with, as a plain nn.Module.

It gives the engine its views of the backbone (the denoiser, the logits at chosen positions, the causal network
of an autoregressive model, class-conditional and guided denoisers) and the loss. Training subclasses it as a
LightningModule (training/module.py); sampling and scoring use it as is, so they never import Lightning. Both read
and write the same state-dict keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..backbones import build_backbone
from ..diffusion.block_diffusion import BlockDiffusion
from ..diffusion.denoiser import Denoiser, PositionalDenoiser, PositionLogits, Positions
from ..diffusion.engine import MaskedDiffusion
from ..diffusion.objectives import LossOutput, autoregressive_loss
from ..diffusion.samplers import classifier_free_guidance
from ..diffusion.uniform import UniformDiffusion
from ..memory import MemoryEstimate, activation_bytes, probe_length, scaled
from .spec import MASKED_LM, ModelSpec

# An inference call on more tokens than this runs in row chunks: activations of a larger call outgrow glibc's mmap
# threshold, and their page faults cost more than the smaller batch does (caduceus-ps, 8 x 1024 bases: 16.7 s in
# one call, 10.5 s in chunks of 4 rows on 2 cores; bench/RESULTS.md).
TOKENS_PER_CALL = 4096


class LanguageModel(nn.Module):
    """Backbone + engine, built from a ModelSpec (what a checkpoint stores)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.mask_id = spec.mask_id
        self.backbone = build_backbone(spec.backbone)
        vocab_size = spec.backbone["vocab_size"]
        self.num_classes = int(spec.backbone.get("num_classes", 0))
        allowed = torch.ones(vocab_size, dtype=torch.bool)
        if spec.output_ids is not None:
            allowed = torch.zeros(vocab_size, dtype=torch.bool)
            allowed[list(spec.output_ids)] = True
        # The ids the model may emit (for DNA the four bases): it is a distribution over these only,
        # so N, [PAD] or the vocabulary padding are never sampled, and positions holding them are
        # context but not targets.
        self.register_buffer("output_allowed", allowed, persistent=False)
        self.is_autoregressive = spec.objective.kind == "ar"
        if self.is_autoregressive and getattr(self.backbone, "reads_attention_mask", False):
            raise ValueError(f"an autoregressive model needs a causal backbone; {spec.backbone['architecture']} is a "
                             f"bidirectional encoder (train it with objective.kind=mdlm)")
        self.output_states = tuple(range(vocab_size)) if spec.output_ids is None else tuple(spec.output_ids)
        self.engine: MaskedDiffusion | BlockDiffusion | UniformDiffusion = spec.objective.engine(
            spec.mask_id, self.output_states)
        if isinstance(self.engine, UniformDiffusion) and not getattr(self.backbone, "reads_time", False):
            raise ValueError(f"uniform-state diffusion (objective.kind=udlm) needs a denoiser that reads the noise "
                             f"level, since its inputs do not show which positions are noise; build the "
                             f"{spec.backbone['architecture']} with time_conditioning: true")
        if isinstance(self.engine, BlockDiffusion):
            if not hasattr(self.backbone, "block_logits"):
                raise ValueError(f"block diffusion needs a backbone that reads [x_t, x_0] block by block (dit, or "
                                 f"caduceus with rcps: false), not {spec.backbone['architecture']}")
            getattr(self.backbone, "check_block_diffusion", lambda: None)()

    def inference_memory(self, batch: int, length: int, outputs: int = 0) -> MemoryEstimate:
        """Network calls at [batch, length] without gradients (sampling, scoring), measured on a probe and
        scaled; the weights; and `outputs` bytes of results kept on the side."""
        tensors = [*self.parameters(), *self.buffers()]
        probe = torch.full((1, probe_length(length)), self.mask_id, device=tensors[0].device)
        times = torch.ones(1, device=probe.device)
        with torch.no_grad():
            probed = activation_bytes(lambda: self.denoiser(probe, times), [*tensors, probe, times])
        weights = sum(tensor.numel() * tensor.element_size() for tensor in tensors)
        tokens = min(batch * length, max(length, TOKENS_PER_CALL))  # what one chunked call holds at once
        return MemoryEstimate({"activations": scaled(probed, probe.numel(), tokens), "weights": weights,
                               "outputs": outputs})

    def restrict(self, logits: Tensor) -> Tensor:
        """-inf for the tokens the model may not emit; a model that may emit all of them (text) is left as is,
        sparing a copy of its largest tensor."""
        if self.spec.output_ids is None:
            return logits
        return logits.masked_fill(~self.output_allowed, float("-inf"))

    def denoiser(self, z_t: Tensor, t: Tensor, labels: Tensor | None = None,
                 attention_mask: Tensor | None = None) -> Tensor:
        """The engine's view of the network; conditioning (when a backbone uses it) is MDLM's sigma(t),
        plus the class labels for a conditional model (None: the unconditional branch), and the data's padding
        mask for a backbone that reads one (a Hugging Face encoder; None: every position is a token)."""
        return self.restrict(self.backbone(z_t, self.engine.noise_level(t), **_extra(labels, attention_mask)))

    def causal_network(self, tokens: Tensor) -> Tensor:
        """An autoregressive model's view of the network: logits at position l score token l + 1."""
        return self.restrict(self.backbone(tokens, None))

    def position_logits(self, labels: Tensor | None = None,
                        attention_mask: Tensor | None = None) -> PositionLogits | None:
        """The network at chosen positions only, for a backbone that can skip its output layer elsewhere (None
        if it cannot): what the loss and the samplers read."""
        if not hasattr(self.backbone, "logits_at"):
            return None
        extra = _extra(labels, attention_mask)

        def logits_at(z_t: Tensor, t: Tensor, positions: Positions) -> Tensor:
            return self.restrict(self.backbone.logits_at(z_t, self.engine.noise_level(t), positions, **extra))

        return logits_at

    def label_index(self, label: int | None) -> int:
        """The embedding row of a class (None: the null label of the unconditional branch)."""
        if not self.num_classes:
            raise ValueError("this model is not class-conditional (trained without labels)")
        if label is not None and not 0 <= label < self.num_classes:
            raise ValueError(f"class index {label} is out of range for {self.num_classes} classes")
        return self.num_classes if label is None else label

    def sampling_denoiser(self, label: int | None = None, weight: float = 1.0) -> Denoiser:
        """The denoiser samplers and scoring call: unconditional, one class (`label`; None with a conditional
        model: its unconditional branch), or classifier-free guidance toward `label` with `weight` (0:
        unconditional, 1: conditional, > 1: sharper). It answers at positions where the backbone can, and runs
        large batches in row chunks (TOKENS_PER_CALL)."""
        if not self.num_classes:
            if label is not None:
                self.label_index(label)  # refuses: not class-conditional
            return self._chunked(None)
        if label is not None and weight not in (0.0, 1.0):
            return self._guided(self.label_index(label), self.label_index(None), weight)
        return self._chunked(self.label_index(label if weight == 1.0 else None))  # a branch of weight 0 never runs

    def _chunked(self, index: int | None) -> Denoiser:
        """The network for class `index` (None: unconditional model), in row chunks."""
        def labels(z_t: Tensor) -> Tensor | None:
            return None if index is None else torch.full(z_t.shape[:1], index, dtype=torch.long, device=z_t.device)

        def denoise(z_t: Tensor, t: Tensor) -> Tensor:
            parts = [self.denoiser(z, times, labels(z)) for z, times, _ in _row_chunks(z_t, t)]
            return parts[0] if len(parts) == 1 else torch.cat(parts)

        if self.position_logits() is None:
            return denoise

        def at(z_t: Tensor, t: Tensor, positions: Positions) -> Tensor:
            chunks = list(_row_chunks(z_t, t))
            if len(chunks) == 1:
                return self.position_logits(labels(z_t))(z_t, t, positions)
            out: Tensor | None = None
            for z, times, rows in chunks:
                inside = (positions[0] >= rows.start) & (positions[0] < rows.stop)
                logits = self.position_logits(labels(z))(z, times, (positions[0][inside] - rows.start,
                                                                    positions[1][inside]))
                out = logits.new_empty((positions[0].numel(), logits.shape[-1])) if out is None else out
                out[inside] = logits
            return out

        return PositionalDenoiser(denoise, at)

    def _guided(self, label: int, null: int, weight: float) -> Denoiser:
        """Both branches as one batch of twice the size: one network call per step instead of two, which is
        what matters when small sampling batches leave the device idle."""
        def labels_for(z_t: Tensor) -> Tensor:
            return torch.tensor([label, null], device=z_t.device).repeat_interleave(z_t.shape[0])

        def denoise(z_t: Tensor, t: Tensor) -> Tensor:
            conditional, unconditional = self.denoiser(z_t.repeat(2, 1), t.repeat(2), labels_for(z_t)).chunk(2)
            return classifier_free_guidance(conditional, unconditional, weight)

        if self.position_logits() is None:
            return denoise

        def at(z_t: Tensor, t: Tensor, positions: Positions) -> Tensor:
            rows, columns = positions
            both = (torch.cat([rows, rows + z_t.shape[0]]), torch.cat([columns, columns]))
            logits = self.position_logits(labels_for(z_t))(z_t.repeat(2, 1), t.repeat(2), both)
            return classifier_free_guidance(*logits.chunk(2), weight)

        return PositionalDenoiser(denoise, at)

    def objective(
        self,
        tokens: Tensor,
        attention_mask: Tensor | None,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        engine: MaskedDiffusion | BlockDiffusion | UniformDiffusion | None = None,
        training_objective: bool = False,
    ) -> LossOutput:
        """The loss over positions whose token the model can emit (for DNA: bases, not N or padding).
        `engine` overrides the training one, e.g. a discrete-T copy for evaluation; `training_objective`: what the
        model trains on where that is not the NELBO (block diffusion's clipped schedule, masked language
        modelling's fixed rate)."""
        padding = attention_mask if getattr(self.backbone, "reads_attention_mask", False) else None
        emittable = self.output_allowed[tokens]
        attention_mask = emittable if attention_mask is None else attention_mask.bool() & emittable
        if isinstance(self.engine, BlockDiffusion):
            return (engine or self.engine).loss(self.block_network, tokens, attention_mask, generator,
                                                self.block_network_at, clipped=training_objective)
        if self.is_autoregressive:
            return autoregressive_loss(self.restrict(self.backbone(tokens, None, **_extra(labels, None))), tokens,
                                       attention_mask)
        denoiser = self.denoiser if labels is None and padding is None else (
            lambda z_t, t: self.denoiser(z_t, t, labels, padding))
        if isinstance(self.engine, UniformDiffusion):
            return (engine or self.engine).loss(denoiser, tokens, attention_mask, generator)
        if training_objective and self.spec.objective.kind == MASKED_LM:
            return (engine or self.engine).masked_lm_loss(denoiser, tokens, self.spec.objective.mask_rate,
                                                          attention_mask, generator, self.position_logits(labels, padding))
        return (engine or self.engine).loss(denoiser, tokens, attention_mask, generator=generator,
                                            logits_at=self.position_logits(labels, padding))

    def block_network(self, noisy: Tensor, clean: Tensor, t: Tensor) -> Tensor:
        """Block diffusion's view of the network: logits of the noisy half of [x_t, x_0] (no time conditioning,
        so `t` is not read)."""
        return self.restrict(self.backbone.block_logits(noisy, clean, self.engine.block_size))

    def block_network_at(self, noisy: Tensor, clean: Tensor, t: Tensor, positions: Positions) -> Tensor:
        return self.restrict(self.backbone.block_logits(noisy, clean, self.engine.block_size, positions))


def _extra(labels: Tensor | None, attention_mask: Tensor | None) -> dict[str, Tensor]:
    """The backbone's keyword inputs beyond (tokens, noise level): only those given, so a backbone that reads
    neither is called as before."""
    given = {"labels": labels, "attention_mask": attention_mask}
    return {key: value for key, value in given.items() if value is not None}


def _row_chunks(z_t: Tensor, t: Tensor):
    """(z, t, rows) for consecutive row ranges of at most TOKENS_PER_CALL tokens (at least one row each)."""
    step = max(1, TOKENS_PER_CALL // max(1, z_t.shape[1]))
    for start in range(0, z_t.shape[0], step):
        rows = range(start, min(start + step, z_t.shape[0]))
        yield z_t[rows.start : rows.stop], t[rows.start : rows.stop], rows

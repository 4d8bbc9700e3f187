"""The training loss computes logits at masked positions only: the same NELBO and gradients as the full-logits
path for every backbone, Caduceus-PS still exactly RC-equivariant, and the oracle's NELBO still the NLL."""

from __future__ import annotations

import math

import pytest
import torch
from presets import dna_module
from toy_distribution import default_toy, exact_schedule

from mdlm_bio.backbones.caduceus import reverse_complement_logits, reverse_complement_tokens
from mdlm_bio.backbones.registry import build_backbone
from mdlm_bio.diffusion import LogLinearSchedule, MaskedDiffusion
from mdlm_bio.training.data import preset_backbone

TOY = default_toy()


def randomised(model: torch.nn.Module) -> torch.nn.Module:
    """Zero-initialised layers (DiT's output layer, adaLN) get weights, so every path carries signal."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.abs().sum():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return model


def both_paths(module, tokens: torch.Tensor, attention: torch.Tensor, labels: torch.Tensor | None = None):
    """(per-sequence NELBO, gradients) from the full-logits path and from the module's training objective."""
    results = []
    for masked_only in (False, True):
        module.zero_grad()
        generator = torch.Generator().manual_seed(3)
        if masked_only:
            out = module.objective(tokens, attention, generator, labels)
        else:
            denoiser = module.denoiser if labels is None else (lambda z, t: module.denoiser(z, t, labels))
            emittable = attention & module.output_allowed[tokens]
            out = module.engine.loss(denoiser, tokens, emittable, generator=generator)
        out.loss.backward()
        results.append((out.per_sequence.detach(), [p.grad.clone() for p in module.parameters() if p.grad is not None]))
    return results


@pytest.mark.parametrize("preset, overrides, classes", [
    ("demo", [], ()),  # caduceus-tiny: Caduceus-PS
    ("demo", ["model.overrides.rcps=false"], ()),
    ("conditional", [], ("a", "b")),
    ("demo", ["model.preset=dit-tiny"], ()),
])
def test_the_nelbo_and_its_gradients_equal_the_full_logits_path(preset, overrides, classes):
    module = randomised(dna_module(preset, overrides, classes)).train()
    assert module.position_logits() is not None  # the objective takes the masked-positions path
    torch.manual_seed(0)
    vocabulary = module.spec.backbone["vocab_size"]
    allowed = module.output_allowed.nonzero()[:, 0]
    tokens = allowed[torch.randint(len(allowed), (3, 48))]
    attention = torch.ones_like(tokens, dtype=torch.bool)
    attention[1, 40:] = False  # padding
    labels = torch.tensor([0, 1, 2]) if classes else None
    (full, full_grads), (sparse, sparse_grads) = both_paths(module.eval(), tokens, attention, labels)
    assert vocabulary > 1 and bool((full > 0).all())
    torch.testing.assert_close(sparse, full, rtol=1e-6, atol=1e-5)
    assert len(sparse_grads) == len(full_grads)
    for a, b in zip(sparse_grads, full_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max()) + 1e-12)


@pytest.mark.parametrize("preset, overrides", [("caduceus-tiny", []), ("caduceus-tiny", ["rcps=false"]),
                                               ("dit-tiny", [])])
def test_logits_at_positions_are_the_full_logits_there(preset, overrides):
    model = randomised(build_backbone(preset_backbone(preset, overrides))).double().eval()
    vocabulary = preset_backbone(preset, overrides)["vocab_size"]
    tokens = torch.randint(vocabulary - 1, (2, 33), generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    positions = (torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 17, 3, 4, 32]))
    torch.testing.assert_close(model.logits_at(tokens, t, positions), model(tokens, t)[positions], rtol=1e-12, atol=1e-12)


def test_caduceus_ps_position_logits_are_exactly_rc_equivariant():
    model = randomised(build_backbone(preset_backbone("caduceus-tiny"))).double().eval()
    complement = model.complement_map
    tokens = torch.randint(7, 12, (2, 40), generator=torch.Generator().manual_seed(2))
    positions = (torch.tensor([0, 1, 1]), torch.tensor([5, 0, 39]))
    mirrored = (positions[0], 39 - positions[1])
    forward = model.logits_at(tokens, None, positions)
    reverse = model.logits_at(reverse_complement_tokens(tokens, complement), None, mirrored)
    # the other strand's logits at the mirrored position are the forward ones with complemented tokens
    torch.testing.assert_close(reverse, forward[:, complement], rtol=1e-10, atol=1e-12)
    full = reverse_complement_logits(model(tokens), complement)  # the same property for the full logits
    torch.testing.assert_close(model(reverse_complement_tokens(tokens, complement)), full, rtol=1e-10, atol=1e-12)
    assert forward.abs().max() > 0


def test_the_oracles_nelbo_through_position_logits_is_still_the_nll():
    x = TOY.sample(40000, seed=3)
    engine = MaskedDiffusion(exact_schedule(), mask_id=TOY.mask_id, sampling_eps=1e-5)
    oracle = TOY.oracle()
    sparse = engine.loss(oracle, x, generator=torch.Generator().manual_seed(4),
                         logits_at=lambda z, t, positions: oracle(z, t)[positions])
    dense = engine.loss(oracle, x, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(sparse.per_sequence, dense.per_sequence, rtol=0, atol=1e-6)
    error = sparse.per_sequence.double() - TOY.nll(x)
    assert abs(float(error.mean())) < 4 * float(error.std() / math.sqrt(len(error)))


def test_position_logits_of_the_wrong_shape_are_rejected():
    engine = MaskedDiffusion(LogLinearSchedule(), mask_id=TOY.mask_id)
    with pytest.raises(ValueError, match=r"logits_at must return \[positions, vocab\] = \[\d+, V\] logits; got \(2, 4\)"):
        engine.loss(TOY.oracle(), TOY.sample(8, seed=0), generator=torch.Generator().manual_seed(0),
                    logits_at=lambda z, t, positions: torch.zeros(2, 4))

"""Backbones: shapes, dtypes, gradients, causality, RC equivariance, presets and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mdlm_bio.backbones import (
    BiMamba,
    Caduceus,
    PostHocConjoined,
    build_backbone,
    count_parameters,
    describe,
    load_preset,
    preset_names,
    reverse_complement_logits,
    reverse_complement_tokens,
)
from mdlm_bio.backbones.mamba import Mamba
from mdlm_bio.cli import main
from mdlm_bio.diffusion import MaskedDiffusion, make_schedule
from mdlm_bio.dna.tokenizer import COMPLEMENT_MAP
from mdlm_bio.training.data import preset_backbone

MASK_ID = 3  # Caduceus's [MASK]
CMAP = torch.tensor(COMPLEMENT_MAP)
TINY = {
    "dit-tiny": ["vocab_size=40"],
    "caduceus-tiny": [],
    "caduceus-ph-tiny": ["rcps=false"],
    "mamba-ar-tiny": [],
}


def tiny(name: str, **extra) -> torch.nn.Module:
    preset = "caduceus-tiny" if name == "caduceus-ph-tiny" else name
    torch.manual_seed(0)
    return build_backbone(preset_backbone(preset, TINY[name] + [f"{k}={v}" for k, v in extra.items()]))


def tokens_for(model: torch.nn.Module, batch: int = 2, length: int = 24, seed: int = 0) -> torch.Tensor:
    vocab = model.output_layer.linear.out_features if hasattr(model, "output_layer") else model.embedding.num_embeddings
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_presets_give_float32_logits_and_gradients_to_every_parameter(name):
    model = tiny(name)
    with torch.no_grad():  # zero-initialised output layers would otherwise block gradients
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tokens = tokens_for(model)
    logits = model(tokens, torch.rand(2))
    assert logits.shape == (*tokens.shape, 40 if name == "dit-tiny" else 16)
    assert logits.dtype == torch.float32
    logits.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad == []


@pytest.mark.parametrize("name", list(TINY))
def test_bf16_autocast_runs_on_cpu_and_stays_close_to_fp32(name):
    model = tiny(name).eval()
    tokens = tokens_for(model)
    with torch.no_grad():
        full = model(tokens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(tokens)
    assert half.dtype == torch.bfloat16
    assert torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), full, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("name", ["dit-small", "caduceus-ps"])
def test_paper_presets_build_with_published_parameter_counts_and_run(name):
    model = build_backbone(preset_backbone(name)).eval()
    assert count_parameters(model) == {"dit-small": 169_627_218, "caduceus-ps": 7_725_312}[name]
    tokens = tokens_for(model, batch=1, length=16)
    with torch.no_grad():
        assert model(tokens).shape == (1, 16, 50258 if name == "dit-small" else 16)


@pytest.mark.parametrize(
    "name,causal", [("dit-tiny", False), ("dit-tiny-causal", True), ("mamba-ar-tiny", True), ("caduceus-tiny", False)]
)
def test_only_causal_models_ignore_the_future(name, causal):
    model = tiny("dit-tiny", causal=True) if name == "dit-tiny-causal" else tiny(name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        tokens = tokens_for(model, length=20)
        changed = tokens.clone()
        changed[:, 12] = (changed[:, 12] + 1) % 16
        difference = (model(tokens) - model(changed)).abs().amax(dim=(0, 2))
    assert (difference[:12].max() == 0) == causal
    assert difference[12:].max() > 0


def test_dit_time_conditioning_is_used_only_when_enabled():
    for enabled in (False, True):
        model = tiny("dit-tiny", time_conditioning=enabled)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
            tokens = tokens_for(model)
            moved = (model(tokens, torch.zeros(2)) - model(tokens, torch.full((2,), 2.0))).abs().max()
        assert (moved > 0) == enabled


def test_caduceus_ps_is_rc_equivariant_including_mask_tokens():
    model = tiny("caduceus-tiny").double().eval()
    tokens = torch.randint(7, 12, (3, 41), generator=torch.Generator().manual_seed(4))
    tokens[:, ::3] = MASK_ID
    with torch.no_grad():
        logits = model(tokens)
        rc_logits = model(reverse_complement_tokens(tokens, CMAP))
        torch.testing.assert_close(rc_logits, reverse_complement_logits(logits, CMAP), rtol=1e-12, atol=1e-12)
        features = model.features(tokens)
        torch.testing.assert_close(model.features(reverse_complement_tokens(tokens, CMAP)), features.flip(1))
    assert logits.abs().max() > 1e-3  # not trivially zero


def test_caduceus_ph_is_equivariant_only_when_conjoined():
    model = tiny("caduceus-ph-tiny").double().eval()
    tokens = torch.randint(7, 12, (2, 30), generator=torch.Generator().manual_seed(5))
    rc = reverse_complement_tokens(tokens, CMAP)
    with torch.no_grad():
        assert (model(rc) - reverse_complement_logits(model(tokens), CMAP)).abs().max() > 1e-3
        conjoined = PostHocConjoined(model)
        torch.testing.assert_close(conjoined(rc), reverse_complement_logits(conjoined(tokens), CMAP))
        torch.testing.assert_close(conjoined.features(rc), conjoined.features(tokens).flip(1))


def test_bimamba_weight_tying_shares_projections_only():
    tied, untied = BiMamba(32, weight_tie=True), BiMamba(32, weight_tie=False)
    assert tied.mamba_rev.in_proj is tied.mamba_fwd.in_proj and tied.mamba_rev.out_proj is tied.mamba_fwd.out_proj
    assert tied.mamba_rev.conv1d is not tied.mamba_fwd.conv1d
    projections = 2 * 64 * 32 + 32 * 64
    assert count_parameters(untied) - count_parameters(tied) == projections


def test_mamba_mixer_handles_long_sequences_with_finite_gradients():
    mixer = Mamba(16)
    hidden = torch.randn(1, 3000, 16, requires_grad=True)
    mixer(hidden).sum().backward()
    assert torch.isfinite(hidden.grad).all() and hidden.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["dit-tiny", "caduceus-tiny"])
def test_engine_trains_any_backbone_through_the_same_call(name):
    model = tiny(name)
    engine = MaskedDiffusion(make_schedule("loglinear"), mask_id=MASK_ID)
    tokens = torch.randint(7, 11, (4, 32), generator=torch.Generator().manual_seed(0))
    loss = engine.loss(model, tokens, generator=torch.Generator().manual_seed(1)).loss
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for p in model.parameters())


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"unknown backbone architecture 'unet'; choose from "
                                         r"\['caduceus', 'dit', 'hf-masked-lm'\]"):
        build_backbone({"architecture": "unet"})
    with pytest.raises(ValueError, match=r"unknown caduceus option\(s\) \['n_heads'\]"):
        build_backbone({"architecture": "caduceus", "n_heads": 4})
    with pytest.raises(ValueError, match="unknown backbone preset 'dit-huge'"):
        load_preset("dit-huge")
    with pytest.raises(ValueError, match="rcps needs bidirectional=True"):
        Caduceus(16, COMPLEMENT_MAP, d_model=8, n_layer=1, rcps=True, bidirectional=False)
    with pytest.raises(ValueError, match="complement_map has 3 entries but vocab_size is 4"):
        Caduceus(vocab_size=4, d_model=8, n_layer=1, complement_map=[0, 1, 2])
    with pytest.raises(ValueError, match="complement_map must be an involution"):
        Caduceus(vocab_size=4, d_model=8, n_layer=1, complement_map=[1, 2, 3, 0])
    with pytest.raises(ValueError, match=r"rcps \(Caduceus-PS\) needs a complement_map"):
        Caduceus(vocab_size=5, d_model=8, n_layer=1)
    with pytest.raises(ValueError, match="hidden_size 30 must be divisible by n_heads 4"):
        build_backbone(load_preset("dit-tiny", ["hidden_size=30"]))


def test_describe_counts_tied_weights_once(capsys):
    text = describe(tiny("caduceus-tiny"))
    assert text.splitlines()[0] == "Caduceus"
    assert f"{count_parameters(tiny('caduceus-tiny')):,}" in text.splitlines()[-1]
    main(["describe", "caduceus-ps"])
    assert "7,725,312" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["describe", "dit-tiny", "heads=3"])
    assert exit_info.value.code == 2
    assert "mdlm-bio describe: error: unknown dit option" in capsys.readouterr().err


# Toy sizes for presets whose size comes from elsewhere: the data's vocabulary (dit), a hub config (hf-masked-lm).
PRESET_OVERRIDES = {"dit": ["vocab_size=16"],
                    "hf-masked-lm": ["vocab_size=16", "config.model_type=bert", "config.hidden_size=8",
                                     "config.num_hidden_layers=1", "config.num_attention_heads=1",
                                     "config.intermediate_size=8"]}


def test_every_preset_builds():
    for name in preset_names():
        overrides = next((value for prefix, value in PRESET_OVERRIDES.items() if name.startswith(prefix)), [])
        assert count_parameters(build_backbone(preset_backbone(name, overrides))) > 0


def test_pyproject_ships_every_subpackage():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "mdlm_bio").rglob("__init__.py")}
    presets = {f"mdlm_bio.configs.{folder.name}" for folder in (root / "configs").iterdir() if folder.is_dir()}
    assert found | {"mdlm_bio.configs", "mdlm_bio.data"} | presets == listed

"""Checkpoint import: state dicts built here in the published key layouts load, match, or fail clearly."""

from __future__ import annotations

import math

import pytest
import torch
from reference_models import reference_caduceus, reference_mdlm_dit
from safetensors.torch import save_file

from mdlm_bio.backbones.caduceus import reverse_complement_logits, reverse_complement_tokens
from mdlm_bio.backbones.pretrained import CheckpointError, load_pretrained, read_state_dict, resolve_checkpoint
from mdlm_bio.dna.tokenizer import COMPLEMENT_MAP

VOCAB, HIDDEN, COND, BLOCKS, HEADS = 37, 32, 16, 2, 4


def mdlm_owt_layout() -> dict[str, tuple[int, ...]]:
    """Key names and shapes of kuleshov-group/mdlm-owt's model.safetensors, at a small size."""
    head_dim = HIDDEN // HEADS
    layout = {
        "backbone.vocab_embed.embedding": (VOCAB, HIDDEN),
        "backbone.sigma_map.mlp.0.weight": (COND, 256),
        "backbone.sigma_map.mlp.0.bias": (COND,),
        "backbone.sigma_map.mlp.2.weight": (COND, COND),
        "backbone.sigma_map.mlp.2.bias": (COND,),
        "backbone.rotary_emb.inv_freq": (head_dim // 2,),
    }
    for i in range(BLOCKS):
        b = f"backbone.blocks.{i}."
        layout |= {
            b + "norm1.weight": (HIDDEN,),
            b + "attn_qkv.weight": (3 * HIDDEN, HIDDEN),
            b + "attn_out.weight": (HIDDEN, HIDDEN),
            b + "norm2.weight": (HIDDEN,),
            b + "mlp.0.weight": (4 * HIDDEN, HIDDEN),
            b + "mlp.0.bias": (4 * HIDDEN,),
            b + "mlp.2.weight": (HIDDEN, 4 * HIDDEN),
            b + "mlp.2.bias": (HIDDEN,),
            b + "adaLN_modulation.weight": (6 * HIDDEN, COND),
            b + "adaLN_modulation.bias": (6 * HIDDEN,),
        }
    return layout | {
        "backbone.output_layer.norm_final.weight": (HIDDEN,),
        "backbone.output_layer.linear.weight": (VOCAB, HIDDEN),
        "backbone.output_layer.linear.bias": (VOCAB,),
        "backbone.output_layer.adaLN_modulation.weight": (2 * HIDDEN, COND),
        "backbone.output_layer.adaLN_modulation.bias": (2 * HIDDEN,),
    }


def random_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=g) / math.sqrt(shape[-1]) for key, shape in layout.items()}


def mdlm_state() -> dict[str, torch.Tensor]:
    state = random_state(mdlm_owt_layout())
    head_dim = HIDDEN // HEADS
    state["backbone.rotary_emb.inv_freq"] = 1.0 / 10_000 ** (torch.arange(0, head_dim, 2).float() / head_dim)
    return state


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_mdlm_checkpoint_loads_every_key_and_matches_reference(tmp_path, suffix):
    state = mdlm_state()
    path = tmp_path / f"model{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    model = load_pretrained(path, "mdlm", time_conditioning=True).eval()
    assert {"backbone." + k: tuple(v.shape) for k, v in model.state_dict().items()} == mdlm_owt_layout()
    tokens = torch.randint(0, VOCAB, (3, 11), generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.0, 0.7, 3.0])
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, sigma), reference_mdlm_dit(state, tokens, sigma), rtol=1e-4, atol=1e-4)


def test_mdlm_checkpoint_without_time_conditioning_sees_sigma_zero(tmp_path):
    state = mdlm_state()
    save_file(state, str(tmp_path / "m.safetensors"))
    model = load_pretrained(tmp_path / "m.safetensors", "mdlm").eval()
    tokens = torch.randint(0, VOCAB, (2, 9))
    with torch.no_grad():
        expected = reference_mdlm_dit(state, tokens, torch.zeros(2))
        torch.testing.assert_close(model(tokens, torch.rand(2)), expected, rtol=1e-4, atol=1e-4)


def test_mdlm_lightning_checkpoint_with_ema(tmp_path):
    state = mdlm_state()
    ema = random_state({k: tuple(v.shape) for k, v in state.items() if not k.endswith("inv_freq")}, seed=5)
    torch.save({"state_dict": state, "ema": {"decay": 0.9999, "num_updates": 3, "shadow_params": list(ema.values())}},
               tmp_path / "last.ckpt")
    model = load_pretrained(tmp_path / "last.ckpt", "mdlm", use_ema=True)
    torch.testing.assert_close(model.vocab_embed.embedding.detach(), ema["backbone.vocab_embed.embedding"])
    raw = load_pretrained(tmp_path / "last.ckpt", "mdlm")
    torch.testing.assert_close(raw.vocab_embed.embedding.detach(), state["backbone.vocab_embed.embedding"])


def test_unknown_missing_and_misshapen_keys_are_named(tmp_path):
    state = mdlm_state()
    with pytest.raises(CheckpointError, match=r"unknown keys \['backbone_extra.weight'\]"):
        save_file(state | {"backbone_extra.weight": torch.zeros(1)}, str(tmp_path / "a.safetensors"))
        load_pretrained(tmp_path / "a.safetensors", "mdlm")
    with pytest.raises(CheckpointError, match=r"keys \['blocks.0.extra'\] have no place in DiT"):
        save_file(state | {"backbone.blocks.0.extra": torch.zeros(1)}, str(tmp_path / "b.safetensors"))
        load_pretrained(tmp_path / "b.safetensors", "mdlm")
    missing = {k: v for k, v in state.items() if k != "backbone.blocks.1.mlp.0.bias"}
    with pytest.raises(CheckpointError, match=r"missing weights for \['blocks.1.mlp.0.bias'\]"):
        save_file(missing, str(tmp_path / "c.safetensors"))
        load_pretrained(tmp_path / "c.safetensors", "mdlm")
    misshapen = state | {"backbone.blocks.0.attn_out.weight": torch.zeros(HIDDEN, HIDDEN + 1)}
    with pytest.raises(CheckpointError, match=r"blocks.0.attn_out.weight has shape \(32, 33\) but the model expects \(32, 32\)"):
        save_file(misshapen, str(tmp_path / "d.safetensors"))
        load_pretrained(tmp_path / "d.safetensors", "mdlm")


def test_wrong_layout_missing_file_and_format_are_clear(tmp_path):
    caduceus = caduceus_state(rcps=True)
    save_file(caduceus, str(tmp_path / "c.safetensors"))
    with pytest.raises(CheckpointError, match="not an MDLM DiT checkpoint"):
        load_pretrained(tmp_path / "c.safetensors", "mdlm")
    save_file(mdlm_state(), str(tmp_path / "m.safetensors"))
    with pytest.raises(CheckpointError, match="not a Caduceus checkpoint"):
        load_pretrained(tmp_path / "m.safetensors", "caduceus")
    with pytest.raises(FileNotFoundError, match="checkpoint file not found: .*nope.safetensors"):
        load_pretrained(tmp_path / "nope.safetensors", "mdlm")
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(CheckpointError, match="unsupported checkpoint format '.txt'"):
        read_state_dict(tmp_path / "w.txt")
    with pytest.raises(ValueError, match="unknown checkpoint layout 'gpt'"):
        load_pretrained(tmp_path / "m.safetensors", "gpt")


def test_an_uncached_hub_checkpoint_offline_says_so(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="could not download kuleshov-group/mdlm-owt from the Hugging Face hub "
                       r"and it is not cached locally \(offline\?\)"):
        resolve_checkpoint("hf:kuleshov-group/mdlm-owt")


def test_pickled_objects_need_trust(tmp_path):
    torch.save({"state_dict": mdlm_state(), "hyper_parameters": {"config": object.__new__(Marker)}}, tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match=r"If you trust its source, pass --trust-checkpoint \(trusted=True in Python\)"):
        load_pretrained(tmp_path / "x.ckpt", "mdlm")
    assert load_pretrained(tmp_path / "x.ckpt", "mdlm", trusted=True).vocab_embed.embedding.shape == (VOCAB, HIDDEN)


class Marker:
    """A stand-in for the pickled config objects Lightning checkpoints carry."""


# --- Caduceus ---------------------------------------------------------------------------------

D_MODEL, LAYERS, STATE = 16, 2, 16


def caduceus_hf_layout(rcps: bool) -> dict[str, tuple[int, ...]]:
    """CaduceusForMaskedLM's safetensors keys: tied copies (rev in/out proj, LM head) are not stored."""
    inner, rank = 2 * D_MODEL, math.ceil(D_MODEL / 16)
    prefix = "caduceus.backbone."
    embed = prefix + "embeddings.word_embeddings." + ("embedding.weight" if rcps else "weight")
    layout: dict[str, tuple[int, ...]] = {embed: (16, D_MODEL)}
    for i in range(LAYERS):
        mixer = f"{prefix}layers.{i}.mixer." + ("submodule." if rcps else "")
        for direction in ("mamba_fwd", "mamba_rev"):
            m = f"{mixer}{direction}."
            layout |= {
                m + "A_log": (inner, STATE), m + "D": (inner,), m + "conv1d.weight": (inner, 1, 4),
                m + "conv1d.bias": (inner,), m + "x_proj.weight": (rank + 2 * STATE, inner),
                m + "dt_proj.weight": (inner, rank), m + "dt_proj.bias": (inner,),
            }
            if direction == "mamba_fwd":
                layout |= {m + "in_proj.weight": (2 * inner, D_MODEL), m + "out_proj.weight": (D_MODEL, inner)}
        layout[f"{prefix}layers.{i}.norm.weight"] = (D_MODEL,)
    layout[prefix + "norm_f.weight"] = (D_MODEL,)
    return layout


def caduceus_state(rcps: bool) -> dict[str, torch.Tensor]:
    state = random_state(caduceus_hf_layout(rcps), seed=3)
    for key in state:
        if key.endswith("A_log"):
            state[key] = torch.log(torch.rand(state[key].shape, generator=torch.Generator().manual_seed(4)) * 8 + 0.5)
    if rcps:
        cmap = torch.tensor(COMPLEMENT_MAP)
        state["caduceus.backbone.embeddings.word_embeddings.complement_map"] = cmap
        state["lm_head.complement_map"] = cmap.clone()
    return state


@pytest.mark.parametrize("rcps", [True, False], ids=["ps", "ph"])
def test_caduceus_checkpoint_loads_and_matches_reference(tmp_path, rcps):
    state = caduceus_state(rcps)
    save_file(state, str(tmp_path / "model.safetensors"))
    model = load_pretrained(tmp_path / "model.safetensors", "caduceus").double().eval()
    assert model.rcps is rcps and len(model.layers) == LAYERS and model.d_model == D_MODEL
    tokens = torch.randint(0, 16, (2, 23), generator=torch.Generator().manual_seed(2))
    cmap = torch.tensor(COMPLEMENT_MAP)
    expected = reference_caduceus({k: v.double() if v.is_floating_point() else v for k, v in state.items()}, tokens, cmap)
    with torch.no_grad():
        logits = model(tokens)
        torch.testing.assert_close(logits, expected, rtol=1e-9, atol=1e-9)
        if rcps:
            torch.testing.assert_close(model(reverse_complement_tokens(tokens, cmap)), reverse_complement_logits(logits, cmap))


def test_caduceus_stored_tied_copies_must_agree(tmp_path):
    state = caduceus_state(rcps=True)
    embedding = state["caduceus.backbone.embeddings.word_embeddings.embedding.weight"]
    save_file(state | {"lm_head.lm_head.weight": embedding.clone()}, str(tmp_path / "ok.safetensors"))
    assert load_pretrained(tmp_path / "ok.safetensors", "caduceus").rcps
    save_file(state | {"lm_head.lm_head.weight": embedding + 1}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match="tied weights for embedding.weight and embedding.weight differ"):
        load_pretrained(tmp_path / "bad.safetensors", "caduceus")

"""One model handle: load_model reads a source once and returns the handle of its kind; published models state
their own facts; and the network's sampling denoiser (logits at the positions a sampler reads, large batches in
row chunks) gives every sampler the same samples as the full logits do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_pretrained import caduceus_state, mdlm_state

from mdlm_bio.diffusion import all_masked, make_sampler
from mdlm_bio.diffusion.sampler_registry import samplers_for
from mdlm_bio.errors import CheckpointError
from mdlm_bio.models import load_model, network
from mdlm_bio.models.autoregressive_model import AutoregressiveModel
from mdlm_bio.models.block_diffusion_model import BlockDiffusionModel
from mdlm_bio.models.diffusion_model import DiffusionModel
from mdlm_bio.models.handle import ModelMismatchError
from mdlm_bio.models.network import LanguageModel
from mdlm_bio.models.published import MDLM_OBJECTIVE
from mdlm_bio.models.spec import ModelSpec
from mdlm_bio.training.data import preset_backbone

STEPS = {"ancestral": 12, "cached": 40, "remdm": 12, "confidence": 4}


def untrained(preset: str, overrides: tuple[str, ...] = ()) -> LanguageModel:
    """A random network of a preset: text ones on a 300-token vocabulary, DNA ones on the DNA vocabulary."""
    torch.manual_seed(0)
    backbone = preset_backbone(preset, list(overrides))
    dna = "complement_map" in backbone
    spec = ModelSpec(backbone=backbone, objective=MDLM_OBJECTIVE, mask_id=3 if dna else backbone["vocab_size"] - 1,
                     context=32, track="dna" if dna else "text", output_ids=(7, 8, 9, 10) if dna else None)
    return LanguageModel(spec).eval()


@pytest.mark.parametrize("preset, overrides", [("dit-tiny", ("vocab_size=300",)), ("caduceus-tiny", ())])
@pytest.mark.parametrize("name", samplers_for("masked"))
def test_logits_at_the_read_positions_give_every_sampler_the_full_logits_samples(preset, overrides, name):
    model = untrained(preset, overrides)
    sampler = make_sampler(name, **({"steps": STEPS[name]} if name in STEPS else {}))
    full = lambda z, t: model.denoiser(z, t)  # noqa: E731 -- what the samplers read before logits_at
    z = all_masked(3, 32, model.mask_id)
    with torch.no_grad():
        expected = sampler.sample(full, z, model.engine.schedule, model.mask_id, 7)
        positional = model.sampling_denoiser()
        assert hasattr(positional, "at")
        got = sampler.sample(positional, z, model.engine.schedule, model.mask_id, 7)
    assert torch.equal(got.tokens, expected.tokens)
    assert (got.num_calls, got.row_calls) == (expected.num_calls, expected.row_calls)


def test_large_batches_run_in_row_chunks_with_the_same_logits(monkeypatch):
    model = untrained("caduceus-tiny")
    z = torch.randint(3, 11, (5, 32), generator=torch.Generator().manual_seed(0))
    t = torch.full((5,), 0.5)
    positions = (torch.tensor([0, 1, 1, 4]), torch.tensor([3, 0, 31, 7]))
    calls = []
    hidden_states = type(model.backbone).hidden_states

    def counting(self, tokens, labels=None, t=None):
        calls.append(len(tokens))
        return hidden_states(self, tokens, labels, t)

    with torch.no_grad():
        whole = model.denoiser(z, t)
        monkeypatch.setattr(network, "TOKENS_PER_CALL", 64)  # two rows of 32 per call
        monkeypatch.setattr(type(model.backbone), "hidden_states", counting)
        chunked = model.sampling_denoiser()
        torch.testing.assert_close(chunked(z, t), whole, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(chunked.at(z, t, positions), whole[positions], rtol=1e-5, atol=1e-6)
    assert calls == [2, 2, 1] * 2


def test_a_run_is_read_once_and_becomes_the_handle_of_its_kind(run_dir, ar_run, monkeypatch, tmp_path):
    reads = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: reads.append(args[0]) or load(*args, **kwargs))
    model = load_model(run_dir)
    assert len(reads) == 1 and isinstance(model, DiffusionModel) and model.kind == "mdlm"
    assert (model.mask_id, model.context, model.spec.track, model.caveat) == (3, 64, "dna", None)
    assert model.description.startswith("caduceus-tiny mdlm (") and model.strand_symmetric
    ar = load_model(ar_run)
    assert isinstance(ar, AutoregressiveModel) and not ar.strand_symmetric
    tokens, fill = np.array([7, 8, 11, 9], np.uint8), np.array([False, False, True, False])
    with pytest.raises(ModelMismatchError, match="holds an autoregressive model; infill needs a masked-diffusion"):
        ar.infill(tokens, fill, make_sampler("ancestral"), seed=0)
    assert ar.describe_sampling(make_sampler("ancestral", top_p=0.5)) == "sampler=autoregressive top_p=0.5"
    with pytest.raises(ModelMismatchError, match="holds a dna model; eval-ppl needs a text model"):
        model.require_track("text", "eval-ppl")


def test_published_models_state_their_own_objective_context_and_caveat(tmp_path):
    save_file(caduceus_state(rcps=True), str(tmp_path / "caduceus-ps_seqlen-131k_d_model-256.safetensors"))
    caduceus = load_model(tmp_path / "caduceus-ps_seqlen-131k_d_model-256.safetensors")
    assert isinstance(caduceus, DiffusionModel) and caduceus.context == 131_072 and caduceus.spec.track == "dna"
    assert caduceus.spec.objective == MDLM_OBJECTIVE and caduceus.name == "Caduceus-PS"
    assert "trained with masked language modelling" in caduceus.caveat
    save_file(mdlm_state(), str(tmp_path / "mdlm.safetensors"))
    mdlm = load_model(tmp_path / "mdlm.safetensors")
    assert (mdlm.context, mdlm.tokenizer, mdlm.spec.track, mdlm.caveat) == (1024, "gpt2", "text", None)
    assert mdlm.mask_id == mdlm.spec.backbone["vocab_size"] - 1 and not mdlm.spec.backbone["time_conditioning"]


def test_a_published_bd3lm_is_a_block_diffusion_model_with_the_block_size_of_its_name(tmp_path):
    state = {**mdlm_state(), "sampling_eps_min": torch.tensor(0.3), "sampling_eps_max": torch.tensor(0.8)}
    save_file(state, str(tmp_path / "bd3lm-owt-block_size8.safetensors"))
    model = load_model(tmp_path / "bd3lm-owt-block_size8.safetensors")
    assert isinstance(model, BlockDiffusionModel) and model.block_size == 8 and model.context == 1024
    assert model.spec.objective.clip == pytest.approx((0.3, 0.8)) and model.tokenizer == "gpt2"
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="a BD3-LM checkpoint, but its block size is neither in its name"):
        load_model(tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text('{"block_size": 16}')
    assert load_model(tmp_path / "model.safetensors").block_size == 16

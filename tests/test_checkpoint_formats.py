"""Checkpoints describe their models: earlier formats keep loading to the same model (tests/fixtures/), presets can
change under a trained model, and what a model was trained with (schedule, mask id) is what it samples with."""

from __future__ import annotations

import dataclasses
import shutil
from importlib import resources
from pathlib import Path

import torch
from dna_runs import train_args

from mdlm_bio.backbones import registry
from mdlm_bio.backbones.caduceus import Caduceus
from mdlm_bio.cli import main
from mdlm_bio.diffusion import PolynomialSchedule
from mdlm_bio.models import load_model
from mdlm_bio.models.spec import ModelSpec

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_format_1_checkpoint_loads_to_the_same_logits():
    """Format 1: written by the code of 2026-11-30 (commit cd3b777), which stored the backbone as preset + overrides
    and no format version: a caduceus-tiny (d_model 8, 1 layer, d_state 4) trained 2 steps on the bundled DNA."""
    model = load_model(FIXTURES / "checkpoint_format_1.ckpt")
    expected = torch.load(FIXTURES / "checkpoint_format_1_logits.pt", weights_only=True)
    with torch.no_grad():
        logits = model.network.denoiser(expected["tokens"], expected["t"])
    # Float32 rounding only: the same model, though later speedups may reorder its arithmetic (BiMamba's one
    # out_proj call for both directions moved these logits by 5e-8).
    torch.testing.assert_close(logits, expected["logits"], rtol=1e-5, atol=1e-6)
    assert (model.mask_id, model.context) == (3, 32)


def denoise_once(model) -> torch.Tensor:
    tokens = torch.tensor([[7, 8, 3, 10, 3, 9, 7, 7]])
    with torch.no_grad():
        return model.network.denoiser(tokens, torch.full((1,), 0.5))


def test_editing_or_renaming_a_preset_changes_no_trained_model(run_dir, tmp_path, monkeypatch):
    """A format 2 checkpoint rebuilds its model from the settings it stored, never from configs/backbone."""
    before = denoise_once(load_model(run_dir))
    configs = tmp_path / "configs"
    shutil.copytree(resources.files("mdlm_bio.configs"), configs)
    edited = (configs / "backbone" / "caduceus-tiny.yaml").read_text().replace("d_state: 8", "d_state: 2")
    (configs / "backbone" / "caduceus-tiny.yaml").unlink()  # renamed ...
    (configs / "backbone" / "caduceus-tiny-renamed.yaml").write_text(edited)  # ... and edited
    monkeypatch.setattr(registry.resources, "files", lambda package: configs)
    assert "caduceus-tiny" not in registry.preset_names()
    torch.testing.assert_close(denoise_once(load_model(run_dir)), before, rtol=0, atol=0)


def test_schedule_parameters_come_from_the_config_and_stay_in_the_checkpoint(tmp_path, data_dir):
    run = tmp_path / "polynomial"
    main(train_args(run, data_dir, steps=2, every=2) + ["objective.schedule={name: polynomial, k: 3.0}"])
    schedule = load_model(run).network.engine.schedule
    assert isinstance(schedule, PolynomialSchedule) and schedule.k == 3.0


def test_sampling_infilling_and_scoring_use_the_checkpoints_own_mask_id(run_dir, tmp_path, monkeypatch):
    """A DNA model whose mask is id 12 (one of the vocabulary's spare ids), not the tokenizer's 3."""
    payload = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    spec = ModelSpec.from_dict(payload["mdlm_bio_model"])
    spec = dataclasses.replace(spec, mask_id=12)
    other = tmp_path / "mask12.ckpt"
    torch.save({"state_dict": payload["state_dict"], "mdlm_bio_format": 2, "mdlm_bio_model": spec.to_dict()}, other)
    seen: list[torch.Tensor] = []
    hidden_states = Caduceus.hidden_states  # what every call reaches, for all logits or at positions only

    def recording(self, tokens, labels=None, t=None):
        seen.append(tokens.clone())
        return hidden_states(self, tokens, labels, t)

    monkeypatch.setattr(Caduceus, "hidden_states", recording)
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\nACGTNNNNACGTACGT\n")
    main(["sample", "--ckpt", str(other), "--num", "2", "--length", "20", "--out", str(tmp_path / "s.fa")])
    main(["infill", str(fasta), "--ckpt", str(other), "--steps", "4", "--out", str(tmp_path / "f.fa")])
    main(["score", str(fasta), "--ckpt", str(other), "--mc", "2", "--out", str(tmp_path / "s.tsv")])
    masked = torch.cat([z.flatten() for z in seen])
    assert (masked == 12).any() and not (masked == 3).any()

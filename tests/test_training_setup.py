"""How a run is set up before the first step: optimizer groups, and what reaches lightning.Trainer (FSDP included)."""

from __future__ import annotations

import lightning
import pytest
import torch
from dna_runs import error_of, train_args
from presets import dna_module

from mdlm_bio.cli import main


def test_weight_decay_groups_do_not_depend_on_current_parameter_shapes():
    """FSDP shows configure_optimizers its parameters as flat 1-D shards; weights must still be decayed."""
    module = dna_module("demo", ["optim.weight_decay=0.1"])
    names = {id(param): name for name, param in module.backbone.named_parameters()}

    def groups() -> list[list[str]]:
        optimizer = module.configure_optimizers()["optimizer"]
        return [sorted(names[id(param)] for param in group["params"]) for group in optimizer.param_groups]

    before = groups()
    with torch.no_grad():
        for param in module.backbone.parameters():
            param.data = param.data.flatten()
    assert groups() == before
    decayed, exempt = before
    assert "layers.0.mixer.mamba_fwd.in_proj.weight" in decayed and "layers.0.mixer.mamba_fwd.A_log" in decayed
    assert {"embedding.weight", "norm_f.weight", "layers.0.mixer.mamba_fwd.dt_proj.bias"} <= set(exempt)


class TrainerArguments(Exception):
    """Raised by a stand-in for lightning.Trainer, carrying what it was given."""


def test_trainer_options_reach_lightning_unchanged(tmp_path, monkeypatch):
    def capture(**kwargs):
        raise TrainerArguments(kwargs)

    monkeypatch.setattr(lightning, "Trainer", capture)
    argv = train_args(tmp_path / "run", tmp_path / "genome", steps=7) + [
        "trainer.strategy=fsdp", "trainer.accelerator=cuda", "trainer.devices=4", "optim.ema=null"]
    with pytest.raises(TrainerArguments) as given:
        main(argv)
    kwargs = given.value.args[0]
    assert (kwargs["strategy"], kwargs["accelerator"], kwargs["devices"], kwargs["max_steps"]) == ("fsdp", "cuda", 4, 7)


def test_fsdp_is_refused_on_cpu_by_lightning_with_its_reason(tmp_path, capsys):
    argv = train_args(tmp_path / "run", tmp_path / "genome", steps=2) + [
        "trainer.strategy=fsdp", "trainer.accelerator=cpu", "optim.ema=null"]
    assert "The strategy `fsdp` requires a GPU accelerator, but received `accelerator='cpu'`" in error_of(capsys, argv)
    assert not (tmp_path / "run").exists()  # a failed start leaves no run folder


def test_ema_with_fsdp_is_refused_before_training(tmp_path, capsys):
    err = error_of(capsys, train_args(tmp_path / "run", tmp_path / "genome", steps=2) + ["trainer.strategy=fsdp"])
    assert "optim.ema=0.99 keeps a full copy of the weights, and trainer.strategy=fsdp shards them" in err
    assert not (tmp_path / "run").exists()

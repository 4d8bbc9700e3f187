"""Modules as a DNA training preset builds them (the backbone resolved on the DNA vocabulary), for tests that
need a DiffusionLM without training one."""

from __future__ import annotations

from collections.abc import Sequence

from mdlm_bio.training.config import load_config, to_plain
from mdlm_bio.training.data import DNA_VOCABULARY
from mdlm_bio.training.module import DiffusionLM
from mdlm_bio.training.run import model_spec, training_settings
from mdlm_bio.training.settings import run_settings


def dna_module(preset: str = "demo", overrides: Sequence[str] = (), classes: tuple[str, ...] = ()) -> DiffusionLM:
    """The DiffusionLM a DNA training preset builds (with `classes`, a class-conditional one), ready to train."""
    settings = run_settings(to_plain(load_config(preset, list(overrides))))
    return DiffusionLM(model_spec(settings, DNA_VOCABULARY, "dna", classes), training_settings(settings))

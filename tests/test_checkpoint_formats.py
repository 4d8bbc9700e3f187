"""Checkpoints written by earlier versions keep loading to the same model (fixtures in tests/fixtures/)."""

from __future__ import annotations

from pathlib import Path

import torch

from mdlm_bio.training.checkpoints import load_trained

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_format_1_checkpoint_loads_to_the_same_logits():
    """Format 1: written by the code of 2026-11-30 (commit cd3b777), which stored the backbone as preset + overrides
    and no format version: a caduceus-tiny (d_model 8, 1 layer, d_state 4) trained 2 steps on the bundled DNA."""
    model = load_trained(FIXTURES / "checkpoint_format_1.ckpt")
    expected = torch.load(FIXTURES / "checkpoint_format_1_logits.pt", weights_only=True)
    with torch.no_grad():
        logits = model.module.denoiser(expected["tokens"], expected["t"])
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=0)
    assert (model.module.mask_id, model.context) == (3, 32)

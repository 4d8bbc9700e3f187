"""Masked language modelling (objective mlm, BERT's): a fixed fraction masked, the plain mean cross-entropy at the
masked positions; a run trains on it, is validated by the NELBO, and loads as a masked language model that MDLM
fine-tuning starts from."""

from __future__ import annotations

import pytest
import torch
from dna_runs import error_of, train_args

from mdlm_bio.cli import main
from mdlm_bio.diffusion import LogLinearSchedule, MaskedDiffusion, subs_log_probs
from mdlm_bio.diffusion.process import position_draws
from mdlm_bio.models import load_model

MASK, VOCAB = 7, 8


def fixed_logits(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A denoiser whose logits depend on the position and the token seen, so a wrong gather would show."""
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(z_t.shape[1], VOCAB, VOCAB, generator=generator)
    return table[torch.arange(z_t.shape[1]), z_t]


def test_the_loss_is_the_mean_cross_entropy_at_a_fixed_fraction_of_positions():
    engine = MaskedDiffusion(LogLinearSchedule(), mask_id=MASK)
    tokens = torch.randint(0, MASK, (64, 48), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones_like(tokens, dtype=torch.bool)
    attention_mask[:, 40:] = False
    out = engine.masked_lm_loss(fixed_logits, tokens, 0.15, attention_mask, torch.Generator().manual_seed(2))
    masked = (position_draws(tokens.shape, torch.Generator().manual_seed(2), "cpu") >= 0.85) & attention_mask
    z_t = torch.where(masked, MASK, tokens)
    log_probs = subs_log_probs(fixed_logits(z_t, None), z_t, MASK)
    expected = -log_probs.gather(-1, tokens[..., None]).squeeze(-1)[masked].mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert int(out.num_tokens) == int(masked.sum()) and abs(masked.sum() / attention_mask.sum() - 0.15) < 0.02


def test_the_positions_path_gives_the_same_loss():
    engine = MaskedDiffusion(LogLinearSchedule(), mask_id=MASK)
    tokens = torch.randint(0, MASK, (8, 32), generator=torch.Generator().manual_seed(3))

    def logits_at(z_t, t, positions):
        return fixed_logits(z_t, t)[positions]

    full = engine.masked_lm_loss(fixed_logits, tokens, 0.3, None, torch.Generator().manual_seed(4))
    gathered = engine.masked_lm_loss(fixed_logits, tokens, 0.3, None, torch.Generator().manual_seed(4), logits_at)
    assert gathered.loss.item() == pytest.approx(full.loss.item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"the masked language modelling rate must lie in \(0, 1\), not 1.0"):
        engine.masked_lm_loss(fixed_logits, tokens, 1.0)


def test_an_mlm_run_trains_validates_by_the_nelbo_and_seeds_an_mdlm(data_dir, tmp_path, capsys):
    mlm = tmp_path / "mlm"
    main([*train_args(mlm, data_dir, steps=4, every=4), "objective.kind=mlm", "objective.mask_rate=0.15"])
    printed = capsys.readouterr().out
    assert "val bits/base" in printed  # the NELBO, as every masked model reports it
    model = load_model(mlm)
    assert (model.kind, model.kind_name, model.spec.objective.mask_rate) == ("mlm", "masked language model", 0.15)
    main([*train_args(tmp_path / "mdlm", data_dir, steps=2, every=2), f"init_from={mlm}"])
    assert f"initialised the backbone from {mlm}" in capsys.readouterr().out


@pytest.mark.parametrize("overrides, message", [
    (["objective.kind=mlm"], "objective.kind=mlm needs objective.mask_rate in (0, 1), e.g. 0.15 as BERT; got None"),
    (["objective.kind=mlm", "objective.mask_rate=1.5"], "objective.kind=mlm needs objective.mask_rate in (0, 1)"),
    (["objective.mask_rate=0.15"], "objective.mask_rate is masked language modelling's (objective.kind=mlm), "
                                   "not mdlm's"),
])
def test_a_masked_lm_config_without_or_with_a_stray_rate_is_refused(data_dir, tmp_path, capsys, overrides, message):
    assert message in error_of(capsys, [*train_args(tmp_path / "run", data_dir, steps=2), *overrides])

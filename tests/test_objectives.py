import math

import pytest
import torch
from toy_distribution import default_toy, exact_schedule

from mdlm_bio.diffusion import (
    CosineSchedule,
    GeometricSchedule,
    LinearSigmaSchedule,
    MaskedDiffusion,
    PolynomialSchedule,
    autoregressive_loss,
    masked_diffusion_loss,
    nelbo_weights,
    subs_log_probs,
)

TOY = default_toy()
ENTROPY = TOY.entropy()


# ----------------------------------------------------------------------------- SUBS


def test_subs_puts_no_mass_on_the_mask_and_carries_unmasked_tokens_over():
    logits = torch.randn(2, 5, 4)
    z = torch.tensor([[3, 0, 3, 2, 1], [3, 3, 3, 3, 3]])
    log_probs = subs_log_probs(logits, z, mask_id=3)
    probs = log_probs.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 5))
    assert bool((probs[..., 3] == 0).all())
    unmasked = z != 3
    assert torch.equal(probs[unmasked].argmax(-1), z[unmasked])
    assert bool((probs[unmasked].max(-1).values == 1).all())
    expected_masked = logits[..., :3].log_softmax(-1)
    torch.testing.assert_close(log_probs[~unmasked][:, :3], expected_masked[~unmasked])


# ----------------------------------------------------------------------------- NELBO vs exact NLL


@pytest.mark.parametrize(
    "schedule, tolerance",
    [
        (exact_schedule(), 1e-9),
        (CosineSchedule(), 1e-9),
        (PolynomialSchedule(k=3.0), 1e-9),
        (LinearSigmaSchedule(0.0, 30.0), 1e-6),
        # sigma_min > 0 leaves alpha(0) = exp(-1e-5) < 1: a bias of order 1e-5.
        (GeometricSchedule(1e-5, 30.0), 1e-4),
    ],
)
def test_exact_continuous_nelbo_of_the_oracle_equals_the_entropy(schedule, tolerance):
    assert TOY.exact_nelbo(TOY.oracle(), schedule) == pytest.approx(ENTROPY, abs=tolerance)


def test_monte_carlo_continuous_nelbo_matches_the_nll():
    """The engine's own training estimate, averaged, equals the exact NLL within 4 standard errors."""
    x = TOY.sample(40000, seed=3)
    engine = MaskedDiffusion(exact_schedule(), mask_id=TOY.mask_id, sampling_eps=1e-5)
    out = engine.loss(TOY.oracle(), x, generator=torch.Generator().manual_seed(4))
    error = out.per_sequence.double() - TOY.nll(x)
    standard_error = error.std() / math.sqrt(len(error))
    assert abs(float(error.mean())) < 4 * float(standard_error)
    assert float(standard_error) < 0.03, "the check must be sharp enough to mean something"


def test_worse_denoiser_gives_strictly_larger_nelbo():
    schedule = exact_schedule()
    nelbos = [TOY.exact_nelbo(TOY.oracle(smoothing), schedule) for smoothing in (0.0, 0.05, 0.3)]
    assert nelbos[0] < nelbos[1] - 1e-3 < nelbos[2] - 2e-3


def test_discrete_nelbo_bounds_the_nll_and_tightens_with_more_steps():
    nelbos = [TOY.exact_nelbo(TOY.oracle(), exact_schedule(), discrete_steps=T) for T in (1, 2, 4, 16, 64, 1024)]
    assert all(n > ENTROPY for n in nelbos)
    assert all(a > b for a, b in zip(nelbos, nelbos[1:]))
    assert nelbos[-1] - ENTROPY < 1e-3 < nelbos[0] - ENTROPY


def test_discrete_monte_carlo_estimate_matches_the_exact_sum():
    T = 4
    x = TOY.sample(40000, seed=5)
    engine = MaskedDiffusion(exact_schedule(), mask_id=TOY.mask_id, discrete_steps=T)
    out = engine.loss(TOY.oracle(), x, generator=torch.Generator().manual_seed(6))
    exact = TOY.exact_nelbo(TOY.oracle(), exact_schedule(), discrete_steps=T)
    standard_error = out.per_sequence.double().std() / math.sqrt(len(x))
    assert abs(float(out.per_sequence.double().mean()) - exact) < 4 * float(standard_error)


def test_discrete_weights_approach_continuous_weights():
    t = torch.tensor([0.25, 0.5, 0.9], dtype=torch.float64)
    schedule = CosineSchedule()
    torch.testing.assert_close(nelbo_weights(schedule, t, 100000), schedule.loss_weight(t), rtol=1e-4, atol=0)


# ----------------------------------------------------------------------------- metrics, padding, gradients


def test_metrics_are_consistent():
    x = TOY.sample(64, seed=1)
    engine = MaskedDiffusion(exact_schedule(), mask_id=TOY.mask_id)
    out = engine.loss(TOY.oracle(), x, generator=torch.Generator().manual_seed(0))
    assert int(out.num_tokens) == x.numel()
    torch.testing.assert_close(out.loss, out.total / x.numel())
    torch.testing.assert_close(out.perplexity, out.loss.exp())
    torch.testing.assert_close(out.bits_per_token, out.loss / math.log(2))


def test_padding_positions_contribute_nothing():
    torch.manual_seed(0)
    tokens = torch.randint(0, 3, (2, 6))
    z = tokens.clone()
    z[:, ::2] = 3
    logits = torch.randn(2, 6, 4)
    attention = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    weights = torch.tensor([2.0, 3.0])
    padded = masked_diffusion_loss(logits, tokens, z, weights, 3, attention)
    assert int(padded.num_tokens) == 10
    assert bool((padded.token_loss[0, 4:] == 0).all())
    # Changing what sits under the padding changes nothing.
    other = tokens.clone()
    other[0, 4:] = (other[0, 4:] + 1) % 3
    again = masked_diffusion_loss(logits, other, z, weights, 3, attention)
    torch.testing.assert_close(padded.total, again.total)
    trimmed = masked_diffusion_loss(logits[:1, :4], tokens[:1, :4], z[:1, :4], weights[:1], 3)
    torch.testing.assert_close(padded.token_loss[0].sum(), trimmed.total)


def test_gradients_flow_only_through_masked_valid_positions():
    tokens = torch.tensor([[0, 1, 2, 0]])
    z = torch.tensor([[3, 1, 3, 3]])
    logits = torch.randn(1, 4, 4, requires_grad=True)
    out = masked_diffusion_loss(logits, tokens, z, torch.tensor([1.5]), 3, torch.tensor([[1, 1, 1, 0]]))
    out.loss.backward()
    grad_norm = logits.grad.norm(dim=-1)[0]
    assert bool(torch.isfinite(logits.grad).all())
    assert grad_norm[0] > 0 and grad_norm[2] > 0
    assert grad_norm[1] == 0 and grad_norm[3] == 0


# ----------------------------------------------------------------------------- AR baseline


def exact_next_token_logits(tokens: torch.Tensor) -> torch.Tensor:
    """Logits at l = log p(x_{l+1} | x_{<=l}) from the toy distribution."""
    batch, length = tokens.shape
    logits = torch.full((batch, length, TOY.vocab_size), float("-inf"), dtype=torch.float64)
    for position in range(length - 1):
        z = torch.full_like(tokens, TOY.mask_id)
        z[:, : position + 1] = tokens[:, : position + 1]
        logits[:, position, : TOY.num_symbols] = TOY.conditionals(z)[:, position + 1].log()
    return logits


def test_ar_loss_of_exact_conditionals_is_the_exact_nll():
    x = TOY.sample(50, seed=2)
    out = autoregressive_loss(exact_next_token_logits(x), x)
    first_token = TOY.conditionals(torch.full_like(x, TOY.mask_id))[torch.arange(50), 0, x[:, 0]]
    torch.testing.assert_close(out.per_sequence.double() - first_token.log(), TOY.nll(x))
    assert int(out.num_tokens) == 50 * 3


def test_ar_loss_ignores_padding():
    x = TOY.sample(2, seed=3)
    logits = torch.randn(2, 4, TOY.vocab_size)
    attention = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    out = autoregressive_loss(logits, x, attention)
    assert int(out.num_tokens) == 1 + 3
    assert bool((out.token_loss[0, 2:] == 0).all())


# ----------------------------------------------------------------------------- bad input


def test_logits_of_the_wrong_shape_are_rejected():
    with pytest.raises(ValueError, match=r"logits must have shape \[batch, length, vocab\] matching tokens \(2, 5\)"):
        subs_log_probs(torch.randn(2, 4, 6), torch.zeros(2, 5, dtype=torch.long), mask_id=5)


@pytest.mark.parametrize("mask_id", [-1, 6, 100])
def test_mask_id_outside_the_vocabulary_is_rejected(mask_id):
    with pytest.raises(ValueError, match=rf"mask_id {mask_id} must index the vocabulary \[0, 6\)"):
        subs_log_probs(torch.randn(2, 5, 6), torch.zeros(2, 5, dtype=torch.long), mask_id=mask_id)


def test_mismatched_loss_arguments_are_rejected():
    tokens = torch.zeros(2, 5, dtype=torch.long)
    logits = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"weights must have shape \[batch\] = \(2,\) or the tokens. \(2, 5\); got \(1,\)"):
        masked_diffusion_loss(logits, tokens, tokens, torch.ones(1), 3)
    with pytest.raises(ValueError, match=r"z_t shape \(2, 4\) differs from tokens shape \(2, 5\)"):
        masked_diffusion_loss(logits, tokens, tokens[:, :4], torch.ones(2), 3)
    with pytest.raises(ValueError, match=r"attention_mask must have the tokens' shape \(2, 5\)"):
        masked_diffusion_loss(logits, tokens, tokens, torch.ones(2), 3, torch.ones(2, 4))


def test_time_outside_unit_interval_is_rejected_by_the_weights():
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        nelbo_weights(CosineSchedule(), torch.tensor([1.5]))

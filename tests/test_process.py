import pytest
import torch

from mdlm_bio.diffusion import mask_tokens, sample_times


def test_antithetic_times_cover_every_stratum():
    batch, eps = 64, 1e-3
    t = sample_times(batch, sampling_eps=eps, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert t.min() >= eps and t.max() <= 1.0
    u = (t - eps) / (1 - eps)
    strata = torch.sort(torch.floor(u * batch)).values
    torch.testing.assert_close(strata, torch.arange(batch, dtype=torch.float64))


def test_antithetic_time_estimate_has_lower_variance():
    """Spreading one uniform over the batch estimates E[t^2] far better than iid draws."""
    def spread(antithetic: bool) -> float:
        gen = torch.Generator().manual_seed(0)
        means = [sample_times(16, antithetic=antithetic, generator=gen, dtype=torch.float64).pow(2).mean()
                 for _ in range(400)]
        return float(torch.stack(means).var())

    assert spread(antithetic=True) < 0.1 * spread(antithetic=False)


def test_discrete_times_lie_on_the_grid():
    t = sample_times(1000, discrete_steps=10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    steps = t * 10
    torch.testing.assert_close(steps, steps.round())
    assert set(steps.round().long().tolist()) == set(range(1, 11))


def test_masking_rate_matches_one_minus_alpha():
    tokens = torch.randint(0, 4, (4, 20000), generator=torch.Generator().manual_seed(0))
    alpha = torch.tensor([1.0, 0.75, 0.2, 0.0])
    z = mask_tokens(tokens, alpha, mask_id=4, generator=torch.Generator().manual_seed(1))
    rate = (z == 4).double().mean(dim=1)
    torch.testing.assert_close(rate, 1 - alpha.double(), atol=0.015, rtol=0)
    assert rate[0] == 0 and rate[3] == 1
    kept = z != 4
    assert torch.equal(z[kept], tokens[kept])


def test_masking_is_reproducible_from_a_seed():
    tokens = torch.zeros(3, 50, dtype=torch.long)
    alpha = torch.full((3,), 0.5)
    first = mask_tokens(tokens, alpha, 9, torch.Generator().manual_seed(5))
    second = mask_tokens(tokens, alpha, 9, torch.Generator().manual_seed(5))
    assert torch.equal(first, second)


def test_clean_tokens_containing_the_mask_id_are_rejected():
    with pytest.raises(ValueError, match="clean tokens must not contain the mask id 3"):
        mask_tokens(torch.tensor([[0, 3, 1]]), torch.tensor([0.5]), mask_id=3)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"tokens must have shape \[batch, length\]; got shape \(5,\)"):
        mask_tokens(torch.zeros(5, dtype=torch.long), torch.tensor([0.5]), mask_id=3)
    with pytest.raises(ValueError, match=r"alpha_t must have shape \[batch\] = \(2,\); got \(3,\)"):
        mask_tokens(torch.zeros(2, 5, dtype=torch.long), torch.full((3,), 0.5), mask_id=3)
    with pytest.raises(TypeError, match="tokens must be an integer tensor"):
        mask_tokens(torch.zeros(2, 5), torch.full((2,), 0.5), mask_id=3)


def test_alpha_outside_unit_interval_is_rejected():
    with pytest.raises(ValueError, match=r"alpha_t must lie in \[0, 1\]"):
        mask_tokens(torch.zeros(1, 5, dtype=torch.long), torch.tensor([1.2]), mask_id=3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"batch_size": 4, "sampling_eps": 1.0}, r"sampling_eps must lie in \[0, 1\)"),
        ({"batch_size": 4, "discrete_steps": 0}, "discrete_steps must be a positive integer"),
    ],
)
def test_bad_time_sampling_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_times(**kwargs)

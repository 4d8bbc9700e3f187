import functools

import pytest
import torch
from toy_distribution import ToyDistribution, chi_square_counts, chi_square_pvalue, default_toy, exact_schedule

from mdlm_bio.diffusion import (
    CosineSchedule,
    LogLinearSchedule,
    all_masked,
    ancestral_sample,
    autoregressive_sample,
    clamp_for_infilling,
    classifier_free_guidance,
    first_hitting_sample,
    guided_denoiser,
    sample_categorical,
    semi_autoregressive_sample,
    time_grid,
    top_p_filter,
)
from mdlm_bio.diffusion.samplers import gumbel_from_uniform

TOY = default_toy()
NUM_SAMPLES = 4000
P_THRESHOLD = 1e-3  # fixed seeds make every p-value deterministic


def prior(n: int = NUM_SAMPLES, toy: ToyDistribution = TOY) -> torch.Tensor:
    return all_masked(n, toy.length, toy.mask_id)


# ----------------------------------------------------------------------------- reproduce the distribution


@pytest.mark.parametrize("grid", ["uniform", "cosine"])
def test_ancestral_sampler_reproduces_the_distribution(grid):
    out = ancestral_sample(TOY.oracle(), prior(), exact_schedule(), TOY.mask_id, steps=512, grid=grid, generator=11)
    assert not bool((out.tokens == TOY.mask_id).any())
    assert chi_square_pvalue(out.tokens, TOY) > P_THRESHOLD
    assert out.num_calls <= 512


def test_one_step_sampler_is_factorised_and_the_check_detects_it():
    """A single step draws positions independently: the chi-square test must reject it."""
    out = ancestral_sample(TOY.oracle(), prior(), exact_schedule(), TOY.mask_id, steps=1, generator=11)
    assert out.num_calls == 1
    assert chi_square_pvalue(out.tokens, TOY) < 1e-6


def test_cached_sampler_gives_the_same_samples_with_fewer_calls():
    schedule = LogLinearSchedule()
    kwargs = dict(steps=200, generator=5)
    plain = ancestral_sample(TOY.oracle(), prior(4), schedule, TOY.mask_id, **kwargs)
    cached = ancestral_sample(TOY.oracle(), prior(4), schedule, TOY.mask_id, cache=True, **kwargs)
    assert torch.equal(plain.tokens, cached.tokens)
    # A new cached call only follows a step that unmasked something; the plain sampler
    # calls on every step until nothing is masked.
    assert cached.num_calls <= 4 * TOY.length < 100 < plain.num_calls


def test_cached_sampler_reruns_only_the_rows_that_changed():
    """Same samples as the plain sampler; each step after the first runs the network on exactly the rows revealed
    since their last call (counted from the plain sampler's inputs), and skips the call when none changed."""
    inputs: list[torch.Tensor] = []
    oracle = TOY.oracle()

    def recording(z, t):
        inputs.append(z.clone())
        return oracle(z, t)

    kwargs = dict(steps=200, generator=5)
    plain = ancestral_sample(recording, prior(8), LogLinearSchedule(), TOY.mask_id, **kwargs)
    cached = ancestral_sample(TOY.oracle(), prior(8), LogLinearSchedule(), TOY.mask_id, cache=True, **kwargs)
    assert torch.equal(plain.tokens, cached.tokens)
    changed_rows = [int((now != before).any(-1).sum()) for before, now in zip(inputs, inputs[1:])]
    assert cached.row_calls == 8 + sum(changed_rows)
    assert cached.num_calls == 1 + sum(1 for rows in changed_rows if rows)
    assert plain.row_calls == 8 * plain.num_calls and cached.row_calls < 8 * cached.num_calls


def test_cached_sampler_reproduces_the_distribution():
    out = ancestral_sample(TOY.oracle(), prior(), exact_schedule(), TOY.mask_id, steps=512, cache=True, generator=12)
    assert chi_square_pvalue(out.tokens, TOY) > P_THRESHOLD


def test_first_hitting_sampler_reproduces_the_distribution_in_at_most_l_calls():
    out = first_hitting_sample(TOY.oracle(), prior(), CosineSchedule(), TOY.mask_id, generator=13)
    assert out.num_calls == TOY.length
    assert not bool((out.tokens == TOY.mask_id).any())
    assert chi_square_pvalue(out.tokens, TOY) > P_THRESHOLD


def test_first_hitting_times_decrease_and_follow_the_event_law():
    """With one masked position at t=1 the event time s has 1 - alpha(s) ~ U(0, 1)."""
    seen = []

    def recording_oracle(z, t):
        seen.append(t.clone())
        return TOY.oracle()(z, t)

    schedule = CosineSchedule()
    start = TOY.sample(NUM_SAMPLES, seed=1)
    start[:, 2] = TOY.mask_id
    first_hitting_sample(recording_oracle, start, schedule, TOY.mask_id, generator=3)
    (times,) = seen
    one_minus_alpha = 1 - schedule.alpha(times.double())
    counts = torch.histc(one_minus_alpha, bins=10, min=0, max=1)
    assert chi_square_counts(counts, torch.full((10,), 0.1, dtype=torch.float64)) > P_THRESHOLD


def test_samplers_are_reproducible_from_a_seed():
    for sampler in (
        functools.partial(ancestral_sample, steps=20),
        first_hitting_sample,
    ):
        a = sampler(TOY.oracle(), prior(32), exact_schedule(), TOY.mask_id, generator=42)
        b = sampler(TOY.oracle(), prior(32), exact_schedule(), TOY.mask_id, generator=torch.Generator().manual_seed(42))
        assert torch.equal(a.tokens, b.tokens)


# ----------------------------------------------------------------------------- infilling


@pytest.mark.parametrize("sampler", ["ancestral", "first_hitting"])
def test_infilling_keeps_clamped_tokens_and_samples_the_conditional(sampler):
    reference = torch.tensor([[0, 2, 0, 1]]).repeat(NUM_SAMPLES, 1)
    clamp = torch.tensor([[False, True, False, True]]).repeat(NUM_SAMPLES, 1)
    z = clamp_for_infilling(reference, clamp, TOY.mask_id)
    if sampler == "ancestral":
        out = ancestral_sample(TOY.oracle(), z, exact_schedule(), TOY.mask_id, steps=256, generator=21)
    else:
        out = first_hitting_sample(TOY.oracle(), z, exact_schedule(), TOY.mask_id, generator=21)
        assert out.num_calls == 2
    assert torch.equal(out.tokens[clamp], reference[clamp])
    # Exact conditional over the 9 fillings of positions 0 and 2.
    consistent = (TOY.sequences[:, 1] == 2) & (TOY.sequences[:, 3] == 1)
    conditional = TOY.probs[consistent] / TOY.probs[consistent].sum()
    cell = out.tokens[:, 0] * 3 + out.tokens[:, 2]
    counts = torch.bincount(cell, minlength=9).double()
    order = TOY.sequences[consistent][:, 0] * 3 + TOY.sequences[consistent][:, 2]
    assert chi_square_counts(counts[order], conditional) > P_THRESHOLD


# ----------------------------------------------------------------------------- semi-autoregressive


MARKOV = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.25, 0.25]], dtype=torch.float64)


def test_semi_autoregressive_generation_continues_a_markov_chain_exactly():
    """Windows of a Markov chain have exact oracle conditionals, so semi-AR output of any
    length must be the chain itself: check bigrams across window seams."""
    toy = ToyDistribution.markov_chain(MARKOV, length=4)
    block = functools.partial(first_hitting_sample, toy.oracle(), schedule=exact_schedule(), mask_id=toy.mask_id,
                              generator=torch.Generator().manual_seed(8))
    out = semi_autoregressive_sample(block, batch_size=NUM_SAMPLES, length=11, block_length=4, stride=2,
                                     mask_id=toy.mask_id)
    assert out.tokens.shape == (NUM_SAMPLES, 11)
    assert out.num_calls == 11  # first hitting: one call per generated token, windows of 4, 2, 2, 2, 1
    stationary = toy.probs.view(3, 3, 3, 3).sum(dim=(1, 2, 3))
    joint = stationary[:, None] * MARKOV
    for left in (3, 5, 8, 9):  # pairs that straddle or sit inside later windows
        pair = out.tokens[:, left] * 3 + out.tokens[:, left + 1]
        assert chi_square_counts(torch.bincount(pair, minlength=9).double(), joint.flatten()) > P_THRESHOLD


def test_semi_autoregressive_generation_keeps_the_prompt():
    prompt = torch.tensor([[2, 1]]).repeat(8, 1)
    block = functools.partial(ancestral_sample, TOY.oracle(), schedule=exact_schedule(), mask_id=TOY.mask_id,
                              steps=16, generator=1)
    out = semi_autoregressive_sample(block, batch_size=8, length=9, block_length=4, stride=3, mask_id=TOY.mask_id,
                                     prompt=prompt)
    assert out.tokens.shape == (8, 9)
    assert torch.equal(out.tokens[:, :2], prompt)
    assert not bool((out.tokens == TOY.mask_id).any())


def causal_oracle(toy: ToyDistribution):
    """The exact causal LM of the toy: logits at position j are log p(x_{j+1} | x_{<=j})."""

    def network(tokens: torch.Tensor) -> torch.Tensor:
        batch, length = tokens.shape
        logits = torch.zeros(batch, length, toy.num_symbols, dtype=torch.float64)
        for j in range(min(length, toy.length - 1)):
            z = torch.cat([tokens[:, : j + 1], all_masked(batch, toy.length - j - 1, toy.mask_id)], dim=1)
            logits[:, j] = toy.conditionals(z)[:, j + 1].log()
        return logits

    return network


def test_autoregressive_sampler_reproduces_the_distribution_after_a_prompt():
    prompt = TOY.sample(NUM_SAMPLES, seed=3)[:, :1]  # x_0 from its true marginal
    out = autoregressive_sample(causal_oracle(TOY), prompt, TOY.length, generator=5)
    assert out.num_calls == TOY.length - 1
    assert torch.equal(out.tokens[:, :1], prompt)
    assert chi_square_pvalue(out.tokens, TOY) > P_THRESHOLD


def test_autoregressive_sampler_rejects_an_empty_prompt_or_no_room():
    network = causal_oracle(TOY)
    with pytest.raises(ValueError, match="prompt must hold at least one token"):
        autoregressive_sample(network, torch.zeros(2, 0, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="length=2 must exceed the prompt length 2"):
        autoregressive_sample(network, torch.zeros(2, 2, dtype=torch.long), 2)


# ----------------------------------------------------------------------------- categorical draws


def test_float64_reaches_tail_tokens_that_float32_cannot():
    """Gumbel noise from a float32 uniform is capped near 16.6 (and floored near -2.8), so a token
    25 nats under the leader is unreachable for every possible draw; float64 reaches it."""
    log_probs = torch.tensor([0.0, -25.0])
    for dtype, reachable in ((torch.float32, False), (torch.float64, True)):
        largest_below_one = torch.nextafter(torch.tensor(1.0, dtype=dtype), torch.tensor(0.0, dtype=dtype))
        smallest_positive = torch.tensor(torch.finfo(dtype).tiny, dtype=dtype)
        best_for_tail = torch.stack([smallest_positive, largest_below_one])
        noise = gumbel_from_uniform(best_for_tail)
        winner = int((log_probs.to(dtype) + noise).argmax())
        assert winner == int(reachable), dtype
    assert float(gumbel_from_uniform(torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)))) < 17.0
    assert float(gumbel_from_uniform(torch.nextafter(torch.tensor(1.0, dtype=torch.float64),
                                                     torch.tensor(0.0, dtype=torch.float64)))) > 36.0


def test_float64_categorical_matches_a_peaked_distribution():
    probs = torch.tensor([0.9, 0.06, 0.03, 0.01], dtype=torch.float64)
    draws = sample_categorical(probs.log().expand(20000, 4), torch.Generator().manual_seed(0))
    assert chi_square_counts(torch.bincount(draws, minlength=4).double(), probs) > P_THRESHOLD


def test_top_p_keeps_the_nucleus_and_renormalises():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    filtered = top_p_filter(probs.log(), 0.75).exp()
    torch.testing.assert_close(filtered, torch.tensor([0.625, 0.375, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(top_p_filter(probs.log(), 0.1).exp(), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    draws = sample_categorical(probs.log().expand(2000, 4), torch.Generator().manual_seed(0), top_p=0.75)
    assert set(draws.tolist()) == {0, 1}


def test_greedy_final_step_takes_the_argmax():
    out = ancestral_sample(TOY.oracle(), prior(4), exact_schedule(), TOY.mask_id, steps=1, greedy_final=True,
                           generator=0)
    marginals = TOY.conditionals(prior(1))[0]
    assert torch.equal(out.tokens, marginals.argmax(-1).expand(4, -1))


def test_cosine_grid_follows_cosine_alpha_levels():
    schedule = LogLinearSchedule(eps=0.0)
    grid = time_grid(schedule, 8, "cosine")
    expected_alpha = CosineSchedule().alpha(torch.linspace(1, 0, 9, dtype=torch.float64))
    torch.testing.assert_close(schedule.alpha(grid), expected_alpha)
    assert grid[0] == 1 and grid[-1] == 0 and bool((grid[1:] < grid[:-1]).all())


# ----------------------------------------------------------------------------- guidance


def test_guidance_formula():
    cond = torch.tensor([[[0.6, 0.3, 0.1]]]).log()
    uncond = torch.tensor([[[0.2, 0.4, 0.4]]]).log()
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 1.0).exp(), cond.exp())
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 0.0).exp(), uncond.exp())
    sharpened = torch.tensor([0.6**2 / 0.2, 0.3**2 / 0.4, 0.1**2 / 0.4])
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 2.0).exp()[0, 0], sharpened / sharpened.sum())


def test_guided_sampling_with_weight_one_samples_the_condition():
    other = ToyDistribution.random(seed=99)
    denoise = guided_denoiser(TOY.oracle(), other.oracle(), weight=1.0)
    out = first_hitting_sample(denoise, prior(), exact_schedule(), TOY.mask_id, generator=4)
    assert chi_square_pvalue(out.tokens, TOY) > P_THRESHOLD
    assert chi_square_pvalue(out.tokens, other) < 1e-6


# ----------------------------------------------------------------------------- bad input


def test_bad_sampler_arguments_are_rejected():
    oracle, schedule = TOY.oracle(), exact_schedule()
    with pytest.raises(ValueError, match="steps must be a positive integer; got 0"):
        ancestral_sample(oracle, prior(2), schedule, TOY.mask_id, steps=0)
    with pytest.raises(ValueError, match=r"z_init must have shape \[batch, length\]; got shape \(4,\)"):
        ancestral_sample(oracle, torch.full((4,), TOY.mask_id), schedule, TOY.mask_id, steps=4)
    with pytest.raises(ValueError, match=r"top_p must lie in \(0, 1\]; got 0.0"):
        first_hitting_sample(oracle, prior(2), schedule, TOY.mask_id, top_p=0.0)
    with pytest.raises(ValueError, match="unknown time grid 'log'"):
        ancestral_sample(oracle, prior(2), schedule, TOY.mask_id, steps=4, grid="log")
    with pytest.raises(ValueError, match=r"mask_id 7 must index the vocabulary \[0, 4\)"):
        ancestral_sample(oracle, all_masked(2, 4, 7), schedule, 7, steps=4)


def test_network_output_of_the_wrong_shape_is_rejected():
    def broken(z, t):
        return torch.zeros(z.shape[0], z.shape[1] + 1, 4)

    with pytest.raises(ValueError, match=r"logits must have shape \[batch, length, vocab\] matching tokens \(2, 4\)"):
        first_hitting_sample(broken, prior(2), exact_schedule(), TOY.mask_id)


def test_bad_semi_autoregressive_arguments_are_rejected():
    block = functools.partial(first_hitting_sample, TOY.oracle(), schedule=exact_schedule(), mask_id=TOY.mask_id)
    with pytest.raises(ValueError, match=r"stride must lie in \[1, block_length=4\]; got 5"):
        semi_autoregressive_sample(block, batch_size=2, length=8, block_length=4, stride=5, mask_id=TOY.mask_id)
    with pytest.raises(ValueError, match="prompt length 4 must be shorter than both length=8 and block_length=4"):
        semi_autoregressive_sample(block, batch_size=2, length=8, block_length=4, stride=2, mask_id=TOY.mask_id,
                                   prompt=torch.zeros(2, 4, dtype=torch.long))


def test_guidance_rejects_mismatched_logits():
    with pytest.raises(ValueError, match="conditional and unconditional logits differ in shape"):
        classifier_free_guidance(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), 2.0)

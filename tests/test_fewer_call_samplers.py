"""ReMDM reproduces the toy distribution with an exact denoiser and reduces to the ancestral sampler at eta = 0;
confidence decoding finds a deterministic distribution's mode in ceil(L / k) calls. Both count calls exactly and
never touch the tokens they were given."""

from __future__ import annotations

import math
import re

import pytest
import torch
from Bio import SeqIO
from dna_runs import error_of
from toy_distribution import ToyDistribution, chi_square_counts, chi_square_pvalue, default_toy, exact_schedule

from mdlm_bio.cli import main
from mdlm_bio.diffusion import LogLinearSchedule, all_masked, ancestral_sample, clamp_for_infilling
from mdlm_bio.diffusion.confidence import confidence_sample, still_masked
from mdlm_bio.diffusion.confidence_sampler import ConfidenceSampler
from mdlm_bio.diffusion.remasking import Remasking

TOY = default_toy()
NUM_SAMPLES = 4000
P_THRESHOLD = 1e-3  # fixed seeds make every p-value deterministic


def prior(n: int = NUM_SAMPLES, toy: ToyDistribution = TOY) -> torch.Tensor:
    return all_masked(n, toy.length, toy.mask_id)


class Recorder:
    """A denoiser that counts its calls and rows and keeps every input it saw."""

    def __init__(self, denoiser):
        self.denoiser, self.inputs = denoiser, []

    def __call__(self, z, t):
        self.inputs.append(z.clone())
        return self.denoiser(z, t)


# ----------------------------------------------------------------------------- ReMDM


@pytest.mark.parametrize("remasking", [Remasking("cap", 0.005), Remasking("cap", 0.02), Remasking("rescale", 0.1),
                                       Remasking("rescale", 0.5), Remasking("loop", 0.02)])
def test_remdm_reproduces_the_distribution_with_an_exact_denoiser(remasking):
    recorder = Recorder(TOY.oracle())
    out = ancestral_sample(recorder, prior(), exact_schedule(), TOY.mask_id, steps=512, remasking=remasking, generator=11)
    assert not bool((out.tokens == TOY.mask_id).any())
    assert chi_square_pvalue(out.tokens, TOY) > P_THRESHOLD
    assert out.num_calls == len(recorder.inputs) and out.row_calls == sum(len(z) for z in recorder.inputs)
    # it did remask: some position revealed at one call is masked again at a later one
    revealed = [(z != TOY.mask_id) for z in recorder.inputs]
    assert any(bool((before & ~after).any()) for before, after in zip(revealed, revealed[1:]))


@pytest.mark.parametrize("remasking, steps", [(Remasking("rescale", 1.0), 8), (Remasking("loop", 0.1), 512)])
def test_the_check_rejects_remdm_steps_that_reveal_many_positions_at_once(remasking, steps):
    """Each step reveals positions independently from their marginals, exact only when a step reveals at most
    one; a loop at eta = 0.1 reveals 90% of the masked positions per step, and the test must see it."""
    out = ancestral_sample(TOY.oracle(), prior(), exact_schedule(), TOY.mask_id, steps=steps, remasking=remasking,
                           generator=11)
    assert chi_square_pvalue(out.tokens, TOY) < 1e-6


@pytest.mark.parametrize("strategy", ["cap", "rescale"])
@pytest.mark.parametrize("cache", [False, True])
def test_remdm_at_eta_zero_is_the_ancestral_sampler_draw_for_draw(strategy, cache):
    kwargs = dict(steps=64, cache=cache, top_p=0.9, generator=5)
    plain = ancestral_sample(TOY.oracle(smoothing=0.2), prior(64), LogLinearSchedule(), TOY.mask_id, **kwargs)
    remdm = ancestral_sample(TOY.oracle(smoothing=0.2), prior(64), LogLinearSchedule(), TOY.mask_id,
                             remasking=Remasking(strategy, 0.0), **kwargs)
    assert torch.equal(plain.tokens, remdm.tokens)
    assert (plain.num_calls, plain.row_calls) == (remdm.num_calls, remdm.row_calls)


def test_remdm_never_remasks_the_tokens_it_was_given_and_samples_the_conditional():
    reference = torch.tensor([[0, 2, 0, 1]]).repeat(NUM_SAMPLES, 1)
    clamp = torch.tensor([[False, True, False, True]]).repeat(NUM_SAMPLES, 1)
    recorder = Recorder(TOY.oracle())
    out = ancestral_sample(recorder, clamp_for_infilling(reference, clamp, TOY.mask_id), exact_schedule(),
                           TOY.mask_id, steps=256, remasking=Remasking("loop", 0.02), generator=21)
    assert all(torch.equal(z[clamp], reference[clamp]) for z in recorder.inputs)
    assert torch.equal(out.tokens[clamp], reference[clamp])
    consistent = (TOY.sequences[:, 1] == 2) & (TOY.sequences[:, 3] == 1)
    conditional = TOY.probs[consistent] / TOY.probs[consistent].sum()
    order = TOY.sequences[consistent][:, 0] * 3 + TOY.sequences[consistent][:, 2]
    counts = torch.bincount(out.tokens[:, 0] * 3 + out.tokens[:, 2], minlength=9).double()
    assert chi_square_counts(counts[order], conditional) > P_THRESHOLD


def test_the_loop_holds_alpha_at_alpha_on_and_tells_the_network_that_level():
    seen = []

    def spy(z, t):
        seen.append(float(t[0]))
        return TOY.oracle()(z, t)

    remasking = Remasking("loop", 0.02, t_on=0.5, t_off=0.25, alpha_on=0.8)
    ancestral_sample(spy, prior(8), LogLinearSchedule(eps=0.0), TOY.mask_id, steps=8, remasking=remasking,
                     generator=0)
    # grid 1, 7/8, ..., 0; steps starting at t = 0.5 and 0.375 loop at alpha 0.8, i.e. t = 0.2 for log-linear
    assert [levels.alpha_t for levels in (remasking.levels(LogLinearSchedule(eps=0.0),
                                                           torch.linspace(1, 0, 9, dtype=torch.float64), step)
                                          for step in (4, 5))] == [0.8, 0.8]
    assert seen[4:6] == pytest.approx([0.2, 0.2])


@pytest.mark.parametrize("arguments, message", [
    (dict(strategy="sometimes"), re.escape("remasking strategy must be one of ['cap', 'rescale', 'loop'], not 'sometimes'")),
    (dict(strategy="cap", eta=1.5), r"eta must lie in \[0, 1\]; got 1.5"),
    (dict(strategy="loop", t_on=0.1, t_off=0.2), "the loop needs 0 < t_off < t_on < 1; got t_off=0.2, t_on=0.1"),
    (dict(strategy="loop", alpha_on=1.0), r"alpha_on must lie in \(0, 1\); got 1.0"),
    (dict(strategy="loop", eta=0.5), r"eta=0.5 exceeds \(1 - alpha_on\) / alpha_on = 0.1111"),
])
def test_bad_remasking_settings_are_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        Remasking(**arguments)


# ----------------------------------------------------------------------------- confidence decoding


def deterministic_toy(length: int = 6) -> tuple[ToyDistribution, torch.Tensor]:
    probs = torch.zeros(2**length, dtype=torch.float64)
    probs[37] = 1.0
    toy = ToyDistribution.from_probs(probs, num_symbols=2, length=length)
    return toy, toy.sequences[37]


@pytest.mark.parametrize("k", [1, 2, 4, 6])
@pytest.mark.parametrize("score", ["margin", "entropy", "probability"])
def test_confidence_decoding_returns_a_deterministic_distributions_mode_in_ceil_l_over_k_calls(k, score):
    toy, mode = deterministic_toy()
    steps = math.ceil(toy.length / k)
    out = confidence_sample(toy.oracle(), prior(3, toy), exact_schedule(), toy.mask_id, steps=steps,
                            score=score, reveal="linear", generator=0)
    assert out.num_calls == steps and out.row_calls == 3 * steps
    assert torch.equal(out.tokens, mode.expand(3, -1))


def test_a_threshold_reveals_every_sure_position_in_one_call():
    toy, mode = deterministic_toy()
    out = confidence_sample(toy.oracle(), prior(2, toy), exact_schedule(), toy.mask_id, steps=1,
                            threshold=0.9, generator=0)
    assert out.num_calls == 1 and torch.equal(out.tokens, mode.expand(2, -1))


def test_the_cosine_schedule_reveals_few_positions_first_and_all_by_the_last_call():
    initial = torch.tensor([100])
    left = [int(still_masked(initial, call, 4, "cosine")) for call in range(1, 5)]
    assert left == [92, 70, 38, 0]


def test_confidence_decoding_reveals_the_surest_position_first_and_keeps_given_tokens():
    reference = torch.tensor([[0, 2, 0, 1]]).repeat(16, 1)
    clamp = torch.tensor([[False, True, False, True]]).repeat(16, 1)
    recorder = Recorder(TOY.oracle())
    out = confidence_sample(recorder, clamp_for_infilling(reference, clamp, TOY.mask_id), exact_schedule(),
                            TOY.mask_id, steps=2, score="margin", reveal="linear", generator=3)
    assert out.num_calls == 2 and torch.equal(out.tokens[clamp], reference[clamp])
    assert not bool((out.tokens == TOY.mask_id).any())
    top = TOY.conditionals(recorder.inputs[0][:1])[0, [0, 2]].topk(2, dim=-1).values  # positions 0 and 2
    margins = top[:, 0] - top[:, 1]
    surest, other = (0, 2) if margins[0] > margins[1] else (2, 0)
    assert bool((recorder.inputs[1][:, surest] != TOY.mask_id).all())
    assert bool((recorder.inputs[1][:, other] == TOY.mask_id).all())


@pytest.mark.parametrize("arguments, message", [
    (dict(confidence="luck"), "confidence sampler: confidence must be 'margin' or 'entropy' or 'probability', "
                              "not 'luck'"),
    (dict(reveal="exponential"), "confidence sampler: reveal must be 'cosine' or 'linear', not 'exponential'"),
    (dict(threshold=0.0), "confidence threshold must lie in (0, 1]; got 0.0"),
    (dict(steps=0), "steps must be a positive integer; got 0"),
])
def test_bad_confidence_settings_are_rejected(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ConfidenceSampler(**arguments)


# ----------------------------------------------------------------------------- through the CLI


@pytest.mark.parametrize("options, header", [
    (["--sampler", "remdm", "--steps", "20"], "sampler=remdm steps=20 remask=loop eta=0.02 t_on=0.55 t_off=0.05 alpha_on=0.9"),
    (["--sampler", "remdm", "--steps", "20", "--remask", "cap", "--eta", "0.05"], "sampler=remdm steps=20 remask=cap eta=0.05"),
    (["--sampler", "confidence", "--steps", "8"], "sampler=confidence steps=8 confidence=margin reveal=cosine"),
    (["--sampler", "confidence", "--threshold", "0.5", "--confidence", "entropy"],
     "sampler=confidence steps=128 confidence=entropy threshold=0.5"),
])
def test_sample_and_infill_run_both_samplers_beyond_the_context_with_a_prompt(run_dir, tmp_path, capsys, options,
                                                                              header):
    prompt, out = tmp_path / "prompt.fa", tmp_path / "gen.fa"
    prompt.write_text(">p\nACGTACGTAAAATTTT\n")
    main(["sample", "--ckpt", str(run_dir), "--num", "3", "--length", "100", "--prompt", str(prompt), "--out", str(out),
          *options])
    records = list(SeqIO.parse(out, "fasta"))
    assert [len(r.seq) for r in records] == [100] * 3 and all(set(str(r.seq)) <= set("ACGT") for r in records)
    assert all(str(r.seq).startswith("ACGTACGTAAAATTTT") for r in records) and header in records[0].description
    source = tmp_path / "gap.fa"
    source.write_text(">chrA\n" + "ACGT" * 10 + "N" * 30 + "TTGCA" * 8 + "\n")
    main(["infill", "--ckpt", str(run_dir), str(source), "--out", str(tmp_path / "filled.fa"), *options])
    filled = str(next(SeqIO.parse(tmp_path / "filled.fa", "fasta")).seq)
    assert "N" not in filled and filled[:40] == "ACGT" * 10 and filled[70:] == "TTGCA" * 8


def test_confidence_decoding_makes_the_calls_it_was_allowed(run_dir, tmp_path, capsys):
    main(["sample", "--ckpt", str(run_dir), "--num", "3", "--sampler", "confidence", "--steps", "8",
          "--out", str(tmp_path / "gen.fa")])
    assert "(8 network calls)" in capsys.readouterr().out


@pytest.mark.parametrize("options, message", [
    (["--sampler", "cached", "--eta", "0.1", "--t-on", "0.5"], "eta, t_on: remasking settings"),
    (["--sampler", "remdm", "--remask", "cap", "--t-on", "0.5"], "t_on: settings of --remask loop, not cap"),
    (["--sampler", "remdm", "--threshold", "0.9"], "--threshold: an option of --sampler confidence, not of remdm"),
    (["--sampler", "first-hitting", "--steps", "9"], "--steps: an option of --sampler ancestral, cached, remdm, "
                                                      "confidence, udlm, not of first-hitting"),
    (["--sampler", "remdm", "--remask", "loop", "--eta", "0.5"], "eta=0.5 exceeds (1 - alpha_on) / alpha_on = 0.1111"),
    (["--sampler", "confidence", "--threshold", "1.5"], "confidence threshold must lie in (0, 1]; got 1.5"),
])
def test_sampler_options_for_another_sampler_or_out_of_range_are_errors(run_dir, tmp_path, capsys, options, message):
    assert message in error_of(capsys, ["sample", "--ckpt", str(run_dir), "--out", str(tmp_path / "x.fa"), *options])

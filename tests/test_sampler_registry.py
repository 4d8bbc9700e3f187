"""A sampler is one object: a new one with an option of its own, written and registered in this file, runs through
the engine's `generate` and through the command line without any package file changing; options are declared
once and checked where the object is built."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from Bio import SeqIO
from dna_runs import error_of
from toy_distribution import ToyDistribution

from mdlm_bio.cli import build_parser, main
from mdlm_bio.cli.sampling import SamplerDefault, build_sampler
from mdlm_bio.diffusion import AncestralSampler, LogLinearSchedule, generate
from mdlm_bio.diffusion.denoiser import SampleOutput
from mdlm_bio.diffusion.objectives import subs_at_masked
from mdlm_bio.diffusion.sampler import Sampler, option
from mdlm_bio.diffusion.sampler_registry import SAMPLERS, make_sampler, register


@dataclass(frozen=True)
class LeftToRightSampler(Sampler):
    """Fills masked positions left to right, the most likely token first: a toy, not exact."""

    name: ClassVar[str] = "left-to-right"
    per_call: int = option(1, "masked positions filled per network call")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.per_call < 1:
            raise ValueError(f"per_call must be positive; got {self.per_call}")

    def sample(self, denoiser, z_init, schedule, mask_id, generator=None) -> SampleOutput:
        z, calls = z_init.clone(), 0
        while bool((masked := z == mask_id).any()):
            take = masked & (masked.cumsum(dim=-1) <= self.per_call)
            logits = denoiser(z, torch.full(z.shape[:1], 0.5))
            z[take] = subs_at_masked(logits[take], mask_id).argmax(dim=-1)
            calls += 1
        return SampleOutput(z, calls, calls * len(z))


@pytest.fixture
def left_to_right():
    register(LeftToRightSampler)
    yield
    del SAMPLERS[LeftToRightSampler.name]


def deterministic_toy() -> tuple[ToyDistribution, torch.Tensor]:
    probs = torch.zeros(2**6, dtype=torch.float64)
    probs[45] = 1.0
    toy = ToyDistribution.from_probs(probs, num_symbols=2, length=6)
    return toy, toy.sequences[45]


def test_a_sampler_defined_here_runs_through_generate(left_to_right):
    toy, mode = deterministic_toy()
    out = generate(toy.oracle(), LogLinearSchedule(), make_sampler("left-to-right", per_call=4), context=6,
                   mask_id=toy.mask_id, num=5, length=6, seed=0, batch_size=5)
    assert torch.equal(out.tokens, mode.expand(5, -1)) and out.num_calls == 2  # 4 positions, then the last 2
    assert make_sampler("left-to-right", per_call=4).describe() == "sampler=left-to-right per_call=4"


def test_a_sampler_defined_here_gets_its_flag_and_refuses_others(left_to_right):
    parser = build_parser()
    options = vars(parser.parse_args(["sample", "--ckpt", "run", "--sampler", "left-to-right", "--per-call", "3"]))
    assert build_sampler(options, SamplerDefault("first-hitting")) == LeftToRightSampler(per_call=3)
    assert "sampler" not in options and "per_call" not in options  # what remains goes to the task
    stray = vars(parser.parse_args(["sample", "--ckpt", "run", "--sampler", "ancestral", "--per-call", "3"]))
    with pytest.raises(ValueError, match="--per-call: an option of --sampler left-to-right, not of ancestral"):
        build_sampler(stray, SamplerDefault("first-hitting"))
    with pytest.raises(ValueError, match="per_call must be positive; got 0"):
        build_sampler(vars(parser.parse_args(["sample", "--ckpt", "r", "--sampler", "left-to-right", "--per-call", "0"])),
                      SamplerDefault("first-hitting"))


def test_a_sampler_defined_here_samples_fasta_through_the_command_line(left_to_right, run_dir, tmp_path, capsys):
    out = tmp_path / "ltr.fa"
    main(["sample", "--ckpt", str(run_dir), "--sampler", "left-to-right", "--per-call", "16", "--num", "2",
          "--length", "32", "--out", str(out)])
    records = list(SeqIO.parse(out, "fasta"))
    assert [len(r.seq) for r in records] == [32, 32] and "sampler=left-to-right per_call=16" in records[0].description
    assert "(2 network calls)" in capsys.readouterr().out  # one window of 32 bases (the context is 64), 16 a call


def test_without_sampler_the_commands_default_takes_the_options_given():
    parser = build_parser()
    genppl = vars(parser.parse_args(["eval-genppl", "--ckpt", "run", "--top-p", "0.9"]))
    assert build_sampler(genppl, SamplerDefault("cached", {"steps": 1000})) == AncestralSampler(
        steps=1000, cache=True, top_p=0.9)
    chosen = vars(parser.parse_args(["eval-genppl", "--ckpt", "run", "--sampler", "first-hitting"]))
    assert build_sampler(chosen, SamplerDefault("cached", {"steps": 1000})).describe() == "sampler=first-hitting"


@dataclass(frozen=True)
class SeedSampler(LeftToRightSampler):
    name: ClassVar[str] = "seeded"
    seed: int = option(0, "clashes with the command's --seed")


@dataclass(frozen=True)
class ListSampler(LeftToRightSampler):
    name: ClassVar[str] = "listed"
    widths: list = option(None, "not a scalar")


def test_options_the_command_line_cannot_offer_are_refused_where_they_are_declared():
    with pytest.raises(TypeError, match="option 'widths': its type must be int, float, bool, str or a Literal"):
        register(ListSampler)
    register(SeedSampler)
    try:
        with pytest.raises(TypeError, match="sampler option --seed \\(seeded\\) clashes with an option of mdlm-bio "
                                            "eval-genppl; rename it"):
            build_parser()
    finally:
        del SAMPLERS[SeedSampler.name]


def test_sampler_settings_are_checked_when_the_object_is_built(capsys, tmp_path):
    with pytest.raises(ValueError, match="ancestral sampler: steps must be int, not 2.5"):
        AncestralSampler(steps=2.5)
    with pytest.raises(ValueError, match=r"unknown sampler 'gibbs'; choose from \['ancestral', 'cached'"):
        make_sampler("gibbs")
    err = error_of(capsys, ["sample", "--ckpt", str(tmp_path / "no-run"), "--sampler", "confidence", "--eta", "0.1"])
    assert "mdlm-bio sample: error: --eta: an option of --sampler ancestral, cached, remdm, not of confidence" in err
    assert isinstance(build_parser(), argparse.ArgumentParser)

"""The report's discriminator: separable sets score 1, indistinguishable ones about 0.5, and the report's rows
read as they should on a real genome."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from mdlm_bio.dna.discriminator import KS, Discrimination, discriminate, kmer_features
from mdlm_bio.dna.fasta import read_fasta, write_fasta
from mdlm_bio.dna.metrics import kmer_spectrum
from mdlm_bio.dna.report import generation_report
from mdlm_bio.dna.tokenizer import A, N, T, decode

LAMBDA = Path(str(files("mdlm_bio") / "data" / "lambda_virus.fa.gz"))


def uniform(count: int, length: int, seed: int, low: int = A, high: int = T) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(low, high + 1, size=length).astype(np.uint8) for _ in range(count)]


def test_features_are_each_sequences_kmer_frequencies():
    sequences = uniform(3, 50, seed=0)
    features = kmer_features(sequences)
    assert features.shape == (3, sum(4**k for k in KS)) == (3, 340)
    start = 0
    for k in KS:  # each block is that sequence's own k-mer spectrum
        np.testing.assert_allclose(features[1, start : start + 4**k], kmer_spectrum([sequences[1]], k))
        start += 4**k


def test_a_sequence_without_a_clean_kmer_gives_zero_features():
    only_n = np.full(10, N, np.uint8)
    assert not kmer_features([only_n]).any()


def test_separable_sets_are_told_apart_perfectly():
    """A/C-only sequences against G/T-only ones: the 1-mer features alone separate them."""
    low, high = uniform(12, 80, seed=1, high=A + 1), uniform(12, 80, seed=2, low=T - 1)
    assert discriminate(low, high) == Discrimination(auroc=1.0, f1=1.0, folds=5, sequences=12)


def test_indistinguishable_sets_score_about_one_half():
    result = discriminate(uniform(300, 200, seed=3), uniform(300, 200, seed=4))
    assert abs(result.auroc - 0.5) < 0.08


def test_scores_are_seeded():
    candidates, reference = uniform(20, 100, seed=5), uniform(20, 100, seed=6)
    assert discriminate(candidates, reference, seed=1) == discriminate(candidates, reference, seed=1)


def test_too_few_sequences_is_refused():
    with pytest.raises(ValueError, match="a discriminator needs at least 2 sequences of each kind, "
                                         "got 1 candidates and 5 reference windows"):
        discriminate(uniform(1, 50, seed=0), uniform(5, 50, seed=1))


def test_report_rows_read_floor_generated_ceiling_on_a_real_genome(tmp_path):
    """Real lambda windows as the 'generated' set score near the floor, uniform random DNA near the ceiling."""
    genome = next(read_fasta(LAMBDA)).tokens
    starts = np.random.default_rng(7).integers(0, genome.size - 300, 60)
    generated = tmp_path / "gen.fa"
    write_fasta([(f"s{i}", "", decode(genome[s : s + 300])) for i, s in enumerate(starts)], generated)
    report = generation_report(generated, LAMBDA, tmp_path / "out")
    rows = report["discriminator"]
    assert set(rows) == {"generated", "reference_windows", "uniform_random"}
    assert rows["uniform_random"]["auroc"] > 0.95
    assert rows["generated"]["auroc"] < 0.75 and rows["reference_windows"]["auroc"] < 0.75
    assert rows["generated"]["sequences"] == 60 and rows["generated"]["folds"] == 5
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| discriminator AUROC | F1 |" in markdown and "**discriminator AUROC / F1**" in markdown


def test_report_with_one_generated_sequence_has_no_discriminator(tmp_path):
    generated = tmp_path / "gen.fa"
    write_fasta([("only", "", "ACGTACGTACGTAAAT")], generated)
    report = generation_report(generated, LAMBDA, tmp_path / "out")
    assert report["discriminator"] == {"generated": None, "reference_windows": None, "uniform_random": None}
    assert "| generated |" in (tmp_path / "out" / "report.md").read_text()

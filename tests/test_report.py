import json
import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from mdlm_bio.dna.fasta import FastaError, read_fasta, write_fasta
from mdlm_bio.dna.metrics import diversity, gc_content, jensen_shannon_distance, kmer_spectrum
from mdlm_bio.dna.report import generation_report
from mdlm_bio.dna.tokenizer import decode

LAMBDA = Path(str(files("mdlm_bio") / "data" / "lambda_virus.fa.gz"))
FILES = ["kmer_spectra.png", "report.json", "report.md"]


@pytest.fixture(scope="module")
def lambda_genome() -> np.ndarray:
    return next(read_fasta(LAMBDA)).tokens


def write(path: Path, sequences: list[str]) -> Path:
    write_fasta([(f"seq{i}", "", sequence) for i, sequence in enumerate(sequences)], path)
    return path


def windows(genome: np.ndarray, count: int, length: int, seed: int) -> list[str]:
    starts = np.random.default_rng(seed).integers(0, genome.size - length, count)
    return [decode(genome[start : start + length]) for start in starts]


def random_dna(count: int, length: int, seed: int) -> list[str]:
    return ["".join(row) for row in np.random.default_rng(seed).choice(list("ACGT"), size=(count, length))]


@pytest.fixture(scope="module")
def small_case(tmp_path_factory) -> tuple[Path, Path, Path, dict]:
    """A hand-made case: 4 generated sequences (one duplicate, one copied from the reference), 2 records."""
    root = tmp_path_factory.mktemp("small")
    generated = write(root / "gen.fa", ["ACGTACGTAA", "ACGTACGTAA", "GGGGCCCCAT", "ATNTATATCG"])
    reference = write(root / "ref.fa", ["TTACGTACGTAAGCGCATTA", "CCGGATATATCGCGAAATTTGGG"])
    report = generation_report(generated, reference, root / "out", ks=(2, 3))
    return generated, reference, root / "out", report


def test_report_writes_three_files_and_nothing_else(small_case):
    *_, out, report = small_case
    assert sorted(path.name for path in out.iterdir()) == FILES  # no temporary file left behind
    assert json.loads((out / "report.json").read_text()) == report
    assert (out / "kmer_spectra.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_numbers_match_metrics(small_case):
    generated_path, reference_path, _, report = small_case
    generated = [record.tokens for record in read_fasta(generated_path)]
    reference = [record.tokens for record in read_fasta(reference_path)]
    assert report["inputs"]["generated"] == {
        "path": str(generated_path),
        "sequences": 4,
        "bases": 40,
        "min_length": 10,
        "mean_length": 10.0,
        "max_length": 10,
    }
    assert report["inputs"]["reference"]["bases"] == 43
    assert report["settings"] == {"ks": [2, 3], "both_strands": False, "seed": 0}
    for k in (2, 3):
        expected = jensen_shannon_distance(kmer_spectrum(generated, k), kmer_spectrum(reference, k))
        assert report["js_distance"]["generated"][str(k)] == expected
    gc = gc_content(generated)
    assert report["gc"]["generated"] == {"overall": gc.overall, "mean": np.mean(gc.per_sequence), "std": np.std(gc.per_sequence)}
    assert report["gc"]["reference"]["overall"] == gc_content(reference).overall
    assert report["diversity"] == {"duplicate_rate": 0.25, "novelty_rate": 0.5}
    assert report["diversity"] == vars(diversity(generated, reference))
    assert set(report["js_distance"]) == set(report["gc"]) - {"reference"} == {"generated", "reference_windows", "uniform_random"}


def test_report_markdown_has_the_table_and_the_guide(small_case):
    *_, out, report = small_case
    markdown = (out / "report.md").read_text()
    js = report["js_distance"]["generated"]
    assert "| sample | JS k=2 | JS k=3 | GC mean | GC std |" in markdown
    assert f"| generated | {js['2']:.4f} | {js['3']:.4f} |" in markdown
    assert "| duplicate rate | 0.2500 |" in markdown and "| novelty rate | 0.5000 |" in markdown
    assert "0 = identical k-mer spectra" in markdown


def test_report_baselines_are_seeded_and_strands_pass_through(small_case, tmp_path):
    generated, reference, _, report = small_case
    again = generation_report(generated, reference, tmp_path / "again", ks=(2, 3))
    assert again["js_distance"] == report["js_distance"]
    other = generation_report(generated, reference, tmp_path / "other", ks=(2,), seed=1, both_strands=True)
    assert other["js_distance"]["uniform_random"] != report["js_distance"]["uniform_random"]
    to_tokens = [[record.tokens for record in read_fasta(path)] for path in (generated, reference)]
    spectra = [kmer_spectrum(sequences, 2, both_strands=True) for sequences in to_tokens]
    assert other["js_distance"]["generated"]["2"] == jensen_shannon_distance(*spectra)


def test_lambda_windows_are_not_novel_and_close_to_the_reference(lambda_genome, tmp_path):
    generated = write(tmp_path / "gen.fa", windows(lambda_genome, 60, 400, seed=3))
    report = generation_report(generated, LAMBDA, tmp_path / "out")
    assert report["diversity"] == {"duplicate_rate": 0.0, "novelty_rate": 0.0}
    js = report["js_distance"]
    assert js["generated"]["3"] < 0.05
    for k in ("3", "6"):  # a reference sample scores like the floor and far better than random DNA
        assert js["generated"][k] == pytest.approx(js["reference_windows"][k], rel=0.25)
        assert js["uniform_random"][k] > 1.5 * js["reference_windows"][k]
    assert abs(report["gc"]["generated"]["mean"] - report["gc"]["reference"]["overall"]) < 0.02


def test_random_dna_scores_worse_than_a_reference_sample(lambda_genome, tmp_path):
    sample = generation_report(write(tmp_path / "sample.fa", windows(lambda_genome, 40, 300, seed=4)), LAMBDA, tmp_path / "a")
    random = generation_report(write(tmp_path / "random.fa", random_dna(40, 300, seed=5)), LAMBDA, tmp_path / "b")
    js_random, js_sample = random["js_distance"]["generated"], sample["js_distance"]["generated"]
    assert js_random["3"] > 2 * js_sample["3"]  # 12,000 bases: sampling noise is small at k=3 ...
    assert js_random["6"] > 1.2 * js_sample["6"]  # ... and large at k=6 (4,096 bins)
    assert random["diversity"]["novelty_rate"] == 1.0


def test_report_without_reference_windows_longer_than_every_record(tmp_path):
    generated = write(tmp_path / "gen.fa", ["ACGTACGTACGT"])
    reference = write(tmp_path / "ref.fa", ["ACGTAC", "GGCCTA"])
    report = generation_report(generated, reference, tmp_path / "out", ks=(2,))
    assert report["js_distance"]["reference_windows"] is None and report["gc"]["reference_windows"] is None
    assert "| reference windows (floor) | n/a | n/a | n/a |" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("ks", [(0,), (3, 13), (2.5,), (3, "6")])
def test_report_rejects_bad_k_before_reading(ks, tmp_path):
    bad = ks[-1]
    with pytest.raises(ValueError, match=re.escape(f"k must be an integer from 1 to 12, got {bad!r}")):
        generation_report(tmp_path / "missing.fa", tmp_path / "missing.fa", tmp_path / "out", ks=ks)
    assert not (tmp_path / "out").exists()


def test_report_errors(tmp_path):
    good = write(tmp_path / "good.fa", ["ACGTACGT"])
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    short = write(tmp_path / "short.fa", ["ACGTACGT", "AC"])
    with pytest.raises(ValueError, match="ks must name at least one k"):
        generation_report(good, good, tmp_path / "out", ks=())
    with pytest.raises(FastaError, match=re.escape(f"{empty}: no FASTA records")):
        generation_report(empty, good, tmp_path / "out")
    with pytest.raises(FastaError, match=re.escape(f"{empty}: no FASTA records")):
        generation_report(good, empty, tmp_path / "out")
    with pytest.raises(ValueError, match=re.escape(f"{short}: record 'seq1' has 2 bases, fewer than k=3")):
        generation_report(short, good, tmp_path / "out", ks=(3,))
    with pytest.raises(FileNotFoundError, match="FASTA file not found"):
        generation_report(tmp_path / "missing.fa", good, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # a failed report writes nothing

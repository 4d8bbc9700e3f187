import math
import re
from collections import Counter
from itertools import product

import numpy as np
import pytest

from mdlm_bio.dna import metrics
from mdlm_bio.dna.metrics import diversity, gc_content, jensen_shannon_distance, kmer_spectrum
from mdlm_bio.dna.tokenizer import MASK, A, C, decode, encode, reverse_complement


def tokens(*sequences: str) -> list[np.ndarray]:
    return [encode(sequence) for sequence in sequences]


def bin_of(kmer: str) -> int:
    return int(kmer.translate(str.maketrans("ACGT", "0123")), 4)


def spectrum_of(counts: dict[str, float], k: int) -> np.ndarray:
    """A hand-written spectrum: {k-mer: frequency}, every other bin 0."""
    spectrum = np.zeros(4**k)
    for kmer, frequency in counts.items():
        spectrum[bin_of(kmer)] = frequency
    return spectrum


def random_dna(rng: np.random.Generator, length: int, n_rate: float = 0.0) -> np.ndarray:
    array = rng.integers(A, A + 4, size=length, dtype=np.uint8)
    array[rng.random(length) < n_rate] = encode("N")[0]
    return array


# --- kmer_spectrum -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequences", "k", "expected"),
    [
        (("ACGT",), 1, {"A": 0.25, "C": 0.25, "G": 0.25, "T": 0.25}),
        (("AACG",), 2, {"AA": 1 / 3, "AC": 1 / 3, "CG": 1 / 3}),
        (("AAAA",), 3, {"AAA": 1.0}),
        (("ACNGT",), 2, {"AC": 0.5, "GT": 0.5}),  # CN and NG skipped
        (("AC", "GT"), 2, {"AC": 0.5, "GT": 0.5}),  # no CG across the two sequences
        (("acgTT",), 4, {"ACGT": 0.5, "CGTT": 0.5}),
    ],
)
def test_kmer_spectrum_hand_computed(sequences, k, expected):
    np.testing.assert_array_equal(kmer_spectrum(tokens(*sequences), k), spectrum_of(expected, k))


def test_kmer_spectrum_both_strands_adds_reverse_complements():
    # AAC -> AA AC; its reverse complement GTT -> GT TT
    expected = spectrum_of({"AA": 0.25, "AC": 0.25, "GT": 0.25, "TT": 0.25}, 2)
    np.testing.assert_array_equal(kmer_spectrum(tokens("AAC"), 2, both_strands=True), expected)


def test_kmer_spectrum_both_strands_is_reverse_complement_symmetric():
    sequence = random_dna(np.random.default_rng(0), 500, n_rate=0.02)
    spectrum = kmer_spectrum([sequence], 3, both_strands=True)
    np.testing.assert_allclose(spectrum, kmer_spectrum([reverse_complement(sequence)], 3, both_strands=True))
    for kmer in map("".join, product("ACGT", repeat=3)):
        assert spectrum[bin_of(kmer)] == spectrum[bin_of(kmer[::-1].translate(str.maketrans("ACGT", "TGCA")))]


@pytest.mark.parametrize("k", [5, 8])
def test_kmer_spectrum_matches_naive_count(k):
    rng = np.random.default_rng(k)
    sequences = [random_dna(rng, length, n_rate=0.03) for length in (300, 9, 1000)]
    counts = Counter(text[i : i + k] for text in map(decode, sequences) for i in range(len(text) - k + 1))
    clean = {kmer: count for kmer, count in counts.items() if "N" not in kmer}
    total = sum(clean.values())
    np.testing.assert_allclose(kmer_spectrum(sequences, k), spectrum_of({m: c / total for m, c in clean.items()}, k))


def test_kmer_spectrum_chunks_agree_with_one_pass(monkeypatch):
    sequences = [random_dna(np.random.default_rng(1), 200, n_rate=0.05) for _ in range(3)]
    whole = kmer_spectrum(sequences, 4)
    monkeypatch.setattr(metrics, "_CHUNK", 7)
    np.testing.assert_array_equal(kmer_spectrum(sequences, 4), whole)


@pytest.mark.parametrize("k", [0, 13, -1, 2.5, True, "3"])
def test_kmer_spectrum_rejects_bad_k(k):
    with pytest.raises(ValueError, match=re.escape(f"k must be an integer from 1 to 12, got {k!r}")):
        kmer_spectrum(tokens("ACGT"), k)


@pytest.mark.parametrize(
    ("sequences", "k", "message"),
    [
        (tokens("ACGT", "AC"), 3, "sequence 1 has 2 bases, fewer than k=3"),
        (tokens("NNNN", "ANA"), 2, "no 2-mer free of N in the sequences: the spectrum is undefined"),
        ([], 2, "no sequences given"),
        ([np.array([A, MASK, C])], 1, f"sequence 0: token id {MASK} is not a base or N (ids 7..11)"),
        ([np.array([[A, C]])], 1, "sequence 0 must be a 1-D token array, got shape (1, 2)"),
    ],
)
def test_kmer_spectrum_errors(sequences, k, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        kmer_spectrum(sequences, k)


# --- jensen_shannon_distance ---------------------------------------------------------------------------


def test_js_identical_is_zero_and_disjoint_is_one():
    p = np.array([0.2, 0.3, 0.5, 0.0])
    assert jensen_shannon_distance(p, p) == 0.0
    assert jensen_shannon_distance([1, 1, 0, 0], [0, 0, 3, 1]) == pytest.approx(1.0, abs=1e-12)


def test_js_hand_computed_two_bins():
    # p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4): KL(p||m) = 2 - log2 3, KL(q||m) = 1 - log2(3) / 2,
    # JSD = (3 - 1.5 log2 3) / 2 = 1.5 - 0.75 log2 3
    expected = math.sqrt(1.5 - 0.75 * math.log2(3))
    assert jensen_shannon_distance([1, 0], [0.5, 0.5]) == pytest.approx(expected, rel=1e-12)
    assert jensen_shannon_distance([0.5, 0.5], [1, 0]) == pytest.approx(expected, rel=1e-12)


def test_js_normalises_counts():
    assert jensen_shannon_distance([2, 0], [3, 3]) == pytest.approx(jensen_shannon_distance([1, 0], [0.5, 0.5]), rel=1e-12)


@pytest.mark.parametrize(
    ("p", "q", "message"),
    [
        ([0.5, 0.5], [1 / 3] * 3, "p and q must have the same length, got 2 and 3"),
        ([1, -1, 1], [1, 1, 1], "p must be finite and non-negative"),
        ([1, 1], [np.nan, 1], "q must be finite and non-negative"),
        ([0, 0], [1, 1], "p sums to zero: not a distribution"),
        ([[1, 0]], [1, 0], "p must be 1-D, got shape (1, 2)"),
    ],
)
def test_js_errors(p, q, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        jensen_shannon_distance(p, q)


# --- gc_content ----------------------------------------------------------------------------------------


def test_gc_content_per_sequence_and_pooled():
    gc = gc_content(tokens("GGCC", "ATAT", "GCNN", "ATATAT", "NNN"))
    np.testing.assert_array_equal(gc.per_sequence[:4], [1.0, 0.0, 1.0, 0.0])
    assert np.isnan(gc.per_sequence[4])  # nothing but N: undefined, not 0
    assert gc.overall == 6 / 16  # pooled over bases: 4 + 2 GC out of 4 + 4 + 2 + 6


def test_gc_content_errors():
    with pytest.raises(ValueError, match=re.escape("the sequences hold only N: GC content is undefined")):
        gc_content(tokens("NN", "N"))
    with pytest.raises(ValueError, match="no sequences given"):
        gc_content([])


# --- diversity -----------------------------------------------------------------------------------------


def test_diversity_constructed_case():
    result = diversity(tokens("ACGT", "ACGT", "TTTT", "ACGA"), tokens("GGACGTGG", "CCCC"))
    assert result.duplicate_rate == 1 / 4  # the second ACGT
    assert result.novelty_rate == 2 / 4  # TTTT and ACGA; both copies of ACGT occur in the first record


def test_diversity_matches_do_not_span_records_and_n_matches_only_n():
    assert diversity(tokens("ACGT"), tokens("AAC", "GTT")).novelty_rate == 1.0
    assert diversity(tokens("CNG"), tokens("ACNGT")).novelty_rate == 0.0
    assert diversity(tokens("CAG"), tokens("ACNGT")).novelty_rate == 1.0


def test_diversity_errors():
    with pytest.raises(ValueError, match="no sequences given"):
        diversity([], tokens("ACGT"))
    with pytest.raises(ValueError, match=re.escape(f"sequence 0: token id {MASK} is not a base or N")):
        diversity(tokens("ACGT"), [np.array([A, MASK])])


@pytest.mark.parametrize("chunk", [metrics._CHUNK, 50])
def test_hashing_and_search_agree(monkeypatch, chunk):
    rng = np.random.default_rng(2)
    reference = [random_dna(rng, 3000, n_rate=0.01), random_dna(rng, 400)]
    copied = [reference[i % 2][start : start + 40] for i, start in enumerate(rng.integers(0, 360, 100))]
    generated = copied + [random_dna(rng, 40) for _ in range(100)] + [random_dna(rng, 7) for _ in range(5)]
    text = b"\0".join(array.tobytes() for array in reference)
    expected = sum(array.tobytes() not in text for array in generated) / len(generated)
    assert 0.45 < expected < 0.6  # the case exercises both outcomes
    monkeypatch.setattr(metrics, "_CHUNK", chunk)
    for threshold in (1, 10**9):  # every length hashed, then every query searched
        monkeypatch.setattr(metrics, "_MIN_HASHED_GROUP", threshold)
        assert diversity(generated, reference).novelty_rate == expected


def test_hash_collision_is_not_a_match():
    # Thue-Morse and its complement collide under any polynomial hash modulo 2**64 at length 2**11.
    bits = np.array([bin(i).count("1") % 2 for i in range(2048)], np.uint8)
    text, query = (A + bits).astype(np.uint8), (C - bits).astype(np.uint8)
    assert metrics._window_hashes(text, 2048)[0] == metrics._window_hashes(query, 2048)[0]
    assert metrics._found_by_hashing([query.tobytes()], text.tobytes()) == set()
    assert metrics._found_by_hashing([text.tobytes()], text.tobytes()) == {text.tobytes()}

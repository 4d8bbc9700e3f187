"""Metrics for generated DNA against a reference, on token-id arrays (Caduceus ids, see tokenizer.py).

Every function takes sequences as a list of 1-D arrays of base ids (A C G T N = 7..11) and rejects any
other id, because a mask or pad id left in a sample is an upstream bug that would otherwise skew a number
without a trace. Long inputs (a held-out chromosome) are processed in chunks, so working memory stays
bounded (about 100 MB) whatever the reference size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .tokenizer import A, C, G, N, reverse_complement

MAX_K = 12  # 4**12 bins = 134 MB of float64; past that nearly every bin of a realistic sample is empty
_CHUNK = 1 << 22  # positions handled at once
_HASH_BASE = 0x9E3779B97F4A7C15  # odd, hence invertible modulo 2**64
_HASH_BASE_INVERSE = pow(_HASH_BASE, -1, 1 << 64)
_MIN_HASHED_GROUP = 64  # hashing the reference once for a length costs about 60 substring searches (measured)


def validate_k(k: int) -> None:
    """Reject a k-mer size outside 1..MAX_K before any work is done."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")


def _token_arrays(sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The sequences as uint8 arrays, after checking that every id is a base or N."""
    if len(sequences) == 0:
        raise ValueError("no sequences given")
    arrays = []
    for index, sequence in enumerate(sequences):
        array = np.asarray(sequence)
        if array.ndim != 1:
            raise ValueError(f"sequence {index} must be a 1-D token array, got shape {array.shape}")
        bad = (array < A) | (array > N)
        if bad.any():
            raise ValueError(f"sequence {index}: token id {int(array[bad][0])} is not a base or N (ids {A}..{N})")
        arrays.append(array.astype(np.uint8, copy=False))
    return arrays


# --- k-mer spectra -------------------------------------------------------------------------------------


def _kmer_indices(tokens: np.ndarray, k: int) -> np.ndarray:
    """Base-4 index (A=0 C=1 G=2 T=3, first base most significant) of every k-mer free of N.

    The index is built by k shifted vector additions, so the cost is O(len * k) with no loop over positions.
    """
    count = tokens.size - k + 1
    if count <= 0:
        return np.zeros(0, np.int64)
    digits = tokens.astype(np.int64) - A
    index = np.zeros(count, np.int64)
    for offset in range(k):
        index = index * 4 + digits[offset : offset + count]
    n_so_far = np.concatenate(([0], np.cumsum(tokens == N)))
    return index[n_so_far[k:] == n_so_far[:count]]


def _joined(sequences: list[np.ndarray]) -> np.ndarray:
    """The sequences end to end with an N between neighbours, so that no k-mer spans two of them."""
    separator = np.array([N], np.uint8)
    return np.concatenate([part for sequence in sequences for part in (sequence, separator)])


def kmer_spectrum(sequences: Sequence[np.ndarray], k: int, both_strands: bool = False) -> np.ndarray:
    """Normalised counts of the 4**k k-mers over A/C/G/T, skipping every k-mer that contains an N.

    Only the given (forward) strand is counted by default: a model sees and emits sequences 5' to 3', and
    strand-specific biases are part of what it should learn. `both_strands=True` adds the reverse complement
    of every sequence, giving a strand-symmetric spectrum, the right comparison when the strand of the
    reference is arbitrary with respect to the samples (e.g. a model trained with reverse-complement
    augmentation). Index order: lexicographic over ACGT, so bin 0 is AA..A and bin 4**k - 1 is TT..T.
    """
    validate_k(k)
    arrays = _token_arrays(sequences)
    for index, array in enumerate(arrays):
        if array.size < k:
            raise ValueError(f"sequence {index} has {array.size} bases, fewer than k={k}")
    if both_strands:
        arrays += [reverse_complement(array) for array in arrays]
    tokens = _joined(arrays)
    counts = np.zeros(4**k, np.int64)
    for start in range(0, tokens.size - k + 1, _CHUNK):
        counts += np.bincount(_kmer_indices(tokens[start : start + _CHUNK + k - 1], k), minlength=4**k)
    total = counts.sum()
    if total == 0:
        raise ValueError(f"no {k}-mer free of N in the sequences: the spectrum is undefined")
    return counts / total


def kmer_frequencies(sequence: np.ndarray, k: int) -> np.ndarray:
    """One sequence's k-mer frequencies over A/C/G/T, in kmer_spectrum's order, k-mers with an N skipped;
    all zero for a sequence with no such k-mer (a feature vector, where kmer_spectrum would refuse)."""
    validate_k(k)
    counts = np.bincount(_kmer_indices(_token_arrays([sequence])[0], k), minlength=4**k)
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


# --- Jensen-Shannon distance ---------------------------------------------------------------------------


def _distribution(values: np.ndarray, name: str) -> np.ndarray:
    """A 1-D array of non-negative finite weights, normalised to sum to 1 (so raw counts are accepted)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    total = array.sum()
    if total == 0:
        raise ValueError(f"{name} sums to zero: not a distribution")
    return array / total


def _kl_divergence_bits(p: np.ndarray, m: np.ndarray) -> float:
    """KL(p || m) in bits, with 0 log 0 = 0; m > 0 wherever p > 0 because m is a mixture containing p."""
    support = p > 0
    return float(np.sum(p[support] * np.log2(p[support] / m[support])))


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """sqrt of the Jensen-Shannon divergence in bits: a metric in [0, 1], 0 for identical distributions and
    1 for disjoint supports. Unlike KL it stays finite when one spectrum has k-mers the other lacks, which
    is the normal case for sampled spectra at k >= 6."""
    p, q = _distribution(p, "p"), _distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same length, got {p.size} and {q.size}")
    m = (p + q) / 2
    divergence = (_kl_divergence_bits(p, m) + _kl_divergence_bits(q, m)) / 2
    return float(np.sqrt(np.clip(divergence, 0.0, 1.0)))  # clip: rounding can step just outside [0, 1]


# --- GC content ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GCContent:
    per_sequence: np.ndarray  # G+C fraction of each sequence's A/C/G/T bases; NaN for a sequence of only N
    overall: float  # pooled over all bases, so long sequences weigh more


def gc_content(sequences: Sequence[np.ndarray]) -> GCContent:
    """Fraction of G or C among the non-N bases, per sequence and overall. N is excluded rather than counted
    as AT, so that assembly gaps in a reference do not drag its GC down."""
    arrays = _token_arrays(sequences)
    gc = np.array([np.count_nonzero((array == G) | (array == C)) for array in arrays], np.int64)
    bases = np.array([np.count_nonzero(array != N) for array in arrays], np.int64)
    if bases.sum() == 0:
        raise ValueError("the sequences hold only N: GC content is undefined")
    with np.errstate(invalid="ignore", divide="ignore"):
        per_sequence = gc / bases
    return GCContent(per_sequence, float(gc.sum() / bases.sum()))


# --- diversity and novelty -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Diversity:
    duplicate_rate: float  # fraction of generated sequences equal to an earlier generated one
    novelty_rate: float  # fraction of generated sequences found nowhere in the reference, on the given strand


def _powers(base: int, count: int) -> np.ndarray:
    """base**0 .. base**(count - 1) modulo 2**64 (uint64 arithmetic wraps)."""
    powers = np.ones(count, np.uint64)
    powers[1:] = np.cumprod(np.full(count - 1, base, np.uint64))
    return powers


def _window_hashes(data: np.ndarray, length: int) -> np.ndarray:
    """h[i] = sum_t data[i + t] * B**t mod 2**64 for every window of `length`, in O(len(data)).

    Prefix sums of data[s] * B**s give B**i * h[i] by one subtraction; B is odd, so B**-i exists mod 2**64.
    """
    count = data.size - length + 1
    weighted = data.astype(np.uint64) * _powers(_HASH_BASE, data.size)
    prefix = np.concatenate((np.zeros(1, np.uint64), np.cumsum(weighted, dtype=np.uint64)))
    return (prefix[length:] - prefix[:count]) * _powers(_HASH_BASE_INVERSE, count)


def _found_by_hashing(queries: list[bytes], text: bytes) -> set[bytes]:
    """The queries (distinct, all of one length) that occur in `text`, in O(|text| log |queries|).

    Each window of the text whose rolling hash equals a query's hash is confirmed byte for byte, so a hash
    collision can cost time but never a wrong answer.
    """
    length = len(queries[0])
    wanted = set(queries)
    per_chunk = max(1, _CHUNK // length)
    batches = (np.frombuffer(b"".join(queries[i : i + per_chunk]), np.uint8) for i in range(0, len(queries), per_chunk))
    query_hashes = np.sort(np.concatenate([_window_hashes(batch, length)[::length] for batch in batches]))
    array = np.frombuffer(text, np.uint8)
    found: set[bytes] = set()
    for start in range(0, array.size - length + 1, _CHUNK):
        hashes = _window_hashes(array[start : start + _CHUNK + length - 1], length)
        slots = np.searchsorted(query_hashes, hashes).clip(max=query_hashes.size - 1)  # O(C log Q), no sort of C
        hits = np.flatnonzero(query_hashes[slots] == hashes)
        windows = (text[start + offset : start + offset + length] for offset in hits)
        found.update(window for window in windows if window in wanted)
    return found


def _found_by_search(queries: list[bytes], text: bytes) -> set[bytes]:
    """The queries that occur in `text`, by one substring search each: O(|text|) per query."""
    return {query for query in queries if query in text}


def _found(queries: set[bytes], text: bytes) -> set[bytes]:
    """The queries that occur in `text`: hashing for each length shared by many queries, search otherwise."""
    by_length: defaultdict[int, list[bytes]] = defaultdict(list)
    for query in queries:
        by_length[len(query)].append(query)
    found: set[bytes] = set()
    for length, group in by_length.items():
        hashed = length > 0 and len(group) >= _MIN_HASHED_GROUP  # the empty query occurs everywhere
        found |= (_found_by_hashing if hashed else _found_by_search)(group, text)
    return found


def diversity(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> Diversity:
    """Exact-duplicate rate within the generated set and novelty rate against the reference records.

    A generated sequence is novel when it occurs in no reference record as an exact substring (N matches
    only N; forward strand only). Cost: O(R log Q) for each length shared by Q >= 64 distinct generated
    sequences (rolling hashes of all R reference windows), O(R) per sequence for the other lengths, and
    memory O(total generated length + chunk). A 1 Mb reference and 1,000 samples of one length take ~0.1 s.
    """
    keys = [array.tobytes() for array in _token_arrays(generated)]
    text = b"\0".join(array.tobytes() for array in _token_arrays(reference))  # 0 is no base: no match spans it
    distinct = set(keys)
    found = _found(distinct, text)
    return Diversity(
        duplicate_rate=1 - len(distinct) / len(keys),
        novelty_rate=sum(key not in found for key in keys) / len(keys),
    )

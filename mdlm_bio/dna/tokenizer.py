"""Character tokenizer with Caduceus's token ids, so published Caduceus checkpoints read our tokens.

Ids: [CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6 A=7 C=8 G=9 T=10 N=11, vocabulary
padded to 16. Soft-masked (lowercase) bases read as uppercase. The IUPAC ambiguity codes
(R Y S W K M B D H V) follow a policy: "n" (default) reads them as N, "error" refuses them. U reads as T.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

CLS, SEP, BOS, MASK, PAD, RESERVED, UNK = range(7)
A, C, G, T, N = range(7, 12)
VOCAB_SIZE = 16
BASE_IDS = (A, C, G, T)
BASES = "ACGTN"
AMBIGUITY_CODES = "RYSWKMBDHV"
# The one complement table: A<->T, C<->G, and every other id (N, the mask, padding, specials) its own complement.
COMPLEMENT_MAP = (CLS, SEP, BOS, MASK, PAD, RESERVED, UNK, T, G, C, A, N, 12, 13, 14, 15)
COMPLEMENT = np.array(COMPLEMENT_MAP, dtype=np.uint8)
AmbiguityPolicy = Literal["n", "error"]
_ILLEGAL = 255


class SequenceError(ValueError):
    """A sequence with characters outside the DNA alphabet."""


def _lookup(policy: AmbiguityPolicy) -> np.ndarray:
    table = np.full(256, _ILLEGAL, dtype=np.uint8)
    for token, base in zip((A, C, G, T, N), BASES):
        table[ord(base)] = table[ord(base.lower())] = token
    table[ord("U")] = table[ord("u")] = T
    if policy == "n":
        for code in AMBIGUITY_CODES:
            table[ord(code)] = table[ord(code.lower())] = N
    elif policy != "error":
        raise ValueError(f"ambiguity policy must be 'n' or 'error', not {policy!r}")
    return table


_TABLES = {policy: _lookup(policy) for policy in ("n", "error")}


def encode(sequence: str | bytes, policy: AmbiguityPolicy = "n") -> np.ndarray:
    """Bases -> uint8 token ids; raises SequenceError naming the first illegal character and its position."""
    if policy not in _TABLES:
        raise ValueError(f"ambiguity policy must be 'n' or 'error', not {policy!r}")
    raw = np.frombuffer(sequence.encode("ascii", "replace") if isinstance(sequence, str) else bytes(sequence), np.uint8)
    ids = _TABLES[policy][raw]
    bad = np.flatnonzero(ids == _ILLEGAL)
    if bad.size:
        position = int(bad[0])
        raise SequenceError(f"illegal character {chr(raw[position])!r} at position {position + 1} ({bad.size} in all)")
    return ids


def decode(ids: np.ndarray | Sequence[int]) -> str:
    """Token ids (an array, a list or a CPU tensor) -> bases. Only base and N ids are legal: a sample with a mask
    left in it is a bug upstream."""
    array = np.asarray(ids)
    if array.size and (array.min() < A or array.max() > N):
        bad = array[(array < A) | (array > N)][0]
        raise SequenceError(f"token id {int(bad)} is not a base; only ids {A}..{N} decode")
    return np.frombuffer(b"ACGTN", np.uint8)[array.astype(np.int64) - A].tobytes().decode()


def reverse_complement(ids: np.ndarray) -> np.ndarray:
    """The other strand, read 5' to 3'."""
    return COMPLEMENT[ids[..., ::-1]]


"""Token blocks for training and evaluation: wrapped (documents concatenated and cut into fixed blocks) or
padded (one document per block, truncated and padded), as in MDLM's OWT and LM1B tables.

These work on lists of token ids, so they are exact, fast to test, and usable as `datasets.map` functions.
"""

from __future__ import annotations

from collections.abc import Sequence


class ShortCorpusError(ValueError):
    """A corpus with fewer tokens than one wrapped block: evaluating it would silently use no data."""


def wrap_into_blocks(documents: Sequence[Sequence[int]], block: int, bos: int, eos: int) -> list[list[int]]:
    """Concatenate documents, each followed by EOS, cut the stream into pieces of block - 2 tokens, and frame
    each piece as [BOS] piece [EOS]. The incomplete tail piece is dropped (MDLM's wrapping)."""
    if block < 3:
        raise ValueError(f"a wrapped block needs room for BOS, EOS and a token: block must be >= 3, not {block}")
    stream = [token for document in documents for token in (*document, eos)]
    body = block - 2
    return [[bos, *stream[start : start + body], eos] for start in range(0, len(stream) - body + 1, body)]


def pad_into_blocks(
    documents: Sequence[Sequence[int]], block: int, bos: int, eos: int, pad: int
) -> tuple[list[list[int]], list[list[int]]]:
    """One block per document: [BOS] tokens [EOS], truncated to `block` (keeping the closing EOS) and padded
    with `pad`. Returns (blocks, attention masks); the mask is 0 on padding, which the loss then skips."""
    if block < 2:
        raise ValueError(f"a padded block needs room for BOS and EOS: block must be >= 2, not {block}")
    blocks, masks = [], []
    for document in documents:
        tokens = [bos, *document[: block - 2], eos]
        blocks.append(tokens + [pad] * (block - len(tokens)))
        masks.append([1] * len(tokens) + [0] * (block - len(tokens)))
    return blocks, masks


def require_one_block(num_blocks: int, num_tokens: int, block: int, name: str) -> None:
    """A clear error instead of an empty dataset when a corpus is shorter than one block (PTB at 1024)."""
    if num_blocks == 0:
        raise ShortCorpusError(
            f"{name} has {num_tokens} tokens, fewer than one wrapped block of {block}; "
            f"use a smaller block, or padded (unwrapped) blocks"
        )

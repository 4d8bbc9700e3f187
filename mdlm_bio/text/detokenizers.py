"""Undo each zero-shot corpus's own tokenisation before our tokenizer sees it.

PTB, Wikitext and LM1B ship pre-tokenised text ("do n't", "3 @.@ 5", "( a )"); scoring that text with a
GPT-2 tokenizer would measure a format the model never saw. The rules follow those MDLM applies, so
zero-shot perplexities are comparable with its table.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_BRACKETS = ["()", "[]", "{}", '""', "''"]


def wikitext(text: str) -> str:
    """Wikitext-2/103: '@-@' style joiners, spaced punctuation and brackets, '= = heading = ='."""
    text = text.replace("s '", "s'")
    for joiner, glyph in (("@-@", "-"), ("@,@", ","), ("@.@", ".")):
        text = text.replace(f" {joiner} ", glyph)
    for mark in ":;.!?,":
        text = text.replace(f" {mark} ", f"{mark} ")
    for opening, closing in _BRACKETS:  # "( a b )" -> "(a b)"
        inner = rf"{re.escape(opening)}\s*([^{re.escape(closing)}]*?)\s*{re.escape(closing)}"
        text = re.sub(inner, lambda match: f"{opening}{match.group(1)}{closing}", text)
    for depth in (4, 3, 2):
        text = text.replace(" ".join("=" * depth), "=" * depth)
    text = text.replace(" ° ", "°").replace(" \n", "\n").replace("\n ", "\n").replace(" N ", " 1 ")
    return text.replace(" 's", "'s")


def ptb(text: str) -> str:
    """Penn Treebank: split clitics, escaped slashes, N for numbers, <unk> for rare words."""
    for spaced, joined in ((" 's", "'s"), ("s ' ", "s' "), (" n't", "n't"), (" \n ", "\n"), ("\\/", "/")):
        text = text.replace(spaced, joined)
    previous = None
    while previous != text:  # " N N " needs more than one pass: matches may not overlap
        previous, text = text, text.replace(" N ", " 1 ")
    return text.replace("$ 1", "$1").replace("# 1", "#1").replace("<unk>", "?")


def lm1b(text: str) -> str:
    """One Billion Words: spaced punctuation, quotes, brackets, URLs and currency."""
    text = text.replace("http : / / ", "http://").replace("https : / / ", "https://")
    text = re.sub(r" '(\w+)", r"'\1", text)
    text = re.sub(r" (\w+) \. ", r" \1. ", text)
    text = re.sub(r" (\w+) \.$", r" \1.", text)
    for mark in "?!":
        text = text.replace(f" {mark} ", f"{mark} ")
        text = re.sub(rf" \{mark}$", mark, text)
    for mark in ",:;":
        text = text.replace(f" {mark} ", f"{mark} ")
    text = text.replace(" / ", "/")
    for pattern, replacement in (
        (r'" ([^"]+) "', r'"\1"'), (r"' ([^']+) '", r"'\1'"), (r"\( ([^()]+) \)", r"(\1)"), (r"\[ ([^\[\]]+) \]", r"[\1]"),
    ):
        text = re.sub(pattern, replacement, text)
    return text.replace("$ ", "$").replace("£ ", "£")


def lambada(text: str) -> str:
    """LAMBADA (OpenAI's test file): typographic quotes to plain ones, and a leading newline as MDLM scores it."""
    return "\n" + text.replace("“", '"').replace("”", '"').strip()


def scientific_papers(text: str) -> str:
    """PubMed and ArXiv articles carry both kinds of spacing artefacts."""
    return lm1b(wikitext(text))


DETOKENIZERS: dict[str, Callable[[str], str]] = {
    "wikitext": wikitext,
    "ptb": ptb,
    "lm1b": lm1b,
    "lambada": lambada,
    "scientific_papers": scientific_papers,
}


def get_detokenizer(name: str | None) -> Callable[[str], str] | None:
    if name is None:
        return None
    if name not in DETOKENIZERS:
        raise ValueError(f"unknown detokenizer {name!r}; choose from {sorted(DETOKENIZERS)}")
    return DETOKENIZERS[name]

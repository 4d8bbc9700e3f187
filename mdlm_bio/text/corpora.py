"""Text corpora through 🤗 datasets (configs/text/corpora.yaml), or from local text files, as token blocks
cached on disk.

`load_texts` gives a Dataset with one `text` column, detokenised. `tokenized_blocks` turns it into
`input_ids` (+ `attention_mask`) blocks with multi-process `map`, and saves the result under `cache_dir`
keyed by corpus, split, tokenizer, mode and block, so a second run (or another process) loads it at once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import datasets
from omegaconf import OmegaConf

from .blocks import pad_into_blocks, require_one_block, wrap_into_blocks
from .detokenizers import get_detokenizer
from .tokenizer import TextTokenizer

BlockMode = Literal["wrap", "pad"]
_SLICE = re.compile(r"^(\w+)\[(-?\d*):(-?\d*)\]$")


@dataclass(frozen=True)
class Corpus:
    name: str
    path: str
    config_name: str | None
    revision: str | None
    field: str
    splits: dict[str, str]
    detokenizer: str | None
    sample_by: str
    eval_split: str
    data_files: str | dict[str, str] | None = None  # a file, or files per split, where the hub has more than needed


def corpora() -> dict[str, Corpus]:
    text = (resources.files("mdlm_bio.configs") / "text" / "corpora.yaml").read_text()
    entries: dict[str, dict[str, Any]] = OmegaConf.to_container(OmegaConf.create(text))  # type: ignore[assignment]
    return {
        name: Corpus(name, entry["path"], entry["name"], entry["revision"], entry["field"], dict(entry["splits"]),
                     entry["detokenizer"], entry["sample_by"], entry["eval_split"], entry.get("data_files"))
        for name, entry in entries.items()
    }


def get_corpus(name: str) -> Corpus:
    known = corpora()
    if name not in known:
        raise ValueError(f"unknown corpus {name!r}; choose from {sorted(known)}")
    return known[name]


def parse_split(spec: str) -> tuple[str, slice | None]:
    """`train` -> ("train", None); `train[-100000:]` -> ("train", slice(-100000, None)): python slice semantics,
    applied after loading because the hub's split syntax cannot count from the end."""
    match = _SLICE.match(spec)
    if not match:
        return spec, None
    return match.group(1), slice(*(int(x) if x else None for x in match.group(2, 3)))


def select_slice(dataset: datasets.Dataset, rows: slice | None) -> datasets.Dataset:
    if rows is None:
        return dataset
    return dataset.select(range(*rows.indices(len(dataset))))


def _hub_split(corpus: Corpus, split: str) -> datasets.Dataset:
    if split not in corpus.splits:
        raise ValueError(f"{corpus.name} has no {split!r} split; it has {sorted(corpus.splits)}")
    source, rows = parse_split(corpus.splits[split])
    options = {"data_files": corpus.data_files} if corpus.data_files else {}
    dataset = datasets.load_dataset(corpus.path, corpus.config_name, split=source, revision=corpus.revision, **options)
    return select_slice(dataset, rows)


def load_texts(corpus: Corpus, split: str, text_files: Sequence[str | Path] | None = None) -> datasets.Dataset:
    """The split's documents as a `text` column, detokenised; from `text_files` when given (offline use),
    split into documents by the corpus's `sample_by`. Empty documents are dropped."""
    if text_files:
        missing = [str(path) for path in text_files if not Path(path).is_file()]
        if missing:
            raise FileNotFoundError(f"text file(s) not found: {missing}")
        files = [str(path) for path in text_files]
        dataset = datasets.load_dataset("text", data_files={split: files}, sample_by=corpus.sample_by, split=split)
        field = "text"
    else:
        dataset, field = _hub_split(corpus, split), corpus.field
    detokenize = get_detokenizer(corpus.detokenizer)
    dataset = dataset.filter(lambda row: bool(row[field].strip()), desc=f"{corpus.name}: dropping empty documents")
    return dataset.map(
        lambda row: {"text": detokenize(row[field]) if detokenize else row[field]},
        remove_columns=dataset.column_names,
        desc=f"{corpus.name}: detokenizing",
    )


def _tokenize_batch(batch: dict[str, list], tokenizer: TextTokenizer, mode: BlockMode, block: int) -> dict[str, list]:
    ids = tokenizer.hf(batch["text"], add_special_tokens=False)["input_ids"]
    if mode == "wrap":
        blocks = wrap_into_blocks(ids, block, tokenizer.bos_id, tokenizer.eos_id)
        return {"input_ids": blocks, "attention_mask": [[1] * block for _ in blocks], "num_tokens": [len(x) for x in blocks]}
    blocks, masks = pad_into_blocks(ids, block, tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id)
    return {"input_ids": blocks, "attention_mask": masks, "num_tokens": [sum(mask) for mask in masks]}


def cache_key(corpus: str, split: str, tokenizer: TextTokenizer, mode: BlockMode, block: int, sources: str) -> str:
    digest = hashlib.sha1(f"{tokenizer.name}|{len(tokenizer.hf)}|{sources}".encode()).hexdigest()[:12]
    return f"{corpus}-{split}-{mode}{block}-{digest}"


def tokenized_blocks(
    corpus: Corpus,
    split: str,
    tokenizer: TextTokenizer,
    *,
    mode: BlockMode,
    block: int,
    cache_dir: str | Path,
    text_files: Sequence[str | Path] | None = None,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Token blocks of one split, from the on-disk cache if present, else built (and then cached)."""
    if mode not in ("wrap", "pad"):
        raise ValueError(f"block mode must be 'wrap' or 'pad', not {mode!r}")
    sources = ",".join(str(Path(p).resolve()) for p in text_files) if text_files else f"{corpus.path}:{corpus.config_name}"
    target = Path(cache_dir) / cache_key(corpus.name, split, tokenizer, mode, block, sources)
    if (target / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(target))
    texts = load_texts(corpus, split, text_files)
    blocks = texts.map(
        partial(_tokenize_batch, tokenizer=tokenizer, mode=mode, block=block),
        batched=True,
        remove_columns=["text"],
        num_proc=num_proc,
        desc=f"{corpus.name}/{split}: tokenizing into {mode} blocks of {block}",
    )
    if len(blocks) == 0:
        require_one_block(0, _count_tokens(texts, tokenizer), block, f"{corpus.name}/{split}")
    blocks.save_to_disk(str(target))
    return datasets.load_from_disk(str(target))


def _count_tokens(texts: datasets.Dataset, tokenizer: TextTokenizer) -> int:
    return sum(len(ids) for ids in tokenizer.hf(list(texts["text"]), add_special_tokens=False)["input_ids"])

"""Text perplexity: validation and zero-shot NELBO (continuous or discrete-T) per corpus, for our runs or a
published MDLM checkpoint.

A diffusion model's number is an upper bound on the NLL (NELBO per token, averaged over `mc` noise draws
per block); an AR model's is its exact NLL. Perplexity is exp of the per-token value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
from tqdm import tqdm

from ..diffusion.process import make_generator
from ..io import write_json_and_markdown
from ..likelihood import Nll
from ..models.handle import Model
from ..text.corpora import get_corpus, tokenized_blocks
from ..text.tokenizer import load_tokenizer
from ..training.data.text import block_loader
from .common import load_for

ZERO_SHOT_CORPORA = ("ptb", "wikitext2", "lm1b", "lambada", "ag_news", "pubmed", "arxiv")


@dataclass(frozen=True)
class CorpusPerplexity:
    corpus: str
    split: str
    blocks: int
    nll: Nll

    def row(self) -> dict[str, object]:
        return {"corpus": self.corpus, "split": self.split, "blocks": self.blocks, "tokens": self.nll.tokens,
                "nll_per_token": self.nll.per_token, "perplexity": self.nll.perplexity}


@torch.no_grad()
def corpus_nll(model: Model, blocks: datasets.Dataset, batch_size: int, mc: int, seed: int,
               discrete_steps: int | None) -> Nll:
    """The summed NELBO or NLL over every block, `mc` noise draws per block for diffusion; the NELBO in
    continuous time, or in `discrete_steps` steps."""
    loader = block_loader(blocks, batch_size, model.mask_id)
    generator = make_generator(seed, model.device)
    total, count = 0.0, 0
    for batch in tqdm(loader, desc="scoring", unit="batch", leave=False):
        nats, tokens = model.nll(batch["tokens"].to(model.device), batch["attention_mask"].to(model.device), generator,
                                 mc, discrete_steps)
        total, count = total + nats, count + tokens
    return Nll(total, count)


def evaluate_corpora(
    model: Model,
    tokenizer: str,
    corpora: Sequence[str],
    *,
    mode: str,
    block: int,
    cache_dir: Path,
    text_files: Mapping[str, Sequence[str]],
    batch_size: int,
    mc: int,
    discrete_steps: int | None,
    seed: int,
) -> list[CorpusPerplexity]:
    """Perplexity of each corpus's evaluation split (the split MDLM reports), tokenized as the model was trained."""
    text_tokenizer = load_tokenizer(tokenizer)
    results = []
    for name in corpora:
        corpus = get_corpus(name)
        files = text_files.get(name)
        blocks = tokenized_blocks(corpus, corpus.eval_split, text_tokenizer, mode=mode, block=block,  # type: ignore[arg-type]
                                  cache_dir=cache_dir, text_files=files)
        results.append(CorpusPerplexity(name, corpus.eval_split, len(blocks), corpus_nll(model, blocks, batch_size, mc,
                                                                                        seed, discrete_steps)))
    return results


def write_perplexity_table(results: Sequence[CorpusPerplexity], out_dir: Path, title: str) -> Path:
    rows = [result.row() for result in results]
    lines = [f"# Perplexity: {title}", "", "| corpus | split | blocks | tokens | NELBO or NLL / token | PPL |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r.corpus} | {r.split} | {r.blocks} | {r.nll.tokens} | {r.nll.per_token:.4f} | {r.nll.perplexity:.2f} |"
              for r in results]
    return write_json_and_markdown(out_dir, "perplexity", {"model": title, "rows": rows}, "\n".join(lines) + "\n")


def text_files_by_corpus(specs: list[str]) -> dict[str, list[str]]:
    """`--text-file CORPUS=PATH` options (repeatable) -> the local files of each corpus."""
    files: dict[str, list[str]] = {}
    for spec in specs:
        corpus, separator, path = spec.partition("=")
        if not separator or not corpus or not path:
            raise ValueError(f"--text-file takes CORPUS=PATH, e.g. ptb=ptb.valid.txt; got {spec!r}")
        files.setdefault(corpus, []).append(path)
    return files


def eval_ppl(
    ckpt: str, *, out_dir: Path, corpora: list[str] | None, tokenizer: str | None, block: int | None, padded: bool,
    text_file: list[str], discrete_steps: int | None, mc: int, batch_size: int, cache_dir: Path, seed: int, device: str,
    trust_checkpoint: bool, ignore_memory_limit: bool,
) -> None:
    """`mdlm-bio eval-ppl`: the perplexity (NELBO or NLL per token) of each corpus, written as perplexity.md/.json."""
    text_files = text_files_by_corpus(list(text_file))
    model = load_for(ckpt, device, "text", "eval-ppl", trust_checkpoint)
    block = block or model.context
    model.check_memory(batch_size, block, 0, f"scoring batches of {batch_size} x {block} tokens",
                       "lower --batch-size or --block", ignore_memory_limit)
    results = evaluate_corpora(
        model, tokenizer or model.tokenizer, corpora or ZERO_SHOT_CORPORA, mode="pad" if padded else "wrap", block=block,
        cache_dir=cache_dir, text_files=text_files, batch_size=batch_size, mc=mc, discrete_steps=discrete_steps,
        seed=seed,
    )
    time = f"T={discrete_steps}" if discrete_steps else "continuous time"
    print(write_perplexity_table(results, out_dir, f"{model.description}, {time}").read_text())

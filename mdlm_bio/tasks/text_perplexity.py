"""Text perplexity: validation and zero-shot NELBO (continuous or discrete-T) per corpus, for our runs or the
published MDLM-OWT checkpoint.

A diffusion model's number is an upper bound on the NLL (NELBO per token, averaged over `mc` noise draws
per block); an AR model's is its exact NLL. Perplexity is exp of the per-token value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
from tqdm import tqdm

from ..backbones import load_preset
from ..backbones.pretrained import HF_PREFIX, dit_config_from_mdlm, import_mdlm_dit, read_state_dict, resolve_checkpoint
from ..io import write_json_and_markdown
from ..text.corpora import get_corpus, tokenized_blocks
from ..text.tokenizer import TextTokenizer, load_tokenizer
from ..training.checkpoints import checkpoint_path, is_mdlm_bio_checkpoint, load_trained
from ..training.config import load_config, to_plain
from ..training.data.text import block_loader
from ..training.module import DiffusionLM
from ..training.settings import ModelSpec, run_settings
from .common import check_memory, require_positive

ZERO_SHOT_CORPORA = ("ptb", "wikitext2", "lm1b", "lambada", "ag_news", "pubmed", "arxiv")


@dataclass(frozen=True)
class TextModel:
    module: DiffusionLM
    tokenizer: str
    context: int
    description: str


def load_text_model(spec: str, tokenizer: str | None = None, device: str = "cpu", trusted: bool = False) -> TextModel:
    """An mdlm-bio text run or .ckpt, or a published MDLM checkpoint (hf:kuleshov-group/mdlm-owt or a file),
    given the `owt` preset's backbone options and objective (log-linear schedule, no time conditioning: how MDLM
    trained it)."""
    if not spec.startswith(HF_PREFIX) and is_mdlm_bio_checkpoint(checkpoint_path(spec)):
        trained = load_trained(spec, device)
        if trained.spec.track != "text":
            raise ValueError(f"{trained.path} holds a {trained.spec.track} model, not a text model")
        return TextModel(trained.module, tokenizer or trained.spec.tokenizer, trained.context, trained.description)
    state = read_state_dict(resolve_checkpoint(spec), trusted=trusted)
    architecture = dit_config_from_mdlm(state, spec)
    owt = run_settings(to_plain(load_config("owt")))
    model = ModelSpec(backbone={**load_preset(owt.model.preset), **architecture}, objective=owt.objective,
                      mask_id=architecture["vocab_size"] - 1, context=owt.data.window, track="text",
                      tokenizer=tokenizer or "gpt2")
    module = DiffusionLM(model)
    module.backbone.load_state_dict(import_mdlm_dit(state, spec).state_dict())
    return TextModel(module.to(device).eval(), model.tokenizer, model.context, f"MDLM DiT ({spec})")


@dataclass(frozen=True)
class CorpusPerplexity:
    corpus: str
    split: str
    blocks: int
    tokens: int
    nll_per_token: float

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_per_token)


@torch.no_grad()
def corpus_nll(module: DiffusionLM, blocks: datasets.Dataset, batch_size: int, mc: int, seed: int,
               device: str = "cpu", discrete_steps: int | None = None) -> tuple[float, int]:
    """(summed NELBO or NLL in nats, scored tokens) over every block, `mc` noise draws per block for diffusion;
    the NELBO in continuous time, or in `discrete_steps` steps."""
    if mc < 1:
        raise ValueError(f"mc must be a positive number of noise draws, not {mc}")
    engine = dataclasses.replace(module.engine, discrete_steps=discrete_steps)
    loader = block_loader(blocks, batch_size, module.mask_id)
    generator = torch.Generator(device=device).manual_seed(seed)
    total, count = 0.0, 0
    for batch in tqdm(loader, desc="scoring", unit="batch", leave=False):
        tokens, mask = batch["tokens"].to(device), batch["attention_mask"].to(device)
        draws = 1 if module.is_autoregressive else mc
        for _ in range(draws):
            out = module.objective(tokens, mask, generator, engine=engine)
            total += float(out.total) / draws
        count += int(out.num_tokens)
    return total, count


def evaluate_corpora(
    model: TextModel,
    corpora: Sequence[str],
    *,
    mode: str,
    block: int,
    cache_dir: Path,
    text_files: Mapping[str, Sequence[str]] | None = None,
    batch_size: int = 8,
    mc: int = 1,
    discrete_steps: int | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> list[CorpusPerplexity]:
    """Perplexity of each corpus's evaluation split (the split MDLM reports), tokenized as the model was trained."""
    tokenizer: TextTokenizer = load_tokenizer(model.tokenizer)
    results = []
    for name in corpora:
        corpus = get_corpus(name)
        files = (text_files or {}).get(name)
        blocks = tokenized_blocks(corpus, corpus.eval_split, tokenizer, mode=mode, block=block,  # type: ignore[arg-type]
                                  cache_dir=cache_dir, text_files=files)
        total, count = corpus_nll(model.module, blocks, batch_size, mc, seed, device, discrete_steps)
        results.append(CorpusPerplexity(name, corpus.eval_split, len(blocks), count, total / count))
    return results


def write_perplexity_table(results: Sequence[CorpusPerplexity], out_dir: Path, title: str) -> Path:
    rows = [{**dataclasses.asdict(r), "perplexity": r.perplexity} for r in results]
    lines = [f"# Perplexity: {title}", "", "| corpus | split | blocks | tokens | NELBO or NLL / token | PPL |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r.corpus} | {r.split} | {r.blocks} | {r.tokens} | {r.nll_per_token:.4f} | {r.perplexity:.2f} |"
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
    ckpt: str, *, out_dir: Path, corpora: list[str] | None = None, tokenizer: str | None = None, block: int | None = None,
    padded: bool = False, text_file: list[str] = (), discrete_steps: int | None = None, mc: int = 1,
    batch_size: int = 8, cache_dir: Path = Path("data/text-cache"), seed: int = 0, device: str = "cpu",
    trust_checkpoint: bool = False, ignore_memory_limit: bool = False,
) -> None:
    """`mdlm-bio eval-ppl`: the perplexity (NELBO or NLL per token) of each corpus, written as perplexity.md/.json."""
    for name, value in (("block", block), ("mc", mc), ("batch_size", batch_size), ("discrete_steps", discrete_steps)):
        require_positive(name, value)
    model = load_text_model(ckpt, tokenizer, device, trust_checkpoint)
    block = block or model.context
    check_memory(model.module, batch_size, block, 0, device, f"scoring batches of {batch_size} x {block} tokens",
                 "lower --batch-size or --block", ignore_memory_limit)
    results = evaluate_corpora(
        model, corpora or ZERO_SHOT_CORPORA, mode="pad" if padded else "wrap", block=block, cache_dir=cache_dir,
        text_files=text_files_by_corpus(list(text_file)), batch_size=batch_size, mc=mc, discrete_steps=discrete_steps,
        seed=seed, device=device,
    )
    time = f"T={discrete_steps}" if discrete_steps else "continuous time"
    print(write_perplexity_table(results, out_dir, f"{model.description}, {time}").read_text())

"""Generative perplexity of a text model's samples (and of real text, as the yardstick), with entropy.

Samples come from the engine's samplers (diffusion) or left-to-right sampling (AR), all drawn in float64;
the eval LM then scores their decoded text (see mdlm_bio.text.eval_lm for the exact measurement).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from ..diffusion.denoiser import SampleOutput
from ..diffusion.sampler import Sampler
from ..diffusion.stopping import StopRule, unigram_entropy
from ..io import atomic_output, write_json_and_markdown
from ..likelihood import Nll
from ..models.handle import Model
from ..text.corpora import get_corpus, tokenized_blocks
from ..text.eval_lm import EvalLM, decode_samples, generative_nll, load_eval_lm
from ..text.tokenizer import TextTokenizer, load_tokenizer
from .common import load_for
from .text_perplexity import text_files_by_corpus


@dataclass(frozen=True)
class GenerativePerplexity:
    source: str
    num_samples: int
    length: int
    num_calls: int
    nll: Nll  # under the eval LM, over the tokens it scored
    entropy_mean: float
    entropy_std: float
    mean_length: float  # below `length` when samples end at a stop rule

    def row(self) -> dict[str, object]:
        return {"source": self.source, "num_samples": self.num_samples, "length": self.length,
                "mean_length": self.mean_length, "num_calls": self.num_calls, "nll_per_token": self.nll.per_token,
                "scored_tokens": self.nll.tokens, "entropy_mean": self.entropy_mean, "entropy_std": self.entropy_std,
                "perplexity": self.nll.perplexity}


def sample_tokens(model: Model, tokenizer: TextTokenizer, sampler: Sampler, *, num: int, length: int, batch_size: int,
                  seed: int, stop: StopRule | None) -> SampleOutput:
    """`num` samples [num, length] on the CPU: beyond the model's context, semi-autoregressively (diffusion),
    block by block (block diffusion) or with a sliding window (AR; the last two start from the tokenizer's BOS, as
    their blocks do); `stop` ends them early (their `lengths`)."""
    with tqdm(total=num * length, desc="sampling", unit="token", unit_scale=True) as bar:
        return model.sample(sampler, num=num, length=length, seed=seed, batch_size=batch_size,
                            start_token=tokenizer.bos_id, stop=stop, progress=bar.update)


def reference_tokens(tokenizer: TextTokenizer, corpus: str, *, num: int, length: int, cache_dir: Path,
                     text_files: Sequence[str] | None = None) -> Tensor:
    """The first `num` wrapped blocks of `length` tokens of a corpus's evaluation split: real text to score
    beside the samples, tokenized exactly as they are."""
    spec = get_corpus(corpus)
    blocks = tokenized_blocks(spec, spec.eval_split, tokenizer, mode="wrap", block=length, cache_dir=cache_dir,  # type: ignore[arg-type]
                              text_files=text_files)
    if len(blocks) < num:
        raise ValueError(f"{corpus} has {len(blocks)} blocks of {length} tokens, fewer than the {num} requested")
    return torch.tensor(blocks.select(range(num))["input_ids"], dtype=torch.long)


def score_tokens(rows: Sequence[Tensor], tokenizer: TextTokenizer, eval_lm: EvalLM, source: str, num_calls: int = 0,
                 batch_size: int = 8) -> tuple[GenerativePerplexity, list[str]]:
    """Generative perplexity and entropy of token rows (each of its own length), and their decoded texts."""
    texts = decode_samples(rows, tokenizer, eval_lm.tokenizer.eos_token)
    total, count = generative_nll(texts, eval_lm, batch_size)
    if count == 0:
        raise ValueError("the samples decode to no tokens the eval LM can score")
    entropy = torch.stack([unigram_entropy(row[None])[0] for row in rows])
    std = float(entropy.std()) if len(entropy) > 1 else 0.0
    lengths = [len(row) for row in rows]
    result = GenerativePerplexity(source, len(rows), max(lengths), num_calls, Nll(total, count),
                                  float(entropy.mean()), std, sum(lengths) / len(lengths))
    return result, texts


def write_samples(texts: Sequence[str], path: Path) -> Path:
    """One JSON object per line: samples can hold newlines and any character."""
    with atomic_output(path) as handle:
        handle.writelines(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts)
    return path


def write_genppl_table(results: Sequence[GenerativePerplexity], out_dir: Path, model: str, eval_lm: EvalLM,
                       settings: dict[str, object]) -> Path:
    rows = [result.row() for result in results]
    described = ", ".join(f"{key}={value}" for key, value in settings.items())
    lines = [f"# Generative perplexity: {model}", "", f"Eval LM: {eval_lm.name} (context {eval_lm.context}); {described}.",
             "", "| source | samples | length | network calls | gen NLL / token | gen PPL | entropy (nats) | mean length |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.source} | {r.num_samples} | {r.length} | {r.num_calls} | {r.nll.per_token:.4f} | {r.nll.perplexity:.2f} "
              f"| {r.entropy_mean:.3f} ± {r.entropy_std:.3f} | {r.mean_length:.1f} |" for r in results]
    payload = {"model": model, "eval_lm": eval_lm.name, "eval_context": eval_lm.context, **settings, "rows": rows}
    return write_json_and_markdown(out_dir, "genppl", payload, "\n".join(lines) + "\n")


def eval_genppl(
    ckpt: str, *, out_dir: Path, tokenizer: str | None, eval_lm: str, eval_context: int | None, sampler: Sampler,
    num: int, length: int | None, batch_size: int, eval_batch_size: int, reference: str | None, text_file: list[str],
    stop_at_eos: bool, stop_entropy: float | None, stop_window: int, cache_dir: Path, seed: int, device: str,
    trust_checkpoint: bool, ignore_memory_limit: bool,
) -> None:
    """`mdlm-bio eval-genppl`: generative perplexity and entropy of a text model's samples under an eval LM,
    written as genppl.md/.json and samples.jsonl (and a real-text reference row with `reference`); samples of
    variable length with `stop_at_eos` (they end after the first EOS past their first token) or `stop_entropy`."""
    reference_files = text_files_by_corpus(list(text_file)).get(reference) if reference else None
    model = load_for(ckpt, device, "text", "eval-genppl", trust_checkpoint)
    text_tokenizer = load_tokenizer(tokenizer or model.tokenizer)
    length = length or model.context
    model.check_memory(min(batch_size, num), min(length, model.context), 8 * num * length,
                       f"sampling {num} x {length} tokens", "lower --num, --length or --batch-size", ignore_memory_limit)
    scorer = load_eval_lm(eval_lm, device, eval_context)
    # Everything that can fail on input (the reference corpus included) is loaded before the long sampling.
    real = None if reference is None else reference_tokens(
        text_tokenizer, reference, num=num, length=length, cache_dir=cache_dir, text_files=reference_files)
    stop = None
    if stop_at_eos or stop_entropy is not None:
        stop = StopRule(token=text_tokenizer.eos_id if stop_at_eos else None, entropy=stop_entropy, window=stop_window)
    out = sample_tokens(model, text_tokenizer, sampler, num=num, length=length, batch_size=batch_size, seed=seed,
                        stop=stop)
    drawn_by = model.describe_sampling(sampler) + ("" if stop is None else f" {stop.describe()}")
    result, texts = score_tokens(out.rows(), text_tokenizer, scorer, f"samples ({drawn_by})", out.num_calls,
                                 eval_batch_size)
    results = [result]
    write_samples(texts, out_dir / "samples.jsonl")
    if real is not None:
        results.append(score_tokens(list(real), text_tokenizer, scorer, f"real {reference}",
                                    batch_size=eval_batch_size)[0])
    settings = {"sampler": drawn_by, "seed": seed, "precision": "float64 draws"}
    table = write_genppl_table(results, out_dir, model.description, scorer, settings)
    print(table.read_text())
    print(f"samples in {out_dir / 'samples.jsonl'}")

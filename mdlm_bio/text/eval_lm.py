"""Generative perplexity: how likely an independent causal LM (GPT-2 large by default) finds generated text.

Follows MDLM's measurement: samples are decoded to text and retokenized with the eval LM's tokenizer,
padded with its EOS, cut into chunks of its context, and scored as next-token NLL (logits[:-1] against
tokens[1:]) over every non-EOS token plus each sample's first EOS. The perplexity is exp of the mean NLL
over all scored tokens of all samples. One deliberate difference: padding is never scored (MDLM scores
the first padding EOS of a sample without one), so a sample's score does not depend on its batch.

Low generative perplexity alone can be gamed by repetitive text, so the unigram entropy of each sample
is reported beside it (Zheng et al. 2024); compare both with real text of the same length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .tokenizer import TextTokenizer

DEFAULT_EVAL_LM = "gpt2-large"


@dataclass(frozen=True)
class EvalLM:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    context: int
    name: str


def load_eval_lm(name_or_path: str = DEFAULT_EVAL_LM, device: str = "cpu", context: int | None = None) -> EvalLM:
    """A 🤗 causal LM and its tokenizer (hub name or local folder). The context defaults to the model's
    maximum positions (1024 for GPT-2), the chunk length MDLM scores with."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"eval LM tokenizer {name_or_path!r} has no EOS token to end and pad samples with")
    model = AutoModelForCausalLM.from_pretrained(name_or_path).to(device).eval()
    limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    context = context or limit or 1024
    if context < 2 or (limit is not None and context > limit):
        raise ValueError(f"eval context must lie in [2, {limit}] for {name_or_path!r}; got {context}")
    return EvalLM(model, tokenizer, int(context), str(name_or_path))


def decode_samples(tokens: Tensor | Sequence[Tensor], tokenizer: TextTokenizer, separator: str) -> list[str]:
    """Token ids of the generating model ([N, L], or N rows of their own lengths) -> text, each document marker
    (BOS/EOS, or BERT's CLS/SEP) becoming `separator`, normally the eval LM's EOS. For GPT-2 samples under a GPT-2
    eval LM this is the text MDLM scores; BERT's word-piece detokenization is undone by skipping its other special
    tokens."""
    markers = {tokenizer.bos_id, tokenizer.eos_id}
    texts = []
    for row in (ids.tolist() for ids in tokens):
        segments, current = [], []
        for token in row:
            if token in markers:
                segments.append(current)
                current = []
            else:
                current.append(token)
        segments.append(current)
        texts.append(separator.join(tokenizer.hf.decode(ids, skip_special_tokens=True) for ids in segments))
    return texts


def scored_positions(ids: Tensor, attention: Tensor, eos_id: int) -> Tensor:
    """Real (attended) tokens that are not EOS, and the first EOS of each row: a sample's first document end
    counts, later EOS do not (MDLM's rule)."""
    is_eos = ids == eos_id
    first_eos = is_eos & (is_eos.cumsum(dim=-1) == 1)
    return attention & (~is_eos | first_eos)


@torch.no_grad()
def generative_nll(texts: Sequence[str], eval_lm: EvalLM, batch_size: int = 8) -> tuple[float, int]:
    """(summed NLL in nats, scored tokens) of `texts` under the eval LM."""
    if not texts:
        raise ValueError("no samples to score")
    eos = eval_lm.tokenizer.eos_token_id
    device = eval_lm.model.device
    total, count = 0.0, 0
    for start in tqdm(range(0, len(texts), batch_size), desc="eval LM", unit="batch", leave=False):
        ids = eval_lm.tokenizer(list(texts[start : start + batch_size]))["input_ids"]
        width = max(len(row) for row in ids)
        padded = torch.full((len(ids), width), eos, dtype=torch.long)
        for row, row_ids in enumerate(ids):
            padded[row, : len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
        attention = torch.arange(width)[None] < torch.tensor([len(row) for row in ids])[:, None]
        scored = scored_positions(padded, attention, eos)
        for chunk, chunk_attention, chunk_scored in zip(*(x.split(eval_lm.context, dim=1) for x in (padded, attention, scored))):
            if chunk.shape[1] < 2:
                continue
            logits = eval_lm.model(chunk.to(device), attention_mask=chunk_attention.to(device)).logits.float()
            nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), chunk[:, 1:].to(device), reduction="none")
            weights = chunk_scored[:, 1:].to(device)
            total += float((nll * weights).sum())
            count += int(weights.sum())
    return total, count

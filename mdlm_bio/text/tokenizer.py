"""Hugging Face tokenizers with the ids a masked-diffusion LM needs: mask, BOS, EOS and padding.

GPT-2's tokenizer has no mask or padding token and uses <|endoftext|> for both BOS and EOS; BERT's has
[MASK] and [PAD] and marks sentences with [CLS] ... [SEP]. `load_tokenizer` fills the gaps the way MDLM
does, so the model's vocabulary size (`TextTokenizer.vocab_size`) matches the published checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ..sources import HF_PREFIX

MASK_TOKEN = "[MASK]"


@dataclass(frozen=True)
class TextTokenizer:
    hf: PreTrainedTokenizerBase
    name: str
    mask_id: int
    bos_id: int
    eos_id: int
    pad_id: int

    @property
    def vocab_size(self) -> int:
        """Every id the model must score, the added mask included."""
        return len(self.hf)


def _read(name_or_path: str) -> PreTrainedTokenizerBase:
    path = Path(name_or_path)
    if path.is_file():  # a bare tokenizer.json, e.g. one trained with 🤗 tokenizers
        return PreTrainedTokenizerFast(tokenizer_file=str(path))
    return AutoTokenizer.from_pretrained(name_or_path.removeprefix(HF_PREFIX))


def load_tokenizer(name_or_path: str) -> TextTokenizer:
    """A hub name (gpt2, bert-base-uncased; hf: optional, as a model's source is written), a saved tokenizer or
    model folder, or a tokenizer.json file."""
    hf = _read(name_or_path)
    bos = hf.bos_token or hf.cls_token
    eos = hf.eos_token or hf.sep_token
    if bos is None or eos is None:
        raise ValueError(f"tokenizer {name_or_path!r} has neither BOS/EOS nor CLS/SEP tokens to mark documents")
    if hf.mask_token is None:
        hf.add_special_tokens({"mask_token": MASK_TOKEN})
    if hf.pad_token is None:  # padding positions are excluded from the loss, so any id serves; reuse EOS
        hf.pad_token = eos
    return TextTokenizer(
        hf=hf,
        name=str(name_or_path),
        mask_id=hf.mask_token_id,
        bos_id=hf.convert_tokens_to_ids(bos),
        eos_id=hf.convert_tokens_to_ids(eos),
        pad_id=hf.pad_token_id,
    )


def train_byte_level_bpe(texts: Iterable[str], folder: str | Path, vocab_size: int) -> Path:
    """Train a byte-level BPE with GPT-2's conventions (<|endoftext|> as BOS and EOS; `load_tokenizer` adds
    the mask and padding) and save it as a tokenizer folder: for a corpus that GPT-2's vocabulary fits
    badly, or a small one where 50k embeddings would dwarf the model. The bare tokenizer.json in the
    folder names no BOS/EOS; that lives in its tokenizer_config.json."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    wrapped.save_pretrained(str(folder))
    return Path(folder)

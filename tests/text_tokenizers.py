"""Tokenizers trained on the fly with 🤗 tokenizers on a small text the tests write: a byte-level BPE with
GPT-2's conventions (<|endoftext|> as BOS and EOS, no mask or pad) and a WordPiece with BERT's
([CLS] [SEP] [MASK] [PAD])."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from mdlm_bio.text.tokenizer import train_byte_level_bpe

WORDS = "the a model masked diffusion language genome sample of and to in is was it on for with as text".split()


def small_corpus(documents: int = 40, seed: int = 0) -> list[str]:
    """Deterministic pseudo-English documents of a few sentences each."""
    state, corpus = seed, []
    for _ in range(documents):
        sentences = []
        for _ in range(1 + state % 3):
            words = []
            for _ in range(5 + state % 7):
                state = (state * 1103515245 + 12345) % 2**31
                words.append(WORDS[state % len(WORDS)])
            sentences.append(" ".join(words).capitalize() + ".")
        corpus.append(" ".join(sentences))
    return corpus


def gpt2_style_tokenizer(folder: Path) -> Path:
    """A byte-level BPE saved as a tokenizer folder, like GPT-2's: one special token for BOS and EOS."""
    return train_byte_level_bpe(small_corpus(), folder, vocab_size=400)


def bert_style_tokenizer(folder: Path) -> Path:
    """A lowercasing WordPiece saved as a tokenizer folder with BERT's special tokens."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(small_corpus(), trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials))
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", tokenizer.token_to_id("[SEP]")),
                                                         ("[CLS]", tokenizer.token_to_id("[CLS]")))
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                      sep_token="[SEP]", mask_token="[MASK]")
    wrapped.save_pretrained(str(folder))
    return folder

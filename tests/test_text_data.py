"""Text data: tokenizers with the ids diffusion needs, wrapped and padded blocks, detokenizers, and corpora read
from local text files into cached token blocks (tokenizers trained on the fly, see text_tokenizers.py)."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from text_tokenizers import bert_style_tokenizer, gpt2_style_tokenizer, small_corpus

from mdlm_bio.text import corpora as corpora_module
from mdlm_bio.text.blocks import ShortCorpusError, pad_into_blocks, wrap_into_blocks
from mdlm_bio.text.corpora import get_corpus, parse_split, select_slice, tokenized_blocks
from mdlm_bio.text.detokenizers import get_detokenizer, lambada, lm1b, ptb, wikitext
from mdlm_bio.text.tokenizer import TextTokenizer, load_tokenizer


@pytest.fixture(scope="module")
def gpt2_like(tmp_path_factory) -> TextTokenizer:
    return load_tokenizer(str(gpt2_style_tokenizer(tmp_path_factory.mktemp("tok") / "gpt2")))


@pytest.fixture(scope="module")
def bert_like(tmp_path_factory) -> TextTokenizer:
    return load_tokenizer(str(bert_style_tokenizer(tmp_path_factory.mktemp("tok") / "bert")))


def test_gpt2_style_tokenizer_gains_a_mask_and_pads_with_eos(gpt2_like):
    endoftext = gpt2_like.hf.convert_tokens_to_ids("<|endoftext|>")
    assert gpt2_like.bos_id == gpt2_like.eos_id == gpt2_like.pad_id == endoftext
    assert gpt2_like.mask_id == gpt2_like.vocab_size - 1  # one new id, as MDLM's GPT-2 vocabulary of 50258
    assert gpt2_like.hf.convert_ids_to_tokens(gpt2_like.mask_id) == "[MASK]"


def test_bert_style_tokenizer_uses_cls_sep_and_its_own_mask(bert_like):
    ids = bert_like.hf.convert_tokens_to_ids
    assert (bert_like.bos_id, bert_like.eos_id, bert_like.mask_id, bert_like.pad_id) == (
        ids("[CLS]"), ids("[SEP]"), ids("[MASK]"), ids("[PAD]"))
    assert bert_like.vocab_size == len(bert_like.hf.get_vocab())  # nothing added


def test_a_tokenizer_without_document_markers_is_refused(tmp_path, gpt2_like):
    gpt2_like.hf.backend_tokenizer.save(str(tmp_path / "bare.json"))
    with pytest.raises(ValueError, match=r"bare.json' has neither BOS/EOS nor CLS/SEP tokens"):
        load_tokenizer(str(tmp_path / "bare.json"))


def test_wrapping_appends_eos_per_document_and_frames_each_block():
    blocks = wrap_into_blocks([[1, 2, 3], [4, 5], [6]], block=5, bos=0, eos=9)
    # stream 1 2 3 9 4 5 9 6 9 -> pieces of 3, the tail [9] dropped
    assert blocks == [[0, 1, 2, 3, 9], [0, 9, 4, 5, 9], [0, 9, 6, 9, 9]]
    assert wrap_into_blocks([[1]], block=5, bos=0, eos=9) == []
    with pytest.raises(ValueError, match="block must be >= 3, not 2"):
        wrap_into_blocks([[1]], block=2, bos=0, eos=9)


def test_padding_keeps_the_closing_eos_when_truncating():
    blocks, masks = pad_into_blocks([[1, 2], [1, 2, 3, 4, 5, 6]], block=5, bos=0, eos=9, pad=7)
    assert blocks == [[0, 1, 2, 9, 7], [0, 1, 2, 3, 9]]
    assert masks == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]


@pytest.mark.parametrize(("detokenize", "raw", "clean"), [
    (wikitext, ' = = Early life = = \n The film ( 1995 ) cost 3 @.@ 5 million , and " it " was well @-@ known . ',
     ' == Early life ==\nThe film (1995) cost 3.5 million, and "it" was well-known. '),
    (ptb, "the company 's shares do n't rise N N % to $ N <unk> a\\/b", "the company's shares don't rise 1 1 % to $1 ? a/b"),
    (lm1b, 'He said " hello there " , and ( quietly ) left . Visit http : / / x.org ! ',
     'He said "hello there", and (quietly) left. Visit http://x.org! '),
    (lambada, "“Hi,” he said ", '\n"Hi," he said'),
])
def test_detokenizers(detokenize, raw, clean):
    assert detokenize(raw) == clean


def test_unknown_detokenizer_and_corpus_are_named():
    with pytest.raises(ValueError, match=r"unknown detokenizer 'nope'; choose from \['lambada', 'lm1b'"):
        get_detokenizer("nope")
    with pytest.raises(ValueError, match=r"unknown corpus 'c5'; choose from \['ag_news', 'arxiv', 'c4', 'lambada'"):
        get_corpus("c5")


def test_owt_validation_is_the_last_100k_documents():
    corpus = get_corpus("openwebtext")
    assert parse_split(corpus.splits["validation"]) == ("train", slice(-100000, None))
    assert parse_split(corpus.splits["train"]) == ("train", slice(None, -100000))
    rows = datasets.Dataset.from_dict({"text": [str(i) for i in range(250_000)]})
    validation = select_slice(rows, parse_split(corpus.splits["validation"])[1])
    assert len(validation) == 100_000 and validation[0]["text"] == "150000"
    assert len(select_slice(rows, parse_split(corpus.splits["train"])[1])) == 150_000


def write_text(path: Path, documents: list[str], separator: str) -> Path:
    path.write_text(separator.join(documents) + "\n")
    return path


def test_wrapped_blocks_from_local_files_are_cached(tmp_path, gpt2_like, monkeypatch):
    text = write_text(tmp_path / "owt.txt", small_corpus(40), "\n\n")  # paragraphs = documents
    options = dict(mode="wrap", block=32, cache_dir=tmp_path / "cache", text_files=[text])
    blocks = tokenized_blocks(get_corpus("openwebtext"), "train", gpt2_like, **options)
    rows = list(blocks["input_ids"])
    assert len(rows) > 5 and all(len(row) == 32 and row[0] == gpt2_like.bos_id and row[-1] == gpt2_like.eos_id for row in rows)
    expected = sum(len(ids) + 1 for ids in gpt2_like.hf(small_corpus(40), add_special_tokens=False)["input_ids"]) // 30
    assert len(rows) == expected  # every document kept (one map batch), only the last partial block dropped

    def offline(*args, **kwargs):
        raise AssertionError("the second call must come from the cache")

    monkeypatch.setattr(corpora_module, "load_texts", offline)
    assert list(tokenized_blocks(get_corpus("openwebtext"), "train", gpt2_like, **options)["input_ids"]) == rows


def test_padded_lm1b_blocks_mask_their_padding(tmp_path, bert_like):
    sentences = ["the model is masked .", "a genome sample of text , and the language model in it was " * 3]
    text = write_text(tmp_path / "lm1b.txt", sentences, "\n")
    blocks = tokenized_blocks(get_corpus("lm1b"), "train", bert_like, mode="pad", block=16, cache_dir=tmp_path / "c",
                              text_files=[text])
    first, second = blocks[0], blocks[1]
    assert first["input_ids"][0] == bert_like.bos_id and bert_like.eos_id in first["input_ids"]
    assert first["attention_mask"].count(0) == first["input_ids"].count(bert_like.pad_id) > 0
    assert second["attention_mask"] == [1] * 16 and second["input_ids"][-1] == bert_like.eos_id  # truncated


def test_a_corpus_shorter_than_one_block_is_a_clear_error(tmp_path, gpt2_like):
    text = write_text(tmp_path / "ptb.txt", ["the model is masked", "a sample"], "\n")
    with pytest.raises(ShortCorpusError, match=r"^ptb/validation has \d+ tokens, fewer than one wrapped block of 1024; "
                                               r"use a smaller block, or padded \(unwrapped\) blocks$"):
        tokenized_blocks(get_corpus("ptb"), "validation", gpt2_like, mode="wrap", block=1024, cache_dir=tmp_path / "c",
                         text_files=[text])
    with pytest.raises(FileNotFoundError, match=r"text file\(s\) not found: \['.*missing.txt'\]"):
        tokenized_blocks(get_corpus("ptb"), "test", gpt2_like, mode="wrap", block=8, cache_dir=tmp_path / "c",
                         text_files=[tmp_path / "missing.txt"])

"""A Hugging Face masked LM as an MDLM: a tiny randomly initialised BERT saved with save_pretrained here (no
download) loads as a masked diffusion model with its own tokenizer and [MASK], gives the engine's loss on its own
raw logits, never predicts [MASK], neither attends to nor scores padding, gathers logits at positions exactly,
and MDLM fine-tuning from it lowers the held-out NELBO."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from text_runs import tiny_text_run
from transformers import AutoTokenizer, BertForMaskedLM

from mdlm_bio.backbones import build_backbone
from mdlm_bio.cli import main
from mdlm_bio.diffusion.ancestral_sampler import AncestralSampler
from mdlm_bio.diffusion.objectives import subs_log_probs
from mdlm_bio.diffusion.process import make_generator
from mdlm_bio.models import load_model
from mdlm_bio.models.network import LanguageModel
from mdlm_bio.training.config import load_config

CONTEXT = 64  # the masked_lm fixture's positions (conftest.py)


def reference(folder: Path) -> BertForMaskedLM:
    return BertForMaskedLM.from_pretrained(folder).eval()


def padded_batch(vocab: int, pad_id: int, mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of 16 tokens (no [MASK]); the second ends in 5 padding positions."""
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(5, vocab, (2, 16), generator=generator)
    assert not (tokens == mask_id).any()
    attention_mask = torch.ones_like(tokens)
    tokens[1, 11:], attention_mask[1, 11:] = pad_id, 0
    return tokens, attention_mask


def test_a_saved_masked_lm_loads_as_an_mdlm_with_its_own_mask_tokenizer_and_logits(masked_lm):
    model = load_model(masked_lm)
    tokenizer = AutoTokenizer.from_pretrained(masked_lm)
    assert (model.kind, model.mask_id, model.context) == ("mdlm", tokenizer.mask_token_id, CONTEXT)
    assert model.tokenizer == str(masked_lm) and model.spec.backbone["config"]["model_type"] == "bert"
    assert "masked language model" in model.caveat
    tokens = torch.randint(5, len(tokenizer), (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.network.backbone(tokens), reference(masked_lm)(input_ids=tokens).logits)


def test_the_mdlm_loss_through_the_backbone_is_the_engines_loss_on_the_raw_logits(masked_lm):
    model = load_model(masked_lm)
    network, hf = model.network, reference(masked_lm)
    tokens, attention_mask = padded_batch(hf.config.vocab_size, hf.config.pad_token_id, model.mask_id)
    with torch.no_grad():
        ours = network.objective(tokens, attention_mask, make_generator(3, "cpu"))
        raw = network.engine.loss(lambda z_t, t: hf(input_ids=z_t, attention_mask=attention_mask).logits, tokens,
                                  attention_mask.bool(), make_generator(3, "cpu"))
    assert torch.allclose(ours.per_sequence, raw.per_sequence, rtol=1e-5, atol=1e-6)
    assert ours.loss.item() == pytest.approx(raw.loss.item(), rel=1e-5)


def test_subs_never_predicts_mask_and_keeps_unmasked_tokens(masked_lm):
    model = load_model(masked_lm)
    tokens, _ = padded_batch(model.spec.backbone["vocab_size"], 0, model.mask_id)
    z_t = tokens.clone()
    z_t[:, ::3] = model.mask_id
    with torch.no_grad():
        log_probs = subs_log_probs(model.network.denoiser(z_t, torch.full((2,), 0.5)), z_t, model.mask_id)
    assert torch.all(log_probs[..., model.mask_id] == float("-inf"))
    kept = z_t != model.mask_id
    assert torch.all(log_probs[kept].gather(-1, z_t[kept][:, None]) == 0)


def test_padding_is_neither_attended_to_nor_scored(masked_lm):
    model = load_model(masked_lm)
    network = model.network
    tokens, attention_mask = padded_batch(model.spec.backbone["vocab_size"], 0, model.mask_id)
    other = tokens.clone()
    other[1, 11:] = 7  # different ids where the padding is
    with torch.no_grad():
        first = network.objective(tokens, attention_mask, make_generator(5, "cpu"))
        second = network.objective(other, attention_mask, make_generator(5, "cpu"))
        logits = network.denoiser(tokens, torch.full((2,), 0.5), attention_mask=attention_mask)
        other_logits = network.denoiser(other, torch.full((2,), 0.5), attention_mask=attention_mask)
    assert torch.equal(first.per_sequence, second.per_sequence)
    assert torch.allclose(logits[1, :11], other_logits[1, :11], atol=1e-6)


TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 64}


@pytest.mark.parametrize("config", [
    {"model_type": "bert", **TINY},
    {"model_type": "roberta", **TINY, "max_position_embeddings": 66, "pad_token_id": 1},
    {"model_type": "modernbert", **TINY, "global_attn_every_n_layers": 1, "pad_token_id": 0},
    {"model_type": "distilbert", "dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64},  # no known head: gathers
], ids=lambda config: config["model_type"])
def test_logits_at_chosen_positions_equal_the_full_logits_gathered(config):
    torch.manual_seed(0)
    backbone = build_backbone({"architecture": "hf-masked-lm", "vocab_size": 50, "config": config}).eval()
    tokens = torch.randint(3, 50, (3, 20), generator=torch.Generator().manual_seed(0))
    positions = (torch.tensor([0, 0, 1, 2, 2]), torch.tensor([0, 7, 19, 3, 4]))
    with torch.no_grad():
        full = backbone(tokens)
        at = backbone.logits_at(tokens, None, positions)
    assert torch.allclose(at, full[positions], atol=1e-5)


def test_an_encoder_is_refused_as_an_autoregressive_model(masked_lm):
    spec = load_model(masked_lm).spec
    autoregressive = type(spec)(**{**spec.__dict__, "objective": type(spec.objective)(**{**spec.objective.__dict__,
                                                                                           "kind": "ar"})})
    with pytest.raises(ValueError, match="an autoregressive model needs a causal backbone; hf-masked-lm is a "
                                         "bidirectional encoder"):
        LanguageModel(autoregressive)


def test_a_vocabulary_that_disagrees_with_the_config_is_refused():
    with pytest.raises(ValueError, match="hf-masked-lm: vocab_size is 60 but its config says 50"):
        build_backbone({"architecture": "hf-masked-lm", "vocab_size": 60, "config": {"model_type": "bert",
                                                                                      "vocab_size": 50, **TINY}})


def test_describe_reads_the_architecture_from_a_saved_model(masked_lm, capsys):
    main(["describe", "hf-masked-lm", f"pretrained={masked_lm}"])
    assert "HuggingFaceMaskedLM" in capsys.readouterr().out


def test_the_paper_preset_follows_init_from_for_weights_architecture_and_tokenizer():
    config = load_config("mlm-mdlm", ["init_from=hf:roberta-base"])
    assert config.data.tokenizer == config.model.overrides.pretrained == "hf:roberta-base"
    assert (config.model.preset, config.optim.lr, config.trainer.max_steps, config.data.window) == (
        "hf-masked-lm", 5e-5, 5000, 128)
    assert config.data.batch_size * config.trainer.devices * config.trainer.accumulate_grad_batches == 512


def held_out_nelbo(texts: Path, ckpt: Path, out: Path) -> float:
    main(["eval-ppl", "--ckpt", str(ckpt), "--corpora", "ptb", "--text-file", f"ptb={texts / 'valid.txt'}",
          "--cache-dir", str(texts / "cache"), "--out-dir", str(out), "--mc", "4", "--block", str(CONTEXT)])
    return json.loads((out / "perplexity.json").read_text())["rows"][0]["nll_per_token"]


def test_mdlm_fine_tuning_from_the_masked_lm_lowers_the_held_out_nelbo(masked_lm, texts, tmp_path):
    before = held_out_nelbo(texts, masked_lm, tmp_path / "before")
    run = tmp_path / "mlm-mdlm"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main([*tiny_text_run(texts, "unused", "bert", 40), f"run_dir={run}", f"data.tokenizer={masked_lm}",
              "model.preset=hf-masked-lm", f"model.overrides.pretrained={masked_lm}", f"init_from={masked_lm}",
              "trainer.val_check_interval=40", "optim.ema=null"])
    assert f"initialised the backbone from {masked_lm}" in printed.getvalue()
    after = held_out_nelbo(texts, run, tmp_path / "after")
    assert after < before - 0.5, (before, after)  # 4.43 -> 3.38 nats per token
    model = load_model(run)  # rebuilt from the checkpoint's stored config, not from the folder
    assert model.spec.backbone["config"]["hidden_size"] == 32 and model.mask_id == load_model(masked_lm).mask_id
    samples = model.sample(AncestralSampler(steps=8), num=2, length=CONTEXT, seed=0, batch_size=2)
    assert samples.tokens.shape == (2, CONTEXT) and not (samples.tokens == model.mask_id).any()

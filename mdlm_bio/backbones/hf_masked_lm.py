"""A Hugging Face masked language model (BERT, RoBERTa, ModernBERT, ...) as a backbone: MDLM fine-tuning of a
pretrained encoder (MDLM section 4), which the paper shows keeps what the encoder learned.

The encoder reads no time (as in the paper): a masked LM already predicts masked tokens from the unmasked ones,
which is what the SUBS denoiser does at every noise level. Its [MASK] id is the diffusion mask. The module is
built from the Hugging Face config alone (`config`, stored in every checkpoint made from it), so loading a
fine-tuned model never downloads anything; the pretrained weights come in through `init_from` or the importer
(models/hf_masked_lm.py). transformers is imported when one is built, not when backbones are listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from ..sources import HF_PREFIX

# The modules after the encoder that turn hidden states into logits, by model type, so the output layer runs at
# masked positions only. Other masked LMs score every position and gather (the same logits, more work).
OUTPUT_HEADS: dict[str, tuple[str, ...]] = {
    "bert": ("cls",),
    "roberta": ("lm_head",),
    "xlm-roberta": ("lm_head",),
    "camembert": ("lm_head",),
    "modernbert": ("head", "decoder"),
}
# What a stored config keeps: not where or with which library version it was written, nor a classifier's labels.
UNSTORED_CONFIG_KEYS = ("transformers_version", "_name_or_path", "architectures", "id2label", "label2id")


def stored_config(config: Any) -> dict[str, Any]:
    """A transformers config as the plain data a checkpoint keeps: what differs from the family's defaults."""
    return {key: value for key, value in config.to_diff_dict().items() if key not in UNSTORED_CONFIG_KEYS}


class HuggingFaceMaskedLM(nn.Module):
    """`AutoModelForMaskedLM` built from `config` (a config's `to_diff_dict`, `model_type` included; read from
    `pretrained`, a hub name or a saved folder, when not given), scoring `vocab_size` ids. Padding is the data's:
    the encoder is given `attention_mask` (1 where a real token is), as the tokenizer pads."""

    reads_attention_mask = True  # the network passes the data's padding mask on (models/network.py)

    def __init__(self, vocab_size: int | None = None, config: Mapping[str, Any] | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModelForMaskedLM

        if config is None:
            resolved = self.resolve_settings({"pretrained": pretrained, "vocab_size": vocab_size})
            config, vocab_size = resolved["config"], resolved["vocab_size"]
        settings = dict(config)
        if "model_type" not in settings:
            raise ValueError("hf-masked-lm config needs its model_type (a Hugging Face config's to_diff_dict())")
        vocab_size = vocab_size or settings.get("vocab_size")
        if settings.get("vocab_size", vocab_size) != vocab_size:
            raise ValueError(f"hf-masked-lm: vocab_size is {vocab_size} but its config says {settings['vocab_size']}")
        hf_config = AutoConfig.for_model(**({**settings, "vocab_size": vocab_size} if vocab_size else settings))
        self.model = AutoModelForMaskedLM.from_config(hf_config)
        self.head_names = OUTPUT_HEADS.get(hf_config.model_type)
        # Segment ids (sentence A or B) exist where the encoder learned more than one: BERT's, not RoBERTa's.
        self.reads_segments = getattr(hf_config, "type_vocab_size", 0) > 1

    @staticmethod
    def resolve_settings(options: Mapping[str, Any]) -> dict[str, Any]:
        """The settings with `config` filled in from `pretrained`'s (a small download for a hub name), so a
        checkpoint describes the architecture without naming a place to fetch it from."""
        if options.get("config") is not None:
            return dict(options)
        if not options.get("pretrained"):
            raise ValueError("hf-masked-lm needs pretrained= (a hub name such as bert-base-uncased, or a folder "
                             "saved with save_pretrained) or config=")
        config = pretrained_config(options["pretrained"])
        if (options.get("vocab_size") or 0) > config.vocab_size:
            raise ValueError(f"the tokenizer has {options['vocab_size']} ids but {options['pretrained']} scores "
                             f"{config.vocab_size}; use the tokenizer saved with the model")
        # The model's own size: a vocabulary padded past the tokenizer's ids (ModernBERT's) is the shape its weights have
        return {**options, "config": stored_config(config), "vocab_size": config.vocab_size}

    def features(self, tokens: Tensor, t: Tensor | None = None, attention_mask: Tensor | None = None,
                 token_type_ids: Tensor | None = None) -> Tensor:
        """The encoder's last hidden states [B, L, D] (no time input): what classification heads read, with the
        segment ids of a sentence pair where the encoder has them."""
        segments = {"token_type_ids": token_type_ids} if self.reads_segments and token_type_ids is not None else {}
        return self.model.base_model(input_ids=tokens, attention_mask=attention_mask, **segments).last_hidden_state

    def forward(self, tokens: Tensor, t: Tensor | None = None, attention_mask: Tensor | None = None) -> Tensor:
        return self.model(input_ids=tokens, attention_mask=attention_mask).logits

    def logits_at(self, tokens: Tensor, t: Tensor | None, positions: tuple[Tensor, Tensor],
                  attention_mask: Tensor | None = None) -> Tensor:
        """Logits [N, V] at N (row, column) positions: the output head reads each position's own hidden state,
        so it runs at those positions only where the family's head is known."""
        if self.head_names is None:
            return self(tokens, t, attention_mask)[positions]
        hidden = self.features(tokens, t, attention_mask)[positions]
        for name in self.head_names:
            hidden = getattr(self.model, name)(hidden)
        return hidden


def pretrained_config(name: str) -> Any:
    """The transformers config of a hub name (hf: prefix optional) or a local folder."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(hub_or_folder(name))
    except OSError as error:  # offline, no such repo, or a folder without config.json
        raise OSError(f"cannot read the config of {name} ({str(error).splitlines()[0]}); pass a local folder saved "
                      f"with save_pretrained, or go online once so the hub's files are cached") from None


def hub_or_folder(name: str) -> str:
    """What transformers' from_pretrained takes for a source written as this package writes them (hf:NAME)."""
    return name.removeprefix(HF_PREFIX)

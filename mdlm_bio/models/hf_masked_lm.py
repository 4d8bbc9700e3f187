"""Hugging Face masked language models (BERT, RoBERTa, ModernBERT, ...) as published models: a folder saved with
save_pretrained, or `hf:NAME` on the hub, read with transformers' own loader and used as a masked diffusion
model (MDLM's objective, no time conditioning) with the tokenizer saved beside it.

Before MDLM fine-tuning such a model was trained to fill in 15% (or 30%) of a sequence, not every noise level:
its NELBO is a bound all the same (MDLM reports BERT's at <= 78 perplexity on C4, <= 35 after 5k fine-tuning
steps), which is what `mdlm-bio train mlm-mdlm` starts from.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from ..backbones.hf_masked_lm import hub_or_folder, stored_config
from ..errors import CheckpointError
from ..sources import HF_CONFIG, is_hub_name
from .published import MDLM_OBJECTIVE, PublishedModel
from .spec import ModelSpec

MLM_CAVEAT = ("note: {source} is a masked language model trained to fill in a fixed fraction of a sequence, not as a "
              "diffusion model: its NELBO bounds its likelihood loosely (MDLM fine-tuning tightens it: mdlm-bio train "
              "mlm-mdlm init_from={source}) and its samples come from a model used outside its training objective")


def masked_lm_config(weights: Path, source: str) -> Path | None:
    """The config.json beside `weights` when it describes a masked LM transformers can build (fetched from the
    hub for an hf: source); None for anything else (ours, MDLM, Caduceus)."""
    config = weights.parent / HF_CONFIG
    if not config.is_file() and is_hub_name(source):
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        try:
            config = Path(hf_hub_download(hub_or_folder(source), HF_CONFIG))
        except (EntryNotFoundError, LocalEntryNotFoundError):
            return None
    if not config.is_file():
        return None
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError):
        return None
    return config if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES else None


def hf_masked_lm(source: str, folder: Path) -> PublishedModel:
    """The masked LM saved in `folder` (a local folder, or the hub's snapshot of `source`), with its tokenizer:
    the [MASK] id is the diffusion mask, and the context is what both the tokenizer and the positions allow."""
    from transformers import AutoModelForMaskedLM

    from ..text.tokenizer import load_tokenizer

    tokenizer_source = hub_or_folder(source) if is_hub_name(source) else str(folder)
    try:
        with _no_progress_bars():  # a bar per weight file, for a load that takes a second
            network = AutoModelForMaskedLM.from_pretrained(str(folder))
        tokenizer = load_tokenizer(tokenizer_source)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{source}: cannot be read as a Hugging Face masked LM with its tokenizer "
                              f"({str(error).splitlines()[0]})") from None
    config = network.config
    if len(tokenizer.hf) > config.vocab_size:
        raise CheckpointError(f"{source}: its tokenizer has {len(tokenizer.hf)} ids but the model scores "
                              f"{config.vocab_size}")
    positions = getattr(config, "max_position_embeddings", None) or tokenizer.hf.model_max_length
    context = int(min(positions, tokenizer.hf.model_max_length))
    backbone = {"architecture": "hf-masked-lm", "vocab_size": config.vocab_size, "config": stored_config(config),
                "pretrained": str(source)}
    spec = ModelSpec(backbone=backbone, objective=MDLM_OBJECTIVE, mask_id=tokenizer.mask_id, context=context,
                     track="text", tokenizer=tokenizer_source)
    weights = {f"model.{key}": tensor for key, tensor in network.state_dict().items()}
    name = f"{config.model_type} masked LM"
    return PublishedModel(spec, weights, name, MLM_CAVEAT.format(source=source))


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()

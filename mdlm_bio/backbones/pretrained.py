"""Import published checkpoints (MDLM-OWT's DiT, Caduceus-PS/-Ph) by mapping their state-dict keys.

Each importer infers the architecture from tensor shapes, renames every key to
ours, and refuses anything it cannot account for: an unknown key, a missing
key, a wrong shape, or tied copies that disagree are errors naming the key.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, first_line
from ..sources import HF_PREFIX, HF_WEIGHT_FILES, is_hub_name
from .caduceus import Caduceus
from .dit import DiT


def resolve_checkpoint(spec: str | Path) -> Path:
    """A local file, or `hf:owner/repo` downloaded (and cached) from the Hugging Face hub."""
    text = str(spec)
    if not is_hub_name(text):
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        return path
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    repo = text[len(HF_PREFIX) :]
    for filename in HF_WEIGHT_FILES:
        try:
            return Path(hf_hub_download(repo, filename))
        except LocalEntryNotFoundError as error:  # offline and not cached: say so, not "missing file"
            raise CheckpointError(f"could not download {repo} from the Hugging Face hub and it is not cached "
                                  f"locally (offline?); pass a local checkpoint file instead. ({error})") from None
        except EntryNotFoundError:
            continue
    raise CheckpointError(f"{repo} has none of {HF_WEIGHT_FILES}")


def read_payload(path: Path, trusted: bool = False, kind: str = "a checkpoint's mapping of names to tensors",
                 map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """What a checkpoint file holds, as a mapping: .safetensors, or a pickled .bin/.pt/.pth/.ckpt of any writer.

    Pickled files are opened tensors-and-plain-data only unless `trusted`: Lightning checkpoints also pickle
    their hyperparameters, which can run code when unpickled. Every failure is a CheckpointError naming the file;
    `kind` says what was expected instead of a non-mapping.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix not in (".bin", ".pt", ".pth", ".ckpt"):
        raise CheckpointError(f"{path}: unsupported checkpoint format {path.suffix!r}; use .safetensors, .bin or .ckpt")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as error:
        if not _refused_objects(error, path):
            raise CheckpointError(f"{path}: cannot be read as a checkpoint; the file is damaged (its pickled index "
                                  f"does not parse). Restore a good copy") from None
        raise CheckpointError(
            f"{path}: holds Python objects that a weights-only read refuses (Lightning checkpoints pickle their "
            f"settings so, and a crafted file runs code when they are loaded); mdlm-bio did not write it (ours hold "
            f"tensors and plain data only). If you trust its source, pass --trust-checkpoint (trusted=True in "
            f"Python)") from None
    except Exception as error:  # zip, EOF, storage and other errors of a truncated or damaged file
        reason = first_line(error).split(". ")[0]
        raise CheckpointError(f"{path}: cannot be read as a checkpoint; the file is truncated or damaged ({reason}). "
                              f"Restore a good copy; for a run's last.ckpt, copy the newest step=N.ckpt beside it "
                              f"over it to resume from there") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: holds a {type(payload).__name__}, not {kind}")
    return payload


def _refused_objects(error: pickle.UnpicklingError, path: Path) -> bool:
    """Whether torch's weights-only reader stopped at a well-formed pickle that loads objects (a global it does not
    allow, or an opcode it does not run) rather than at bytes that are no pickle at all (a damaged file): the
    stream is disassembled, which checks every opcode against the stack without running any."""
    if re.search(r"unsupported global", str(error), re.IGNORECASE):
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            index = next(name for name in archive.namelist() if name.endswith("data.pkl"))
            pickletools.dis(archive.read(index), out=io.StringIO())
    except Exception:  # not a zip, no index, or an index that does not disassemble
        return False
    return True


def read_state_dict(path: Path, use_ema: bool = False, trusted: bool = False) -> dict[str, Tensor]:
    """Tensors from .safetensors, .bin/.pt/.pth, or a Lightning .ckpt (optionally its EMA weights)."""
    payload = read_payload(path, trusted)
    if "state_dict" not in payload:
        if use_ema:
            raise CheckpointError(f"{path}: use_ema needs a Lightning checkpoint with an 'ema' entry")
        return payload
    state = payload["state_dict"]
    return _with_ema_weights(state, payload.get("ema"), path) if use_ema else state


def _with_ema_weights(state: dict[str, Tensor], ema: Mapping | None, path: Path) -> dict[str, Tensor]:
    """MDLM stores EMA weights as an unnamed list in parameter order, i.e. state-dict order minus buffers."""
    if ema is None:
        raise CheckpointError(f"{path}: no 'ema' entry in this checkpoint")
    names = [key for key in state if not key.endswith("inv_freq")]
    shadow = ema["shadow_params"]
    if len(shadow) != len(names):
        raise CheckpointError(f"{path}: {len(shadow)} EMA tensors for {len(names)} parameters")
    return {**state, **dict(zip(names, shadow))}


def load_converted(model: nn.Module, converted: Mapping[str, list[Tensor]], source: str, optional: set[str]) -> None:
    """Load `our key -> candidate tensors` into model, resolving weight ties, checking everything."""
    expected = model.state_dict()
    unknown = sorted(set(converted) - set(expected))
    if unknown:
        raise CheckpointError(f"{source}: keys {unknown} have no place in {type(model).__name__}")
    tie_groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        tie_groups.setdefault(id(param), []).append(name)
    parameter_names = {name for names in tie_groups.values() for name in names}
    groups = [*tie_groups.values(), *([key] for key in expected if key not in parameter_names)]
    values: dict[str, Tensor] = {}
    for names in groups:
        candidates = [(name, tensor) for name in names for tensor in converted.get(name, [])]
        if not candidates:
            if not set(names) <= optional:
                raise CheckpointError(f"{source}: missing weights for {names}")
            continue
        first_name, first = candidates[0]
        for name, tensor in candidates[1:]:
            if tensor.shape != first.shape or not torch.equal(tensor, first):
                raise CheckpointError(f"{source}: tied weights for {first_name} and {name} differ")
        for name in names:
            if first.shape != expected[name].shape:
                raise CheckpointError(
                    f"{source}: {name} has shape {tuple(first.shape)} but the model expects {tuple(expected[name].shape)}"
                )
            values[name] = first
    model.load_state_dict({**expected, **values}, strict=True)


def convert_keys(state: Mapping[str, Tensor], rename: Callable[[str], str | None], source: str) -> dict[str, list[Tensor]]:
    converted: dict[str, list[Tensor]] = {}
    unknown = []
    for key, tensor in state.items():
        target = rename(key)
        if target is None:
            unknown.append(key)
        else:
            converted.setdefault(target, []).append(tensor)
    if unknown:
        raise CheckpointError(f"{source}: unknown keys {sorted(unknown)[:10]} ({len(unknown)} in all)")
    return converted


# --- MDLM (kuleshov-group/mdlm-owt) -----------------------------------------------------------


def _rename_mdlm(key: str) -> str | None:
    """MDLM's HF and Lightning checkpoints both keep the DiT under `backbone.`; our names are its names."""
    return key[len("backbone.") :] if key.startswith("backbone.") else None


def dit_config_from_mdlm(state: Mapping[str, Tensor], source: str = "checkpoint") -> dict:
    try:
        vocab_size, hidden_size = state["backbone.vocab_embed.embedding"].shape
        cond_dim = state["backbone.sigma_map.mlp.0.weight"].shape[0]
        inv_freq = state["backbone.rotary_emb.inv_freq"]
    except KeyError as error:
        raise CheckpointError(f"{source}: not an MDLM DiT checkpoint (no {error.args[0]})") from None
    n_blocks = len({key.split(".")[2] for key in state if key.startswith("backbone.blocks.")})
    return dict(
        architecture="dit",
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        cond_dim=cond_dim,
        n_blocks=n_blocks,
        n_heads=hidden_size // (2 * inv_freq.numel()),
    )


def import_mdlm_dit(state: Mapping[str, Tensor], source: str = "checkpoint", **options) -> DiT:
    """A DiT holding MDLM's weights; `options` (dropout, causal, time_conditioning) pass through."""
    config = dit_config_from_mdlm(state, source)
    del config["architecture"]
    model = DiT(**config, **{"dropout": 0.0, **options})
    load_converted(model, convert_keys(state, _rename_mdlm, source), source, optional={"rotary_emb.inv_freq"})
    return model


# --- Caduceus (kuleshov-group/caduceus-{ps,ph}_*) ----------------------------------------------

_CADUCEUS_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"caduceus\.backbone\.embeddings\.word_embeddings\.(?:embedding\.)?weight"), "embedding.weight"),
    (re.compile(r"caduceus\.backbone\.embeddings\.word_embeddings\.complement_map"), "complement_map"),
    (
        re.compile(r"caduceus\.backbone\.layers\.(\d+)\.mixer\.(?:submodule\.)?(mamba_fwd|mamba_rev)\.(.+)"),
        r"layers.\1.mixer.\2.\3",
    ),
    (re.compile(r"caduceus\.backbone\.layers\.(\d+)\.mixer\.(?:submodule\.)?(?!mamba_)(.+)"), r"layers.\1.mixer.\2"),
    (re.compile(r"caduceus\.backbone\.layers\.(\d+)\.norm\.(?:submodule\.)?weight"), r"layers.\1.norm.weight"),
    (re.compile(r"caduceus\.backbone\.norm_f\.(?:submodule\.)?weight"), "norm_f.weight"),
    (re.compile(r"lm_head\.(?:lm_head\.)?weight"), "embedding.weight"),  # tied to the embedding
    (re.compile(r"lm_head\.complement_map"), "complement_map"),
]


def _rename_caduceus(key: str) -> str | None:
    for pattern, target in _CADUCEUS_RULES:
        if pattern.fullmatch(key):
            return pattern.sub(target, key)
    return None


def caduceus_config_from_state(state: Mapping[str, Tensor], source: str = "checkpoint",
                               complement_map: Sequence[int] | None = None) -> dict:
    """The constructor settings a Caduceus state dict implies; the complement map from the state when it holds
    one, else the given one (the DNA track's), which an RC-equivariant model needs."""
    embedding_keys = [k for k in state if k.startswith("caduceus.backbone.embeddings.word_embeddings.") and k.endswith("weight")]
    if not embedding_keys:
        raise CheckpointError(f"{source}: not a Caduceus checkpoint (no caduceus.backbone.embeddings weight)")
    vocab_size, d_model = state[embedding_keys[0]].shape
    layer_keys = [key for key in state if key.startswith("caduceus.backbone.layers.")]
    first_mixer = "caduceus.backbone.layers.0.mixer." + ("submodule." if any(".submodule." in k for k in layer_keys) else "")
    bidirectional = any(".mamba_fwd." in key for key in layer_keys)
    mamba = first_mixer + ("mamba_fwd." if bidirectional else "")
    complement_key = "caduceus.backbone.embeddings.word_embeddings.complement_map"
    config = dict(
        architecture="caduceus",
        vocab_size=vocab_size,
        d_model=d_model,
        n_layer=len({key.split(".")[3] for key in layer_keys}),
        rcps=".embedding.weight" in embedding_keys[0],
        bidirectional=bidirectional,
        d_state=state[mamba + "A_log"].shape[1],
        d_conv=state[mamba + "conv1d.weight"].shape[-1],
        expand=state[mamba + "A_log"].shape[0] // d_model,
    )
    if bidirectional:
        config["bidirectional_weight_tie"] = first_mixer + "mamba_rev.in_proj.weight" not in state or torch.equal(
            state[first_mixer + "mamba_rev.in_proj.weight"], state[mamba + "in_proj.weight"]
        )
    if complement_key in state:
        config["complement_map"] = state[complement_key].tolist()
    elif complement_map is not None:
        config["complement_map"] = list(complement_map)
    return config


def import_caduceus(state: Mapping[str, Tensor], source: str = "checkpoint",
                    complement_map: Sequence[int] | None = None) -> Caduceus:
    """A Caduceus holding the published weights, PS or Ph as the keys say."""
    config = caduceus_config_from_state(state, source, complement_map)
    del config["architecture"]
    model = Caduceus(**config)
    load_converted(model, convert_keys(state, _rename_caduceus, source), source, optional={"complement_map"})
    return model


IMPORTERS: dict[str, Callable[..., nn.Module]] = {"mdlm": import_mdlm_dit, "caduceus": import_caduceus}


def load_pretrained(spec: str | Path, layout: str, use_ema: bool = False, trusted: bool = False, **options) -> nn.Module:
    """`load_pretrained("hf:kuleshov-group/mdlm-owt", "mdlm")` or a local .safetensors/.bin/.ckpt file."""
    if layout not in IMPORTERS:
        raise ValueError(f"unknown checkpoint layout {layout!r}; choose from {sorted(IMPORTERS)}")
    path = resolve_checkpoint(spec)
    return IMPORTERS[layout](read_state_dict(path, use_ema, trusted), source=str(spec), **options)

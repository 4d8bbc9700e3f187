"""Where a checkpoint comes from: a local path, or `hf:owner/repo` on the Hugging Face hub (torch-free, so commands
can check a source before they load anything)."""

from __future__ import annotations

from pathlib import Path

from .io import file_identity

HF_PREFIX = "hf:"
HF_CONFIG = "config.json"  # beside the weights of a model saved with transformers' save_pretrained
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"  # what a run folder is read through


def is_hub_name(source: str | Path) -> bool:
    return str(source).startswith(HF_PREFIX)


def local_checkpoint(source: str | Path) -> Path:
    """The file a local source names: a run folder's checkpoints/last.ckpt, the weights of a folder saved with
    save_pretrained (a Hugging Face masked LM), or the file itself."""
    path = Path(source)
    if path.is_dir():
        saved = [path / name for name in HF_WEIGHT_FILES if (path / name).is_file()]
        path = saved[0] if saved and (path / HF_CONFIG).is_file() else path / LAST_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `mdlm-bio train demo` or pass a .ckpt file")
    return path


def source_identity(source: str | Path) -> dict[str, object]:
    """A checkpoint as a resumable job's fingerprint sees it: a hub name as given; a local one as its file's
    path, size and time of change, so a run that wrote a newer checkpoint since is another job."""
    if is_hub_name(source):
        return {"source": str(source)}
    return {"source": str(source), **(file_identity(local_checkpoint(source)) or {})}

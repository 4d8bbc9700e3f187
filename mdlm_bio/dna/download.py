"""Resumable HTTP downloads with size and checksum checks, for multi-gigabyte reference data.

Bytes go to `<dest>.part`; a rerun after an interruption asks the server for the rest with an HTTP
Range request (and starts over if the server ignores it). The file is renamed to `dest` only once its
size and checksums are right, so the presence of `dest` means a verified download.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
from email.message import Message
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from tqdm import tqdm

_CHUNK = 1 << 20
_USER_AGENT = "mdlm-bio (https://pypi.org/project/mdlm-bio)"


class DownloadError(RuntimeError):
    """A download that failed, or whose bytes are not the expected ones."""


def download(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch `url` to `dest`, resuming a previous partial download, and return `dest`.

    `size`, `md5` and `sha256` are checked when given; without `size` the length the server announces
    is checked instead. An existing `dest` is returned untouched (it only ever appears verified).
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    expected = _fetch(url, part, size, timeout)
    _verify(url, part, expected, {"md5": md5, "sha256": sha256})
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, size: int | None, timeout: float) -> int | None:
    """Append the missing bytes to `part`; returns the full size as known from `size` or the server."""
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:  # longer than the real file: nothing in it can be trusted
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        return size
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as error:
        if error.code == 416 and offset:  # nothing left to send: the part already holds the whole file
            return _content_range(error.headers)[1] or offset
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except OSError as error:
        raise DownloadError(f"could not reach {url}: {getattr(error, 'reason', error)}") from None
    with response:
        if response.status == 206:
            start, total = _content_range(response.headers)
            if start != offset:
                raise DownloadError(f"{url}: asked for bytes from {offset}, the server sent them from {start}")
        else:  # 200: the server ignored the Range header, so the whole file comes again
            offset = 0
            total = _content_length(response.headers)
        if size is not None and total is not None and total != size:
            raise DownloadError(f"{url}: the server reports {total} bytes, expected {size}; the remote file changed?")
        _stream(url, response, part, offset, total)
    return size if size is not None else total


def _stream(url: str, response: http.client.HTTPResponse, part: Path, offset: int, total: int | None) -> None:
    """Copy the body into `part` from `offset` on, behind a progress bar; an interruption keeps what arrived."""
    with (
        open(part, "ab" if offset else "wb") as out,
        tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=part.stem) as bar,
    ):
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:
            out.flush()
            raise DownloadError(
                f"download of {url} interrupted after {part.stat().st_size} bytes ({error!r}); run again to resume"
            ) from None


def _content_range(headers: Message) -> tuple[int | None, int | None]:
    """(first byte, total size) from a `Content-Range: bytes A-B/TOTAL` (or `bytes */TOTAL`) header."""
    match = re.fullmatch(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)", (headers.get("Content-Range") or "").strip())
    if match is None:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


def _content_length(headers: Message) -> int | None:
    value = headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _verify(url: str, part: Path, expected: int | None, checksums: dict[str, str | None]) -> None:
    """Size, then checksums. A short file stays for a resume; a wrong one is deleted, as resuming it cannot help."""
    actual = part.stat().st_size
    if expected is not None and actual < expected:
        raise DownloadError(f"{url}: got {actual} of {expected} bytes into {part}; run again to resume")
    if expected is not None and actual > expected:
        part.unlink()
        raise DownloadError(f"{url}: got {actual} bytes, expected {expected}; deleted {part}, run again to start over")
    wanted = {name: value.lower() for name, value in checksums.items() if value}
    for name, value in _digests(part, list(wanted)).items():
        if value != wanted[name]:
            part.unlink()
            raise DownloadError(
                f"{url}: {name} mismatch: expected {wanted[name]}, got {value}; deleted {part}, run again to start over"
            )


def _digests(path: Path, names: list[str]) -> dict[str, str]:
    """Hex digests of one file for several algorithms, in a single pass over it."""
    hashers = {name: hashlib.new(name, usedforsecurity=False) for name in names}
    if hashers:
        with open(path, "rb") as handle:
            while block := handle.read(_CHUNK):
                for hasher in hashers.values():
                    hasher.update(block)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}

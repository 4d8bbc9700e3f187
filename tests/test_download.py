"""Resumable downloads against a local HTTP server in a thread (no network needed)."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from mdlm_bio.cli import main
from mdlm_bio.dna import hg38
from mdlm_bio.dna.download import DownloadError, download
from mdlm_bio.dna.fasta import write_fasta
from mdlm_bio.dna.genome import SPLITS_NAME, GenomeWindows

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Behaviour:
    """How the test server answers; `ranges` records the Range header of every request."""

    files: dict[str, bytes] = field(default_factory=lambda: {"/data.bin": PAYLOAD})
    honour_range: bool = True
    cut_after: int | None = None  # send only this many body bytes of the next response, then hang up
    ranges: list[str | None] = field(default_factory=list)


def _handler(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            behaviour.ranges.append(self.headers.get("Range"))
            body = behaviour.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            start = int(match.group(1)) if match and behaviour.honour_range else 0
            if start >= len(body) and start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            sent = body[start:]
            if behaviour.cut_after is not None:
                sent, behaviour.cut_after = sent[: behaviour.cut_after], None
            self.wfile.write(sent)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", behaviour
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_leaves_no_part_file(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, _ = server
    dest = download(f"{url}/data.bin", tmp_path / "sub" / "data.bin", size=len(PAYLOAD), md5=MD5, sha256=SHA256)
    assert dest.read_bytes() == PAYLOAD
    assert sorted(path.name for path in dest.parent.iterdir()) == ["data.bin"]


def test_existing_file_is_not_downloaded_again(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    download(f"{url}/data.bin", tmp_path / "data.bin", md5=MD5)
    download(f"{url}/data.bin", tmp_path / "data.bin", md5=MD5)
    assert len(behaviour.ranges) == 1


def test_partial_file_resumes_with_a_range_request(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:123_456])
    dest = download(f"{url}/data.bin", tmp_path / "data.bin", md5=MD5)
    assert dest.read_bytes() == PAYLOAD
    assert behaviour.ranges == ["bytes=123456-"]


def test_interrupted_download_resumes_on_the_next_run(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.cut_after = 100_000
    with pytest.raises(DownloadError, match=r"got 100000 of 300000 bytes .*run again to resume"):
        download(f"{url}/data.bin", tmp_path / "data.bin", sha256=SHA256)
    assert (tmp_path / "data.bin.part").stat().st_size == 100_000
    assert not (tmp_path / "data.bin").exists()
    assert download(f"{url}/data.bin", tmp_path / "data.bin", sha256=SHA256).read_bytes() == PAYLOAD
    assert behaviour.ranges == [None, "bytes=100000-"]


def test_server_without_range_support_starts_over(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    behaviour.honour_range = False
    (tmp_path / "data.bin.part").write_bytes(b"stale bytes that must not survive")
    assert download(f"{url}/data.bin", tmp_path / "data.bin", md5=MD5).read_bytes() == PAYLOAD


def test_complete_part_file_needs_no_body(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, behaviour = server
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    assert download(f"{url}/data.bin", tmp_path / "data.bin", md5=MD5).read_bytes() == PAYLOAD
    assert behaviour.ranges == ["bytes=300000-"]  # answered 416: nothing left to send


def test_checksum_mismatch_fails_and_deletes_the_part_file(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, _ = server
    with pytest.raises(DownloadError, match=rf"md5 mismatch: expected {'0' * 32}, got {MD5}; deleted"):
        download(f"{url}/data.bin", tmp_path / "data.bin", md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_partial_file_fails_its_checksum(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, _ = server
    (tmp_path / "data.bin.part").write_bytes(b"\0" * 1000)  # resumed onto, so the whole is wrong
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(f"{url}/data.bin", tmp_path / "data.bin", sha256=SHA256)
    assert download(f"{url}/data.bin", tmp_path / "data.bin", sha256=SHA256).read_bytes() == PAYLOAD


def test_size_disagreeing_with_the_server_fails(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, _ = server
    with pytest.raises(DownloadError, match=r"the server reports 300000 bytes, expected 5"):
        download(f"{url}/data.bin", tmp_path / "data.bin", size=5)
    assert not (tmp_path / "data.bin").exists()


def test_http_error_names_the_url(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, _ = server
    with pytest.raises(DownloadError, match=rf"{re.escape(url)}/missing.bin: HTTP 404"):
        download(f"{url}/missing.bin", tmp_path / "missing.bin")


def test_unreachable_host_is_a_download_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="could not reach http://127.0.0.1:9/"):
        download("http://127.0.0.1:9/x", tmp_path / "x", timeout=2)


def test_prepare_hg38_end_to_end_offline(server: tuple[str, Behaviour], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, behaviour = server
    write_fasta([("chr1", "", "ACGTacgtNN" * 100), ("chr2", "", "GGCCA" * 100)], tmp_path / "tiny.fa.gz")
    fasta = (tmp_path / "tiny.fa.gz").read_bytes()
    behaviour.files = {"/hg38.fa.gz": fasta, "/sequences_human.bed": b"chr1\t0\t1000\ttrain\nchr2\t0\t500\tvalid\n"}
    monkeypatch.setattr(
        hg38, "HG38_FASTA", hg38.RemoteFile(f"{url}/hg38.fa.gz", "hg38.fa.gz", len(fasta), hashlib.md5(fasta).hexdigest())
    )
    monkeypatch.setattr(hg38, "HG38_BED", hg38.RemoteFile(f"{url}/sequences_human.bed", SPLITS_NAME))
    data_dir = tmp_path / "hg38"
    assert hg38.prepare_hg38(data_dir).lengths == {"chr1": 1000, "chr2": 500}
    assert hg38.require_prepared(data_dir) == data_dir
    assert GenomeWindows(data_dir, "valid", 64)[0]["tokens"].shape == (64,)
    hg38.prepare_hg38(data_dir)
    assert len(behaviour.ranges) == 2  # the second run downloads nothing


def test_data_and_train_hg38_through_the_cli(server: tuple[str, Behaviour], tmp_path: Path, capsys) -> None:
    """`mdlm-bio data hg38` from a mirror, then `mdlm-bio train hg38` (shrunk) on what it prepared."""
    url, behaviour = server
    rng = np.random.default_rng(1)
    records = [(name, "", "".join(rng.choice(list("ACGTacgt"), 3000)) + "N" * 200) for name in ("chr1", "chr2")]
    write_fasta(records, tmp_path / "mirror.fa.gz")
    behaviour.files = {"/hg38.fa.gz": (tmp_path / "mirror.fa.gz").read_bytes(),
                       "/sequences_human.bed": b"chr1\t0\t3200\ttrain\nchr2\t100\t3000\tvalid\nchr2\t0\t50\ttest\n"}
    data_dir = tmp_path / "hg38"
    main(["data", "hg38", "--data-dir", str(data_dir), "--fasta-url", f"{url}/hg38.fa.gz",
          "--bed-url", f"{url}/sequences_human.bed"])
    assert f"hg38 ready in {data_dir}: 2 sequences, 6,400 bases" in capsys.readouterr().out
    run = tmp_path / "run"
    main(["train", "hg38", f"data.data_dir={data_dir}", f"run_dir={run}", "model.overrides.d_model=16",
          "model.overrides.n_layer=2", "data.window=64", "data.batch_size=4", "data.num_workers=0",
          "data.valid_windows=8", "trainer.max_steps=3", "trainer.val_check_interval=3", "trainer.precision=32-true",
          "trainer.devices=1", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false"])
    assert "val bits/base" in capsys.readouterr().out
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()

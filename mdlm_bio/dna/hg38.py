"""The human reference genome hg38 with the train/valid/test intervals that HyenaDNA and Caduceus pretrain on.

The FASTA is UCSC's original hg38 release (soft-masked; coordinates identical to the `hg38.ml.fa` HyenaDNA
and Caduceus read for the chromosomes the bed names), checked against the MD5 in UCSC's bigZips/md5sum.txt.
The bed is Basenji's `sequences_human.bed` (`chrom start end split`, splits train/valid/test); no checksum is
published for it, so its length is checked against the server's Content-Length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..locks import exclusive
from .download import download
from .genome import INDEX_NAME, SPLITS_NAME, Genome, convert_fasta, load_intervals


@dataclass(frozen=True)
class RemoteFile:
    url: str
    name: str
    size: int | None = None
    md5: str | None = None


HG38_FASTA = RemoteFile(
    url="https://hgdownload.soe.ucsc.edu/goldenPath/hg38/bigZips/hg38.fa.gz",
    name="hg38.fa.gz",
    size=983_659_424,
    md5="1c9dcaddfa41027f17cd8f7a82c7293b",
)
HG38_BED = RemoteFile(url="https://storage.googleapis.com/basenji_barnyard2/sequences_human.bed", name=SPLITS_NAME)


def prepare_hg38(data_dir: str | Path, fasta_url: str | None = None, bed_url: str | None = None) -> Genome:
    """Download hg38 and its split bed into `data_dir` (resuming partial downloads), convert the FASTA, and
    check every bed interval against it. Each step is skipped when already done, so re-running is cheap.

    `fasta_url` / `bed_url` name a mirror (or a file on a shared server); a mirror's copy is checked against
    the size its server reports, not UCSC's checksum, since a mirror may hold another build of the file.
    """
    data_dir = Path(data_dir)
    with exclusive(data_dir, "data folder"):  # two downloads into one file would interleave their bytes
        fasta = _fetch(HG38_FASTA, fasta_url, data_dir)
        _fetch(HG38_BED, bed_url, data_dir)
        genome = convert_fasta(fasta, data_dir)
        load_intervals(genome)
    return genome


def _fetch(remote: RemoteFile, url: str | None, data_dir: Path) -> Path:
    if url is None or url == remote.url:
        return download(remote.url, data_dir / remote.name, size=remote.size, md5=remote.md5)
    return download(url, data_dir / remote.name)


def require_prepared(data_dir: str | Path) -> Path:
    """`data_dir` if it holds a prepared hg38; otherwise an error that says what is missing and how to fix it."""
    data_dir = Path(data_dir)
    missing = [name for name in (INDEX_NAME, SPLITS_NAME) if not (data_dir / name).is_file()]
    if missing:
        where = f"{data_dir} does not exist" if not data_dir.is_dir() else f"{data_dir} lacks {' and '.join(missing)}"
        raise FileNotFoundError(
            f"hg38 is not prepared: {where}. Download and convert it (a 0.9 GiB download, about 4 GB on disk) with:\n"
            f"    mdlm-bio data hg38 --data-dir {data_dir}"
        )
    return data_dir

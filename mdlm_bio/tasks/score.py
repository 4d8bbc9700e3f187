"""`mdlm-bio score`: the NELBO (or an AR model's exact NLL), bits per base and perplexity of each FASTA record, as TSV."""

from __future__ import annotations

import csv
import itertools
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from .. import __version__
from ..dna.fasta import FastaError, Record, read_fasta
from ..dna.tokenizer import N, reverse_complement
from ..io import check_writable, file_identity
from ..likelihood import Nll
from ..resumable import ResumableOutputs
from ..sources import source_identity
from .common import load_for

if TYPE_CHECKING:
    from ..models.handle import Model

COLUMNS = ["record", "length", "scored_bases"]


def score(fasta: Path, ckpt: str, *, mc: int, seed: int, device: str, out: Path | None, ignore_memory_limit: bool,
          both_strands: bool = False) -> None:
    """One TSV row per record, to `out` or standard output; `mc` antithetic noise draws per window; with
    `both_strands`, the mean of the record's and its reverse complement's scores. A FASTA file is read twice, in
    constant memory: once to check every record, once to score; standard input or a pipe is held in memory
    instead. Rows stream into `out`, and a run that is stopped resumes from its last record."""
    fasta_file = file_identity(fasta)
    held = None if fasta_file else list(read_fasta(fasta))

    def records() -> Iterable[Record]:
        return read_fasta(fasta) if held is None else held

    count = 0
    for record in records():  # before the long part: an unscorable record is an error
        if not (record.tokens != N).any():
            raise FastaError(f"{fasta}: record {record.name!r} has no A, C, G or T to score (only N)")
        count += 1
    if out is not None:
        check_writable(out)
    model = load_for(ckpt, device, "dna", "score")
    model.check_memory(mc, model.context, 0, f"scoring with {mc} noise draws per window", "lower --mc",
                       ignore_memory_limit)
    both_strands = both_strands and not model.strand_symmetric  # an RC-equivariant model scores both alike
    columns = [*COLUMNS, model.score_name, "bits_per_base", "perplexity"]
    if out is None:
        table = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
        table.writerow(columns)
        for record in tqdm(records(), total=count, desc="scoring", unit="record"):
            table.writerow(_row(model, record, mc, seed, both_strands))
        return
    job = {"command": "score", "fasta": fasta_file, "model": source_identity(ckpt), "mc": mc, "seed": seed,
           "both_strands": both_strands, "version": __version__}
    with ResumableOutputs([out], job if fasta_file else None) as outputs:
        table = csv.writer(outputs.files[0], delimiter="\t", lineterminator="\n")
        if not outputs.resumed:
            table.writerow(columns)
            outputs.commit(0)
        remaining = itertools.islice(records(), outputs.done, None)
        for record in tqdm(remaining, total=count, initial=outputs.done, desc="scoring", unit="record"):
            table.writerow(_row(model, record, mc, seed, both_strands))
            outputs.commit(outputs.done + 1)
        outputs.finish()
    print(f"wrote scores to {out}")


def _row(model: Model, record: Record, mc: int, seed: int, both_strands: bool) -> list[object]:
    result = model.score(record.tokens, mc, seed)
    if both_strands:
        other = model.score(reverse_complement(record.tokens), mc, seed)
        result = Nll(nats=(result.nats + other.nats) / 2, tokens=result.tokens)
    return [record.name, len(record.tokens), result.tokens, f"{result.nats:.4f}", f"{result.bits_per_token:.4f}",
            f"{result.perplexity:.4f}"]

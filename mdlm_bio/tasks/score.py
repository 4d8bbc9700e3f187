"""`mdlm-bio score`: the NELBO (or an AR model's exact NLL), bits per base and perplexity of each FASTA record, as TSV."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from tqdm import tqdm

from ..dna.fasta import FastaError, read_fasta
from ..dna.tokenizer import N
from ..io import atomic_output, check_writable
from .common import load_for


def score(fasta: Path, ckpt: str, *, mc: int, seed: int, device: str, out: Path | None,
          ignore_memory_limit: bool) -> None:
    """One TSV row per record, to `out` or standard output; `mc` antithetic noise draws per window."""
    records = list(read_fasta(fasta))
    for record in records:  # before the long part: an unscorable record is an error, not a row of nan
        if not (record.tokens != N).any():
            raise FastaError(f"{fasta}: record {record.name!r} has no A, C, G or T to score (only N)")
    if out is not None:
        check_writable(out)
    model = load_for(ckpt, device, "dna", "score")
    model.check_memory(mc, model.context, 0, f"scoring with {mc} noise draws per window", "lower --mc",
                       ignore_memory_limit)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(["record", "length", "scored_bases", model.score_name, "bits_per_base", "perplexity"])
    for record in tqdm(records, desc="scoring", unit="record"):
        result = model.score(record.tokens, mc, seed)
        writer.writerow([record.name, len(record.tokens), result.tokens, f"{result.nats:.4f}",
                         f"{result.bits_per_token:.4f}", f"{result.perplexity:.4f}"])
    if out is None:
        sys.stdout.write(buffer.getvalue())
        return
    with atomic_output(out) as handle:
        handle.write(buffer.getvalue())
    print(f"wrote scores to {out}")

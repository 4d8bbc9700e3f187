"""`mdlm-bio score`: the NELBO, bits per base and perplexity of each FASTA record, as TSV."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from tqdm import tqdm

from ..dna.autoregressive import score_autoregressive
from ..dna.fasta import FastaError, read_fasta
from ..dna.generate import score_sequence
from ..dna.tokenizer import N
from ..io import atomic_output, check_writable
from .common import check_memory, load_dna_model, require_positive


def score(fasta: Path, ckpt: str, *, mc: int = 8, seed: int = 0, device: str = "cpu", out: Path | None = None,
          ignore_memory_limit: bool = False) -> None:
    """One TSV row per record, to `out` or standard output; `mc` antithetic noise draws per window."""
    require_positive("mc", mc)
    model = load_dna_model(ckpt, device, "score")
    autoregressive = model.module.is_autoregressive
    records = list(read_fasta(fasta))
    if out is not None:
        check_writable(out)
    check_memory(model.module, mc, model.context, 0, device, f"scoring with {mc} noise draws per window", "lower --mc",
                 ignore_memory_limit)
    for record in records:  # before the long part: an unscorable record is an error, not a row of nan
        if not (record.tokens != N).any():
            raise FastaError(f"{fasta}: record {record.name!r} has no A, C, G or T to score (only N)")
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    # an AR model's NLL is exact (mc does not apply); an MDLM's NELBO bounds it from above
    writer.writerow(["record", "length", "scored_bases", "nll_nats" if autoregressive else "nelbo_nats",
                     "bits_per_base", "perplexity"])
    for record in tqdm(records, desc="scoring", unit="record"):
        if autoregressive:
            result = score_autoregressive(model.module.causal_network, record.tokens, model.context, device)
        else:
            result = score_sequence(model.denoiser, model.module.engine, record.tokens, model.context, mc, seed, device)
        writer.writerow([record.name, len(record.tokens), result.num_bases, f"{result.nats:.4f}",
                         f"{result.bits_per_base:.4f}", f"{result.perplexity:.4f}"])
    if out is None:
        sys.stdout.write(buffer.getvalue())
        return
    with atomic_output(out) as handle:
        handle.write(buffer.getvalue())
    print(f"wrote scores to {out}")

"""`mdlm-bio embed`: embeddings of DNA sequences (FASTA records, or BED intervals of a reference) from a DNA model,
as one .npz a user loads with numpy.

The file holds `ids` [N] (record names, or the BED name column or chrom:start-end), `lengths` [N], `embeddings`
[N, D] (each sequence's per-position embeddings averaged over its positions), and with --per-position
`per_position` [sum of lengths, D] with `offsets` [N + 1] (sequence i is rows offsets[i]:offsets[i + 1]); `strand`
says forward or conjoined, `model` which model made them. Sequences are batched only with others of their length,
so no padding reaches a bidirectional model and a sequence's embedding does not depend on its batch.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from ..dna.fasta import FastaError, read_fasta
from ..dna.regions import RegionError, read_bed_intervals
from ..dna.tokenizer import encode
from ..io import atomic_output, check_writable
from .common import load_for

if TYPE_CHECKING:
    from ..models.handle import Model

FLOAT_BYTES = 4


def embed(fasta: Path | None, *, ckpt: str, bed: Path | None, reference: Path | None, out: Path, per_position: bool,
          conjoin: bool, batch_size: int, device: str, trust_checkpoint: bool, ignore_memory_limit: bool) -> None:
    """Embed every sequence, then write `out` once, whole."""
    ids, sequences = _sequences(fasta, bed, reference)
    check_writable(out)
    model = load_for(ckpt, device, "dna", "embed", trust_checkpoint)
    width = model.embed(sequences[0][None, :1], conjoin).shape[-1]  # a model without DNA features refuses here
    longest = max(len(sequence) for sequence in sequences)
    kept = sum(map(len, sequences)) if per_position else len(sequences)
    model.check_memory(min(batch_size, len(sequences)), longest, kept * width * FLOAT_BYTES,
                       f"embedding {len(sequences):,} sequences of up to {longest:,} bases", "lower --batch-size, or "
                       "leave out --per-position", ignore_memory_limit)
    per_sequence = embed_sequences(model, sequences, conjoin, batch_size)
    arrays = {"ids": np.array(ids, dtype=str), "lengths": np.array([len(s) for s in sequences], dtype=np.int64),
              "embeddings": np.stack([rows.mean(0) for rows in per_sequence]),
              "strand": np.array("conjoined" if conjoin else "forward"), "model": np.array(model.description)}
    if per_position:
        arrays["per_position"] = np.concatenate(per_sequence)
        arrays["offsets"] = np.concatenate([[0], np.cumsum(arrays["lengths"])])
    with atomic_output(out, "wb") as handle:
        np.savez(handle, **arrays)
    print(f"wrote {len(ids)} embeddings of width {width} to {out}"
          + (f", with {len(arrays['per_position']):,} per-position rows" if per_position else ""))


def embed_sequences(model: Model, sequences: list[np.ndarray], conjoin: bool, batch_size: int) -> list[np.ndarray]:
    """Per-position embeddings [L_i, D] of each sequence, computed in batches of sequences of one length."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, sequence in enumerate(sequences):
        by_length[len(sequence)].append(index)
    out: list[np.ndarray | None] = [None] * len(sequences)
    with tqdm(total=len(sequences), desc="embedding", unit="seq") as bar:
        for indices in by_length.values():
            for start in range(0, len(indices), batch_size):
                batch = indices[start : start + batch_size]
                for index, rows in zip(batch, model.embed(np.stack([sequences[i] for i in batch]), conjoin)):
                    out[index] = rows
                bar.update(len(batch))
    return out  # type: ignore[return-value]


def _sequences(fasta: Path | None, bed: Path | None, reference: Path | None) -> tuple[list[str], list[np.ndarray]]:
    """(ids, token arrays) of the FASTA records, or of the BED intervals read from the reference."""
    if (fasta is None) == (bed is None):
        raise ValueError("give a FASTA file, or --bed with --reference, not both")
    if bed is None:
        records = list(read_fasta(fasta))
        if not records:
            raise FastaError(f"{fasta}: no records to embed")
        return [record.name for record in records], [record.tokens for record in records]
    if reference is None:
        raise ValueError("--bed needs --reference, the genome its intervals are on (FASTA, plain or bgzip)")
    from ..dna.vcf import Reference

    intervals, genome = read_bed_intervals(bed), Reference(reference)
    if not intervals:
        raise RegionError(f"{bed}: no intervals to embed")
    for interval in intervals:
        if interval.chrom not in genome.lengths:
            raise RegionError(f"{bed}: contig {interval.chrom!r} is not in {reference}")
        if interval.end > genome.lengths[interval.chrom]:
            raise RegionError(f"{bed}: {interval.name} ends past {interval.chrom}'s end "
                              f"({genome.lengths[interval.chrom]:,})")
    return ([interval.name for interval in intervals],
            [encode(genome.fetch(interval.chrom, interval.start, interval.end)) for interval in intervals])

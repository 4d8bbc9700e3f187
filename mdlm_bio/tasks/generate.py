"""`mdlm-bio sample` and `mdlm-bio infill`: DNA written as FASTA from a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from ..diffusion.sampler import Sampler
from ..diffusion.stopping import StopRule
from ..dna.fasta import read_fasta, write_fasta
from ..dna.regions import n_runs, read_regions, record_lengths
from ..dna.tokenizer import decode
from ..io import check_writable
from .common import load_for

if TYPE_CHECKING:
    from ..diffusion.denoiser import SampleOutput


def sample(
    ckpt: str, *, out: Path, num: int, length: int | None, sampler: Sampler, seed: int, batch_size: int,
    prompt: Path | None, class_label: str | None, guidance: float | None, stop_entropy: float | None,
    stop_window: int, device: str, ignore_memory_limit: bool,
) -> None:
    """`num` sequences of `length` bases (None: the model's context; longer ones semi-autoregressively, or block
    by block), continuing the first record of `prompt` if given; `stop_entropy` ends a sequence early where its
    last `stop_window` bases have less entropy (nats)."""
    stop = None if stop_entropy is None else StopRule(entropy=stop_entropy, window=stop_window)
    check_writable(out)
    start = next(iter(read_fasta(prompt))).tokens if prompt else None
    model = load_for(ckpt, device, "dna", "sample")
    length = length or model.context
    if start is not None and len(start) >= min(length, model.context):
        raise ValueError(f"{prompt}: the prompt ({len(start)} bases) must be shorter than --length ({length}) "
                         f"and the model's context ({model.context})")
    condition = model.conditioning(class_label, guidance)
    # Per call a batch of context-long windows; on the side the [num, length] int64 canvas and the FASTA text.
    model.check_memory(min(batch_size, num), min(length, model.context), 9 * num * length,
                       f"sampling {num} x {length} bases", "lower --num, --length or --batch-size", ignore_memory_limit)
    new_bases = num * (length - (0 if start is None else len(start)))
    with tqdm(total=new_bases, desc="sampling", unit="base", unit_scale=True) as bar:
        drawn = model.sample(sampler, num=num, length=length, seed=seed, batch_size=batch_size, prompt=start,
                             condition=condition, stop=stop, progress=bar.update)
    header = f"{model.describe_sampling(sampler)} length={length} seed={seed}{condition.words} model={model.description}"
    header += "" if stop is None else f" {stop.describe()}"
    if prompt:
        header += f" prompt={prompt}"
    write_fasta(((f"sample_{i}", f"sample_{i} {header}", decode(s)) for i, s in enumerate(drawn.rows())), out)
    print(f"wrote {len(drawn.tokens)} sequences of {lengths_summary(drawn, length)} bases to {out} "
          f"({drawn.num_calls} network calls)")


def lengths_summary(drawn: SampleOutput, length: int) -> str:
    """'256', or for samples of variable length their range and median."""
    if drawn.lengths is None:
        return str(length)
    lengths = sorted(int(value) for value in drawn.lengths)
    if lengths[0] == lengths[-1]:
        return str(lengths[0])
    return f"{lengths[0]} to {lengths[-1]} (median {lengths[len(lengths) // 2]})"


def infill(ckpt: str, fasta: Path, *, out: Path, bed: Path | None, sampler: Sampler, seed: int, device: str,
           ignore_memory_limit: bool) -> None:
    """Resample the N runs of each record (or the `bed` regions), keeping every other base."""
    records = list(read_fasta(fasta))
    check_writable(out)
    regions = read_regions(bed, record_lengths(((r.name, len(r.tokens)) for r in records), fasta, bed)) if bed else None
    model = load_for(ckpt, device, "dna", "infill")
    bases = sum(len(record.tokens) for record in records)
    model.check_memory(1, model.context, 9 * bases, f"infilling {len(records)} records ({bases:,} bases)",
                       "split the FASTA into smaller files", ignore_memory_limit)
    filled = []
    for record in tqdm(records, desc="infilling", unit="record"):
        mask = regions[record.name] if regions is not None else n_runs(record.tokens)
        tokens = model.infill(record.tokens, mask, sampler, seed).tokens
        note = f"infilled={int(mask.sum())} {model.describe_sampling(sampler)} model={model.description}"
        filled.append((record.name, f"{record.description} {note}", decode(tokens)))
    write_fasta(filled, out)
    print(f"wrote {len(filled)} records to {out}")


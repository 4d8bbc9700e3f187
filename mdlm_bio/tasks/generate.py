"""`mdlm-bio sample` and `mdlm-bio infill`: DNA written as FASTA from a trained model."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from .. import __version__
from ..diffusion.sampler import Sampler
from ..diffusion.stopping import StopRule
from ..dna.fasta import append_fasta, publish_fasta, read_fasta, write_fasta
from ..dna.regions import n_runs, read_regions, record_lengths
from ..dna.tokenizer import decode
from ..io import check_writable, file_identity
from ..resumable import ResumableOutputs
from ..sources import source_identity
from .common import load_for
from .guidance_choice import guidance_choice


def sample(
    ckpt: str, *, out: Path, num: int, length: int | None, sampler: Sampler, seed: int, batch_size: int,
    prompt: Path | None, stop_entropy: float | None, stop_window: int, device: str, ignore_memory_limit: bool,
    class_label: str | None = None, guidance: str | float | None = None, weight: float | None = None,
    noisy_classifier: Path | None = None, first_order: bool = False,
) -> None:
    """`num` sequences of `length` bases (None: the model's context; longer ones semi-autoregressively, or block
    by block), continuing the first record of `prompt` if given; `stop_entropy` ends a sequence early where its
    last `stop_window` bases have less entropy (nats). Batches stream into the output in constant memory; a run
    that is stopped resumes from its last batch when the same command is run again, with the same samples."""
    stop = None if stop_entropy is None else StopRule(entropy=stop_entropy, window=stop_window)
    choice = guidance_choice([] if guidance is None else [guidance], None if weight is None else [weight],
                             noisy_classifier, first_order)
    check_writable(out)
    start = next(iter(read_fasta(prompt))).tokens if prompt else None
    model = load_for(ckpt, device, "dna", "sample")
    length = length or model.context
    if start is not None and len(start) >= min(length, model.context):
        raise ValueError(f"{prompt}: the prompt ({len(start)} bases) must be shorter than --length ({length}) "
                         f"and the model's context ({model.context})")
    condition = model.conditioning(class_label, None if choice.weights is None else choice.weights[0],
                                   choice.load_classifier(device), choice.first_order)
    batch_size = min(batch_size, num)
    # Per call a batch of context-long windows; on the side the batch's [batch, length] int64 canvas and its FASTA.
    model.check_memory(batch_size, min(length, model.context), 9 * batch_size * length,
                       f"sampling {batch_size} x {length} bases at once", "lower --length or --batch-size",
                       ignore_memory_limit)
    header = f"{model.describe_sampling(sampler)} length={length} seed={seed}{condition.words} model={model.description}"
    header += "" if stop is None else f" {stop.describe()}"
    if prompt:
        header += f" prompt={prompt}"
    prompt_file = None if prompt is None else file_identity(prompt)
    job = {"command": "sample", "model": source_identity(ckpt), "header": header, "num": num, "batch_size": batch_size,
           "prompt": prompt_file, "version": __version__}
    new_bases = length - (0 if start is None else len(start))
    with ResumableOutputs([out], None if prompt and prompt_file is None else job) as outputs:
        (fasta,) = outputs.files
        generator = model.random_source(seed, outputs.extra.get("generator"))
        calls, lengths = outputs.extra.get("calls", 0), Counter({int(k): v for k, v in outputs.extra.get("lengths", {}).items()})
        if outputs.resumed:
            print(f"resuming: {outputs.done:,} of {num:,} sequences were drawn", file=sys.stderr)
        with tqdm(total=num * new_bases, initial=outputs.done * new_bases, desc="sampling", unit="base",
                  unit_scale=True) as bar:
            for begin in range(outputs.done, num, batch_size):
                count = min(batch_size, num - begin)
                drawn = model.sample(sampler, num=count, length=length, seed=generator, batch_size=count, prompt=start,
                                     condition=condition, stop=stop, progress=bar.update)
                rows = drawn.rows()
                append_fasta(fasta, ((f"sample_{i}", f"sample_{i} {header}", decode(row))
                                     for i, row in enumerate(rows, start=begin)))
                calls += drawn.num_calls
                lengths.update(len(row) for row in rows)
                outputs.commit(begin + count, {"generator": model.saved_state(generator), "calls": calls,
                                               "lengths": lengths})
        outputs.finish({out: publish_fasta})
    print(f"wrote {num} sequences of {lengths_summary(lengths)} bases to {out} ({calls} network calls)")


def lengths_summary(lengths: Counter[int]) -> str:
    """'256', or for samples of variable length their range and median."""
    ordered = sorted(lengths.elements())
    if ordered[0] == ordered[-1]:
        return str(ordered[0])
    return f"{ordered[0]} to {ordered[-1]} (median {ordered[len(ordered) // 2]})"


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


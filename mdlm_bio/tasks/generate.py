"""`mdlm-bio sample` and `mdlm-bio infill`: DNA written as FASTA from a trained model."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from ..diffusion import ConfidenceRule, Remasking
from ..diffusion.generation import SamplerName, generate
from ..diffusion.samplers import Denoiser
from ..dna.autoregressive import sample_autoregressive
from ..dna.fasta import read_fasta, write_fasta
from ..dna.generate import fill_regions, n_runs
from ..dna.regions import read_regions, record_lengths
from ..dna.tokenizer import decode
from ..io import check_writable
from ..training.checkpoints import TrainedModel
from .common import check_memory, load_dna_model, require_positive


def conditioned_denoiser(model: TrainedModel, class_label: str | None, guidance: float | None) -> tuple[Denoiser, str]:
    """The denoiser to sample with, and the FASTA header words that say how it was conditioned."""
    if class_label is None:
        if guidance is not None:
            raise ValueError("--guidance needs --class: guidance steers toward a class")
        if model.classes:
            return model.module.class_denoiser(None), " class=none"
        return model.denoiser, ""
    label = model.class_index(class_label)
    weight = 1.0 if guidance is None else guidance
    return model.module.guided_denoiser(label, weight), f" class={model.classes[label]} guidance={weight:g}"


def sample(
    ckpt: str, *, out: Path, num: int = 16, length: int | None = None, sampler: SamplerName = "first-hitting",
    steps: int = 128, top_p: float | None = None, remasking: Remasking | None = None,
    confidence: ConfidenceRule | None = None, seed: int = 0, batch_size: int = 16, prompt: Path | None = None,
    class_label: str | None = None, guidance: float | None = None, device: str = "cpu", ignore_memory_limit: bool = False,
) -> None:
    """`num` sequences of `length` bases (default: the model's context; longer ones semi-autoregressively),
    continuing the first record of `prompt` if given."""
    for name, value in (("num", num), ("length", length), ("batch_size", batch_size), ("steps", steps)):
        require_positive(name, value)
    model = load_dna_model(ckpt, device, "sample")
    autoregressive = model.module.is_autoregressive
    length = length or model.context
    start = torch.as_tensor(next(iter(read_fasta(prompt))).tokens, dtype=torch.long) if prompt else None
    plan = None if autoregressive else model.plan(sampler, steps, top_p, remasking, confidence)
    if start is not None and len(start) >= min(length, model.context):
        raise ValueError(f"{prompt}: the prompt ({len(start)} bases) must be shorter than --length ({length}) "
                         f"and the model's context ({model.context})")
    if autoregressive and (class_label is not None or guidance is not None):
        raise ValueError("--class and --guidance need a class-conditional diffusion model; this one is autoregressive")
    denoiser, condition = (None, "") if autoregressive else conditioned_denoiser(model, class_label, guidance)
    check_writable(out)
    # Per call a batch of context-long windows; on the side the [num, length] int64 canvas and the FASTA text.
    check_memory(model.module, min(batch_size, num), min(length, model.context), 9 * num * length, device,
                 f"sampling {num} x {length} bases", "lower --num, --length or --batch-size", ignore_memory_limit)
    new_bases = num * (length - (0 if start is None else len(start)))
    with torch.no_grad(), tqdm(total=new_bases, desc="sampling", unit="base", unit_scale=True) as bar:
        if autoregressive:  # left to right, sliding past the context; --sampler and --steps do not apply
            drawn = sample_autoregressive(model.module.causal_network, num=num, length=length, context=model.context,
                                          prompt=start, top_p=top_p, seed=seed, batch_size=batch_size, device=device,
                                          progress=bar.update)
            drawn_by = "sampler=autoregressive"
        else:
            drawn = generate(denoiser, model.schedule, plan, num=num, length=length, seed=seed, batch_size=batch_size,
                             prompt=start, device=device, progress=bar.update)
            drawn_by = plan.description
    header = f"{drawn_by} length={length} seed={seed}{condition} model={model.description}"
    if prompt:
        header += f" prompt={prompt}"
    write_fasta(((f"sample_{i}", f"sample_{i} {header}", decode(s)) for i, s in enumerate(drawn.tokens)), out)
    print(f"wrote {len(drawn.tokens)} sequences of {length} bases to {out} ({drawn.num_calls} network calls)")


def infill(
    ckpt: str, fasta: Path, *, out: Path, bed: Path | None = None, sampler: SamplerName = "ancestral", steps: int = 128,
    top_p: float | None = None, remasking: Remasking | None = None, confidence: ConfidenceRule | None = None,
    seed: int = 0, device: str = "cpu", ignore_memory_limit: bool = False,
) -> None:
    """Resample the N runs of each record (or the `bed` regions), keeping every other base."""
    require_positive("steps", steps)
    model = load_dna_model(ckpt, device, "infill", "a causal model conditions on the bases to the left only, so it "
                           "cannot fill a gap from both sides")
    plan = model.plan(sampler, steps, top_p, remasking, confidence)
    records = list(read_fasta(fasta))
    check_writable(out)
    bases = sum(len(record.tokens) for record in records)
    check_memory(model.module, 1, model.context, 9 * bases, device, f"infilling {len(records)} records ({bases:,} bases)",
                 "split the FASTA into smaller files", ignore_memory_limit)
    regions = None
    if bed:
        regions = read_regions(bed, record_lengths(((r.name, len(r.tokens)) for r in records), fasta, bed))
    filled = []
    with torch.no_grad():
        for record in tqdm(records, desc="infilling", unit="record"):
            mask = regions[record.name] if regions is not None else n_runs(record.tokens)
            tokens, _ = fill_regions(model.denoiser, model.schedule, plan, record.tokens, mask, seed=seed, device=device)
            note = f"infilled={int(mask.sum())} {plan.description} model={model.description}"
            filled.append((record.name, f"{record.description} {note}", decode(tokens)))
    write_fasta(filled, out)
    print(f"wrote {len(filled)} records to {out}")

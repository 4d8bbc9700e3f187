"""What each `mdlm-bio` subcommand does, given its parsed arguments (the parser lives in cli.py)."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from .dna.fasta import FastaError, read_fasta, write_fasta
from .dna.tokenizer import N, decode
from .io import atomic_output, check_writable


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"--{name} must be a positive integer, not {value}")


def run_train(args: argparse.Namespace) -> None:
    from .training.config import load_config
    from .training.run import train

    train(load_config(args.preset, args.overrides), args.ignore_memory_limit)


def run_finetune(args: argparse.Namespace) -> None:
    from .training.benchmark_table import write_results
    from .training.config import load_config
    from .training.finetune import finetune_benchmarks

    options = {"data.data_dir": args.data_dir, "data.mirror": args.mirror, "run_dir": args.run_dir, "init_from": args.ckpt}
    overrides = [f"{key}={value}" for key, value in options.items() if value is not None]
    if args.no_download:
        overrides.append("data.download=false")
    config = load_config(args.preset, [*overrides, *args.overrides], kind="finetune")
    results = finetune_benchmarks(config, args.datasets, args.seeds, args.trust_checkpoint, args.ignore_memory_limit)
    title = args.ckpt or f"scratch {config.model.preset}"
    _, markdown = write_results(results, Path(config.run_dir), title)
    print(markdown.read_text())
    print(f"results in {Path(config.run_dir) / 'results.json'} and {markdown}")


def _text_files(specs: list[str]) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for spec in specs:
        corpus, separator, path = spec.partition("=")
        if not separator or not corpus or not path:
            raise ValueError(f"--text-file takes CORPUS=PATH, e.g. ptb=ptb.valid.txt; got {spec!r}")
        files.setdefault(corpus, []).append(path)
    return files


def run_eval_ppl(args: argparse.Namespace) -> None:
    from .training.text_eval import ZERO_SHOT_CORPORA, evaluate_corpora, load_text_model, write_perplexity_table

    for name in ("block", "mc", "batch_size", "discrete_steps"):
        _positive(name.replace("_", "-"), getattr(args, name))
    model = load_text_model(args.ckpt, args.tokenizer, args.device, args.trust_checkpoint)
    block = args.block or model.context
    _check_memory(args, model.module, args.batch_size, block, 0, f"scoring batches of {args.batch_size} x {block} tokens",
                  "lower --batch-size or --block")
    results = evaluate_corpora(
        model, args.corpora or ZERO_SHOT_CORPORA, mode="pad" if args.padded else "wrap", block=block,
        cache_dir=args.cache_dir, text_files=_text_files(args.text_file), batch_size=args.batch_size, mc=args.mc,
        discrete_steps=args.discrete_steps, seed=args.seed, device=args.device,
    )
    time = f"T={args.discrete_steps}" if args.discrete_steps else "continuous time"
    print(write_perplexity_table(results, args.out_dir, f"{model.description}, {time}").read_text())


def run_eval_genppl(args: argparse.Namespace) -> None:
    from .text.eval_lm import load_eval_lm
    from .text.tokenizer import load_tokenizer
    from .training.text_eval import load_text_model
    from .training.text_genppl import reference_tokens, sample_tokens, score_tokens, write_genppl_table, write_samples

    for name in ("eval_context", "steps", "num", "length", "batch_size", "eval_batch_size"):
        _positive(name.replace("_", "-"), getattr(args, name))
    reference_files = _text_files(args.text_file).get(args.reference) if args.reference else None
    model = load_text_model(args.ckpt, args.tokenizer, args.device, args.trust_checkpoint)
    tokenizer = load_tokenizer(model.tokenizer)
    length = args.length or model.context
    _check_memory(args, model.module, min(args.batch_size, args.num), min(length, model.context), 8 * args.num * length,
                  f"sampling {args.num} x {length} tokens", "lower --num, --length or --batch-size")
    eval_lm = load_eval_lm(args.eval_lm, args.device, args.eval_context)
    # Everything that can fail on input (the reference corpus included) is loaded before the long sampling.
    real = None if args.reference is None else reference_tokens(
        tokenizer, args.reference, num=args.num, length=length, cache_dir=args.cache_dir, text_files=reference_files)
    out = sample_tokens(model, tokenizer, sampler=args.sampler, steps=args.steps, num=args.num, length=length,
                        top_p=args.top_p, batch_size=args.batch_size, seed=args.seed, device=args.device)
    sampler = "autoregressive" if model.module.is_autoregressive else args.sampler
    steps = args.steps if sampler in ("ancestral", "cached") else None  # the others take one call per token
    kind = {"autoregressive": "AR", "first-hitting": "first-hitting"}.get(sampler, f"{sampler}, {steps} steps")
    result, texts = score_tokens(out.tokens, tokenizer, eval_lm, f"samples ({kind})", out.num_calls, args.eval_batch_size)
    results = [result]
    write_samples(texts, args.out_dir / "samples.jsonl")
    if real is not None:
        results.append(score_tokens(real, tokenizer, eval_lm, f"real {args.reference}", batch_size=args.eval_batch_size)[0])
    settings = {"sampler": sampler, "steps": steps, "top_p": args.top_p, "seed": args.seed, "precision": "float64 draws"}
    table = write_genppl_table(results, args.out_dir, model.description, eval_lm, settings)
    print(table.read_text())
    print(f"samples in {args.out_dir / 'samples.jsonl'}")


def run_data(args: argparse.Namespace) -> None:
    from .dna.hg38 import prepare_hg38

    genome = prepare_hg38(args.data_dir, args.fasta_url, args.bed_url)
    print(f"hg38 ready in {genome.directory}: {len(genome.lengths)} sequences, {sum(genome.lengths.values()):,} bases")


def _load(args: argparse.Namespace):
    from .training.checkpoints import load_trained, require_dna_diffusion

    model = load_trained(args.ckpt, args.device)
    require_dna_diffusion(model)
    return model


def _plan(args: argparse.Namespace, context: int):
    from .diffusion.generation import SamplingPlan
    from .dna.tokenizer import MASK

    _positive("steps", args.steps)
    return SamplingPlan(args.sampler, args.steps, context, MASK, args.top_p)


def _check_memory(args: argparse.Namespace, module, batch: int, length: int, outputs: int, request: str,
                  smaller: str) -> None:
    """Refuse, before the long part, work whose estimated memory exceeds what the device has free."""
    from .memory import check_fits

    if not args.ignore_memory_limit:
        check_fits(lambda: module.inference_memory(batch, length, outputs), args.device, request, smaller,
                   "--ignore-memory-limit")


def _class_denoiser(model, class_label: str | None, guidance: float | None):
    """The denoiser to sample with, and the FASTA header words that say how it was conditioned."""
    if class_label is None:
        if guidance is not None:
            raise ValueError("--guidance needs --class: guidance steers toward a class")
        if model.classes:
            return model.module.class_denoiser(None), " class=none"
        return model.module.denoiser, ""
    label = model.class_index(class_label)
    weight = 1.0 if guidance is None else guidance
    return model.module.guided_denoiser(label, weight), f" class={model.classes[label]} guidance={weight:g}"


def run_sample(args: argparse.Namespace) -> None:
    import torch

    from .diffusion.generation import generate

    for name in ("num", "length", "batch_size"):
        _positive(name.replace("_", "-"), getattr(args, name))
    model = _load(args)
    length = args.length or model.context
    prompt = torch.as_tensor(next(iter(read_fasta(args.prompt))).tokens, dtype=torch.long) if args.prompt else None
    plan = _plan(args, model.context)
    if prompt is not None and len(prompt) >= min(length, model.context):
        raise ValueError(f"{args.prompt}: the prompt ({len(prompt)} bases) must be shorter than --length ({length}) "
                         f"and the model's context ({model.context})")
    denoiser, condition = _class_denoiser(model, args.class_label, args.guidance)
    check_writable(args.out)
    # Per call a batch of context-long windows; on the side the [num, length] int64 canvas and the FASTA text.
    _check_memory(args, model.module, min(args.batch_size, args.num), min(length, model.context), 9 * args.num * length,
                  f"sampling {args.num} x {length} bases", "lower --num, --length or --batch-size")
    new_bases = args.num * (length - (0 if prompt is None else len(prompt)))
    with torch.no_grad(), tqdm(total=new_bases, desc="sampling", unit="base", unit_scale=True) as bar:
        out = generate(
            denoiser, model.module.engine.schedule, plan, num=args.num, length=length, seed=args.seed,
            batch_size=args.batch_size, prompt=prompt, device=args.device, progress=bar.update,
        )
    header = f"sampler={args.sampler} steps={args.steps} length={length} seed={args.seed}{condition} model={model.description}"
    if args.prompt:
        header += f" prompt={args.prompt}"
    write_fasta(((f"sample_{i}", f"sample_{i} {header}", decode(s)) for i, s in enumerate(out.tokens)), args.out)
    print(f"wrote {len(out.tokens)} sequences of {length} bases to {args.out} ({out.num_calls} network calls)")


def run_evaluate_guidance(args: argparse.Namespace) -> None:
    from .training.classifier import load_classifier
    from .training.guidance_eval import evaluate_guidance

    for name in ("num", "length"):
        _positive(name, getattr(args, name))
    model = _load(args)
    classifier = load_classifier(args.classifier, args.device)
    evaluate_guidance(
        model, classifier, args.guidance, _plan(args, model.context), num=args.num, length=args.length or model.context,
        out_dir=args.out_dir, seed=args.seed, data_dir=args.data_dir, device=args.device,
    )
    print((args.out_dir / "summary.md").read_text())


def run_infill(args: argparse.Namespace) -> None:
    import torch

    from .dna.generate import fill_regions, n_runs
    from .dna.regions import read_regions, record_lengths

    model = _load(args)
    plan = _plan(args, model.context)
    records = list(read_fasta(args.fasta))
    check_writable(args.out)
    bases = sum(len(record.tokens) for record in records)
    _check_memory(args, model.module, 1, model.context, 9 * bases, f"infilling {len(records)} records ({bases:,} bases)",
                  "split the FASTA into smaller files")
    regions = None
    if args.bed:
        regions = read_regions(args.bed, record_lengths(((r.name, len(r.tokens)) for r in records), args.fasta, args.bed))
    filled = []
    with torch.no_grad():
        for record in tqdm(records, desc="infilling", unit="record"):
            mask = regions[record.name] if regions is not None else n_runs(record.tokens)
            tokens, _ = fill_regions(model.module.denoiser, model.module.engine.schedule, plan, record.tokens, mask,
                                     seed=args.seed, device=args.device)
            note = f"infilled={int(mask.sum())} sampler={args.sampler} model={model.description}"
            filled.append((record.name, f"{record.description} {note}", decode(tokens)))
    write_fasta(filled, args.out)
    print(f"wrote {len(filled)} records to {args.out}")


def run_score(args: argparse.Namespace) -> None:
    from .dna.generate import score_sequence

    _positive("mc", args.mc)
    model = _load(args)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(["record", "length", "scored_bases", "nelbo_nats", "bits_per_base", "perplexity"])
    records = list(read_fasta(args.fasta))
    if args.out is not None:
        check_writable(args.out)
    _check_memory(args, model.module, args.mc, model.context, 0, f"scoring with {args.mc} noise draws per window", "lower --mc")
    for record in records:  # before the long part: an unscorable record is an error, not a row of nan
        if not (record.tokens != N).any():
            raise FastaError(f"{args.fasta}: record {record.name!r} has no A, C, G or T to score (only N)")
    for record in tqdm(records, desc="scoring", unit="record"):
        score = score_sequence(model.module.denoiser, model.module.engine, record.tokens, model.context, args.mc,
                               args.seed, args.device)
        writer.writerow([record.name, len(record.tokens), score.num_bases, f"{score.nelbo:.4f}",
                         f"{score.bits_per_base:.4f}", f"{score.perplexity:.4f}"])
    if args.out is None:
        sys.stdout.write(buffer.getvalue())
        return
    with atomic_output(args.out) as handle:
        handle.write(buffer.getvalue())
    print(f"wrote scores to {args.out}")


def run_report(args: argparse.Namespace) -> None:
    from .dna.report import generation_report

    generation_report(args.generated, args.reference, args.out_dir, ks=tuple(args.k))
    print((args.out_dir / "report.md").read_text())


def run_describe(args: argparse.Namespace) -> None:
    from .backbones import build_backbone, describe, load_preset

    print(describe(build_backbone(load_preset(args.preset, args.overrides))))


def run_demo(args: argparse.Namespace) -> None:
    """Train the demo preset, sample beyond its context (semi-AR), and report against the held-out records."""
    from .dna.genome import held_out_reference
    from .training.config import load_config
    from .training.run import train

    _positive("steps", args.steps)
    overrides = [f"run_dir={args.out_dir / 'run'}", f"data.data_dir={args.out_dir / 'data'}", f"seed={args.seed}"]
    if args.steps:
        overrides.append(f"trainer.max_steps={args.steps}")
    config = load_config("demo", overrides)
    history = train(config).history
    samples, reference = args.out_dir / "samples.fa", args.out_dir / "heldout.fa"
    run_sample(argparse.Namespace(
        ckpt=config.run_dir, sampler="first-hitting", steps=128, top_p=None, seed=args.seed, device="cpu",
        num=16, length=2 * config.data.window, batch_size=16, prompt=None, out=samples, class_label=None, guidance=None,
        ignore_memory_limit=False,
    ))
    held_out_reference(config.data.data_dir, args.out_dir / "heldout.fa")
    run_report(argparse.Namespace(generated=samples, reference=reference, out_dir=args.out_dir / "report", k=[3, 6]))
    if history:
        first, last = history[0][1], history[-1][1]
        print(f"validation bits/base: {first:.3f} at step {history[0][0]} -> {last:.3f} at step {history[-1][0]} "
              f"(uniform: 2.000)")


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "demo": run_demo,
    "train": run_train,
    "finetune": run_finetune,
    "eval-ppl": run_eval_ppl,
    "eval-genppl": run_eval_genppl,
    "data": run_data,
    "sample": run_sample,
    "evaluate-guidance": run_evaluate_guidance,
    "infill": run_infill,
    "score": run_score,
    "report": run_report,
    "describe": run_describe,
}


"""The `mdlm-bio` command: argparse only. Each verb calls one function of mdlm_bio.tasks with its options as
keyword arguments (the options' names are the function's parameter names)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Sequence

from .dna.download import DownloadError

# verb -> "module:function" in mdlm_bio.tasks, imported when the verb runs (so --help stays quick).
TASKS = {
    "demo": "demo:demo",
    "train": "train:train",
    "data": "train:data",
    "finetune": "finetune:finetune",
    "eval-ppl": "text_perplexity:eval_ppl",
    "eval-genppl": "generative_perplexity:eval_genppl",
    "sample": "generate:sample",
    "evaluate-guidance": "guidance:evaluate",
    "infill": "generate:infill",
    "score": "score:score",
    "score-variants": "score_variants:score_variants",
    "report": "report:report",
    "describe": "report:describe",
}


def device(spec: str) -> str:
    """A --device value, checked before anything loads: a typo or a missing GPU is named as such, not blamed on
    the checkpoint that happens to be read first."""
    import torch

    try:
        parsed = torch.device(spec)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{spec!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise argparse.ArgumentTypeError(f"{spec}: CUDA is not available here ({why}); use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise argparse.ArgumentTypeError(f"{spec}: no such GPU; {count} visible (cuda:0 to cuda:{count - 1})")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{spec}: MPS is not available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{spec}: mdlm-bio runs on cpu, cuda or mps")
    return spec


SAMPLER_CHOICES = ["ancestral", "cached", "first-hitting", "remdm", "confidence"]
# options that make a ReMDM or confidence-decoding settings object (None: not given on the command line)
REMASKING_OPTIONS = ("remask", "eta", "t_on", "t_off", "alpha_on")
CONFIDENCE_OPTIONS = ("confidence", "reveal", "threshold")


def _add_sampler_settings(parser: argparse.ArgumentParser, default_sampler: str, default_steps: int) -> None:
    parser.add_argument("--sampler", choices=SAMPLER_CHOICES, default=default_sampler, help="ancestral and cached: "
                        "MDLM's; first-hitting: exact, one call per token; remdm: remasking (ReMDM); confidence: "
                        f"reveals the surest positions first, not exact (default: {default_sampler})")
    parser.add_argument("--steps", type=int, default=default_steps, help="time steps for ancestral, cached and remdm; "
                        f"the calls allowed for confidence (default: {default_steps})")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold (default: off)")
    remdm = parser.add_argument_group("remdm (--sampler remdm)")
    remdm.add_argument("--remask", choices=["cap", "rescale", "loop"], default=None,
                       help="remasking schedule sigma_t (default: loop)")
    remdm.add_argument("--eta", type=float, default=None, help="remasking rate (default: cap 0.008, rescale 0.015, "
                       "loop 0.02)")
    remdm.add_argument("--t-on", type=float, default=None, help="loop: where the loop starts (default: 0.55)")
    remdm.add_argument("--t-off", type=float, default=None, help="loop: where it ends (default: 0.05)")
    remdm.add_argument("--alpha-on", type=float, default=None, help="loop: alpha held during the loop (default: 0.9)")
    confidence = parser.add_argument_group("confidence decoding (--sampler confidence)")
    confidence.add_argument("--confidence", choices=["margin", "entropy", "probability"], default=None,
                            help="how sure a position is: top-1 minus top-2 probability, entropy, or the drawn "
                            "token's probability (default: margin)")
    confidence.add_argument("--reveal", choices=["cosine", "linear"], default=None,
                            help="how many positions each of the --steps calls reveals (default: cosine)")
    confidence.add_argument("--threshold", type=float, default=None, help="instead: reveal every position whose top "
                            "token has at least this probability, at least one per call")


def sampler_settings(options: dict) -> None:
    """Replace the remdm and confidence options of a parsed command line by the settings objects the tasks take
    (`remasking`, `confidence`); giving one to another sampler is an error, not silently ignored."""
    from .diffusion import ConfidenceRule, Remasking

    sampler = options["sampler"]
    remasking = {key: options.pop(key) for key in REMASKING_OPTIONS}
    confidence = {key: options.pop(key) for key in CONFIDENCE_OPTIONS}
    for given, owner in ((remasking, "remdm"), (confidence, "confidence")):
        stray = [f"--{key.replace('_', '-')}" for key, value in given.items() if value is not None]
        if stray and sampler != owner:
            raise ValueError(f"{', '.join(stray)}: only for --sampler {owner}, not {sampler}")
    given = {key: value for key, value in remasking.items() if value is not None}
    options["remasking"] = Remasking(given.pop("remask", "loop"), **given) if sampler == "remdm" else None
    rule = {"score": confidence["confidence"], "schedule": confidence["reveal"], "threshold": confidence["threshold"]}
    options["confidence"] = (ConfidenceRule(**{key: value for key, value in rule.items() if value is not None})
                             if sampler == "confidence" else None)


def _add_sampling_options(parser: argparse.ArgumentParser, default_sampler: str) -> None:
    parser.add_argument("--ckpt", required=True, help="a run folder (uses checkpoints/last.ckpt) or a .ckpt file")
    _add_sampler_settings(parser, default_sampler, 128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")


def _add_memory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ignore-memory-limit", action="store_true", help="start even when the estimated memory "
                        "exceeds what the device has free (the estimate is checked before anything is allocated)")


def _add_trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-checkpoint", action="store_true", help="unpickle a published checkpoint that holds "
                        "Python objects (a Lightning .ckpt); this can run code, so only for files you trust")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdlm-bio", description="Masked diffusion language models for DNA and text.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train a tiny Caduceus on the bundled C. elegans DNA, sample FASTA, report")
    demo.add_argument("--out-dir", type=Path, default=Path("mdlm_bio_demo"), help="folder for run, samples and report")
    demo.add_argument("--steps", type=int, default=None, help="training steps (default: the demo preset's)")
    demo.add_argument("--seed", type=int, default=0)

    train = commands.add_parser("train", help="train a model from a preset in configs/train (demo, hg38, ...)")
    train.add_argument("preset", help="preset name (demo, demo-ar, hg38, hg38-131k, hg38-ar, conditional) or a .yaml file")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. trainer.max_steps=500 run_dir=runs/x")
    _add_memory_option(train)

    data = commands.add_parser("data", help="download and convert a genome (hg38) for training")
    data.add_argument("dataset", choices=["hg38"])
    data.add_argument("--data-dir", type=Path, default=Path("data/hg38"), help="where to put it (default: data/hg38)")
    data.add_argument("--fasta-url", default=None, help="a mirror of UCSC's hg38.fa.gz (default: UCSC)")
    data.add_argument("--bed-url", default=None, help="a mirror of the Basenji/HyenaDNA sequences_human.bed")

    finetune = commands.add_parser("finetune", help="fine-tune classifiers on Genomic Benchmarks, seeds x datasets")
    finetune.add_argument("benchmark", choices=["genomic-benchmarks"])
    finetune.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. optim.lr=1e-3 epochs=5")
    finetune.add_argument("--datasets", nargs="+", default=None, help="dataset names (default: all 8, plus "
                          "drosophila_enhancers_stark if present); any folder of --data-dir in the same layout")
    finetune.add_argument("--ckpt", default=None, help="start from an mdlm-bio run/.ckpt or a Caduceus checkpoint "
                          "(file or hf:kuleshov-group/...); default: from scratch")
    finetune.add_argument("--seeds", type=int, default=5, help="seeds per dataset (default: 5)")
    finetune.add_argument("--preset", default="genomic-benchmarks",
                          help="config in configs/finetune (genomic-benchmarks, genomic-benchmarks-tiny) or a .yaml")
    finetune.add_argument("--data-dir", type=Path, default=None,
                          help="folder in the package's layout (default: ~/.genomic_benchmarks)")
    finetune.add_argument("--no-download", action="store_true", help="fail instead of downloading missing datasets")
    finetune.add_argument("--mirror", default=None, help="a URL serving files/<dataset>_v0.zip (default: Zenodo)")
    finetune.add_argument("--run-dir", type=Path, default=None, help="where runs and results go (default: the preset's)")
    _add_trust_option(finetune)
    _add_memory_option(finetune)

    ppl = commands.add_parser("eval-ppl", help="validation and zero-shot perplexity of a text model, per corpus")
    ppl.add_argument("--ckpt", required=True, help="an mdlm-bio text run/.ckpt, or hf:kuleshov-group/mdlm-owt or a file")
    ppl.add_argument("--corpora", nargs="+", default=None, help="corpora in configs/text/corpora.yaml (default: "
                     "MDLM's zero-shot sets ptb wikitext2 lm1b lambada ag_news pubmed arxiv)")
    ppl.add_argument("--tokenizer", default=None, help="default: the run's (gpt2 for a published checkpoint)")
    ppl.add_argument("--block", type=int, default=None, help="tokens per block (default: the model's context)")
    ppl.add_argument("--padded", action="store_true", help="one padded document per block instead of wrapping")
    ppl.add_argument("--text-file", action="append", default=[], metavar="CORPUS=PATH",
                     help="read a corpus from a local text file instead of the hub (repeatable)")
    ppl.add_argument("--discrete-steps", type=int, default=None, help="discrete-T NELBO (default: continuous time)")
    ppl.add_argument("--mc", type=int, default=1, help="noise draws per block for diffusion models (default: 1)")
    ppl.add_argument("--batch-size", type=int, default=8)
    ppl.add_argument("--cache-dir", type=Path, default=Path("data/text-cache"))
    ppl.add_argument("--seed", type=int, default=0)
    ppl.add_argument("--device", type=device, default="cpu")
    ppl.add_argument("--out-dir", type=Path, default=Path("eval-ppl"))
    _add_trust_option(ppl)
    _add_memory_option(ppl)

    genppl = commands.add_parser("eval-genppl", help="generative perplexity and entropy of a text model's samples")
    genppl.add_argument("--ckpt", required=True, help="an mdlm-bio text run/.ckpt, or hf:kuleshov-group/mdlm-owt or a file")
    genppl.add_argument("--tokenizer", default=None, help="default: the run's (gpt2 for a published checkpoint)")
    genppl.add_argument("--eval-lm", default="gpt2-large", help="a 🤗 causal LM, hub name or folder (default: gpt2-large)")
    genppl.add_argument("--eval-context", type=int, default=None, help="eval LM chunk length (default: its maximum, "
                        "1024 for GPT-2)")
    _add_sampler_settings(genppl, "cached", 1000)
    genppl.add_argument("--num", type=int, default=64, help="number of samples (default: 64)")
    genppl.add_argument("--length", type=int, default=None, help="tokens per sample (default: the model's context)")
    genppl.add_argument("--batch-size", type=int, default=16, help="samples drawn at once (default: 16)")
    genppl.add_argument("--eval-batch-size", type=int, default=8, help="samples scored at once (default: 8)")
    genppl.add_argument("--reference", default=None, metavar="CORPUS", help="also score --num real blocks of this "
                        "corpus's evaluation split (e.g. openwebtext), tokenized like the samples")
    genppl.add_argument("--text-file", action="append", default=[], metavar="CORPUS=PATH",
                        help="read the reference corpus from a local text file instead of the hub")
    genppl.add_argument("--cache-dir", type=Path, default=Path("data/text-cache"))
    genppl.add_argument("--seed", type=int, default=0)
    genppl.add_argument("--device", type=device, default="cpu")
    genppl.add_argument("--out-dir", type=Path, default=Path("eval-genppl"))
    _add_trust_option(genppl)
    _add_memory_option(genppl)

    sample = commands.add_parser("sample", help="generate DNA as FASTA from a trained model")
    _add_sampling_options(sample, "first-hitting")
    sample.add_argument("--num", type=int, default=16, help="number of sequences (default: 16)")
    sample.add_argument("--length", type=int, default=None, help="bases per sequence (default: the training window)")
    sample.add_argument("--batch-size", type=int, default=16)
    sample.add_argument("--prompt", type=Path, default=None, help="FASTA whose first record every sample continues")
    sample.add_argument("--class", dest="class_label", default=None,
                        help="class name (or index) for a class-conditional model (mdlm-bio train conditional)")
    sample.add_argument("--guidance", type=float, default=None, help="classifier-free guidance weight with --class: "
                        "0 = unconditional, 1 = conditional (default), > 1 = pushed further toward the class")
    sample.add_argument("--out", type=Path, default=Path("generated.fa"))
    _add_memory_option(sample)

    evaluate = commands.add_parser("evaluate-guidance", help="oracle accuracy and k-mer report of class-guided samples")
    _add_sampling_options(evaluate, "first-hitting")
    evaluate.add_argument("--classifier", type=Path, required=True, help="a fine-tuned classifier checkpoint "
                          "(RUN_DIR/<dataset>/seed_<s>/checkpoints/best.ckpt from mdlm-bio finetune)")
    evaluate.add_argument("--guidance", type=float, nargs="+", default=[0.0, 1.0, 2.0], help="weights (default: 0 1 2)")
    evaluate.add_argument("--num", type=int, default=64, help="samples per class and weight (default: 64)")
    evaluate.add_argument("--length", type=int, default=None, help="bases per sample (default: the training window)")
    evaluate.add_argument("--data-dir", type=Path, default=None, help="benchmark folder, if moved since training")
    evaluate.add_argument("--out-dir", type=Path, default=Path("guidance_eval"))

    infill = commands.add_parser("infill", help="fill N runs (or bed regions) of FASTA records, keeping other bases")
    _add_sampling_options(infill, "ancestral")
    infill.add_argument("fasta", type=Path)
    infill.add_argument("--bed", type=Path, default=None, help="regions to fill: 'record start end' (0-based)")
    infill.add_argument("--out", type=Path, default=Path("filled.fa"))
    _add_memory_option(infill)

    score = commands.add_parser("score", help="NELBO, bits per base and perplexity of each FASTA record, as TSV")
    score.add_argument("fasta", type=Path)
    score.add_argument("--ckpt", required=True, help="a run folder or a .ckpt file")
    score.add_argument("--mc", type=int, default=8, help="Monte-Carlo time samples per window (default: 8)")
    score.add_argument("--seed", type=int, default=0)
    score.add_argument("--device", type=device, default="cpu")
    score.add_argument("--out", type=Path, default=None, help="TSV file (default: standard output)")
    _add_memory_option(score)

    variants = commands.add_parser("score-variants", help="zero-shot scores of a VCF's variants, as VCF (INFO) and TSV")
    variants.add_argument("vcf", type=Path, help="VCF or VCF.gz, sorted")
    variants.add_argument("--reference", type=Path, required=True, help="the genome it was called against: FASTA, "
                          "plain or bgzip (indexed next to it on first use)")
    variants.add_argument("--ckpt", required=True, help="a run folder or .ckpt, or a published Caduceus "
                          "(hf:kuleshov-group/caduceus-... or a file; trained with MLM, see the note it prints)")
    variants.add_argument("--out", type=Path, default=Path("variant_scores.vcf.gz"),
                          help="annotated VCF; .gz is bgzip-compressed and tabix-indexed (default: variant_scores.vcf.gz)")
    variants.add_argument("--tsv", type=Path, default=None, help="one row per ALT (default: --out with .tsv)")
    variants.add_argument("--window", type=int, default=None, help="bases of context around each variant "
                          "(default: the model's training window)")
    variants.add_argument("--mc", type=int, default=8, help="Monte-Carlo draws per MNV/indel window (default: 8)")
    variants.add_argument("--batch-size", type=int, default=64, help="SNVs scored per network call (default: 64)")
    variants.add_argument("--seed", type=int, default=0)
    variants.add_argument("--skip-mismatches", action="store_true",
                          help="skip and count records whose REF disagrees with the reference, instead of stopping")
    variants.add_argument("--device", type=device, default="cpu")
    _add_trust_option(variants)
    _add_memory_option(variants)

    report = commands.add_parser("report", help="k-mer spectra, GC and diversity of generated DNA vs a reference")
    report.add_argument("generated", type=Path)
    report.add_argument("--reference", type=Path, required=True)
    report.add_argument("--out-dir", type=Path, default=Path("report"))
    report.add_argument("--k", type=int, nargs="+", default=[3, 6])

    describe = commands.add_parser("describe", help="build a backbone preset and print its parameter counts")
    describe.add_argument("preset", help="a preset in configs/backbone (e.g. caduceus-ps, dit-small)")
    describe.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override preset values, e.g. n_layer=8")
    return parser


def _out_of_memory(error: RuntimeError) -> bool:
    """torch's allocators fail with RuntimeErrors (torch.OutOfMemoryError on CUDA) whose text says so."""
    text = str(error).lower()
    return "out of memory" in text or "can't allocate memory" in text


def main(argv: Sequence[str] | None = None) -> None:
    options = vars(build_parser().parse_args(argv))
    command = options.pop("command")
    module, function = TASKS[command].split(":")
    try:
        if "remask" in options:
            sampler_settings(options)
        getattr(importlib.import_module(f"mdlm_bio.tasks.{module}"), function)(**options)
    except (ValueError, OSError, DownloadError) as error:
        print(f"mdlm-bio {command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except RuntimeError as error:
        if not _out_of_memory(error):
            raise
        print(f"mdlm-bio {command}: error: out of memory ({str(error).strip().splitlines()[0]}); make the request "
              f"smaller (batch size, window, length)", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

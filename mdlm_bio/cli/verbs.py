"""The verbs of `mdlm-bio`: for each, the task function it calls (imported only when it runs), the options it
takes, with their defaults (written here and nowhere else), and its sampler when it samples."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .options import (
    add_device,
    add_guidance_options,
    add_memory_option,
    add_seed,
    add_trust_option,
    positive_int,
)
from .sampling import SamplerDefault, add_sampler_options

CKPT_HELP = "a run folder (uses checkpoints/last.ckpt), a .ckpt file, or a published checkpoint (hf:owner/repo or a file)"


@dataclass(frozen=True)
class Verb:
    task: str  # "module:function" in mdlm_bio.tasks
    help: str
    add_options: Callable[[argparse.ArgumentParser], None]
    sampler: SamplerDefault | None = None  # the sampler when --sampler is not given, for verbs that sample

    def add_to(self, commands: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=self.help, description=self.help)
        self.add_options(parser)
        if self.sampler is not None:
            add_sampler_options(parser, self.sampler)
        return parser


def demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", type=Path, default=Path("mdlm_bio_demo"), help="folder for run, samples and report")
    parser.add_argument("--steps", type=positive_int, default=None, help="training steps (default: the demo preset's)")
    add_seed(parser)


def train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", help="preset name (demo, demo-ar, hg38, hg38-131k, hg38-ar, conditional) or a .yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. trainer.max_steps=500 run_dir=runs/x")
    add_memory_option(parser)


def data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=["hg38"])
    parser.add_argument("--data-dir", type=Path, default=Path("data/hg38"), help="where to put it (default: data/hg38)")
    parser.add_argument("--fasta-url", default=None, help="a mirror of UCSC's hg38.fa.gz (default: UCSC)")
    parser.add_argument("--bed-url", default=None, help="a mirror of the Basenji/HyenaDNA sequences_human.bed")


def finetune(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", choices=["genomic-benchmarks", "nucleotide-transformer", "glue"])
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. optim.lr=1e-3 epochs=5")
    parser.add_argument("--datasets", nargs="+", default=None, help="Genomic Benchmarks datasets (default: all 8, "
                        "plus drosophila_enhancers_stark if present; any folder of --data-dir in the same layout), "
                        "Nucleotide Transformer tasks (default: all 18, H3 ... splice_sites_all) or GLUE tasks "
                        "(default: all 8: mnli qqp qnli sst2 cola stsb mrpc rte)")
    parser.add_argument("--ckpt", default=None, help="start from an mdlm-bio run/.ckpt or a Caduceus checkpoint "
                        "(file or hf:kuleshov-group/...), default: from scratch; GLUE: a text model, hf:NAME or "
                        "a saved encoder folder or a text run (required)")
    parser.add_argument("--seeds", type=positive_int, default=None, help="seeds per dataset, or per task and grid "
                        "point (default: 5 for Genomic Benchmarks, the preset's: 10 for the Nucleotide Transformer "
                        "tasks, each its own cross-validation fold, 3 for GLUE)")
    parser.add_argument("--preset", default=None, help="config in configs/finetune (default: the benchmark's; "
                        "also genomic-benchmarks-tiny, nucleotide-transformer-tiny) or a .yaml")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder in the package's layout (default: "
                        "~/.genomic_benchmarks); Nucleotide Transformer tasks and GLUE: local tables "
                        "DIR/TASK/SPLIT.{jsonl,csv,tsv,parquet} (NT also FASTA with |LABEL names) instead of the hub")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading missing datasets")
    parser.add_argument("--mirror", default=None, help="a URL serving files/<dataset>_v0.zip (default: Zenodo)")
    parser.add_argument("--run-dir", type=Path, default=None, help="where runs and results go (default: the preset's)")
    add_trust_option(parser)
    add_memory_option(parser)


def _text_model(parser: argparse.ArgumentParser, out_dir: str) -> None:
    """What both text evaluations take: the model, its tokenizer, corpora files, and where results go."""
    parser.add_argument("--ckpt", required=True, help="an mdlm-bio text run/.ckpt, or hf:kuleshov-group/mdlm-owt or a file")
    parser.add_argument("--tokenizer", default=None, help="default: the run's (gpt2 for a published checkpoint)")
    parser.add_argument("--text-file", action="append", default=[], metavar="CORPUS=PATH",
                        help="read a corpus from a local text file instead of the hub (repeatable)")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/text-cache"), help="tokenized blocks are cached here")
    parser.add_argument("--out-dir", type=Path, default=Path(out_dir), help=f"where results go (default: {out_dir})")
    add_seed(parser)
    add_device(parser)
    add_trust_option(parser)
    add_memory_option(parser)


def eval_ppl(parser: argparse.ArgumentParser) -> None:
    _text_model(parser, "eval-ppl")
    parser.add_argument("--corpora", nargs="+", default=None, help="corpora in configs/text/corpora.yaml (default: "
                        "MDLM's zero-shot sets ptb wikitext2 lm1b lambada ag_news pubmed arxiv)")
    parser.add_argument("--block", type=positive_int, default=None, help="tokens per block (default: the model's context)")
    parser.add_argument("--padded", action="store_true", help="one padded document per block instead of wrapping")
    parser.add_argument("--discrete-steps", type=positive_int, default=None,
                        help="discrete-T NELBO (default: continuous time)")
    parser.add_argument("--mc", type=positive_int, default=1, help="noise draws per block for diffusion models (default: 1)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="blocks scored at once (default: 8)")


def eval_genppl(parser: argparse.ArgumentParser) -> None:
    _text_model(parser, "eval-genppl")
    parser.add_argument("--eval-lm", default="gpt2-large", help="a 🤗 causal LM, hub name or folder (default: gpt2-large)")
    parser.add_argument("--eval-context", type=positive_int, default=None, help="eval LM chunk length (default: its "
                        "maximum, 1024 for GPT-2)")
    parser.add_argument("--num", type=positive_int, default=64, help="number of samples (default: 64)")
    parser.add_argument("--length", type=positive_int, default=None, help="tokens per sample (default: the model's context)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="samples drawn at once (default: 16)")
    parser.add_argument("--eval-batch-size", type=positive_int, default=8, help="samples scored at once (default: 8)")
    parser.add_argument("--reference", default=None, metavar="CORPUS", help="also score --num real blocks of this "
                        "corpus's evaluation split (e.g. openwebtext), tokenized like the samples")
    parser.add_argument("--stop-at-eos", action="store_true", help="variable length: a sample ends after the first "
                        "end-of-sequence token past its first token (a block diffusion model stops generating there)")
    parser.add_argument("--stop-entropy", type=float, default=None, metavar="NATS", help="variable length: a sample "
                        "ends where the unigram entropy of its last --stop-window tokens falls below NATS, those "
                        "tokens cut (BD3-LM: 4 nats over 256)")
    parser.add_argument("--stop-window", type=positive_int, default=256, help="tokens --stop-entropy reads "
                        "(default: 256)")


def _dna_model(parser: argparse.ArgumentParser, several_devices: bool = False) -> None:
    parser.add_argument("--ckpt", required=True, help=CKPT_HELP)
    add_seed(parser)
    add_device(parser, several_devices)


def sample(parser: argparse.ArgumentParser) -> None:
    _dna_model(parser)
    parser.add_argument("--num", type=positive_int, default=16, help="number of sequences (default: 16)")
    parser.add_argument("--length", type=positive_int, default=None, help="bases per sequence (default: the model's "
                        "context; longer ones semi-autoregressively)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="sequences drawn at once (default: 16)")
    parser.add_argument("--prompt", type=Path, default=None, help="FASTA whose first record every sample continues")
    parser.add_argument("--class", dest="class_label", default=None, help="class name (or index, with cfg) for a "
                        "class-conditional model (mdlm-bio train conditional), or of the --noisy-classifier")
    add_guidance_options(parser, several_weights=False)
    parser.add_argument("--stop-entropy", type=float, default=None, metavar="NATS", help="end a sequence where the "
                        "unigram entropy of its last --stop-window bases falls below NATS (at most 1.39 for DNA), "
                        "cutting those bases; a block diffusion model stops generating there (default: off)")
    parser.add_argument("--stop-window", type=positive_int, default=256, help="bases --stop-entropy reads (default: 256)")
    parser.add_argument("--out", type=Path, default=Path("generated.fa"), help="FASTA file (default: generated.fa)")
    add_memory_option(parser)


def evaluate_guidance(parser: argparse.ArgumentParser) -> None:
    _dna_model(parser)
    parser.add_argument("--classifier", type=Path, required=True, help="a fine-tuned classifier checkpoint "
                        "(RUN_DIR/<dataset>/seed_<s>/checkpoints/best.ckpt from mdlm-bio finetune)")
    add_guidance_options(parser, several_weights=True)
    parser.add_argument("--num", type=positive_int, default=64, help="samples per class and weight (default: 64)")
    parser.add_argument("--length", type=positive_int, default=None, help="bases per sample (default: the model's context)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="sequences drawn at once (default: 16)")
    parser.add_argument("--data-dir", type=Path, default=None, help="benchmark folder, if moved since training")
    parser.add_argument("--out-dir", type=Path, default=Path("guidance_eval"), help="default: guidance_eval")


def train_classifier(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. epochs=5 optim.lr=1e-3")
    parser.add_argument("--generator", required=True, help="the model to guide, whose noise the classifier learns: "
                        + CKPT_HELP)
    parser.add_argument("--dataset", default=None, help="labelled dataset to classify (default: the generator's, for "
                        "a model from mdlm-bio train conditional)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder in the Genomic Benchmarks layout "
                        "(default: the generator's)")
    parser.add_argument("--seeds", type=positive_int, default=1, help="classifiers trained, seed, seed+1, ... "
                        "(default: 1)")
    parser.add_argument("--preset", default=None, help="config in configs/finetune (default: noisy-classifier) or "
                        "a .yaml")
    parser.add_argument("--run-dir", type=Path, default=None, help="where runs go (default: the preset's, "
                        "runs/noisy-classifier)")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading a missing dataset")
    add_trust_option(parser)
    add_memory_option(parser)


def infill(parser: argparse.ArgumentParser) -> None:
    _dna_model(parser)
    parser.add_argument("fasta", type=Path, help="FASTA file ('-' for standard input)")
    parser.add_argument("--bed", type=Path, default=None, help="regions to fill: 'record start end' (0-based)")
    parser.add_argument("--out", type=Path, default=Path("filled.fa"), help="FASTA file (default: filled.fa)")
    add_memory_option(parser)


def score(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fasta", type=Path, help="FASTA file ('-' for standard input)")
    _dna_model(parser)
    parser.add_argument("--mc", type=positive_int, default=8, help="Monte-Carlo time samples per window (default: 8)")
    parser.add_argument("--both-strands", action="store_true",
                        help="average each record's score with its reverse complement's: strand-symmetric scores "
                        "from a model that is not RC-equivariant (post hoc conjoined; block diffusion and AR models "
                        "read left to right)")
    parser.add_argument("--out", type=Path, default=None, help="TSV file (default: standard output)")
    add_memory_option(parser)


def score_variants(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("vcf", type=Path, help="VCF or VCF.gz, sorted")
    parser.add_argument("--reference", type=Path, required=True, help="the genome it was called against: FASTA, "
                        "plain or bgzip (indexed next to it on first use)")
    _dna_model(parser, several_devices=True)
    parser.add_argument("--out", type=Path, default=Path("variant_scores.vcf.gz"),
                        help="annotated VCF; .gz is bgzip-compressed and tabix-indexed (default: variant_scores.vcf.gz)")
    parser.add_argument("--tsv", type=Path, default=None, help="one row per ALT (default: --out with .tsv)")
    parser.add_argument("--window", type=positive_int, default=None, help="bases of context around each variant "
                        "(default: the model's context)")
    parser.add_argument("--mc", type=positive_int, default=8, help="Monte-Carlo draws per MNV/indel window (default: 8)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="SNVs scored per network call (default: 64)")
    parser.add_argument("--skip-mismatches", action="store_true",
                        help="skip and count records whose REF disagrees with the reference, instead of stopping")
    add_trust_option(parser)
    add_memory_option(parser)


def embed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fasta", type=Path, nargs="?", default=None, help="FASTA file ('-' for standard input); or "
                        "give --bed and --reference")
    parser.add_argument("--bed", type=Path, default=None, help="intervals to embed, 'chrom start end [name]' "
                        "(0-based, end exclusive), read from --reference")
    parser.add_argument("--reference", type=Path, default=None, help="the genome of --bed: FASTA, plain or bgzip "
                        "(indexed next to it on first use)")
    parser.add_argument("--ckpt", required=True, help=CKPT_HELP)
    add_device(parser)
    parser.add_argument("--out", type=Path, default=Path("embeddings.npz"), help="numpy .npz: ids, lengths, "
                        "embeddings [N, D] (mean over positions), strand, model; with --per-position also "
                        "per_position [sum of lengths, D] and offsets [N + 1] (default: embeddings.npz)")
    parser.add_argument("--per-position", action="store_true", help="also keep every position's embedding")
    parser.add_argument("--conjoin", action="store_true", help="average each position over both strands (for "
                        "Caduceus-PS from its own reverse-complement half; for other models by a second pass on the "
                        "other strand), so a sequence and its reverse complement embed alike (default: forward "
                        "strand)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="sequences of one length embedded at "
                        "once (default: 16)")
    add_trust_option(parser)
    add_memory_option(parser)


def evaluate_eqtl(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help=CKPT_HELP)
    parser.add_argument("--reference", type=Path, required=True, help="hg38 FASTA, plain or bgzip (indexed next to it "
                        "on first use), the genome the windows are cut from (`mdlm-bio data hg38` fetches UCSC's "
                        "hg38.fa.gz: gunzip it)")
    parser.add_argument("--variants", type=Path, default=None, help="the benchmark's table in its columns (CHROM, "
                        "POS, ALT, label, tissue, distance_to_nearest_TSS, split), .csv/.tsv/.jsonl/.parquet "
                        "(default: variant_effect_causal_eqtl/All_Tissues.csv from the hub, "
                        "InstaDeepAI/genomics-long-range-benchmark)")
    parser.add_argument("--window", type=positive_int, default=None, help="bases around each SNP (default: 131072, "
                        "as Caduceus)")
    parser.add_argument("--strands", choices=["auto", "forward", "conjoined"], default="auto", help="embed the "
                        "forward strand or both averaged; auto: as published, both for an RC-equivariant model, "
                        "else forward for training and both for test (default: auto)")
    parser.add_argument("--out-dir", type=Path, default=Path("eqtl"), help="results.md/.json and the resumable "
                        "features/ (default: eqtl)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="windows embedded at once (default: 4)")
    add_device(parser)
    add_trust_option(parser)
    add_memory_option(parser)


def benchmark(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, nargs="+", metavar="RUN", help="run folders (or their results.json) of "
                        "finetune genomic-benchmarks, finetune nucleotide-transformer and evaluate-eqtl")
    parser.add_argument("--out", type=Path, default=Path("benchmark.md"), help="the table (Markdown), with its .json "
                        "beside it (default: benchmark.md)")


def report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("generated", type=Path)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, default=Path("report"), help="default: report")
    parser.add_argument("--k", type=positive_int, nargs="+", default=[3, 6], help="k-mer sizes (default: 3 6)")


def describe(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", help="a preset in configs/backbone (e.g. caduceus-ps, dit-small)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override preset values, e.g. n_layer=8")


FIRST_HITTING = SamplerDefault("first-hitting")
VERBS = {
    "demo": Verb("demo:demo", "train a tiny Caduceus on the bundled C. elegans DNA, sample FASTA, report", demo),
    "train": Verb("train:train", "train a model from a preset in configs/train (demo, hg38, ...)", train),
    "data": Verb("train:data", "download and convert a genome (hg38) for training", data),
    "finetune": Verb("finetune:finetune", "fine-tune classifiers on Genomic Benchmarks (seeds x datasets), the "
                     "Nucleotide Transformer tasks or GLUE (tasks x grid x seeds)", finetune),
    "eval-ppl": Verb("text_perplexity:eval_ppl", "validation and zero-shot perplexity of a text model, per corpus",
                     eval_ppl),
    "eval-genppl": Verb("generative_perplexity:eval_genppl", "generative perplexity and entropy of a text model's "
                        "samples", eval_genppl, SamplerDefault("cached", {"steps": 1000})),
    "sample": Verb("generate:sample", "generate DNA as FASTA from a trained model", sample, FIRST_HITTING),
    "evaluate-guidance": Verb("guidance:evaluate", "oracle accuracy and k-mer report of class-guided samples",
                              evaluate_guidance, FIRST_HITTING),
    "train-classifier": Verb("train_classifier:train_classifier", "train a noisy-input classifier of a "
                             "generator's classes, the guide of --guidance cbg", train_classifier),
    "infill": Verb("generate:infill", "fill N runs (or bed regions) of FASTA records, keeping other bases", infill,
                   SamplerDefault("ancestral")),
    "score": Verb("score:score", "NELBO, bits per base and perplexity of each FASTA record, as TSV", score),
    "score-variants": Verb("score_variants:score_variants", "zero-shot scores of a VCF's variants, as VCF (INFO) and "
                           "TSV", score_variants),
    "embed": Verb("embed:embed", "per-sequence (and per-position) embeddings of FASTA records or BED intervals, as "
                  ".npz", embed),
    "evaluate-eqtl": Verb("eqtl:evaluate_eqtl", "eQTL variant effects: an RBF-SVM on embeddings per TSS-distance "
                          "bucket (the Caduceus protocol), beside the zero-shot score", evaluate_eqtl),
    "benchmark": Verb("benchmark_suite:benchmark", "one table across Genomic Benchmarks, Nucleotide Transformer "
                      "and eQTL runs, beside the published numbers", benchmark),
    "report": Verb("report:report", "k-mer spectra, GC and diversity of generated DNA vs a reference", report),
    "describe": Verb("report:describe", "build a backbone preset and print its parameter counts", describe),
}

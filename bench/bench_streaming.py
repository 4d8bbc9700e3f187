"""Long jobs in constant memory: `score-variants` over a synthetic VCF of 10k and 100k records, and `sample` at
--num 1k and 10k (the ancestral sampler at --steps), each in a fresh process, printing throughput and peak RSS
with the larger job's peak as a ratio of the smaller one's (the goal: within 10%, since records and samples
stream through into the output).

The VCF is made here over the bundled genome's chromosome I (1 Mb): sorted sites, the REF read from the genome,
90% SNVs (a tenth of them with two ALTs), 5% deletions and 5% insertions of 1-3 bases.

    mdlm-bio demo --out-dir DEMO
    python bench/bench_streaming.py variants --ckpt DEMO/run --records 10000 100000
    python bench/bench_streaming.py samples --ckpt DEMO/run --num 1000 10000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import tempfile
import time
from pathlib import Path

from bench_variant_scores import VCF_HEADER, bundled_sequences
from harness import device_description, peak_memory_mib, run_isolated, write_json

from mdlm_bio.cli import main as mdlm_bio

CONTIG = "CHROMOSOME_I"


def synthetic_variants(sequence: str, num: int, seed: int) -> list[tuple[int, str, str]]:
    """(1-based position, REF, ALT list joined by commas) at `num` sorted sites with A, C, G or T around them."""
    rng = random.Random(seed)
    sites = sorted(rng.randrange(2, len(sequence) - 4) for _ in range(num))
    variants = []
    for pos in sites:
        ref = sequence[pos - 1]
        others = [base for base in "ACGT" if base != ref]
        draw = rng.random()
        if draw < 0.05:  # deletion of 1-3 bases after the anchor
            ref = sequence[pos - 1 : pos + rng.randint(1, 3)]
            alt = ref[0]
        elif draw < 0.10:  # insertion of 1-3 bases after the anchor
            alt = ref + "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 3)))
        else:
            alt = ",".join(rng.sample(others, 2 if draw < 0.19 else 1))
        if set(ref) <= set("ACGT"):
            variants.append((pos, ref, alt))
    return variants


def write_synthetic_vcf(path: Path, num: int, seed: int = 0) -> Path:
    sequence = bundled_sequences()[CONTIG]
    with open(path, "w") as handle:
        handle.write(VCF_HEADER)
        handle.writelines(f"{CONTIG}\t{pos}\t.\t{ref}\t{alt}\t.\t.\t.\n"
                          for pos, ref, alt in synthetic_variants(sequence, num, seed))
    return path


def bundled_reference(folder: Path) -> Path:
    """Chromosome I as a FASTA file of its own (score-variants indexes the reference next to it)."""
    path = folder / "chrI.fa"
    path.write_text(f">{CONTIG}\n{bundled_sequences()[CONTIG]}\n")
    return path


def timed_command(argv: list[str]) -> dict:
    """Run one mdlm-bio command in this (fresh) process: seconds and peak RSS. A command that exits with an
    error raises it here with what it printed (a pool worker that exits would leave its caller waiting)."""
    start, errors = time.perf_counter(), io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            mdlm_bio(argv)
    except SystemExit as exit:
        raise RuntimeError(f"mdlm-bio {' '.join(argv)} exited with {exit.code}: {errors.getvalue()[-2000:]}") from None
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": peak_memory_mib("cpu")}


def variants(ckpt: str, sizes: list[int], batch_size: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        reference = bundled_reference(Path(folder))
        for size in sizes:
            vcf = write_synthetic_vcf(Path(folder) / f"{size}.vcf", size)
            out = Path(folder) / f"{size}.scored.vcf"
            row = run_isolated(timed_command, ["score-variants", str(vcf), "--reference", str(reference), "--ckpt",
                                               ckpt, "--out", str(out), "--batch-size", str(batch_size)])
            rows.append({"records": size, **row, "records_per_s": size / row["seconds"]})
            print(rows[-1], flush=True)
    return rows


def samples(ckpt: str, sizes: list[int], length: int, steps: int, batch_size: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for num in sizes:
            out = Path(folder) / f"{num}.fa"
            row = run_isolated(timed_command, ["sample", "--ckpt", ckpt, "--num", str(num), "--length", str(length),
                                               "--sampler", "ancestral", "--steps", str(steps), "--batch-size",
                                               str(batch_size), "--out", str(out)])
            rows.append({"num": num, **row, "samples_per_s": num / row["seconds"]})
            print(rows[-1], flush=True)
    return rows


def report(rows: list[dict], size_key: str, rate_key: str) -> None:
    print(device_description("cpu"))
    print(f"{size_key:>10}{rate_key:>16}{'peak RSS MiB':>14}{'vs smallest':>13}")
    for row in rows:
        print(f"{row[size_key]:>10}{row[rate_key]:>16.1f}{row['peak_rss_mib']:>14.0f}"
              f"{row['peak_rss_mib'] / rows[0]['peak_rss_mib']:>13.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    first = parts.add_parser("variants")
    first.add_argument("--ckpt", required=True)
    first.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    first.add_argument("--batch-size", type=int, default=64)
    second = parts.add_parser("samples")
    second.add_argument("--ckpt", required=True)
    second.add_argument("--num", type=int, nargs="+", default=[1_000, 10_000])
    second.add_argument("--length", type=int, default=128)
    second.add_argument("--steps", type=int, default=16)
    second.add_argument("--batch-size", type=int, default=256)
    for part in (first, second):
        part.add_argument("--out", type=Path, default=Path("bench-results/streaming"))
    args = parser.parse_args()
    if args.part == "variants":
        rows = variants(args.ckpt, args.records, args.batch_size)
        report(rows, "records", "records_per_s")
    else:
        rows = samples(args.ckpt, args.num, args.length, args.steps, args.batch_size)
        report(rows, "num", "samples_per_s")
    write_json(args.out / f"{args.part}.json", {"rows": rows})


if __name__ == "__main__":
    main()

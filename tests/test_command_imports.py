"""Commands answer before they compute: argument, path and input errors come before torch is imported, and the
inference verbs never import Lightning, torchmetrics or transformers. Checked by the modules a fresh process
holds afterwards (deterministic, unlike a timing; the times are in bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("lightning", "pytorch_lightning", "torchmetrics", "transformers")
PROBE = """
import json, sys
from mdlm_bio.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
        codes.append(0)
    except SystemExit as error:
        codes.append(error.code)
print(json.dumps({"codes": codes, "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def run_in_fresh_process(*commands: list[str]) -> dict:
    finished = subprocess.run([sys.executable, "-c", PROBE, json.dumps(commands)], capture_output=True, text=True,
                              check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_bad_arguments_paths_and_inputs_are_refused_without_importing_torch(tmp_path):
    fasta = tmp_path / "x.fa"
    fasta.write_text(">x\nACGT\n")
    unsorted = tmp_path / "unsorted.vcf"
    unsorted.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                        "chr1\t20\t.\tA\tG\t.\t.\t.\nchr1\t10\t.\tA\tG\t.\t.\t.\n")
    reference = tmp_path / "ref.fa"
    reference.write_text(">chr1\n" + "ACGT" * 10 + "\n")
    eqtl = tmp_path / "eqtl.csv"  # a chromosome the reference lacks
    eqtl.write_text("CHROM,POS,ALT,label,tissue,distance_to_nearest_TSS,split\nchr2,5,A,1,Lung,100,train\n"
                    "chr2,9,C,0,Lung,100,test\n")
    seen = run_in_fresh_process(
        ["score", "--ckpt", str(tmp_path / "no-run"), str(fasta)],
        ["score", "--ckpt", str(tmp_path / "no-run"), str(tmp_path / "missing.fa")],
        ["score-variants", str(unsorted), "--reference", str(reference), "--ckpt", str(tmp_path / "no-run")],
        ["sample", "--ckpt", str(tmp_path / "no-run"), "--num", "0"],
        ["sample", "--ckpt", str(tmp_path / "no-run"), "--sampler", "confidence", "--remask", "cap"],
        ["infill", "--ckpt", str(tmp_path / "no-run"), str(fasta), "--out", "/proc/no/such.fa"],
        ["evaluate-eqtl", "--ckpt", str(tmp_path / "no-run"), "--reference", str(reference), "--variants", str(eqtl)],
        ["benchmark", str(tmp_path / "no-run")],
    )
    assert seen["codes"] == [2] * 8
    assert "torch" not in seen["modules"]


def test_inference_verbs_never_import_lightning_torchmetrics_or_transformers(run_dir: Path, tmp_path):
    fasta = tmp_path / "gap.fa"
    fasta.write_text(">a\n" + "ACGT" * 10 + "N" * 12 + "TTGCA" * 6 + "\n")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\na\t5\t.\tA\tG\t.\t.\t.\n"
                   "a\t30\t.\tC\tCA\t.\t.\t.\n")
    seen = run_in_fresh_process(
        ["sample", "--ckpt", str(run_dir), "--num", "2", "--length", "32", "--out", str(tmp_path / "s.fa")],
        ["infill", "--ckpt", str(run_dir), str(fasta), "--steps", "4", "--out", str(tmp_path / "f.fa")],
        ["score", str(fasta), "--ckpt", str(run_dir), "--mc", "1", "--out", str(tmp_path / "s.tsv")],
        ["score-variants", str(vcf), "--reference", str(fasta), "--ckpt", str(run_dir), "--window", "16", "--mc", "1",
         "--out", str(tmp_path / "v.out.vcf")],
        ["report", str(tmp_path / "s.fa"), "--reference", str(fasta), "--out-dir", str(tmp_path / "report")],
        ["describe", "caduceus-tiny"],
    )
    assert seen["codes"] == [0] * 6
    assert "torch" in seen["modules"] and not set(HEAVY) & set(seen["modules"])

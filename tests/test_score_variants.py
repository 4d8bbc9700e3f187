"""`mdlm-bio score-variants`: one score per ALT in a VCF and a TSV, windows centred where they should be, the
promised errors for bad input, and a sanity figure on real held-out DNA."""

from __future__ import annotations

import gzip
import random
from importlib.resources import as_file, files
from pathlib import Path

import pysam
import pytest
import torch
from dna_runs import error_of
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score
from test_pretrained import caduceus_state

from mdlm_bio.cli import main
from mdlm_bio.dna.fasta import read_fasta, write_fasta
from mdlm_bio.dna.genome import BUNDLED_FASTA, BUNDLED_VALID_RECORDS
from mdlm_bio.dna.tokenizer import decode, encode
from mdlm_bio.dna.variants import nll_difference, snv_log_ratios
from mdlm_bio.models import load_model

HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The bundled genome's five held-out 5 kb records as a plain FASTA, and their bases."""
    with as_file(files("mdlm_bio") / "data" / BUNDLED_FASTA) as bundled:
        sequences = {r.name: decode(r.tokens) for r in read_fasta(bundled) if r.name in BUNDLED_VALID_RECORDS}
    path = tmp_path_factory.mktemp("reference") / "heldout.fa"
    write_fasta([(name, "", bases) for name, bases in sequences.items()], path)
    return path, sequences


def other(base: str, shift: int = 1) -> str:
    """A base that is not `base`."""
    return "ACGT"[("ACGT".index(base) + shift) % 4]


def write_vcf(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(row.replace(" ", "\t") + "\n" for row in rows))
    return path


def run(run_dir: Path, vcf: Path, reference: Path, out: Path, *extra: str) -> None:
    main(["score-variants", str(vcf), "--reference", str(reference), "--ckpt", str(run_dir), "--out", str(out), *extra])


def tsv_rows(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    keys = lines[0].split("\t")
    return [dict(zip(keys, line.split("\t"))) for line in lines[1:]]


def test_every_alt_gets_a_score_or_a_reason_in_the_vcf_and_the_tsv(run_dir, heldout, tmp_path, capsys):
    reference, bases = heldout
    x = bases["CHROMOSOME_X"]
    snv_alt, mnv_alt = other(x[999]), other(x[2999]) + x[3000] + other(x[3001])
    vcf = write_vcf(tmp_path / "in.vcf", [
        f"CHROMOSOME_II 10 near {bases['CHROMOSOME_II'][9]} G . . .",  # the window would start before the contig
        f"CHROMOSOME_X 1000 rs1 {x[999]} {snv_alt},<DEL> . . .",
        f"CHROMOSOME_X 2000 . {x[1999:2001]} {x[1999]},{other(x[1999])}{x[2000]} . . .",  # a deletion; an SNV in 2 bases
        f"CHROMOSOME_X 3000 . {x[2999:3002]} {mnv_alt} . . .",
        f"CHROMOSOME_X 4000 . {x[3999]} . . . .",
    ])
    run(run_dir, vcf, reference, tmp_path / "out.vcf.gz", "--mc", "4")
    assert ("scored 4 alleles (2 SNV, 1 MNV, 1 indel); skipped 3: 1 too close to a contig end for a centred window, "
            "1 symbolic or structural allele (<DEL>, breakends, '*'), 1 no ALT allele ('.')") in capsys.readouterr().err
    rows = tsv_rows(tmp_path / "out.tsv")
    assert [(r["pos"], r["alt"], r["method"], r["skipped"]) for r in rows][:4] == [
        ("10", "G", ".", "contig-end"), ("1000", snv_alt, "masked-marginal", "."), ("1000", "<DEL>", ".", "symbolic"),
        ("2000", x[1999], "nelbo-difference", ".")]
    assert rows[4]["method"] == "masked-marginal" and rows[4]["kind"] == "SNV"
    assert rows[-1]["skipped"] == "no-alt" and rows[3]["standard_error"] != "."
    # the SNV's score is the masked-marginal ratio on the model's window centred on the site
    model = load_model(run_dir)
    window = torch.as_tensor(encode(x[999 - 32 : 999 + 32]), dtype=torch.long)[None]
    expected = snv_log_ratios(model.network.denoiser, model.mask_id, window, torch.tensor([32]),
                              torch.as_tensor(encode(snv_alt), dtype=torch.long))
    assert float(rows[1]["score_nats"]) == pytest.approx(float(expected), abs=1e-4)
    with pysam.VariantFile(str(tmp_path / "out.vcf.gz")) as annotated:
        records = list(annotated)
        assert "Strands=\"one strand (the model is RC-equivariant)\"" in str(annotated.header)
    assert len(records) == 5 and (tmp_path / "out.vcf.gz.tbi").is_file()
    assert records[1].info["MDLM_BIO_SCORE"][0] == pytest.approx(float(rows[1]["score_nats"]), abs=1e-4)
    assert records[1].info["MDLM_BIO_SCORE"][1] is None
    assert records[1].info["MDLM_BIO_SKIPPED"] == (".", "symbolic")
    assert records[2].info["MDLM_BIO_METHOD"] == ("nelbo-difference", "masked-marginal")
    assert "MDLM_BIO_SCORE" not in records[4].info


def test_random_substitutions_in_held_out_dna_score_below_the_reference_bases(run_dir, heldout, tmp_path, capsys):
    """The bench records the trained demo model's figure; this tiny run only has to do better than chance."""
    reference, bases = heldout
    rng = random.Random(0)
    rows = []
    for name in BUNDLED_VALID_RECORDS:
        for pos in sorted(rng.sample(range(100, 4900), 40)):
            ref = bases[name][pos - 1]
            if ref in "ACGT":
                rows.append(f"{name} {pos} . {ref} {rng.choice([b for b in 'ACGT' if b != ref])} . . .")
    run(run_dir, write_vcf(tmp_path / "random.vcf", rows), reference, tmp_path / "random.vcf")
    scores = [float(row["score_nats"]) for row in tsv_rows(tmp_path / "random.tsv")]
    auroc = roc_auc_score([1] * len(scores) + [0] * len(scores), [0.0] * len(scores) + scores)
    assert sum(scores) / len(scores) < 0 and auroc > 0.55


@pytest.mark.parametrize("rows, message", [
    (["CHROMOSOME_X 1000 . A G . . .", "CHROMOSOME_X 900 . A G . . ."],
     "line 4: CHROMOSOME_X:900 comes after CHROMOSOME_X:1000; the VCF is not sorted (sort it with `bcftools sort`)"),
    (["CHROMOSOME_X 10 . A G . . .", "CHROMOSOME_II 10 . A G . . .", "CHROMOSOME_X 20 . A G . . ."],
     "line 5: CHROMOSOME_X:20 comes after CHROMOSOME_II:10; the VCF is not sorted"),
    (["CHROMOSOME_X 1000 . A G . . .", "CHROMOSOME_X x . A G . . ."],
     "line 4 is not a valid VCF record: 'CHROMOSOME_X x . A G . . .'"),
    (["CHROMOSOME_X 1000 . A"], "line 3 is not a valid VCF record: 'CHROMOSOME_X 1000 . A'"),
])
def test_an_unsorted_or_malformed_vcf_is_an_error_naming_the_line(run_dir, heldout, tmp_path, capsys, rows, message):
    vcf = write_vcf(tmp_path / "bad.vcf", rows)
    assert message in error_of(capsys, ["score-variants", str(vcf), "--reference", str(heldout[0]), "--ckpt",
                                        str(run_dir), "--out", str(tmp_path / "o.vcf")])


def test_a_ref_that_disagrees_with_the_reference_is_an_error_or_skipped_and_counted(run_dir, heldout, tmp_path,
                                                                                     capsys):
    reference, bases = heldout
    wrong = "A" if bases["CHROMOSOME_X"][1499] != "A" else "C"
    vcf = write_vcf(tmp_path / "m.vcf", [f"CHROMOSOME_X 1500 . {wrong} G,T . . ."])
    args = ["score-variants", str(vcf), "--reference", str(reference), "--ckpt", str(run_dir), "--out",
            str(tmp_path / "m.out.vcf")]
    assert (f"line 3 (CHROMOSOME_X:1500): REF '{wrong}' disagrees with {reference}, which has "
            f"'{bases['CHROMOSOME_X'][1499]}' there; is it the same assembly? --skip-mismatches skips") in error_of(
        capsys, args)
    main([*args, "--skip-mismatches"])
    assert "skipped 2: 2 REF disagrees with the reference (--skip-mismatches)" in capsys.readouterr().err
    assert [row["skipped"] for row in tsv_rows(tmp_path / "m.out.tsv")] == ["ref-mismatch", "ref-mismatch"]


def test_contig_names_that_differ_by_a_chr_prefix_get_the_hint(run_dir, tmp_path, capsys):
    reference = tmp_path / "ucsc.fa"
    write_fasta([("chr1", "", "ACGT" * 100)], reference)
    vcf = write_vcf(tmp_path / "ensembl.vcf", ["1 200 . A G . . ."])
    err = error_of(capsys, ["score-variants", str(vcf), "--reference", str(reference), "--ckpt", str(run_dir)])
    assert ("line 3 (1:200): contig '1' is not in " in err and "(which has chr1); the reference calls it 'chr1': the VCF "
            "and the FASTA name contigs differently (rename the VCF's with `bcftools annotate --rename-chrs`)" in err)


def test_a_gzip_reference_that_is_not_bgzip_is_refused_with_the_fix(run_dir, heldout, tmp_path, capsys):
    packed = tmp_path / "ref.fa.gz"
    packed.write_bytes(gzip.compress(heldout[0].read_bytes()))
    vcf = write_vcf(tmp_path / "v.vcf", ["CHROMOSOME_X 1000 . A G . . ."])
    err = error_of(capsys, ["score-variants", str(vcf), "--reference", str(packed), "--ckpt", str(run_dir)])
    assert f"{packed} is gzip-compressed but not with bgzip, so it cannot be read at random positions" in err
    assert "(`gunzip -c ref.fa.gz | bgzip > ref.fa.bgz`)" in err


def test_not_a_vcf_is_an_error(run_dir, heldout, tmp_path, capsys):
    text = tmp_path / "notes.vcf"
    text.write_text("hello\n")
    assert f"{text}: not a readable VCF" in error_of(
        capsys, ["score-variants", str(text), "--reference", str(heldout[0]), "--ckpt", str(run_dir)])


def test_bgzip_vcf_and_reference_read_and_a_plain_vcf_is_written(run_dir, heldout, tmp_path, capsys):
    reference, bases = heldout
    ref = bases["CHROMOSOME_III"][2499]
    plain = write_vcf(tmp_path / "v.vcf", [f"CHROMOSOME_III 2500 . {ref} {'G' if ref != 'G' else 'T'} . . ."])
    pysam.tabix_compress(str(plain), str(tmp_path / "v.vcf.gz"))
    pysam.tabix_compress(str(reference), str(tmp_path / "ref.fa.gz"))
    run(run_dir, tmp_path / "v.vcf.gz", tmp_path / "ref.fa.gz", tmp_path / "out.vcf", "--tsv", str(tmp_path / "s.tsv"))
    assert (tmp_path / "out.vcf").read_text().splitlines()[-1].split("\t")[7].startswith("MDLM_BIO_SCORE=")
    assert tsv_rows(tmp_path / "s.tsv")[0]["method"] == "masked-marginal"


@pytest.mark.parametrize("rcps, strands", [(True, "one strand"), (False, "both strands, averaged")])
def test_a_published_caduceus_scores_with_the_mlm_caveat(heldout, tmp_path, capsys, rcps, strands):
    reference, bases = heldout
    save_file(caduceus_state(rcps=rcps), str(tmp_path / "published.safetensors"))
    ref = bases["CHROMOSOME_IV"][2999]
    vcf = write_vcf(tmp_path / "v.vcf", [f"CHROMOSOME_IV 3000 . {ref} {'A' if ref != 'A' else 'T'} . . .",
                                         f"CHROMOSOME_IV 3100 . {bases['CHROMOSOME_IV'][3099]} AC . . ."])
    main(["score-variants", str(vcf), "--reference", str(reference), "--ckpt", str(tmp_path / "published.safetensors"),
          "--window", "32", "--out", str(tmp_path / "out.vcf")])
    assert "is a published Caduceus, trained with masked language modelling" in capsys.readouterr().err
    assert f'Strands="{strands}' in (tmp_path / "out.vcf").read_text()
    assert [row["method"] for row in tsv_rows(tmp_path / "out.tsv")] == ["masked-marginal", "nelbo-difference"]


def test_an_autoregressive_model_scores_every_kind_by_the_exact_nll_difference(ar_run, heldout, tmp_path, capsys):
    reference, bases = heldout
    v = bases["CHROMOSOME_V"]
    vcf = write_vcf(tmp_path / "v.vcf", [f"CHROMOSOME_V 2000 . {v[1999]} {other(v[1999])} . . .",
                                         f"CHROMOSOME_V 2100 . {v[2099:2102]} {v[2099]} . . ."])
    run(ar_run, vcf, reference, tmp_path / "out.vcf")
    rows = tsv_rows(tmp_path / "out.tsv")
    assert [(row["kind"], row["method"], row["standard_error"]) for row in rows] == [
        ("SNV", "nll-difference", "."), ("indel", "nll-difference", ".")]
    model = load_model(ar_run)
    half = model.context // 2
    ref = encode(v[1999 - half : 1999 + half])
    alt = ref.copy()
    alt[half] = encode(other(v[1999]))[0]
    expected = nll_difference(model.network.causal_network, ref, alt, model.context)
    assert float(rows[0]["score_nats"]) == pytest.approx(expected.value, abs=1e-4)

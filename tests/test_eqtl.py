"""eQTL variant effects (issue 32) on a fixture in the benchmark's schema, built from the bundled genome's held-out
records: windows cut as the benchmark's loader cuts them, pooling as the published code pools, the SVM probe and
its buckets against scikit-learn, the zero-shot score equal to `score-variants`, resumable features, and the exact
errors for bad tables."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from dna_runs import error_of
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from test_score_variants import heldout, run, tsv_rows, write_vcf  # noqa: F401  (heldout is a fixture)

from mdlm_bio.dna.eqtl import VariantWindows
from mdlm_bio.dna.eqtl_svm import Bucket, ProbeSettings, probe_buckets, training_subset
from mdlm_bio.dna.nt_tasks import select_nt_tasks
from mdlm_bio.dna.tokenizer import N, decode, encode
from mdlm_bio.models import load_model
from mdlm_bio.tasks.benchmark_table import SeedResult
from mdlm_bio.tasks.benchmark_table import write_results as write_gb_results
from mdlm_bio.tasks.eqtl import conjoin_by_split
from mdlm_bio.tasks.nt_table import NtResult
from mdlm_bio.tasks.nt_table import write_results as write_nt_results

COLUMNS = ["CHROM", "POS", "ALT", "label", "tissue", "distance_to_nearest_TSS", "split"]
WINDOW = 200


def write_table(path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def fixture_rows(bases: dict[str, str], count: int, seed: int = 0) -> list[dict]:
    """SNPs on the held-out records, labels balanced in every (split, bucket), a few too close to a record's end."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        chrom = sorted(bases)[index % len(bases)]
        position = 1 + index % 50 if index % 17 == 0 else int(rng.integers(WINDOW, len(bases[chrom]) - WINDOW))
        ref = bases[chrom][position - 1]
        rows.append({"CHROM": chrom, "POS": position, "ALT": "ACGT"[("ACGT".index(ref) + 1 + index % 3) % 4],
                     "label": index % 2, "tissue": ["Whole_Blood", "Liver", "Lung"][index % 3],
                     "distance_to_nearest_TSS": [5_000, 30_000, 60_000, 250_000][(index // 2) % 4],
                     "split": "test" if index % 3 == 0 else "train"})
    return rows


def test_windows_are_cut_as_the_benchmarks_loader_cuts_them(heldout, tmp_path):  # noqa: F811
    reference, bases = heldout
    windows = VariantWindows(reference, 10, max_n_fraction=0.005)
    ref, alt = windows.cut("CHROMOSOME_II", 100, "A", None)
    assert decode(ref) == bases["CHROMOSOME_II"][94:104] and windows.site == 5  # POS 100 is index 99, at L // 2
    assert decode(alt) == bases["CHROMOSOME_II"][94:99] + "A" + bases["CHROMOSOME_II"][100:104]
    assert windows.cut("CHROMOSOME_II", 5, "A", None) == "window off the chromosome"
    assert windows.cut("CHROMOSOME_II", len(bases["CHROMOSOME_II"]) - 4, "A", None) == "window off the chromosome"
    assert windows.cut("chrCHROMOSOME_II", 100, "A", None)[0].tolist() == ref.tolist()  # a 'chr' prefix is mapped
    with pytest.raises(ValueError, match="CHROMOSOME_II:100: the table's REF . differs from"):
        windows.cut("CHROMOSOME_II", 100, "A", "ACGT".replace(bases["CHROMOSOME_II"][99], "")[0])
    with pytest.raises(ValueError, match="chromosome 'chr7' is not in"):
        windows.cut("chr7", 100, "A", None)
    gappy = tmp_path / "gappy.fa"
    gappy.write_text(">chr1\n" + "ACGT" * 50 + "N" + "ACGT" * 50 + "\n")
    assert VariantWindows(gappy, 100, 0.005).cut("chr1", 180, "A", None) == "too many N in the window"
    assert encode("N")[0] == N
    np.testing.assert_array_equal(VariantWindows(gappy, 2000, 0.005).pooled_positions(1536), np.arange(232, 1769))
    np.testing.assert_array_equal(windows.pooled_positions(6), [2, 3, 4, 5, 6, 7, 8])
    clamped = np.bincount(windows.pooled_positions(1536))  # a short window repeats its ends, as the published gather
    assert clamped.tolist() == [764, 1, 1, 1, 1, 1, 1, 1, 1, 765]


def test_the_probe_is_scikit_learns_svm_per_inclusive_bucket_on_the_published_subsets():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 4)), rng.integers(0, 2, 300)
    x[:, 0] += 2.5 * y  # a feature that separates the classes
    distance = rng.choice([0, 30_000, 50_000, 100_000, 400_000], 300)
    settings = ProbeSettings((Bucket(0, 30_000), Bucket(30_000, 100_000)), (1.0, 5.0), (1, 2), subset=60)
    results = probe_buckets(x[:200], y[:200], distance[:200], x[200:], y[200:], distance[200:], settings)
    assert list(results) == ["0-30k", "30-100k"]
    low = distance <= 30_000
    assert results["0-30k"]["num_test"] == int(low[200:].sum())  # 30,000 is in both buckets, as published
    train = np.flatnonzero(low[:200])
    expected = {}
    for c in (1.0, 5.0):
        values = []
        for seed in (1, 2):
            np.random.seed(seed)
            chosen = train[np.random.choice(len(train), size=60, replace=60 > len(train))]
            np.testing.assert_array_equal(chosen, train[training_subset(len(train), 60, seed)])
            svm = make_pipeline(StandardScaler(), SVC(C=c)).fit(x[chosen], y[chosen])
            test = 200 + np.flatnonzero(low[200:])
            values.append(roc_auc_score(y[test], svm.decision_function(x[test])))
        expected[c] = values
    assert results["0-30k"]["by_c"] == {"1": pytest.approx(expected[1.0]), "5": pytest.approx(expected[5.0])}
    best = max(expected, key=lambda c: np.mean(expected[c]))
    assert results["0-30k"]["c"] == best and results["0-30k"]["mean"] == pytest.approx(np.mean(expected[best]))
    assert results["0-30k"]["mean"] > 0.75


def test_strands_follow_the_published_choice():
    assert conjoin_by_split("auto", equivariant=True) == {"train": True, "test": True}
    assert conjoin_by_split("auto", equivariant=False) == {"train": False, "test": True}
    assert conjoin_by_split("forward", equivariant=True) == {"train": False, "test": False}
    with pytest.raises(ValueError, match="--strands must be one of"):
        conjoin_by_split("both", equivariant=True)


@pytest.fixture(scope="module")
def eqtl_run(run_dir, heldout, tmp_path_factory):  # noqa: F811
    reference, bases = heldout
    root = tmp_path_factory.mktemp("eqtl")
    rows = fixture_rows(bases, 150)
    write_table(root / "All_Tissues.csv", rows)
    argv = ["evaluate-eqtl", "--ckpt", str(run_dir), "--reference", str(reference), "--variants",
            str(root / "All_Tissues.csv"), "--window", str(WINDOW), "--out-dir", str(root / "out"), "--batch-size", "16"]
    from mdlm_bio.cli import main

    main(argv)
    return root, rows, argv


def test_features_are_pooled_ref_and_alt_embeddings_and_scores_are_score_variants(eqtl_run, run_dir, heldout,  # noqa: F811
                                                                                  tmp_path):
    root, rows, _ = eqtl_run
    reference, bases = heldout
    stored = np.load(root / "out" / "features" / "test_00000.npz")
    kept = np.flatnonzero(stored["left_out"] == "")
    assert set(stored["left_out"].tolist()) <= {"", "window off the chromosome"} and len(kept) < len(stored["rows"])
    row = int(stored["rows"][kept[0]])
    model, windows = load_model(run_dir), VariantWindows(reference, WINDOW, 0.005)
    ref, alt = windows.cut(rows[row]["CHROM"], rows[row]["POS"], rows[row]["ALT"], None)
    conjoined = [model.embed(tokens[None], conjoin=True)[0] for tokens in (ref, alt)]
    pooled = [embedding[windows.pooled_positions(1536)].mean(0) for embedding in conjoined]
    np.testing.assert_allclose(stored["features"][kept[0]], np.concatenate(pooled), rtol=1e-5, atol=1e-6)

    test_rows = [int(r) for r in stored["rows"][kept]]
    records = sorted((rows[r]["CHROM"], rows[r]["POS"], rows[r]["ALT"], r) for r in test_rows)
    vcf = write_vcf(tmp_path / "test.vcf", [f"{c} {p} . {bases[c][p - 1]} {a} . . ." for c, p, a, _ in records])
    run(run_dir, vcf, reference, tmp_path / "scored.vcf", "--window", str(WINDOW))
    scored = {int(r["pos"]): float(r["score_nats"]) for r in tsv_rows(tmp_path / "scored.tsv")}
    ours = dict(zip(stored["rows"][kept].tolist(), stored["scores"][kept].tolist()))
    for chrom, position, _, table_row in records:
        assert ours[table_row] == pytest.approx(scored[position], abs=6e-5)


def test_the_results_table_has_every_bucket_and_a_rerun_reuses_the_features(eqtl_run, capsys):
    root, rows, argv = eqtl_run
    results = json.loads((root / "out" / "results.json").read_text())
    probe = results["summary"]["probe"]
    assert list(probe) == ["0-30k", "30-100k", ">100k"] and all(0 <= row["mean"] <= 1 for row in probe.values())
    kept_test = [int(row) for path in sorted((root / "out" / "features").glob("test_*.npz"))
                 for row, reason in zip(np.load(path)["rows"], np.load(path)["left_out"]) if reason == ""]
    assert probe["0-30k"]["num_test"] == sum(rows[r]["distance_to_nearest_TSS"] <= 30_000 for r in kept_test)
    assert results["summary"]["kept"]["test"] == len(kept_test) == sum(r["split"] == "test" for r in rows) - sum(
        results["left_out"]["test"].values())
    assert set(results["summary"]["zero_shot"]) == {"minus_score", "abs_score"}
    assert results["strands"] == {"train": True, "test": True}  # the tiny demo model is Caduceus-PS
    markdown = (root / "out" / "results.md").read_text()
    assert "| 0-30k |" in markdown and "not printed in the paper" in markdown
    stamp = (root / "out" / "features" / "train_00000.npz").stat().st_mtime_ns
    from mdlm_bio.cli import main

    main(argv)
    assert (root / "out" / "features" / "train_00000.npz").stat().st_mtime_ns == stamp
    main([*argv[:-2], "--batch-size", "8", "--window", str(WINDOW + 2)])  # other settings start over
    assert "holds features of other settings; starting over" in capsys.readouterr().err


def test_bad_tables_are_refused_with_the_reason(run_dir, heldout, tmp_path, capsys):  # noqa: F811
    reference, bases = heldout
    good = fixture_rows(bases, 6)
    cases = [
        ([{**good[0], "split": "valid"}], "the split column must hold train or test, found ['valid']"),
        ([{**good[0], "ALT": "AT"}], "ALT must be one base A, C, G or T (the benchmark holds SNPs); found ['AT']"),
        ([{key: value for key, value in good[0].items() if key != "tissue"}], "no ['tissue'] column(s)"),
        ([{**good[0], "label": 2}], "labels must be 0 or 1"),
        ([{**good[0], "split": "train"}], "no test rows; the probe trains on train rows and scores test rows"),
    ]
    for index, (rows, message) in enumerate(cases):
        path = tmp_path / f"bad{index}.csv"
        write_table(path, rows)
        assert message in error_of(capsys, ["evaluate-eqtl", "--ckpt", str(run_dir), "--reference", str(reference),
                                            "--variants", str(path), "--out-dir", str(tmp_path / "out")])


def test_one_benchmark_table_holds_every_suite_beside_the_published_numbers(eqtl_run, tmp_path, capsys):
    """Genomic Benchmarks and NT results as their sweeps write them (here from given per-seed scores), the eQTL run
    above, and the table that combines them, column per run folder."""
    gb, nt = tmp_path / "gb-tiny", tmp_path / "nt-tiny"
    write_gb_results([SeedResult("demo_human_or_worm", seed, accuracy, 0.9, 90, 10, 50, "")
                      for seed, accuracy in ((1, 0.90), (2, 0.94))], gb, "scratch caduceus-tiny")
    write_nt_results([NtResult("H3", "matthews", 1e-3, 32, seed, seed - 1, score, 0.5, 90, 10, 40, None)
                      for seed, score in ((1, 0.40), (2, 0.52))], select_nt_tasks(["H3"]), nt, "scratch caduceus-tiny")
    (tmp_path / "glue").mkdir()
    (tmp_path / "glue" / "results.json").write_text(json.dumps({"model": "bert", "summary": {}, "paper": {}}))
    from mdlm_bio.cli import main

    main(["benchmark", str(gb), str(nt / "results.json"), str(eqtl_run[0] / "out"), "--out", str(tmp_path / "all.md")])
    table = (tmp_path / "all.md").read_text()
    assert "| demo_human_or_worm | 0.920 ± 0.028 | 0.930 |" in table  # ours, then the GB paper's CNN
    assert "| H3 | matthews | 0.460 ± 0.120 | 0.719 ± 0.048 |" in table  # ours (mean ± max-min), then Enformer
    eqtl = json.loads((eqtl_run[0] / "out" / "results.json").read_text())["summary"]
    low = eqtl["probe"]["0-30k"]
    assert f"| 0-30k | {low['mean']:.3f} ± {low['std']:.3f}; zero-shot {eqtl['zero_shot']['minus_score']['0-30k']:.3f} |" in table
    assert json.loads((tmp_path / "all.json").read_text())["runs"]["out"]["benchmark"] == "eqtl"
    assert "is not a result of finetune genomic-benchmarks" in error_of(
        capsys, ["benchmark", str(tmp_path / "glue"), "--out", str(tmp_path / "x.md")])
    assert "two runs share a folder name" in error_of(capsys, ["benchmark", str(gb), str(gb)])
    assert "results file not found" in error_of(capsys, ["benchmark", str(tmp_path / "nowhere")])


def test_a_chunk_whose_variants_are_all_left_out_is_counted_not_joined(run_dir, heldout, tmp_path, monkeypatch):  # noqa: F811
    """Features are joined across chunks of kept rows only; a split with none kept is an error with the reasons."""
    from mdlm_bio.cli import main
    from mdlm_bio.tasks import eqtl

    reference, bases = heldout
    rows = fixture_rows(bases, 24)
    for row in rows[:6]:  # every train row of the first chunk sits at a record's start
        row["POS"] = 3
    write_table(tmp_path / "variants.csv", rows)
    monkeypatch.setattr(eqtl, "CHUNK", 2)
    main(["evaluate-eqtl", "--ckpt", str(run_dir), "--reference", str(reference), "--variants",
          str(tmp_path / "variants.csv"), "--window", str(WINDOW), "--out-dir", str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    off = sum(row["split"] == "train" and row["POS"] <= WINDOW // 2 for row in rows)
    assert off >= 4 and results["left_out"]["train"] == {"window off the chromosome": off}
    assert results["summary"]["kept"]["train"] == sum(r["split"] == "train" for r in rows) - off
    write_table(tmp_path / "none.csv", [{**row, "POS": 3} for row in rows])
    with pytest.raises(ValueError, match="no train variant could be cut from the reference: "
                                         "{'window off the chromosome': 16}"):
        eqtl.evaluate_eqtl(str(run_dir), reference=reference, variants=tmp_path / "none.csv", window=WINDOW,
                           out_dir=tmp_path / "none", strands="auto", batch_size=4, device="cpu",
                           trust_checkpoint=False, ignore_memory_limit=False)

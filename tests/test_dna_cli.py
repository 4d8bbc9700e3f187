"""The DNA track through the real CLI: train (with resume), sample, infill, score, report, and bad input."""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from Bio import SeqIO
from dna_runs import error_of, train_args

from mdlm_bio.cli import main
from mdlm_bio.models import load_model


def test_train_writes_config_checkpoint_and_logs(run_dir):
    assert (run_dir / "config.yaml").read_text().count("d_model: 32") == 1
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 30
    assert checkpoint["mdlm_bio_config"]["model"]["overrides"] == {"d_model": 32, "n_layer": 2}
    metrics = (run_dir / "logs" / "version_0" / "metrics.csv").read_text()
    assert "val/bits_per_base" in metrics and "train/loss" in metrics
    validation = [row for row in csv.DictReader(io.StringIO(metrics)) if row["val/nelbo"]]
    assert len(validation) >= 2  # the sanity pass (step 0) and the end of training
    for row in validation:  # the perplexity of the whole validation set, not a mean of per-batch ones
        assert float(row["val/ppl"]) == pytest.approx(math.exp(float(row["val/nelbo"])), rel=1e-5)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(run_dir / "logs" / "version_0"))
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_rerunning_resumes_from_the_last_checkpoint(tmp_path, data_dir, run_dir, capsys):
    run = tmp_path / "resume"
    main(train_args(run, data_dir, steps=10))
    main(train_args(run, data_dir, steps=20))
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 20
    assert (run / "logs" / "version_0" / "metrics.csv").exists() and (run / "logs" / "version_1" / "metrics.csv").exists()


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, data_dir):
    """Same windows (the data position is checkpointed) and same diffusion noise (drawn per step)."""
    small_epoch = ["data.windows_per_epoch=64"]  # 8 batches: the runs cross epoch boundaries mid-way
    main(train_args(tmp_path / "straight", data_dir, steps=20) + small_epoch)
    main(train_args(tmp_path / "split", data_dir, steps=13) + small_epoch)
    main(train_args(tmp_path / "split", data_dir, steps=20) + small_epoch)
    straight, split = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
                       for run in ("straight", "split"))
    assert straight.keys() == split.keys()
    for key in straight:
        torch.testing.assert_close(split[key], straight[key], rtol=1e-5, atol=1e-6, msg=key)


def test_killed_training_resumes_when_the_same_command_is_rerun(tmp_path, data_dir):
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "mdlm_bio.cli", *train_args(run, data_dir, steps=150, every=5)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < killed_at < 150
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f"resuming from {last}" in finished.stdout
    assert torch.load(last, weights_only=True)["global_step"] == 150


def test_ddp_on_two_cpu_processes_and_bf16(tmp_path, data_dir):
    """Lightning's strategies through trainer.*: DDP (gloo) relaunches the CLI, so it runs as a subprocess."""
    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "mdlm_bio.cli", *train_args(run, data_dir, steps=4, every=2),
               "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "trainer.precision=bf16-mixed"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]  # rank 0 holds the run folder; rank 1 does not ask
    assert "distributed_backend=gloo" in (run / "logs" / "lightning.log").read_text()  # Lightning's log, not the terminal
    assert "step       4  val bits/base" in finished.stdout
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4
    assert all(value.dtype == torch.float32 for value in checkpoint["state_dict"].values() if value.is_floating_point())


def logged_metric(run: Path, column: str) -> dict[int, float]:
    """One metric of a run's CSV log, by step."""
    rows = csv.DictReader(io.StringIO((run / "logs" / "version_0" / "metrics.csv").read_text()))
    return {int(row["step"]): float(row[column]) for row in rows if row[column]}


def test_bf16_mixed_training_tracks_float32_and_reloads_in_float32(run_dir, data_dir, tmp_path):
    """bf16 autocast on the CPU, against the fixture's float32 run of the same seed, data and steps."""
    run = tmp_path / "bf16"
    main(train_args(run, data_dir, steps=30) + ["trainer.precision=bf16-mixed"])
    validation, reference = logged_metric(run, "val/bits_per_base"), logged_metric(run_dir, "val/bits_per_base")
    assert sorted(validation) == sorted(reference) and len(validation) >= 3
    for step, bits in validation.items():
        assert abs(bits - reference[step]) < 0.01, (step, bits, reference[step])
    assert all(math.isfinite(loss) for loss in logged_metric(run, "train/loss").values())
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    for weights in (checkpoint["state_dict"], checkpoint["current_model_state"]):  # EMA and raw
        assert all(value.dtype == torch.float32 for value in weights.values() if value.is_floating_point())
    model = load_model(run)
    with torch.no_grad():
        logits = model.network.denoiser(torch.full((2, 64), model.mask_id), torch.ones(2))
    assert logits.dtype == torch.float32 and torch.isfinite(logits[..., model.network.output_allowed]).all()


def test_changing_the_model_of_an_existing_run_is_refused(run_dir, data_dir, capsys):
    argv = train_args(run_dir, data_dir, steps=40) + ["model.overrides.n_layer=3"]
    assert "was trained with a different model (backbone n_layer: 2 in the checkpoint, 3 asked)" in error_of(capsys, argv)


def test_config_errors_are_named(tmp_path, data_dir, capsys):
    assert "unknown config key 'trainer_max_steps'" in error_of(capsys, ["train", "demo", "trainer_max_steps=3"])
    assert "unknown training preset 'hg19'" in error_of(capsys, ["train", "hg19"])
    missing = tmp_path / "no_hg38"
    err = error_of(capsys, ["train", "hg38", f"data.data_dir={missing}", f"run_dir={tmp_path / 'r'}"])
    assert str(missing) in err and "mdlm-bio data hg38 --data-dir" in err


def test_sample_writes_fasta_beyond_the_context_and_continues_prompts(run_dir, tmp_path):
    out = tmp_path / "gen.fa"
    main(["sample", "--ckpt", str(run_dir), "--num", "3", "--length", "100", "--seed", "1", "--out", str(out)])
    records = list(SeqIO.parse(out, "fasta"))
    assert [len(r.seq) for r in records] == [100, 100, 100]
    assert all(set(str(r.seq)) <= set("ACGTN") for r in records)
    assert "sampler=first-hitting" in records[0].description and "length=100" in records[0].description
    prompt = tmp_path / "prompt.fa"
    prompt.write_text(">p\nACGTACGTAAAATTTT\n")
    main(["sample", "--ckpt", str(run_dir), "--num", "2", "--length", "40", "--sampler", "cached", "--steps", "20",
          "--prompt", str(prompt), "--out", str(out)])
    assert all(str(r.seq).startswith("ACGTACGTAAAATTTT") for r in SeqIO.parse(out, "fasta"))


def test_infill_fills_n_runs_and_bed_regions_only(run_dir, tmp_path):
    rng = np.random.default_rng(0)
    bases = "".join(rng.choice(list("ACGT"), 150))
    with_gap = bases[:40] + "N" * 30 + bases[70:]
    source = tmp_path / "in.fa"
    source.write_text(f">chrA test\n{with_gap}\n>chrB\n{bases}\n")
    out = tmp_path / "filled.fa"
    main(["infill", "--ckpt", str(run_dir), str(source), "--out", str(out), "--steps", "16"])
    filled = {r.id: str(r.seq) for r in SeqIO.parse(out, "fasta")}
    assert "N" not in filled["chrA"] and filled["chrA"][:40] == bases[:40] and filled["chrA"][70:] == bases[70:]
    assert filled["chrB"] == bases
    bed = tmp_path / "regions.bed"
    bed.write_text("chrB\t10\t20\n")
    main(["infill", "--ckpt", str(run_dir), str(source), "--bed", str(bed), "--out", str(out), "--steps", "16"])
    filled = {r.id: str(r.seq) for r in SeqIO.parse(out, "fasta")}
    assert filled["chrB"][:10] == bases[:10] and filled["chrB"][20:] == bases[20:]
    assert filled["chrA"] == with_gap


def test_score_writes_a_tsv_row_per_record(run_dir, tmp_path):
    source = tmp_path / "s.fa.gz"
    with gzip.open(source, "wt") as handle:
        handle.write(">one\n" + "ACGT" * 40 + "\n>two\n" + "GATTACA" * 10 + "NNNN\n")
    out = tmp_path / "scores.tsv"
    main(["score", "--ckpt", str(run_dir), str(source), "--mc", "4", "--out", str(out)])
    header, *rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert header == ["record", "length", "scored_bases", "nelbo_nats", "bits_per_base", "perplexity"]
    assert [r[0] for r in rows] == ["one", "two"] and rows[1][1:3] == ["74", "70"]
    for row in rows:
        nelbo, bits, ppl = map(float, row[3:])
        assert 0 < bits < 4 and ppl == pytest.approx(2 ** bits, rel=1e-3)
        assert nelbo == pytest.approx(bits * int(row[2]) * np.log(2), rel=1e-3)


def test_report_through_the_cli(tmp_path, capsys):
    reference = Path(__file__).resolve().parents[1] / "mdlm_bio" / "data" / "lambda_virus.fa.gz"
    generated = tmp_path / "gen.fa"
    generated.write_text(">a\n" + "ACGT" * 50 + "\n>b\n" + "GGCCAATT" * 20 + "\n")
    main(["report", str(generated), "--reference", str(reference), "--out-dir", str(tmp_path / "rep")])
    assert {p.name for p in (tmp_path / "rep").iterdir()} >= {"report.json", "report.md", "kmer_spectra.png"}


def test_bad_fasta_inputs_name_the_file_and_leave_nothing_behind(run_dir, tmp_path, capsys):
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    illegal = tmp_path / "illegal.fa"
    illegal.write_text(">good\nACGT\n>bad_one\nACGXT\n")
    truncated = tmp_path / "trunc.fa.gz"
    random_bases = np.random.default_rng(0).choice(list(b"ACGT"), 20_000).astype(np.uint8).tobytes()
    compressed = gzip.compress(b">x\n" + random_bases)
    truncated.write_bytes(compressed[: len(compressed) // 2])
    out = tmp_path / "out.fa"
    for path, message in [(empty, "no FASTA records"), (illegal, "record 'bad_one': illegal character 'X' at position 4"),
                          (truncated, "damaged or truncated gzip")]:
        err = error_of(capsys, ["infill", "--ckpt", str(run_dir), str(path), "--out", str(out)])
        assert str(path) in err and message in err
        assert not out.exists() and not list(tmp_path.glob(".out.fa*"))


def test_checkpoints_of_other_models_are_refused(tmp_path, data_dir, capsys):
    ar_run = tmp_path / "ar"
    main(train_args(ar_run, data_dir, steps=2, every=2, preset="demo-ar"))
    fasta = tmp_path / "x.fa"
    fasta.write_text(">x\nACGTNNNNACGT\n")
    assert "holds an autoregressive model; infill needs a masked-diffusion" in error_of(
        capsys, ["infill", "--ckpt", str(ar_run), str(fasta), "--out", str(tmp_path / "filled.fa")])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    assert "neither an mdlm-bio checkpoint (it has no mdlm_bio_model entry) nor a published MDLM or Caduceus state " \
           "dict" in error_of(capsys, ["score", str(fasta), "--ckpt", str(foreign)])
    assert "no checkpoint at" in error_of(capsys, ["sample", "--ckpt", str(tmp_path / "nothing")])

"""Long jobs that survive: outputs committed step by step and resumed after a kill -9 with the same bytes, and one
writer per run folder, data folder or output, tested with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dna_runs import error_of, train_args
from test_score_variants import heldout, other, write_vcf  # noqa: F401 (heldout is a fixture)

from mdlm_bio.cli import main
from mdlm_bio.locks import LOCK_NAME, FolderInUseError, exclusive, is_rank_zero
from mdlm_bio.models import load_model
from mdlm_bio.models.checkpoint_format import read_checkpoint
from mdlm_bio.resumable import ResumableOutputs, partial_folder
from mdlm_bio.sources import LAST_CHECKPOINT

# A real process that runs an mdlm-bio command and kills itself (SIGKILL, as kill -9) right after its N-th commit.
DIES_AT_COMMIT = """
import os, signal, sys
from mdlm_bio import resumable
from mdlm_bio.cli import main
commit, count = resumable.ResumableOutputs.commit, []
def commit_then_die(self, *args, **kwargs):
    commit(self, *args, **kwargs)
    count.append(1)
    if len(count) == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
resumable.ResumableOutputs.commit = commit_then_die
main(sys.argv[2:])
"""
# A real process that holds a folder until it is killed.
HOLDS_FOLDER = """
import sys, time
from mdlm_bio.locks import exclusive
with exclusive(sys.argv[1], "run folder"):
    print("held", flush=True)
    time.sleep(600)
"""


def killed_after_commit(commits: int, argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", DIES_AT_COMMIT, str(commits), *argv], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


# ---------------------------------------------------------------- committed steps


def test_a_resumed_job_continues_from_its_last_commit_and_drops_what_came_after(tmp_path):
    out, job = tmp_path / "out.txt", {"input": "a", "setting": 1}
    with pytest.raises(KeyboardInterrupt), ResumableOutputs([out], job) as outputs:
        outputs.files[0].write("one\ntwo\n")
        outputs.commit(2, {"note": "x"})
        outputs.files[0].write("three (never committed)\n")
        raise KeyboardInterrupt
    assert not out.exists() and partial_folder(out).is_dir()
    with ResumableOutputs([out], job) as outputs:
        assert (outputs.resumed, outputs.done, outputs.extra) == (True, 2, {"note": "x"})
        outputs.files[0].write("three\n")
        outputs.commit(3)
        outputs.finish()
    assert out.read_text() == "one\ntwo\nthree\n" and not partial_folder(out).exists()


def test_another_job_on_the_same_output_starts_over(tmp_path):
    out = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt), ResumableOutputs([out], {"setting": 1}) as outputs:
        outputs.files[0].write("old\n")
        outputs.commit(1)
        raise KeyboardInterrupt
    for fingerprint in ({"setting": 2}, None):  # other settings; a job reading a pipe
        with ResumableOutputs([out], fingerprint) as outputs:
            assert (outputs.resumed, outputs.done) == (False, 0)
            outputs.files[0].write("new\n")
            outputs.finish()
        assert out.read_text() == "new\n"


def test_score_variants_killed_mid_run_resumes_to_the_same_bytes(run_dir, heldout, tmp_path, capsys):  # noqa: F811
    reference, bases = heldout
    name = "CHROMOSOME_III"
    rows = [f"{name} {pos} . {bases[name][pos - 1]} {other(bases[name][pos - 1])} . . ." for pos in range(300, 1500, 40)]
    rows.insert(6, f"{name} 520 . {bases[name][519:522]} {bases[name][519]} . . .")  # a deletion among the SNVs
    vcf = write_vcf(tmp_path / "v.vcf", rows)

    def argv(out: Path) -> list[str]:
        return ["score-variants", str(vcf), "--reference", str(reference), "--ckpt", str(run_dir), "--out", str(out),
                "--batch-size", "4"]

    main(argv(tmp_path / "whole.vcf.gz"))
    killed_after_commit(3, argv(tmp_path / "resumed.vcf.gz"))  # the header, then two groups of records
    assert not (tmp_path / "resumed.vcf.gz").exists() and not (tmp_path / "resumed.tsv").exists()
    capsys.readouterr()
    main([*argv(tmp_path / "resumed.vcf.gz"), "--device", "cpu,cpu"])  # resumed across two workers
    assert "resuming: 8 of 31 records were scored" in capsys.readouterr().err
    assert (tmp_path / "resumed.tsv").read_bytes() == (tmp_path / "whole.tsv").read_bytes()
    assert (tmp_path / "resumed.vcf.gz").read_bytes() == (tmp_path / "whole.vcf.gz").read_bytes()
    assert (tmp_path / "resumed.vcf.gz.tbi").is_file() and not partial_folder(tmp_path / "resumed.vcf.gz").exists()


def test_sample_killed_mid_run_resumes_to_the_same_samples(run_dir, tmp_path, capsys):
    def argv(out: Path) -> list[str]:
        return ["sample", "--ckpt", str(run_dir), "--num", "10", "--batch-size", "3", "--length", "48", "--sampler",
                "ancestral", "--steps", "6", "--out", str(out)]

    main(argv(tmp_path / "whole.fa"))
    killed_after_commit(2, argv(tmp_path / "resumed.fa"))  # two batches of three written
    capsys.readouterr()
    main(argv(tmp_path / "resumed.fa"))
    captured = capsys.readouterr()
    assert "resuming: 6 of 10 sequences were drawn" in captured.err
    assert "wrote 10 sequences of 48 bases" in captured.out
    assert (tmp_path / "resumed.fa").read_bytes() == (tmp_path / "whole.fa").read_bytes()


def test_score_killed_mid_run_resumes_to_the_same_rows(run_dir, tmp_path):
    fasta = tmp_path / "records.fa"
    fasta.write_text("".join(f">r{i}\n{'ACGTTGCA'[i % 8:] + 'ACGT' * (10 + i)}\n" for i in range(6)))

    def argv(out: Path) -> list[str]:
        return ["score", str(fasta), "--ckpt", str(run_dir), "--mc", "2", "--out", str(out)]

    main(argv(tmp_path / "whole.tsv"))
    killed_after_commit(4, argv(tmp_path / "resumed.tsv"))
    main(argv(tmp_path / "resumed.tsv"))
    assert (tmp_path / "resumed.tsv").read_bytes() == (tmp_path / "whole.tsv").read_bytes()
    assert len((tmp_path / "whole.tsv").read_text().splitlines()) == 7


# ---------------------------------------------------------------- one writer per folder


def test_a_held_folder_is_refused_with_the_holders_pid_and_freed_when_the_holder_is_killed(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDS_FOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUseError, match=rf"run folder {folder} is in use by another process "
                                                   rf"\(pid {holder.pid}\)"), exclusive(folder, "run folder"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with exclusive(folder, "run folder"):  # no stale lock: the OS released it with the process
        assert (folder / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_only_rank_zero_of_a_distributed_job_takes_the_lock(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "0")
    assert is_rank_zero()


def test_an_output_or_data_folder_being_written_refuses_a_second_writer(run_dir, tmp_path, capsys):
    out, data = tmp_path / "gen.fa", tmp_path / "hg38"
    with exclusive(partial_folder(out), "output"):
        err = error_of(capsys, ["sample", "--ckpt", str(run_dir), "--num", "2", "--out", str(out)])
        assert f"output {partial_folder(out)} is in use by another process (pid {os.getpid()})" in err
    with exclusive(data, "data folder"):
        err = error_of(capsys, ["data", "hg38", "--data-dir", str(data), "--fasta-url", "file:///nonexistent.fa.gz"])
        assert f"data folder {data} is in use by another process (pid {os.getpid()})" in err


def test_two_trainers_on_one_folder_and_a_reader_while_it_writes(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "mdlm_bio.cli", *train_args(run, data_dir, steps=100_000, every=1)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        reads, deadline = 0, time.monotonic() + 120
        while reads < 5 and time.monotonic() < deadline and first.poll() is None:
            if (run / LAST_CHECKPOINT).is_file():  # written every step: a reader never sees a torn one
                assert load_model(run).context == 64
                reads += 1
            time.sleep(0.2)
        assert reads == 5, first.stderr.read() if first.poll() is not None else "no checkpoint within 2 minutes"
        err = error_of(capsys, train_args(run, data_dir, steps=100_000, every=1))
        assert f"run folder {run} is in use by another process (pid {first.pid})" in err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    step = read_checkpoint(run / LAST_CHECKPOINT)["global_step"]
    main(train_args(run, data_dir, steps=step + 1, every=1))  # the killed holder left no lock behind
    assert read_checkpoint(run / LAST_CHECKPOINT)["global_step"] == step + 1

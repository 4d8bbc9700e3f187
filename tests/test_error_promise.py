"""The README's promise, class by class: bad input stops with `mdlm-bio COMMAND: error: ...`, says which file (and
record) and what to do, exits 2, and leaves nothing half-written; a diverged run never looks like a success."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from dna_runs import error_of, train_args

from mdlm_bio.cli import main
from mdlm_bio.memory import activation_bytes
from mdlm_bio.models.checkpoint_format import CHECKSUMS, NonFiniteWeightsError, non_finite_names, weights_checksum
from mdlm_bio.training.checkpoint_io import AtomicCheckpointIO
from mdlm_bio.training.module import DiffusionLM


@pytest.fixture
def fasta(tmp_path) -> Path:
    path = tmp_path / "good.fa"
    path.write_text(">one\nACGTACGTTTGA\n")
    return path


# ---------------------------------------------------------------- 1. a diverged run does not look like a success


def test_a_diverging_run_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, capsys, monkeypatch):
    train_step = DiffusionLM.training_step

    def poisoned(self, batch, batch_idx):  # gradients turn nan from step 3 on
        loss = train_step(self, batch, batch_idx)
        return loss * float("nan") if self.global_step >= 3 else loss

    monkeypatch.setattr(DiffusionLM, "training_step", poisoned)
    run = tmp_path / "diverging"
    err = error_of(capsys, train_args(run, data_dir, steps=10, every=2))
    last = run / "checkpoints" / "last.ckpt"
    assert "training diverged at step 3: the loss is" in err and "and the gradient norm nan" in err
    assert f"{last} holds the last good weights" in err and "lower optim.lr" in err
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 2
    assert non_finite_names(checkpoint["state_dict"]) == non_finite_names(checkpoint["current_model_state"]) == []


def test_a_run_that_fails_before_its_first_step_leaves_no_run_folder(tmp_path, data_dir, capsys, monkeypatch):
    train_step = DiffusionLM.training_step
    monkeypatch.setattr(DiffusionLM, "training_step", lambda *args: train_step(*args) * float("nan"))
    err = error_of(capsys, train_args(tmp_path / "never", data_dir, steps=4))
    assert "training diverged at step 0" in err and "no checkpoint was written before it" in err
    assert not (tmp_path / "never").exists()


def test_checkpoint_files_refuse_non_finite_weights_and_keep_the_previous_file(tmp_path):
    path, writer = tmp_path / "last.ckpt", AtomicCheckpointIO()
    writer.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    with pytest.raises(NonFiniteWeightsError, match=r"refusing to write .*last.ckpt: 1 weight tensors in 'state_dict' "
                                                    r"hold nan or inf \(e.g. w\); the checkpoints already written are kept"):
        writer.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("nan"), 2.0])}}, path)
    assert torch.equal(writer.load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert [entry.name for entry in tmp_path.iterdir()] == ["last.ckpt"]


def test_loading_refuses_non_finite_weights_and_names_the_file(run_dir, tmp_path, fasta, capsys):
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["state_dict"]["backbone.embedding.weight"][0, 0] = float("inf")
    checkpoint[CHECKSUMS]["state_dict"] = weights_checksum(checkpoint["state_dict"])  # intact, only not finite
    diverged = tmp_path / "diverged.ckpt"
    torch.save(checkpoint, diverged)
    for argv in (["score", str(fasta)], ["sample", "--num", "1"]):
        err = error_of(capsys, [*argv, "--ckpt", str(diverged)])
        assert f"{diverged}: 1 of" in err and "weight tensors in 'state_dict' hold nan or inf" in err


def test_score_refuses_a_record_without_bases_to_score(run_dir, tmp_path, capsys):
    only_n = tmp_path / "n.fa"
    only_n.write_text(">good\nACGT\n>gap\nNNNNNN\n")
    out = tmp_path / "scores.tsv"
    err = error_of(capsys, ["score", str(only_n), "--ckpt", str(run_dir), "--out", str(out)])
    assert f"{only_n}: record 'gap' has no A, C, G or T to score (only N)" in err and not out.exists()


# ---------------------------------------------------------------- 2. damaged or foreign checkpoints


def flip_byte_of(path: Path, member: str, out: Path, within: bytes | None = None) -> None:
    """`out`: `path` with one bit changed inside a member of its zip archive (in the middle, or in the first byte
    of the first occurrence of `within`), as a disk or a copy might do."""
    raw = bytearray(path.read_bytes())
    info = next(entry for entry in zipfile.ZipFile(path).infolist() if entry.filename.endswith(member))
    offset = info.header_offset + 30 + int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    offset += int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    offset = offset + info.file_size // 2 if within is None else raw.index(within, offset)
    raw[offset] ^= 0x10
    out.write_bytes(bytes(raw))


def damage(kind: str, good: Path, out: Path) -> str:
    """Write a damaged or foreign checkpoint of one kind; returns the message it must give."""
    if kind == "truncated":
        out.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return "cannot be read as a checkpoint; the file is truncated or damaged"
    if kind == "changed weights":
        checkpoint = torch.load(good, weights_only=True)
        checkpoint["state_dict"]["backbone.embedding.weight"][0, 0] += 1
        torch.save(checkpoint, out)
        return "the weights in 'state_dict' do not match the checksum saved with them"
    if kind == "flipped tensor byte":
        flip_byte_of(good, "data/0", out)
        return "do not match the checksum saved with them"
    if kind == "flipped index byte":  # the pickle's opening PROTO opcode
        flip_byte_of(good, "data.pkl", out, within=b"\x80\x02")
        return "cannot be read as a checkpoint; the file is damaged (its pickled index does not parse)"
    if kind == "flipped settings byte":  # the schedule's name in the stored config: it still unpickles
        flip_byte_of(good, "data.pkl", out, within=b"loglinear")
        return "its stored settings do not match the checksum saved with them"
    if kind == "python objects":
        torch.save({"state_dict": {}, "hyper_parameters": zipfile.ZipInfo("x")}, out)
        return "holds Python objects that a weights-only read refuses (Lightning checkpoints pickle their settings " \
               "so, and a crafted file runs code when they are loaded); mdlm-bio did not write it"
    if kind.startswith("crafted payload"):  # unpickling it would create a file beside it
        torch.save({"state_dict": {}, "payload": CreatesFile(out.with_suffix(".executed"))}, out,
                   pickle_protocol=int(kind[-2]))
        return "holds Python objects that a weights-only read refuses"
    if kind == "bare tensor":
        torch.save(torch.zeros(3), out)
        return "holds a Tensor, not an mdlm-bio"
    checkpoint = torch.load(good, weights_only=True)
    del checkpoint["mdlm_bio_model"], checkpoint[CHECKSUMS]  # as a file not written by us would lack it
    torch.save(checkpoint, out)
    return "not an mdlm-bio training checkpoint, or an incomplete one: it has no ['mdlm_bio_model']"


DAMAGES = ["truncated", "changed weights", "flipped tensor byte", "flipped index byte", "flipped settings byte",
           "python objects", "crafted payload (pickle 2)", "crafted payload (pickle 4)", "bare tensor", "missing key"]


class CreatesFile:
    """An object whose unpickling opens (creates) a file: a harmless stand-in for a malicious payload."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return open, (str(self.path), "w")


@pytest.mark.parametrize("kind", DAMAGES)
def test_damaged_or_foreign_checkpoints_are_named_when_loaded(run_dir, tmp_path, fasta, kind, capsys):
    bad = tmp_path / "bad.ckpt"
    message = damage(kind, run_dir / "checkpoints" / "last.ckpt", bad)
    assert f"{bad}: " in (err := error_of(capsys, ["score", str(fasta), "--ckpt", str(bad)])) and message in err
    assert not bad.with_suffix(".executed").exists()


@pytest.mark.parametrize("kind", ["truncated", "flipped tensor byte", "python objects", "bare tensor"])
def test_damaged_or_foreign_checkpoints_are_named_on_resume(run_dir, data_dir, tmp_path, kind, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    last = run / "checkpoints" / "last.ckpt"
    message = damage(kind, run_dir / "checkpoints" / "last.ckpt", last)
    err = error_of(capsys, train_args(run, data_dir, steps=6, every=2))
    assert f"{last}: " in err and message in err


def test_a_foreign_classifier_checkpoint_is_named(run_dir, tmp_path, capsys):
    bare = tmp_path / "bare.ckpt"
    torch.save(torch.zeros(3), bare)
    err = error_of(capsys, ["evaluate-guidance", "--ckpt", str(run_dir), "--classifier", str(bare)])
    assert f"{bare}: holds a Tensor, not an mdlm-bio classifier" in err


# ---------------------------------------------------------------- 3. limits before allocation


def test_memory_estimate_counts_tensors_alive_at_once_and_what_backward_keeps():
    weight = torch.ones(1000, requires_grad=True)
    # no grad: zeros (4000 bytes) and the sum (4000 bytes) are alive together, nothing is saved
    assert activation_bytes(lambda: torch.zeros(1000) + 1, []) == 8000
    # each exp saves its output for backward: the first stays counted after Python lets go of it
    assert activation_bytes(lambda: (weight * 2).exp().exp().sum(), [weight]) == 4000 + 4000 + 4


def test_an_oversized_training_window_is_refused_before_anything_is_allocated(tmp_path, data_dir, capsys):
    run = tmp_path / "huge"
    err = error_of(capsys, train_args(run, data_dir, steps=2) + ["data.window=10000000"])
    assert "a training step of batch 8 x length 10000000 needs about" in err and "GiB free on cpu" in err
    assert "lower data.batch_size or data.window, or pass --ignore-memory-limit to try anyway" in err
    assert not run.exists()


def test_an_oversized_sampling_request_is_refused_with_its_estimate(run_dir, tmp_path, capsys):
    out = tmp_path / "gen.fa"
    err = error_of(capsys, ["sample", "--ckpt", str(run_dir), "--num", "100000", "--length", "100000000", "--batch-size",
                            "64", "--out", str(out)])
    assert "sampling 64 x 100000000 bases at once needs about" in err and "outputs" in err  # a batch: --num streams
    assert "or pass --ignore-memory-limit to try anyway" in err and not out.exists()


# ---------------------------------------------------------------- 4. FASTA and BED name the file


@pytest.mark.parametrize("content, message", [
    (b">one\nACGT\n>empty\n\n", "record 'empty' has no bases"),
    (b"notes first\n>one\nACGT\n", "text before the first '>' header ('notes first')"),
    (b"  \n\n \t\n", "no FASTA records"),
    (bytes(range(256)) * 4, "not a text FASTA file"),
], ids=["empty-record", "text-before-header", "whitespace-only", "random-bytes"])
def test_malformed_fasta_is_named(run_dir, tmp_path, content, message, capsys):
    path = tmp_path / "bad.fa"
    path.write_bytes(content)
    assert f"{path}: {message}" in error_of(capsys, ["score", str(path), "--ckpt", str(run_dir)])


def test_a_byte_order_mark_and_blank_lines_before_the_first_header_are_fine(run_dir, tmp_path, capsys):
    path = tmp_path / "bom.fa"
    path.write_bytes(b"\xef\xbb\xbf\n\n>one\nACGTACGT\n")
    main(["score", str(path), "--ckpt", str(run_dir), "--mc", "1"])
    assert capsys.readouterr().out.splitlines()[1].startswith("one\t8\t8\t")


def test_fasta_from_standard_input_and_a_pipe(run_dir, tmp_path):
    fasta = ">one\nACGTACGTAC\n"
    command = [sys.executable, "-m", "mdlm_bio.cli", "score", "--ckpt", str(run_dir), "--mc", "1"]
    from_stdin = subprocess.run([*command, "-"], input=fasta, capture_output=True, text=True)
    assert from_stdin.returncode == 0 and from_stdin.stdout.splitlines()[1].startswith("one\t10\t10\t"), from_stdin.stderr
    (tmp_path / "x.fa").write_text(fasta)
    shell = f"{' '.join(command)} <(gzip -c {tmp_path / 'x.fa'})"
    from_pipe = subprocess.run(["bash", "-c", shell], capture_output=True, text=True)
    assert from_pipe.returncode == 0 and from_pipe.stdout == from_stdin.stdout, from_pipe.stderr


def test_duplicate_record_names_with_a_bed_file_are_named(run_dir, tmp_path, capsys):
    fasta, bed = tmp_path / "dup.fa", tmp_path / "r.bed"
    fasta.write_text(">a\nACGTACGT\n>a\nGGGGCCCC\n")
    bed.write_text("a\t0\t2\n")
    err = error_of(capsys, ["infill", str(fasta), "--bed", str(bed), "--ckpt", str(run_dir), "--out", str(tmp_path / "o.fa")])
    assert f"{fasta}: record name 'a' appears more than once, so {bed} cannot say which record it means" in err


# ---------------------------------------------------------------- 5. blame the right thing


@pytest.mark.parametrize("device, message", [
    ("bogus", "argument --device: 'bogus' is not a device; use cpu, cuda, cuda:N or mps"),
    pytest.param("cuda", "argument --device: cuda: CUDA is not available here", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="a CUDA machine has CUDA")),
])
def test_a_bad_device_is_named_before_any_checkpoint_is_read(tmp_path, device, message, capsys):
    missing = tmp_path / "no-such-run"
    assert message in error_of(capsys, ["sample", "--ckpt", str(missing), "--device", device])


@pytest.mark.parametrize("override, message", [
    ("trainer.max_step=5", "unknown lightning.Trainer option trainer.max_step (did you mean trainer.max_steps?)"),
    ("optim.lr=abc", "optim.lr must be a number, not 'abc'"),
    ("seed=abc", "seed must be an integer, not 'abc'"),
    ("objective.discrete_steps=1.5", "objective.discrete_steps must be an integer, not 1.5"),
    ("data.window=[1,", "bad override 'data.window=[1,': not a valid value"),
    ("model.overrides.n_layer=abc", "caduceus option n_layer must be an integer, not 'abc'"),
])
def test_config_mistakes_name_their_key(tmp_path, override, message, capsys):
    assert message in error_of(capsys, ["train", "demo", f"run_dir={tmp_path / 'run'}", override])
    assert not (tmp_path / "run").exists()


def test_malformed_yaml_names_its_file_and_line(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("inherit: demo\noptim:\n  lr: [1,\n")
    assert f"{path}: not valid YAML at line 4" in error_of(capsys, ["train", str(path)])



@pytest.mark.parametrize("argv, message", [
    (["--out", "/proc/no/such.fa"], "cannot write /proc/no/such.fa"),
    (["--top-p", "2"], "top_p must lie in (0, 1]; got 2.0"),
    (["--length", "8", "--prompt", "PROMPT"], "the prompt (12 bases) must be shorter than --length (8)"),
], ids=["unwritable-output", "top-p", "prompt-too-long"])
def test_sampling_settings_are_refused_before_any_work(run_dir, fasta, argv, message, capsys):
    argv = [str(fasta) if arg == "PROMPT" else arg for arg in argv]
    err = error_of(capsys, ["sample", "--ckpt", str(run_dir), "--num", "1", *argv])
    assert message in err
    assert "sampling:" not in err  # no progress bar: nothing was started

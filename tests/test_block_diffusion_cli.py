"""Block diffusion through the command line: train a tiny DiT on the bundled DNA, sample any length block by block
(FASTA headers name the block size), score, refuse infilling, and start a run from another's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from Bio import SeqIO
from dna_runs import error_of

from mdlm_bio.cli import main
from mdlm_bio.models import load_model
from mdlm_bio.training.clip_search import ClippedScheduleSearch

TINY_BD3 = ["data.window=64", "data.batch_size=8", "data.valid_windows=16", "trainer.limit_val_batches=2",
            "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=5"]


def bd3_args(run: Path, data_dir: Path, steps: int, *extra: str) -> list[str]:
    return ["train", "demo-bd3", f"run_dir={run}", f"data.data_dir={data_dir}", f"trainer.max_steps={steps}",
            f"checkpoint_every_n_steps={steps}", f"trainer.val_check_interval={steps}", *TINY_BD3, *extra]


@pytest.fixture(scope="module")
def bd3_run(tmp_path_factory, data_dir) -> Path:
    run = tmp_path_factory.mktemp("bd3") / "run"
    main(bd3_args(run, data_dir, 10))
    return run


def test_a_block_diffusion_run_samples_any_length_block_by_block(bd3_run, tmp_path, capsys):
    model = load_model(bd3_run)
    assert (model.kind, model.block_size, model.context) == ("bd3", 4, 64)
    out, prompt = tmp_path / "long.fa", tmp_path / "prompt.fa"
    prompt.write_text(">p\nACGTAC\n")
    main(["sample", "--ckpt", str(bd3_run), "--num", "2", "--length", "200", "--prompt", str(prompt),
          "--out", str(out)])
    records = list(SeqIO.parse(out, "fasta"))
    assert [len(r.seq) for r in records] == [200, 200] and all(str(r.seq).startswith("ACGTAC") for r in records)
    assert "sampler=first-hitting block_size=4 length=200" in records[0].description
    assert "(194 network calls)" in capsys.readouterr().out  # first-hitting: one per generated base
    main(["score", str(out), "--ckpt", str(bd3_run), "--mc", "2"])
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows[0][3] == "nelbo_nats" and 1.0 < float(rows[1][4]) < 3.0
    assert "holds a block diffusion model; infill needs a masked-diffusion (mdlm) model" in error_of(
        capsys, ["infill", "--ckpt", str(bd3_run), str(out), "--out", str(tmp_path / "filled.fa")])


def test_block_diffusion_on_mamba_samples_past_its_context_and_scores_both_strands(data_dir, tmp_path, capsys):
    """demo-bd3-mamba: 600 bases from a 64-base context, block by block from the carried state; `score
    --both-strands` is the mean of the record's score and its reverse complement's."""
    run = tmp_path / "mamba"
    main(bd3_args(run, data_dir, 4, "model.preset=caduceus-ph-tiny", "data.rc_augment=0.5"))
    assert type(load_model(run).network.backbone).__name__ == "Caduceus"
    out = tmp_path / "long.fa"
    main(["sample", "--ckpt", str(run), "--num", "2", "--length", "600", "--out", str(out)])
    records = list(SeqIO.parse(out, "fasta"))
    assert [len(r.seq) for r in records] == [600, 600] and set("".join(str(r.seq) for r in records)) <= set("ACGT")
    capsys.readouterr()
    reverse = tmp_path / "reverse.fa"
    SeqIO.write([r.reverse_complement(id=r.id, description="") for r in records], reverse, "fasta")
    scores = {}
    for name, fasta, extra in [("forward", out, []), ("reverse", reverse, []), ("both", out, ["--both-strands"])]:
        main(["score", str(fasta), "--ckpt", str(run), "--mc", "2", *extra])
        scores[name] = [float(line.split("\t")[3]) for line in capsys.readouterr().out.splitlines()[1:]]
    assert scores["forward"] != scores["reverse"]  # a left-to-right model is not strand-symmetric
    for both, forward, reverse_score in zip(scores["both"], scores["forward"], scores["reverse"]):
        assert both == pytest.approx((forward + reverse_score) / 2, abs=1e-3)


def test_a_run_starts_from_another_runs_weights_and_refuses_a_backbone_that_does_not_fit(bd3_run, data_dir,
                                                                                         tmp_path, capsys):
    main(bd3_args(tmp_path / "fine", data_dir, 2, f"init_from={bd3_run}", "objective.block_size=8"))
    assert f"initialised the backbone from {bd3_run}" in capsys.readouterr().out
    err = error_of(capsys, bd3_args(tmp_path / "other", data_dir, 2, f"init_from={bd3_run}",
                                    "model.overrides.hidden_size=32"))
    assert f"init_from={bd3_run}: its backbone does not fit this run's" in err


@pytest.mark.parametrize("override, message", [
    ("objective.block_size=5", "objective.kind=bd3 needs objective.block_size, a positive integer that divides "
                               "data.window=64; got 5"),
    ("objective.clip=[0.8,0.2]", "objective.clip must be [beta, omega] with 0 <= beta < omega <= 1; got [0.8, 0.2]"),
    ("model.preset=caduceus-tiny", "block diffusion reads blocks left to right, which has a direction, so "
                                   "Caduceus-PS's reverse-complement parameter sharing cannot hold"),
    ("model.preset=mamba-ar-tiny", "block diffusion on Caduceus needs bidirectional: true"),
])
def test_block_diffusion_settings_are_checked(data_dir, tmp_path, capsys, override, message):
    assert message in error_of(capsys, bd3_args(tmp_path / "bad", data_dir, 2, override))


def test_the_clipped_schedule_search_picks_an_interval_and_a_resumed_run_keeps_it(data_dir, tmp_path, capsys):
    run = tmp_path / "search"
    main(bd3_args(run, data_dir, 4, "objective.clip_search=[0.5]", "trainer.val_check_interval=2"))
    printed = capsys.readouterr().out
    assert "clipped schedule U[" in printed and "(least variance of 12)" in printed  # [eps, 1] and 11 of width 0.5
    stored = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["mdlm_bio_clip"]  # step 2's choice
    assert stored in [[0.001, 1.0]] + [[max(i / 20, 0.001), i / 20 + 0.5] for i in range(11)]
    seen = []
    original = ClippedScheduleSearch.on_load_checkpoint

    def recording(self, trainer, module, checkpoint):
        original(self, trainer, module, checkpoint)
        seen.append(module.engine.clip)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ClippedScheduleSearch, "on_load_checkpoint", recording)
        main(bd3_args(run, data_dir, 6, "objective.clip_search=[0.5]", "trainer.val_check_interval=2"))
    assert seen == [tuple(stored)]

"""`mdlm-bio embed` (issue 32): strand handling against exact identities, batching that cannot change a
sequence's embedding, the .npz layout (per-sequence = mean of per-position rows), BED intervals of a reference, and
the exact errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dna_runs import error_of
from test_block_sampling import tiny_block_model

from mdlm_bio.backbones.caduceus import Caduceus
from mdlm_bio.cli import main
from mdlm_bio.dna.fasta import write_fasta
from mdlm_bio.dna.tokenizer import BASE_IDS, decode, reverse_complement
from mdlm_bio.models import load_model
from mdlm_bio.models.handle import ModelMismatchError
from mdlm_bio.tasks.embed import embed_sequences

RNG = np.random.default_rng(0)
SEQUENCES = [RNG.choice(BASE_IDS, size=size).astype(np.uint8) for size in (40, 40, 25, 40, 25, 33)]


def test_conjoined_embeddings_of_a_sequence_and_its_reverse_complement_agree(run_dir, ar_run):
    """Caduceus-PS from its own reverse-complement half, the causal Mamba by a second pass: either way the conjoined
    per-position embeddings of RC(x) are those of x read backwards, so mean pooling cannot tell them apart."""
    for run in (run_dir, ar_run):
        model = load_model(run)
        forward, backward = model.embed(np.stack([SEQUENCES[0], reverse_complement(SEQUENCES[0])]), conjoin=True)
        np.testing.assert_allclose(backward[::-1], forward, rtol=1e-5, atol=1e-5)
    plain = load_model(run_dir).embed(np.stack([SEQUENCES[0], reverse_complement(SEQUENCES[0])]), conjoin=False)
    assert not np.allclose(plain[1][::-1], plain[0], atol=1e-3)  # one strand alone is not symmetric


def test_caduceus_ps_conjoined_embeddings_are_its_features_and_forward_ones_its_first_half(run_dir):
    model = load_model(run_dir)
    backbone = model.network.backbone
    assert isinstance(backbone, Caduceus) and backbone.rcps
    tokens = torch.as_tensor(np.stack(SEQUENCES[:2]).astype(np.int64))
    with torch.no_grad():
        np.testing.assert_array_equal(model.embed(np.stack(SEQUENCES[:2]), True), backbone.features(tokens).numpy())
        np.testing.assert_array_equal(model.embed(np.stack(SEQUENCES[:2]), False),
                                      backbone.hidden_states(tokens)[..., : backbone.d_model].numpy())


def test_batching_and_lengths_do_not_change_a_sequences_embedding(run_dir):
    model = load_model(run_dir)
    alone = [model.embed(sequence[None], conjoin=True)[0] for sequence in SEQUENCES]
    for batch_size in (1, 2, 16):
        together = embed_sequences(model, SEQUENCES, conjoin=True, batch_size=batch_size)
        for one, other, sequence in zip(alone, together, SEQUENCES):
            assert other.shape == (len(sequence), 32)
            np.testing.assert_allclose(other, one, rtol=1e-5, atol=1e-6)


def test_the_command_writes_ids_lengths_and_means_of_the_per_position_rows(run_dir, tmp_path):
    fasta = tmp_path / "in.fa"
    write_fasta(((f"seq{i}", "", decode(s)) for i, s in enumerate(SEQUENCES)), fasta)
    main(["embed", str(fasta), "--ckpt", str(run_dir), "--per-position", "--conjoin", "--batch-size", "3",
          "--out", str(tmp_path / "e.npz")])
    saved = np.load(tmp_path / "e.npz")
    assert list(saved["ids"]) == [f"seq{i}" for i in range(6)] and list(saved["lengths"]) == [40, 40, 25, 40, 25, 33]
    assert saved["embeddings"].shape == (6, 32) and saved["embeddings"].dtype == np.float32
    assert str(saved["strand"]) == "conjoined" and "caduceus-tiny" in str(saved["model"])
    offsets = saved["offsets"]
    for index in range(6):
        rows = saved["per_position"][offsets[index] : offsets[index + 1]]
        np.testing.assert_allclose(saved["embeddings"][index], rows.mean(0), rtol=1e-6, atol=1e-7)
    main(["embed", str(fasta), "--ckpt", str(run_dir), "--out", str(tmp_path / "f.npz")])
    forward = np.load(tmp_path / "f.npz")
    assert str(forward["strand"]) == "forward" and "per_position" not in forward


def test_bed_intervals_of_a_reference_embed_like_the_same_bases_from_fasta(run_dir, tmp_path):
    genome = RNG.choice(BASE_IDS, size=300).astype(np.uint8)
    write_fasta([("chrA", "", decode(genome))], tmp_path / "genome.fa")
    (tmp_path / "regions.bed").write_text("# a comment\nchrA\t10\t50\tfirst\nchrA 100 140\n")
    main(["embed", "--bed", str(tmp_path / "regions.bed"), "--reference", str(tmp_path / "genome.fa"), "--ckpt",
          str(run_dir), "--out", str(tmp_path / "bed.npz")])
    write_fasta([("x", "", decode(genome[10:50])), ("y", "", decode(genome[100:140]))], tmp_path / "same.fa")
    main(["embed", str(tmp_path / "same.fa"), "--ckpt", str(run_dir), "--out", str(tmp_path / "fasta.npz")])
    from_bed, from_fasta = np.load(tmp_path / "bed.npz"), np.load(tmp_path / "fasta.npz")
    assert list(from_bed["ids"]) == ["first", "chrA:100-140"]
    np.testing.assert_array_equal(from_bed["embeddings"], from_fasta["embeddings"])


def test_bad_inputs_are_named(run_dir, tmp_path, capsys):
    write_fasta([("chrA", "", "ACGT" * 25)], tmp_path / "genome.fa")
    (tmp_path / "past.bed").write_text("chrA\t90\t120\tlate\n")
    (tmp_path / "other.bed").write_text("chrB\t0\t10\n")
    (tmp_path / "bad.bed").write_text("chrA\t20\t10\n")
    base = ["embed", "--ckpt", str(run_dir), "--out", str(tmp_path / "x.npz")]
    for arguments, message in [
        ([], "give a FASTA file, or --bed with --reference, not both"),
        ([str(tmp_path / "genome.fa"), "--bed", str(tmp_path / "past.bed")], "give a FASTA file, or --bed with "
                                                                              "--reference, not both"),
        (["--bed", str(tmp_path / "past.bed")], "--bed needs --reference, the genome its intervals are on"),
        (["--bed", str(tmp_path / "past.bed"), "--reference", str(tmp_path / "genome.fa")],
         f"{tmp_path / 'past.bed'}: late ends past chrA's end (100)"),
        (["--bed", str(tmp_path / "other.bed"), "--reference", str(tmp_path / "genome.fa")],
         f"{tmp_path / 'other.bed'}: contig 'chrB' is not in {tmp_path / 'genome.fa'}"),
        (["--bed", str(tmp_path / "bad.bed"), "--reference", str(tmp_path / "genome.fa")],
         f"{tmp_path / 'bad.bed'}, line 1: expected 'chrom start end [name]' with 0 <= start < end"),
    ]:
        assert message in error_of(capsys, [*base, *arguments])
    assert not (tmp_path / "x.npz").exists()


def test_a_model_without_dna_features_refuses(tmp_path, capsys, mdlm_run):
    write_fasta([("a", "", "ACGT")], tmp_path / "in.fa")
    run, _ = mdlm_run
    assert error_of(capsys, ["embed", str(tmp_path / "in.fa"), "--ckpt", str(run)]).endswith(
        "holds a text model; embed needs a dna model\n")
    with pytest.raises(ModelMismatchError, match="test: embed reads a DNA backbone's features .caduceus.; this "
                                                 "model's backbone is dit"):
        tiny_block_model().embed(np.zeros((1, 4), np.uint8), conjoin=False)

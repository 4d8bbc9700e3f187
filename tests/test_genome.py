"""Genome conversion, bed splits, random windows and the DNA DataModule, on small FASTA files written here."""

from __future__ import annotations

import pickle
import re
from importlib.resources import as_file, files
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch

from mdlm_bio.dna import genome as genome_module
from mdlm_bio.dna.fasta import FastaError, read_fasta, write_fasta
from mdlm_bio.dna.genome import (
    INDEX_NAME,
    SPLITS_NAME,
    BedError,
    Genome,
    GenomeWindows,
    convert_fasta,
    held_out_reference,
    load_intervals,
    prepare_bundled_genome,
    prepare_fasta_genome,
    prepare_held_out_genome,
    split_sequences,
)
from mdlm_bio.dna.hg38 import require_prepared
from mdlm_bio.dna.tokenizer import PAD, N, decode, encode, reverse_complement
from mdlm_bio.training.data.genome import GenomeDataModule, build_genome_datamodule
from mdlm_bio.training.settings import DataSettings, from_mapping


def _random_bases(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), n))


def _sequences() -> dict[str, str]:
    rng = np.random.default_rng(1)
    chr1 = _random_bases(rng, 4000)
    chr1 = chr1[:1000] + chr1[1000:1600].lower() + chr1[1600:]  # soft-masked repeat
    return {
        "chr1": chr1,
        "chr2": _random_bases(rng, 3000),
        "chrShort": _random_bases(rng, 300),
        "chrGap": "N" * 600 + "n" * 400 + _random_bases(rng, 1000),
    }


BED = """# splits for the tests
chr1\t0\t4000\ttrain
chr2\t0\t500\ttrain
chr2\t500\t3000\tvalid
chrShort\t0\t300\tshort
chrGap\t0\t2000\tmixed
chr1\t0\t4000\tmixed
chrGap\t0\t1000\tgap
"""


@pytest.fixture
def sequences() -> dict[str, str]:
    return _sequences()


@pytest.fixture
def fasta(tmp_path: Path, sequences: dict[str, str]) -> Path:
    path = tmp_path / "small.fa.gz"
    write_fasta(((name, name, bases) for name, bases in sequences.items()), path)
    return path


@pytest.fixture
def prepared(tmp_path: Path, fasta: Path) -> Path:
    out = tmp_path / "genome"
    convert_fasta(fasta, out)
    (out / SPLITS_NAME).write_text(BED)
    return out


def _window_text(item: dict[str, torch.Tensor]) -> str:
    return decode(item["tokens"][item["attention_mask"]])


# conversion


def test_conversion_round_trip_with_soft_masking(prepared: Path, sequences: dict[str, str]) -> None:
    genome = Genome(prepared)
    assert genome.lengths == {name: len(bases) for name, bases in sequences.items()}
    for name, bases in sequences.items():
        array = np.load(prepared / f"{name}.npy", mmap_mode="r")
        assert array.dtype == np.uint8
        np.testing.assert_array_equal(genome[name], encode(bases.upper()))
        assert decode(genome[name]) == bases.upper()
    assert decode(genome["chr1"][1000:1600]) == sequences["chr1"][1000:1600].upper()


def test_conversion_is_idempotent(prepared: Path, fasta: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stamps = {path.name: path.stat().st_mtime_ns for path in prepared.iterdir()}

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the FASTA was read again")

    with monkeypatch.context() as patch:
        patch.setattr(genome_module, "read_fasta", refuse)
        convert_fasta(fasta, prepared)
    assert {path.name: path.stat().st_mtime_ns for path in prepared.iterdir()} == stamps


def test_changed_fasta_or_missing_array_is_converted_again(prepared: Path, fasta: Path) -> None:
    write_fasta([("chr1", "", "ACGTN" * 3)], fasta)
    assert convert_fasta(fasta, prepared).lengths == {"chr1": 15}
    (prepared / "chr1.npy").unlink()
    assert decode(convert_fasta(fasta, prepared)["chr1"]) == "ACGTN" * 3


def test_interrupted_conversion_leaves_no_index(prepared: Path, fasta: Path) -> None:
    write_fasta([("good", "", "ACGT" * 10), ("bad", "", "ACGXT")], fasta)
    with pytest.raises(FastaError, match=r"record 'bad': illegal character 'X'"):
        convert_fasta(fasta, prepared)
    assert not (prepared / INDEX_NAME).exists()  # the earlier index is gone too: it no longer matches the arrays
    assert not [path for path in prepared.iterdir() if path.name.endswith(".tmp")]
    with pytest.raises(FileNotFoundError, match=rf"no converted genome in {re.escape(str(prepared))}"):
        Genome(prepared)


def test_record_names_that_collide_as_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.fa"
    write_fasta([("a|b", "", "ACGT"), ("a_b", "", "ACGT")], path)
    with pytest.raises(FastaError, match=r"records 'a\|b' and 'a_b' would share a_b.npy"):
        convert_fasta(path, tmp_path / "out")


# bed files


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("chr1\t0\t100", "expected 4 columns 'chrom start end split', found 3: 'chr1\\t0\\t100'"),
        ("chr1 0 100 train extra", "expected 4 columns 'chrom start end split', found 5"),
        ("chr1 x 100 train", "start and end must be non-negative integers, found 'x' and '100'"),
        ("chr1 -5 100 train", "start and end must be non-negative integers, found '-5' and '100'"),
        ("chr1 100 100 train", "end 100 must be greater than start 100"),
        ("chrZ 0 10 train", "chromosome 'chrZ' is not in the converted genome at"),
        ("chr1 3990 4001 train", "end 4001 is past the end of 'chr1' (4000 bases in"),
    ],
)
def test_bed_errors_name_file_and_line(prepared: Path, line: str, message: str) -> None:
    bed = prepared / SPLITS_NAME
    bed.write_text(f"track name=test\nchr1\t0\t10\ttrain\n{line}\n")
    with pytest.raises(BedError, match=re.escape(f"{bed}, line 3: {message}")):
        load_intervals(Genome(prepared))


def test_missing_split_lists_the_splits_present(prepared: Path) -> None:
    with pytest.raises(BedError, match=r"no intervals for split 'test'; the splits there are \['gap', 'mixed', 'short'"):
        GenomeWindows(prepared, "test", 64)


def test_missing_bed_and_missing_folder(prepared: Path, tmp_path: Path) -> None:
    (prepared / SPLITS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match="bed file not found: .*splits.bed"):
        GenomeWindows(prepared, "train", 64)
    with pytest.raises(FileNotFoundError, match=r"no converted genome in .*absent \(index.json is missing\)"):
        GenomeWindows(tmp_path / "absent", "train", 64)


def test_missing_hg38_names_the_folder_and_the_command(tmp_path: Path, prepared: Path) -> None:
    absent = tmp_path / "hg38"
    command = re.escape(f"mdlm-bio data hg38 --data-dir {absent}")
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(absent))} does not exist.*\n    {command}"):
        require_prepared(absent)
    (prepared / SPLITS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(prepared))} lacks splits.bed"):
        require_prepared(prepared)


# windows


def test_windows_are_slices_of_their_split(prepared: Path, sequences: dict[str, str]) -> None:
    train = GenomeWindows(prepared, "train", 100, windows=400)
    chr1, chr2_head = sequences["chr1"].upper(), sequences["chr2"][:500].upper()
    texts = [_window_text(train[i]) for i in range(len(train))]
    assert all(len(text) == 100 and (text in chr1 or text in chr2_head) for text in texts)
    share_chr1 = np.mean([text in chr1 for text in texts])
    assert abs(share_chr1 - 4000 / 4500) < 0.05  # intervals drawn in proportion to their length
    valid = GenomeWindows(prepared, "valid", 100, windows=20)
    assert all(_window_text(valid[i]) in sequences["chr2"][500:].upper() for i in range(20))


def test_default_length_is_one_window_per_window_of_bases(prepared: Path) -> None:
    windows = GenomeWindows(prepared, "train", 100)
    assert windows.usable_bases == 4500 and len(windows) == 45
    with pytest.raises(IndexError, match="window 45 out of range for 45 windows"):
        windows[45]


def test_item_types_and_right_padding_of_short_intervals(prepared: Path, sequences: dict[str, str]) -> None:
    item = GenomeWindows(prepared, "short", 512)[0]
    assert item["tokens"].dtype == torch.long and item["attention_mask"].dtype == torch.bool
    assert item["tokens"].shape == item["attention_mask"].shape == (512,)
    assert decode(item["tokens"][:300]) == sequences["chrShort"]
    assert (item["tokens"][300:] == PAD).all()
    assert item["attention_mask"][:300].all() and not item["attention_mask"][300:].any()


def test_reverse_complement_augmentation(prepared: Path) -> None:
    for split, length in (("train", 128), ("short", 512)):
        plain = GenomeWindows(prepared, split, length, windows=8, seed=3)
        flipped = GenomeWindows(prepared, split, length, windows=8, rc_augment=1.0, seed=3)
        for i in range(8):
            forward, backward = plain[i], flipped[i]
            assert torch.equal(forward["attention_mask"], backward["attention_mask"])
            mask = forward["attention_mask"]
            expected = reverse_complement(forward["tokens"][mask].numpy())
            np.testing.assert_array_equal(backward["tokens"][mask].numpy(), expected)
    half = GenomeWindows(prepared, "train", 128, windows=200, rc_augment=0.5)
    chr1_forward = decode(half.genome["chr1"]) + decode(half.genome["chr2"])
    assert 0.3 < np.mean([_window_text(half[i]) not in chr1_forward for i in range(200)]) < 0.7


def test_n_filter(prepared: Path) -> None:
    def n_fractions(dataset: GenomeWindows) -> np.ndarray:
        return np.array([(dataset[i]["tokens"] == N).float().mean().item() for i in range(len(dataset))])

    assert n_fractions(GenomeWindows(prepared, "mixed", 100, windows=200)).max() > 0.5
    assert n_fractions(GenomeWindows(prepared, "mixed", 100, windows=200, max_n_fraction=0.1)).max() <= 0.1
    all_n = GenomeWindows(prepared, "gap", 100, windows=3, max_n_fraction=0.0)  # retries run out, then accept
    assert (n_fractions(all_n) == 1.0).all()


def test_windows_are_deterministic_per_seed_epoch_and_index(prepared: Path) -> None:
    def first_windows(dataset: GenomeWindows) -> torch.Tensor:
        return torch.stack([dataset[i]["tokens"] for i in range(4)])

    a, b = GenomeWindows(prepared, "train", 64, seed=7), GenomeWindows(prepared, "train", 64, seed=7)
    assert torch.equal(first_windows(a), first_windows(b))
    assert not torch.equal(first_windows(a), first_windows(GenomeWindows(prepared, "train", 64, seed=8)))
    assert torch.equal(first_windows(a), torch.stack([b[0, i]["tokens"] for i in range(4)]))
    assert not torch.equal(first_windows(a), torch.stack([b[1, i]["tokens"] for i in range(4)]))
    with pytest.raises(IndexError, match=r"window \(0, 5000\) out of range"):
        a[0, 5000]
    copy = pickle.loads(pickle.dumps(a))
    assert copy.genome._arrays == {}  # memory maps reopen in each worker instead of being copied
    assert torch.equal(first_windows(a), first_windows(copy))


def test_bad_window_arguments(prepared: Path) -> None:
    with pytest.raises(ValueError, match="rc_augment is a probability"):
        GenomeWindows(prepared, "train", 64, rc_augment=1.5)
    with pytest.raises(ValueError, match="window length must be positive"):
        GenomeWindows(prepared, "train", 0)


# prepared FASTA genomes


def test_prepare_fasta_genome_writes_whole_record_intervals(tmp_path: Path, fasta: Path) -> None:
    out = tmp_path / "prepared"
    prepare_fasta_genome(fasta, out, {"train": ["chr1", "chrShort"], "valid": ["chr2"]})
    assert (out / SPLITS_NAME).read_text() == "chr1\t0\t4000\ttrain\nchrShort\t0\t300\ttrain\nchr2\t0\t3000\tvalid\n"
    with pytest.raises(ValueError, match=r"split 'valid' lists record 'chr9', not among its 4 records \(chr1, chr2"):
        prepare_fasta_genome(fasta, out, {"valid": ["chr9"]})
    with pytest.raises(ValueError, match="record 'chr1' is in split 'train' and split 'valid'"):
        prepare_fasta_genome(fasta, out, {"train": ["chr1"], "valid": ["chr1"]})


def test_held_out_genome_and_its_reference_fasta(tmp_path: Path, fasta: Path, sequences: dict[str, str]) -> None:
    out = tmp_path / "held_out"
    prepare_held_out_genome(fasta, out, ["chr2"])
    assert (out / SPLITS_NAME).read_text().splitlines()[-1] == "chr2\t0\t3000\tvalid"
    reference = held_out_reference(out, tmp_path / "ref.fa")
    assert [(r.name, decode(r.tokens)) for r in read_fasta(reference)] == [("chr2:0-3000", sequences["chr2"])]
    [(name, tokens)] = split_sequences(out)  # the same records as token arrays, without the FASTA round trip
    assert name == "chr2:0-3000" and decode(tokens) == sequences["chr2"]
    with pytest.raises(ValueError, match="name at least one record to hold out"):
        prepare_held_out_genome(fasta, out, [])
    with pytest.raises(ValueError, match="all 4 records are held out, none is left to train on"):
        prepare_held_out_genome(fasta, out, list(sequences))


def test_prepare_bundled_genome(tmp_path: Path) -> None:
    genome = prepare_bundled_genome(tmp_path / "worm")
    intervals = load_intervals(genome)
    held_out = ["CHROMOSOME_II", "CHROMOSOME_III", "CHROMOSOME_IV", "CHROMOSOME_V", "CHROMOSOME_X"]
    assert len(genome.lengths) == 7 and sum(genome.lengths.values()) > 1_000_000
    assert [i.chrom for i in intervals if i.split == "valid"] == held_out
    assert {i.chrom for i in intervals if i.split == "train"} == {"CHROMOSOME_I", "CHROMOSOME_MtDNA"}
    valid = GenomeWindows(tmp_path / "worm", "valid", 1024, windows=8)
    with as_file(files("mdlm_bio") / "data" / "c_elegans_1mb.fa.gz") as path:
        held_out_dna = [decode(record.tokens) for record in read_fasta(path) if record.name in held_out]
    assert all(any(_window_text(valid[i]) in record for record in held_out_dna) for i in range(8))


# the DataModule


def test_data_module_batches(prepared: Path) -> None:
    (prepared / SPLITS_NAME).write_text(BED.replace("\tshort", "\ttrain"))
    module = GenomeDataModule(prepared, window=128, batch_size=8, rc_augment=0.5, windows_per_epoch=20, valid_windows=12)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["tokens"].shape == batch["attention_mask"].shape == (8, 128)
    assert batch["tokens"].dtype == torch.long and batch["attention_mask"].dtype == torch.bool
    assert [len(b["tokens"]) for b in module.train_dataloader()] == [8, 8, 4]
    first, second = list(module.val_dataloader()), list(module.val_dataloader())
    assert [len(b["tokens"]) for b in first] == [8, 4]
    assert all(torch.equal(x["tokens"], y["tokens"]) for x, y in zip(first, second))


def _data_config(dataset: str, data_dir: Path, **changes: object) -> DataSettings:
    data = {"dataset": dataset, "data_dir": str(data_dir), "fasta": None, "valid_records": ["CHROMOSOME_X"], "window": 64}
    data |= {"batch_size": 4, "num_workers": 0, "rc_augment": 0.0, "max_n_fraction": 0.5}
    return from_mapping(DataSettings, data | {"windows_per_epoch": 8, "valid_windows": 4} | changes)


def test_build_genome_datamodule_from_config(tmp_path: Path, fasta: Path) -> None:
    bundled = build_genome_datamodule(_data_config("bundled", tmp_path / "worm"), seed=1)
    bundled.setup("fit")
    assert next(iter(bundled.val_dataloader()))["tokens"].shape == (4, 64)
    own = build_genome_datamodule(_data_config("fasta", tmp_path / "own", fasta=str(fasta), valid_records=["chr2"]), 0)
    own.setup("fit")
    assert own.valid_set is not None and own.valid_set.usable_bases == 3000
    with pytest.raises(FileNotFoundError, match="mdlm-bio data hg38 --data-dir"):
        build_genome_datamodule(_data_config("hg38", tmp_path / "nothing"), 0)
    with pytest.raises(ValueError, match="data.fasta must name a FASTA file"):
        build_genome_datamodule(_data_config("fasta", tmp_path / "own"), 0)
    with pytest.raises(ValueError, match="data.dataset must be bundled, hg38 or fasta, not 'hg19'"):
        build_genome_datamodule(_data_config("hg19", tmp_path / "x"), 0)


class _Recorder(lightning.LightningModule):
    """Keeps the token batches Lightning feeds it."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        self.seen.append(batch["tokens"].clone())
        return self.weight * batch["tokens"].float().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader`", "ignore:.*LeafSpec")
def test_training_epochs_draw_fresh_windows_under_lightning(prepared: Path) -> None:
    module = GenomeDataModule(prepared, window=64, batch_size=4, windows_per_epoch=4, valid_windows=4)
    recorder = _Recorder()
    trainer = lightning.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(recorder, datamodule=module)
    assert len(recorder.seen) == 2 and not torch.equal(recorder.seen[0], recorder.seen[1])

import pytest
from Bio import SeqIO

from mdlm_bio.cli import main


def test_demo_trains_and_writes_fasta(tmp_path, capsys):
    out = tmp_path / "samples.fa"
    main(["demo", "--steps", "30", "--out", str(out)])
    records = list(SeqIO.parse(out, "fasta"))
    assert len(records) == 8
    assert all(len(r.seq) == 64 and set(str(r.seq)) <= set("ACGT") for r in records)
    printed = capsys.readouterr().out
    curve = [float(line.split()[1]) for line in printed.splitlines() if line.strip()[:1].isdigit() and len(line.split()) == 2]
    assert curve[-1] < curve[0], "validation NELBO must fall during training"


def test_demo_rejects_nonpositive_steps():
    with pytest.raises(SystemExit, match="--steps must be a positive integer"):
        main(["demo", "--steps", "0"])

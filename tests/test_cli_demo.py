"""`mdlm-bio demo`, the README quickstart's main job, shortened: train on the bundled worm DNA, sample, report."""

import json

import pytest
from Bio import SeqIO

from mdlm_bio.cli import main


@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_demo_trains_samples_and_reports(tmp_path, capsys):
    main(["demo", "--steps", "60", "--out-dir", str(tmp_path)])
    records = list(SeqIO.parse(tmp_path / "samples.fa", "fasta"))
    assert len(records) == 16
    assert all(len(r.seq) == 256 and set(str(r.seq)) <= set("ACGT") for r in records)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["inputs"]["generated"]["sequences"] == 16 and report["inputs"]["reference"]["sequences"] == 5
    assert report["js_distance"]["generated"]["3"] < report["js_distance"]["uniform_random"]["3"]
    assert (tmp_path / "report" / "kmer_spectra.png").stat().st_size > 0
    curve = [float(line.split()[-1]) for line in capsys.readouterr().out.splitlines() if "val bits/base" in line]
    assert len(curve) >= 2 and curve[-1] < curve[0], "validation bits per base must fall during training"


def test_demo_rejects_nonpositive_steps(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--steps", "0"])
    assert "argument --steps: must be a positive integer, not 0" in capsys.readouterr().err

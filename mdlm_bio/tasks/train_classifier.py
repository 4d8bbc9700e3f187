"""`mdlm-bio train-classifier`: a noisy-input classifier of a generator's labelled dataset, the guide of
classifier-based guidance (`mdlm-bio sample --guidance cbg`).

It learns the generator's own forward process (masked or uniform-state noise), on the dataset the generator was
trained on unless told another, through the Genomic Benchmarks fine-tuning sweep (finetune.py).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..training.config import load_config
from ..training.noisy_classifier import NoisyInputClassifier, noise_of
from .common import load_for
from .finetune import finetune_benchmarks

PRESET = "noisy-classifier"


def train_classifier(
    overrides: list[str], *, generator: str, dataset: str | None, data_dir: Path | None, seeds: int, preset: str | None,
    run_dir: Path | None, no_download: bool, trust_checkpoint: bool, ignore_memory_limit: bool,
) -> None:
    """Train, keep the best-validation checkpoint per seed, print its noisy test accuracy and where it is."""
    model = load_for(generator, "cpu", "dna", "train-classifier", trust_checkpoint)
    noise = noise_of(model.spec, model.network.output_states)
    labelled = dict((model.config or {}).get("data") or {})
    dataset = dataset or (labelled.get("benchmark") if labelled.get("dataset") == "genomic-benchmarks" else None)
    if dataset is None:
        raise ValueError(f"{generator} was not trained on labelled sequences; name the dataset to classify with "
                         f"--dataset (a Genomic Benchmarks dataset, or a folder of --data-dir in its layout)")
    options = {"run_dir": run_dir, "data.data_dir": data_dir or labelled.get("data_dir"), "generator": generator}
    settings = [f"{key}={value}" for key, value in options.items() if value is not None]
    config = load_config(preset or PRESET, [*settings, *(["data.download=false"] if no_download else []), *overrides],
                         kind="finetune")
    if config.init_from:
        raise ValueError(f"init_from={config.init_from}: a noisy-input classifier trains from scratch (its backbone "
                         f"reads the noise level, which a pretrained one does not)")
    results = finetune_benchmarks(config, [dataset], seeds, trust_checkpoint, ignore_memory_limit,
                                  partial(NoisyInputClassifier, noise=noise))
    for result in results:
        print(f"{result.dataset} seed {result.seed}: accuracy on noisy test sequences {result.test_accuracy:.3f} "
              f"(best validation {result.best_val_accuracy:.3f}); guide with --noisy-classifier {result.checkpoint}")

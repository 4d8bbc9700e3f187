"""`mdlm-bio finetune genomic-benchmarks`: every (dataset, seed) fine-tuned, tested, and summarised.

Each finished (dataset, seed) writes `result.json` next to its best checkpoint; a rerun of the same
run_dir skips those, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

from ..dna.benchmarks import (
    OPTIONAL_DATASETS,
    STANDARD_DATASETS,
    LabelledSequences,
    carve_validation,
    ensure_present,
    is_present,
    read_split,
    resolve_data_dir,
)
from ..dna.nt_tasks import HUB_DATASET as NT_HUB_DATASET
from ..locks import exclusive_on_rank_zero
from ..training.classifier import SequenceClassifier
from ..training.config import check_same_settings, load_config, save_config, to_plain
from ..training.data.labelled import LabelledDataModule
from ..training.terminal import quiet_lightning
from .benchmark_table import SeedResult, write_results
from .classifier_runs import ClassifierFactory, build_classifier, fit_and_test, pretrained_backbone

GLUE, NUCLEOTIDE_TRANSFORMER = "glue", "nucleotide-transformer"
HUB_BENCHMARKS = {GLUE: "nyu-mll/glue", NUCLEOTIDE_TRANSFORMER: NT_HUB_DATASET}  # read from the hub, not downloaded
DEFAULT_SEEDS = 5  # Genomic Benchmarks' seeds per dataset, as Caduceus and MDLM report
# Settings that change results; a run folder holding results made with other values is refused.
RESULT_DEFINING = ("init_from", "generator", "model", "optim", "epochs", "data.valid_fraction", "data.batch_size",
                   "data.rc_augment", "data.max_length", "data.max_length_per_dataset")


def select_datasets(requested: list[str] | None, data_dir: Path) -> list[str]:
    """`None` or `all`: the 8 standard datasets, plus the optional ones already in data_dir. A name outside
    the benchmark is accepted when data_dir holds it in the same layout (your own labelled sequences)."""
    if not requested or requested == ["all"]:
        return list(STANDARD_DATASETS) + [name for name in OPTIONAL_DATASETS if is_present(data_dir, name)]
    known = STANDARD_DATASETS + OPTIONAL_DATASETS
    unknown = [name for name in requested if name not in known and not is_present(data_dir, name)]
    if unknown:
        raise ValueError(
            f"unknown dataset(s) {unknown}: not in Genomic Benchmarks {list(known)} and not found in {data_dir}"
        )
    return list(dict.fromkeys(requested))


def max_length_of(config: DictConfig, dataset: str) -> int:
    return int(config.data.max_length_per_dataset.get(dataset, config.data.max_length))


def finetune_one(
    config: DictConfig,
    dataset: str,
    train_all: LabelledSequences,
    test: LabelledSequences,
    seed: int,
    init: tuple[dict[str, Any], dict[str, Any]] | None,
    ignore_memory_limit: bool = False,
    make_classifier: ClassifierFactory = SequenceClassifier,
) -> SeedResult:
    """Fine-tune on one (dataset, seed), keep the best-validation checkpoint, and score the test split with it.
    `make_classifier(config, backbone settings, classes)` builds the module (a noisy-input one for guidance)."""
    run_dir = Path(config.run_dir) / dataset / f"seed_{seed}"
    L.seed_everything(seed, workers=True, verbose=False)
    train, valid = carve_validation(train_all, config.data.valid_fraction, seed)
    plain = {**to_plain(config), "seed": seed}
    module = build_classifier(plain, init, list(train_all.classes), make_classifier)
    data = LabelledDataModule(
        train, valid, test, config.data.batch_size, max_length_of(config, dataset), seed, config.data.num_workers
    )
    fitted = fit_and_test(plain, run_dir, module, data, ignore_memory_limit)
    result = SeedResult(dataset, seed, fitted.test_metrics["test/acc"], fitted.best_val_score, len(train), len(valid),
                        len(test), str(fitted.checkpoint))
    (run_dir / "result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def finetune_benchmarks(config: DictConfig, datasets: list[str] | None, num_seeds: int,
                        trust_checkpoint: bool = False, ignore_memory_limit: bool = False,
                        make_classifier: ClassifierFactory = SequenceClassifier) -> list[SeedResult]:
    """Run the sweep; returns every (dataset, seed) result, finished earlier or now. `trust_checkpoint` lets a
    published pickled checkpoint (init_from) be unpickled in full."""
    if num_seeds < 1:
        raise ValueError(f"--seeds must be a positive integer, not {num_seeds}")
    data_dir = resolve_data_dir(config.data.data_dir)
    names = select_datasets(datasets, data_dir)
    check_same_settings(config, RESULT_DEFINING)
    init = pretrained_backbone(config.init_from, trust_checkpoint) if config.init_from else None
    with exclusive_on_rank_zero(config.run_dir, "run folder"), quiet_lightning(Path(config.run_dir)):
        save_config(config, Path(config.run_dir) / "config.yaml")  # two sweeps on one folder would share its seeds
        return _sweep(config, names, data_dir, num_seeds, init, ignore_memory_limit, make_classifier)


def _sweep(config: DictConfig, names: list[str], data_dir: Path, num_seeds: int,
           init: tuple[dict[str, Any], dict[str, Any]] | None, ignore_memory_limit: bool,
           make_classifier: ClassifierFactory) -> list[SeedResult]:
    results = []
    for name in names:
        dataset_dir = ensure_present(name, data_dir, config.data.download, config.data.mirror)
        splits: tuple[LabelledSequences, LabelledSequences] | None = None
        for seed in range(config.seed, config.seed + num_seeds):
            done = Path(config.run_dir) / name / f"seed_{seed}" / "result.json"
            if done.is_file():
                results.append(SeedResult(**json.loads(done.read_text())))
                continue
            if splits is None:
                splits = read_split(dataset_dir, "train"), read_split(dataset_dir, "test")
            print(f"fine-tuning {name}, seed {seed}", flush=True)
            results.append(finetune_one(config, name, *splits, seed, init, ignore_memory_limit, make_classifier))
    return results


def finetune(
    benchmark: str, overrides: list[str], *, datasets: list[str] | None, ckpt: str | None, seeds: int | None,
    preset: str | None, data_dir: Path | None, no_download: bool, mirror: str | None, run_dir: Path | None,
    trust_checkpoint: bool, ignore_memory_limit: bool,
) -> None:
    """`mdlm-bio finetune genomic-benchmarks`, `nucleotide-transformer` or `glue`: the sweep, then results.md/.json
    beside the published numbers."""
    options = {"data.data_dir": data_dir, "data.mirror": mirror, "run_dir": run_dir, "init_from": ckpt}
    settings = [f"{key}={value}" for key, value in options.items() if value is not None]
    if no_download:
        settings.append("data.download=false")
    if benchmark in HUB_BENCHMARKS and (mirror or no_download):
        raise ValueError(f"--mirror and --no-download are Genomic Benchmarks' options; {benchmark} is read from the "
                         f"hub ({HUB_BENCHMARKS[benchmark]}) or from --data-dir")
    config = load_config(preset or benchmark, [*settings, *overrides], kind="finetune")
    title = ckpt or f"scratch {config.model.preset}"
    if benchmark == GLUE:
        from .glue import finetune as finetune_glue

        return finetune_glue(config, ckpt or str(config.init_from), datasets, seeds, trust_checkpoint)
    if benchmark == NUCLEOTIDE_TRANSFORMER:
        from .nucleotide_transformer import finetune as finetune_nt

        return finetune_nt(config, title, datasets, seeds, trust_checkpoint, ignore_memory_limit)
    results = finetune_benchmarks(config, datasets, seeds or DEFAULT_SEEDS, trust_checkpoint, ignore_memory_limit)
    _, markdown = write_results(results, Path(config.run_dir), title)
    print(markdown.read_text())
    print(f"results in {Path(config.run_dir) / 'results.json'} and {markdown}")

"""Classifier-based guidance's parts (issue 31): the noisy-input classifier's noising and stored noise, the checks
that pair it with a generator, and the command-line choice of guidance, each with the exact error a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from presets import dna_module

from mdlm_bio.diffusion.sampler_registry import make_sampler
from mdlm_bio.dna.tokenizer import BASE_IDS, MASK, N
from mdlm_bio.errors import CheckpointError
from mdlm_bio.models.diffusion_model import DiffusionModel
from mdlm_bio.tasks.classifier_runs import scratch_backbone
from mdlm_bio.tasks.guidance_choice import GuidanceChoice, guidance_choice
from mdlm_bio.training.classifier import SequenceClassifier, load_classifier
from mdlm_bio.training.config import load_config, to_plain
from mdlm_bio.training.noisy_classifier import NoisyInputClassifier, load_noisy_classifier, noise_of

UDLM = ["objective.kind=udlm", "model.overrides.time_conditioning=true", "model.overrides.cond_dim=16"]


def noisy_classifier(generator_overrides: tuple[str, ...] = (), classifier_overrides: tuple[str, ...] = ()):
    """A NoisyInputClassifier (untrained) of the noise of a demo-preset generator."""
    generator = dna_module("demo", list(generator_overrides))
    config = {**to_plain(load_config("noisy-classifier", list(classifier_overrides), kind="finetune")), "seed": 0}
    torch.manual_seed(0)
    return NoisyInputClassifier(config, scratch_backbone(config["model"]), ["a", "b"],
                                noise_of(generator.spec, generator.output_states)), generator


def test_masked_noise_masks_each_position_at_the_rate_of_its_time_and_reports_the_noise_level():
    classifier, _ = noisy_classifier()
    tokens = torch.tensor(BASE_IDS).repeat(4096, 16)
    z, level = classifier.model_inputs(tokens, torch.Generator().manual_seed(0))
    masked = (z == MASK).double().mean(-1)
    kept = z != MASK
    assert torch.equal(z[kept], tokens[kept])
    alpha = (-level.double()).exp()  # sigma = -log alpha
    assert (masked - (1 - alpha)).abs().mean() < 0.05 and 0.45 < float(masked.mean()) < 0.55


def test_uniform_noise_redraws_bases_only_and_the_stored_noise_rebuilds_the_classifier():
    classifier, _ = noisy_classifier(tuple(UDLM))
    assert classifier.process == "uniform"
    tokens = torch.tensor([*BASE_IDS, N]).repeat(2048, 8)
    z, _ = classifier.model_inputs(tokens, torch.Generator().manual_seed(0))
    assert torch.equal(z[tokens == N], tokens[tokens == N]) and set(z[tokens != N].unique().tolist()) == set(BASE_IDS)
    assert 0.25 < float((z != tokens).double().mean()) < 0.45  # half the time noise, 3/4 of redraws change the base
    rebuilt = NoisyInputClassifier(**classifier.stored_settings())
    assert rebuilt.noise == classifier.noise and rebuilt.process == "uniform"


def test_a_noisy_classifier_needs_a_backbone_that_reads_the_noise_level():
    with pytest.raises(ValueError, match=r"needs a backbone that reads the noise level \(model.overrides."
                                         r"time_conditioning: true\)"):
        noisy_classifier(classifier_overrides=("model.overrides.time_conditioning=false",))


def test_guidance_pairs_a_classifier_only_with_a_generator_of_its_noise():
    classifier, masked_generator = noisy_classifier()
    _, uniform_generator = noisy_classifier(tuple(UDLM))
    classifier.reading(masked_generator.engine)
    with pytest.raises(ValueError, match="the noisy-input classifier learnt masked noise but the generator adds "
                                         "uniform noise; train one for it: mdlm-bio train-classifier"):
        classifier.reading(uniform_generator.engine)
    with pytest.raises(ValueError, match="a noisy-input classifier learns masked .mdlm. or uniform-state .udlm. noise; "
                                         "this generator was trained with objective ar"):
        generator = dna_module("demo-ar")
        noise_of(generator.spec, generator.output_states)


def test_each_kind_of_classifier_checkpoint_is_refused_where_the_other_is_needed(tmp_path: Path):
    classifier, _ = noisy_classifier()
    clean = SequenceClassifier(classifier.config, classifier.backbone_config, classifier.classes)
    for module, name in ((classifier, "noisy.ckpt"), (clean, "clean.ckpt")):
        payload = {"state_dict": module.state_dict()}
        module.on_save_checkpoint(payload)
        torch.save(payload, tmp_path / name)
    assert torch.equal(load_noisy_classifier(tmp_path / "noisy.ckpt").head.weight, classifier.head.weight)
    with pytest.raises(CheckpointError, match="clean.ckpt is a classifier of clean sequences .mdlm-bio finetune.; "
                                              "classifier-based guidance needs a noisy-input one"):
        load_noisy_classifier(tmp_path / "clean.ckpt")
    with pytest.raises(CheckpointError, match="noisy.ckpt is a noisy-input classifier .from mdlm-bio train-classifier."
                                              ", for --noisy-classifier"):
        load_classifier(tmp_path / "noisy.ckpt")
    with pytest.raises(FileNotFoundError, match="holds no checkpoints/best.ckpt; give --noisy-classifier one "
                                                "checkpoint file"):
        load_noisy_classifier(tmp_path)


@pytest.mark.parametrize(("arguments", "message"), [
    ((["cbg"], None, None, False), "--guidance cbg needs --noisy-classifier"),
    ((["cfg"], None, Path("c.ckpt"), False), "--noisy-classifier and --first-order are settings of --guidance cbg"),
    (([], None, None, True), "--noisy-classifier and --first-order are settings of --guidance cbg"),
    ((["cfg", 2.0], None, None, False), "--guidance takes one method, cfg or cbg"),
    (([2.0], [3.0], None, False), "--guidance 2 means --guidance cfg --weight 2; give the weight once"),
])
def test_guidance_choices_that_do_not_fit_together_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        guidance_choice(*arguments)


def test_guidance_choices_read_the_older_numeric_form_as_classifier_free():
    assert guidance_choice([0.0, 2.0], None, None, False) == GuidanceChoice("cfg", (0.0, 2.0))
    assert guidance_choice(["cbg"], [1.5], Path("c"), True) == GuidanceChoice("cbg", (1.5,), Path("c"), True)
    assert guidance_choice([], None, None, False) == GuidanceChoice("cfg", None)


def test_classifier_based_guidance_of_a_masked_model_draws_plain_ancestral_steps_in_one_window():
    classifier, generator = noisy_classifier()
    model = DiffusionModel(generator.eval(), "test", "tiny")
    condition = model.conditioning("b", 2.0, classifier)
    assert condition.label == 1 and condition.words == " class=b guidance=cbg weight=2"
    with pytest.raises(ValueError, match="unknown class 'c'; the noisy-input classifier knows \\['a', 'b'\\]"):
        model.conditioning("c", 2.0, classifier)
    with pytest.raises(ValueError, match="--guidance needs --class"):
        model.conditioning(None, None, classifier)
    for sampler in (make_sampler("first-hitting"), make_sampler("ancestral", top_p=0.9)):
        with pytest.raises(ValueError, match="--guidance cbg draws MDLM's ancestral steps .--sampler ancestral, "
                                             "uniform grid, no cache, remasking or top-p."):
            model.sample(sampler, num=1, length=8, seed=0, batch_size=1, condition=condition)
    with pytest.raises(ValueError, match="--length 200: classifier-based guidance samples at most the model's "
                                         "context .128."):
        model.sample(make_sampler("ancestral"), num=1, length=200, seed=0, batch_size=1, condition=condition)
    out = model.sample(make_sampler("ancestral", steps=4), num=3, length=8, seed=0, batch_size=2, condition=condition)
    assert out.tokens.shape == (3, 8) and set(out.tokens.unique().tolist()) <= set(BASE_IDS)

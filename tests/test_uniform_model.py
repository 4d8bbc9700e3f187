"""Uniform-state diffusion behind the interfaces (issue 31): Caduceus reading the noise level, the udlm objective,
the model kind and its sampler, and what each refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from Bio import SeqIO
from test_kernel_paths import perturbed

from mdlm_bio.backbones.caduceus import Caduceus, reverse_complement_logits, reverse_complement_tokens
from mdlm_bio.cli import main
from mdlm_bio.diffusion import make_sampler
from mdlm_bio.dna.tokenizer import BASE_IDS, COMPLEMENT_MAP, MASK, VOCAB_SIZE
from mdlm_bio.models import load_model
from mdlm_bio.models.diffusion_model import DiffusionModel
from mdlm_bio.models.handle import Conditioning, ModelMismatchError
from mdlm_bio.models.network import LanguageModel
from mdlm_bio.models.spec import ModelSpec, ObjectiveSettings
from mdlm_bio.models.uniform_diffusion_model import UniformDiffusionModel


def caduceus(**options) -> Caduceus:
    torch.manual_seed(0)
    return Caduceus(VOCAB_SIZE, COMPLEMENT_MAP, d_model=16, n_layer=2, d_state=4, **options).double()


def test_without_time_conditioning_caduceus_has_no_new_parameters_and_ignores_t():
    plain = caduceus()
    assert not any("sigma_map" in name or "modulation" in name for name, _ in plain.named_parameters())
    tokens = torch.randint(7, 11, (2, 12))
    torch.testing.assert_close(plain(tokens, torch.tensor([0.1, 3.0])), plain(tokens, None), rtol=0, atol=0)


@pytest.mark.parametrize("rcps", [True, False])
def test_time_conditioning_reaches_the_output_and_keeps_caduceus_ps_equivariant(rcps):
    model = perturbed(caduceus(rcps=rcps, time_conditioning=True, cond_dim=8), seed=1, scale=0.2)
    tokens = torch.randint(7, 11, (2, 12), generator=torch.Generator().manual_seed(2))
    sigma = torch.tensor([0.3, 2.0], dtype=torch.float64)
    logits = model(tokens, sigma)
    assert not torch.allclose(logits, model(tokens, sigma + 1.0))
    if rcps:
        cmap = model.complement_map
        torch.testing.assert_close(model(reverse_complement_tokens(tokens, cmap), sigma),
                                   reverse_complement_logits(logits, cmap), rtol=1e-10, atol=1e-10)


def udlm_network(**backbone) -> LanguageModel:
    settings = {"architecture": "caduceus", "vocab_size": VOCAB_SIZE, "complement_map": list(COMPLEMENT_MAP),
                "d_model": 16, "n_layer": 2, "rcps": True, "d_state": 4, "time_conditioning": True, "cond_dim": 8,
                **backbone}
    objective = ObjectiveSettings(kind="udlm", schedule={"name": "loglinear"}, sampling_eps=1e-3, antithetic=True)
    torch.manual_seed(0)
    return LanguageModel(ModelSpec(settings, objective, mask_id=MASK, context=32, track="dna",
                                   output_ids=BASE_IDS))


def test_the_udlm_objective_trains_on_the_bases_only():
    network = perturbed(udlm_network(), seed=1, scale=0.2)
    tokens = torch.tensor(BASE_IDS)[torch.randint(0, 4, (3, 32), generator=torch.Generator().manual_seed(0))]
    tokens[0, 5] = 11  # an N: context, neither noised nor scored
    out = network.objective(tokens, None, torch.Generator().manual_seed(1))
    assert int(out.num_tokens) == 3 * 32 - 1 and torch.isfinite(out.total)
    out.total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in network.parameters() if p.requires_grad)
    assert network.engine.states == BASE_IDS


def test_a_denoiser_that_ignores_the_noise_level_is_refused():
    with pytest.raises(ValueError, match="uniform-state diffusion \\(objective.kind=udlm\\) needs a denoiser that "
                                         "reads the noise level"):
        udlm_network(time_conditioning=False)


def test_a_udlm_model_samples_with_its_sampler_and_refuses_the_masked_ones():
    model = UniformDiffusionModel(udlm_network().eval(), "test", "caduceus")
    out = model.sample(make_sampler("udlm", steps=8), num=3, length=20, seed=0, batch_size=2)
    assert out.tokens.shape == (3, 20) and np.isin(out.tokens.numpy(), BASE_IDS).all()
    assert (out.num_calls, out.row_calls) == (16, 24)  # 8 steps for each of 2 batches; 8 x 3 rows
    with pytest.raises(ModelMismatchError, match="holds a uniform-state diffusion \\(udlm\\) model; --sampler "
                                                 "first-hitting reverses masking: sample it with --sampler udlm"):
        model.sample(make_sampler("first-hitting"), num=1, length=20, seed=0, batch_size=1)
    assert model.score(np.array(BASE_IDS * 10, dtype=np.uint8), mc=2, seed=0).tokens == 40
    known_bases = ("a uniform-state diffusion model cannot condition exactly on known bases \\(under uniform noise "
                   "every position of z_t is noisy\\); use a masked-diffusion \\(mdlm\\) model")
    with pytest.raises(ValueError, match=f"--prompt: {known_bases}"):
        model.sample(make_sampler("udlm"), num=1, length=20, seed=0, batch_size=1, prompt=np.array(BASE_IDS))
    with pytest.raises(ModelMismatchError, match=f"infill: {known_bases}"):
        model.infill(np.array(BASE_IDS * 2), np.ones(8, bool), make_sampler("udlm"), seed=0)
    with pytest.raises(ValueError, match="--length 40: a uniform-state diffusion model samples at most the model's "
                                         "context \\(32\\) for now"):
        model.sample(make_sampler("udlm"), num=1, length=40, seed=0, batch_size=1)


def test_a_class_conditional_udlm_model_samples_a_class_with_classifier_free_guidance():
    model = UniformDiffusionModel(perturbed(udlm_network(num_classes=2), seed=1, scale=0.2).eval(), "test", "caduceus")
    sampler = make_sampler("udlm", steps=4)
    draws = {weight: model.sample(sampler, num=2, length=16, seed=3, batch_size=2,
                                  condition=Conditioning(label=1, weight=weight)).tokens for weight in (0.0, 1.0, 3.0)}
    assert all(np.isin(tokens.numpy(), BASE_IDS).all() for tokens in draws.values())
    unconditional = model.sample(sampler, num=2, length=16, seed=3, batch_size=2).tokens
    assert torch.equal(draws[0.0], unconditional)  # weight 0 is the null label's model
    assert not torch.equal(draws[1.0], draws[0.0]) and not torch.equal(draws[3.0], draws[1.0])


def test_a_masked_model_refuses_the_udlm_sampler():
    settings = {"architecture": "caduceus", "vocab_size": VOCAB_SIZE, "complement_map": list(COMPLEMENT_MAP),
                "d_model": 16, "n_layer": 2, "d_state": 4}
    objective = ObjectiveSettings(kind="mdlm", schedule={"name": "loglinear"}, sampling_eps=1e-3, antithetic=True)
    network = LanguageModel(ModelSpec(settings, objective, mask_id=MASK, context=32, track="dna",
                                      output_ids=BASE_IDS)).eval()
    with pytest.raises(ModelMismatchError, match="holds a masked diffusion model; --sampler udlm samples "
                                                 "uniform-noise models: choose a masked-diffusion sampler"):
        DiffusionModel(network, "test", "caduceus").sample(make_sampler("udlm"), num=1, length=8, seed=0,
                                                           batch_size=1)


def test_demo_udlm_trains_samples_and_scores_from_the_command_line(data_dir, tmp_path, capsys):
    run, out = tmp_path / "udlm", tmp_path / "samples.fa"
    main(["train", "demo-udlm", f"run_dir={run}", f"data.data_dir={data_dir}", "trainer.max_steps=3",
          "checkpoint_every_n_steps=3", "trainer.val_check_interval=3", "data.window=64", "data.batch_size=8",
          "data.valid_windows=16", "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false"])
    assert load_model(run).kind == "udlm"
    main(["sample", "--ckpt", str(run), "--sampler", "udlm", "--steps", "8", "--num", "2", "--out", str(out)])
    records = list(SeqIO.parse(out, "fasta"))
    assert [len(r.seq) for r in records] == [64, 64] and set("".join(str(r.seq) for r in records)) <= set("ACGT")
    assert "sampler=udlm steps=8 length=64" in records[0].description
    capsys.readouterr()
    main(["score", str(out), "--ckpt", str(run), "--mc", "2"])
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows[0][3] == "nelbo_nats" and 1.0 < float(rows[1][4]) < 4.0

import pytest
import torch

from mdlm_bio.diffusion import (
    CosineSchedule,
    GeometricSchedule,
    LinearSigmaSchedule,
    LogLinearSchedule,
    PolynomialSchedule,
    make_schedule,
)

SCHEDULES = {
    "loglinear": LogLinearSchedule(eps=1e-3),
    "loglinear_exact": LogLinearSchedule(eps=0.0),
    "linear_sigma": LinearSigmaSchedule(sigma_min=1e-3, sigma_max=10.0),
    "geometric": GeometricSchedule(sigma_min=1e-4, sigma_max=20.0),
    "cosine": CosineSchedule(),
    "polynomial_2": PolynomialSchedule(k=2.0),
    "polynomial_half": PolynomialSchedule(k=0.5),
}
INTERIOR_T = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)


@pytest.mark.parametrize("name", SCHEDULES)
def test_derivative_matches_autograd(name):
    schedule = SCHEDULES[name]
    t = INTERIOR_T.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(schedule.alpha(t).sum(), t)
    torch.testing.assert_close(schedule.alpha_prime(INTERIOR_T), autograd, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", SCHEDULES)
def test_inverse_round_trips(name):
    schedule = SCHEDULES[name]
    torch.testing.assert_close(schedule.t_of_alpha(schedule.alpha(INTERIOR_T)), INTERIOR_T, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", SCHEDULES)
def test_alpha_falls_from_one_to_zero(name):
    schedule = SCHEDULES[name]
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    alpha = schedule.alpha(t)
    assert bool((alpha[1:] < alpha[:-1]).all()), "alpha must be strictly decreasing"
    assert alpha[0] > 0.999 and alpha[-1] < 1.01e-3
    assert bool((schedule.loss_weight(INTERIOR_T) > 0).all())


def test_closed_forms():
    t = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    torch.testing.assert_close(LogLinearSchedule(eps=0.1).alpha(t), 1 - 0.9 * t)
    torch.testing.assert_close(LogLinearSchedule(eps=0.0).loss_weight(t[1:]), 1 / t[1:])
    torch.testing.assert_close(CosineSchedule().alpha(torch.tensor([0.5], dtype=torch.float64)),
                               torch.tensor([1 - 2**-0.5], dtype=torch.float64))
    torch.testing.assert_close(PolynomialSchedule(k=3).alpha(t), 1 - t**3)
    torch.testing.assert_close(LinearSigmaSchedule(0.0, 4.0).total_noise(t), 4.0 * t)


def test_make_schedule_by_name():
    schedule = make_schedule("polynomial", k=3.0)
    assert isinstance(schedule, PolynomialSchedule) and schedule.k == 3.0
    with pytest.raises(ValueError, match=r"unknown noise schedule 'quadratic'; choose from \['cosine'"):
        make_schedule("quadratic")


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_time_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        CosineSchedule().alpha(torch.tensor([0.5, bad]))


def test_integer_time_is_rejected():
    with pytest.raises(TypeError, match="t must be a floating-point tensor"):
        CosineSchedule().alpha(torch.tensor([0, 1]))


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: LogLinearSchedule(eps=1.0), r"eps must lie in \[0, 1\)"),
        (lambda: LinearSigmaSchedule(sigma_min=5.0, sigma_max=1.0), "sigma_min < sigma_max"),
        (lambda: GeometricSchedule(sigma_min=0.0), "sigma_min < sigma_max"),
        (lambda: PolynomialSchedule(k=0), "k must be positive"),
    ],
)
def test_bad_schedule_parameters(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()

"""Schedules, posteriors and samplers against their closed forms."""
from __future__ import annotations

import math

import pytest
import torch

from vsr_core.diffusion.noise import FrameNoise
from vsr_core.diffusion.prediction import to_x0_eps
from vsr_core.diffusion.resshift import (posterior, prior_sample, q_sample, resshift_schedule, sample_resshift,
                                         scale_input)
from vsr_core.diffusion.samplers import sample_ddim, sample_ddpm
from vsr_core.diffusion.schedules import ddpm_schedule, scaled_linear_betas, space_timesteps
from vsr_core.errors import InputError


def test_sd_schedule_and_respacing_match_ldm():
    betas = scaled_linear_betas()
    assert betas[0].item() == pytest.approx(0.00085) and betas[-1].item() == pytest.approx(0.012)
    steps = space_timesteps(1000, 50)
    assert steps[:4] == [0, 20, 41, 61] and steps[-2:] == [979, 999] and len(steps) == 50
    s = ddpm_schedule(50)
    train_ac = torch.cumprod(1 - betas, 0)
    torch.testing.assert_close(s.alphas_cumprod, train_ac[steps])
    # ldm clips the log-variance at 1e-20: the factor MGLD's guidance multiplies by at t=0
    assert -s.posterior_log_variance[0].item() == pytest.approx(46.0517, abs=1e-3)
    with pytest.raises(InputError, match="steps=0"):
        space_timesteps(1000, 0)


def _bayes(prior_mean, prior_var, scale, x_t, lik_var):
    """Posterior of x_prev ~ N(prior_mean, prior_var) given x_t = scale*x_prev + N(0, lik_var)."""
    var = 1.0 / (1.0 / prior_var + scale ** 2 / lik_var)
    return var * (prior_mean / prior_var + scale * x_t / lik_var), var


def test_ddpm_posterior_is_bayes_rule_on_the_respaced_chain():
    s = ddpm_schedule(20)
    x0, x_t = torch.tensor(0.7, dtype=torch.float64), torch.tensor(-0.3, dtype=torch.float64)
    for i in range(1, 20):
        ac, ac_prev = s.alphas_cumprod[i], s.alphas_cumprod_prev[i]
        mean, var = _bayes(ac_prev.sqrt() * x0, 1 - ac_prev, (ac / ac_prev).sqrt(), x_t, 1 - ac / ac_prev)
        got = s.posterior_mean_coef_x0[i] * x0 + s.posterior_mean_coef_xt[i] * x_t
        torch.testing.assert_close(got, mean)
        torch.testing.assert_close(s.posterior_variance[i], var)


def test_resshift_schedule_matches_the_published_values():
    s = resshift_schedule(15, kappa=2.0, power=0.3, min_noise=0.04)
    k_sqrt_eta = s.kappa * s.sqrt_etas
    assert k_sqrt_eta[0].item() == pytest.approx(0.04)
    assert k_sqrt_eta[1].item() == pytest.approx(0.234, abs=1e-3)
    assert k_sqrt_eta[2].item() == pytest.approx(0.353, abs=1e-3)
    assert k_sqrt_eta[-2].item() == pytest.approx(1.817, abs=1e-3)
    assert k_sqrt_eta[-1].item() == pytest.approx(1.98)


def test_resshift_posterior_is_bayes_rule_on_the_forward_chain():
    s = resshift_schedule(15)
    x0, y, x_t = (torch.tensor(v, dtype=torch.float64) for v in (0.2, -0.5, 0.9))
    e0 = y - x0
    for t in range(1, 15):
        k2 = s.kappa ** 2
        mean, var = _bayes(x0 + s.etas_prev[t] * e0, k2 * s.etas_prev[t], 1.0, x_t - s.alphas[t] * e0,
                           k2 * s.alphas[t])
        got_mean, got_var = posterior(x0, x_t, t, s)
        torch.testing.assert_close(got_mean, mean)
        assert got_var == pytest.approx(var.item())
    mean0, var0 = posterior(x0, x_t, 0, s)
    assert var0 == 0 and torch.equal(mean0, x0)  # the last step lands on the prediction


def test_resshift_forward_marginal_statistics():
    s = resshift_schedule(15)
    x0, y = torch.full((200_000,), 0.25), torch.full((200_000,), -0.75)
    g = torch.Generator().manual_seed(0)
    t = 7
    xt = q_sample(x0, y, t, s, torch.randn(x0.shape, generator=g))
    assert xt.mean().item() == pytest.approx(0.25 + s.etas[t].item() * -1.0, abs=0.01)
    assert xt.std().item() == pytest.approx(s.kappa * s.sqrt_etas[t].item(), rel=0.01)
    prior = prior_sample(y, s, torch.randn(y.shape, generator=g))
    assert prior.std().item() == pytest.approx(1.98, rel=0.01)
    assert scale_input(xt, t, s).std().item() < xt.std().item()


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_prediction_conversions_invert_the_forward_process(prediction):
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
    ac = 0.37
    x_t = ac ** 0.5 * x0 + (1 - ac) ** 0.5 * eps
    output = {"eps": eps, "v": ac ** 0.5 * eps - (1 - ac) ** 0.5 * x0, "x0": x0}[prediction]
    got_x0, got_eps = to_x0_eps(output, x_t, ac, prediction)
    torch.testing.assert_close(got_x0, x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_eps, eps, atol=1e-5, rtol=1e-5)


def test_samplers_with_an_oracle_denoiser_land_on_the_data():
    target = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    s = ddpm_schedule(25)
    noise = FrameNoise(seed=3, frame_shape=(4, 8, 8))

    def oracle(x, i):
        return to_x0_eps(target, x, float(s.alphas_cumprod[i]), "x0")

    start = torch.randn_like(target)
    torch.testing.assert_close(sample_ddpm(oracle, start, s, lambda i: noise.frames([0, 1], i)), target)
    torch.testing.assert_close(sample_ddim(oracle, start, s, lambda i: noise.frames([0, 1], i)), target,
                               atol=1e-5, rtol=1e-5)
    rs = resshift_schedule(4, min_noise=0.2)
    out = sample_resshift(lambda x, t: target, torch.zeros_like(target), rs, lambda i: noise.frames([0, 1], i))
    torch.testing.assert_close(out, target)


def test_frame_noise_depends_only_on_seed_frame_and_step():
    noise = FrameNoise(seed=11, frame_shape=(4, 16, 16))
    window = noise.frames([3, 4, 5], step=7)
    torch.testing.assert_close(noise.frames([4], step=7)[0], window[1])
    tile = noise.frames([4], step=7, crop=(slice(4, 12), slice(0, 8)))
    torch.testing.assert_close(tile[0], window[1, :, 4:12, 0:8])
    assert not torch.equal(noise.frames([4], 8), noise.frames([4], 7))
    assert not torch.equal(FrameNoise(12, (4, 16, 16)).frames([4], 7), noise.frames([4], 7))
    assert math.isclose(float(noise.frames(range(64), 0).std()), 1.0, rel_tol=0.02)


def test_ddim_steps_stay_on_the_deterministic_trajectory():
    """eta=0: from x_T = sqrt(a_T) x0 + sqrt(1-a_T) eps, every step lands on sqrt(a_prev) x0 + sqrt(1-a_prev) eps
    (dropping the eps term, or its coefficient, leaves the trajectory after the first step)."""
    g = torch.Generator().manual_seed(5)
    x0, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    s = ddpm_schedule(10)
    top = s.num_steps - 1
    start = float(s.alphas_cumprod[top]) ** 0.5 * x0 + (1 - float(s.alphas_cumprod[top])) ** 0.5 * eps
    seen = []

    def denoise(x, i):
        return to_x0_eps(x0, x, float(s.alphas_cumprod[i]), "x0")

    sample_ddim(denoise, start, s, lambda i: torch.zeros_like(x0), callback=lambda i, x: seen.append((i, x)))
    for i, x in seen:
        ac_prev = float(s.alphas_cumprod_prev[i])
        torch.testing.assert_close(x, ac_prev ** 0.5 * x0 + (1 - ac_prev) ** 0.5 * eps, atol=1e-4, rtol=1e-4)

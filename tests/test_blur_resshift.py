"""SeeClear's blurring ResShift (per-patch DCT): forward process, chain, posterior, zero-blur reduction."""
from __future__ import annotations

import math

import pytest
import torch

from vsr_core.diffusion import blur_resshift as br
from vsr_core.diffusion import resshift as rs
from vsr_core.errors import InputError


pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 12, 20  # not multiples of 8: edge patches of 4 rows / 4 columns have their own DCT


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _signals(seed=0, shape=(2, H, W)):
    g = _gen(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)


def _schedule(chain="resshift", steps=15, sigma_max=2.0, **kw):
    return br.blur_resshift_schedule(steps, blur_settings=br.BlurResShift(sigma_max=sigma_max, chain=chain), **kw)


def test_per_patch_dct_is_orthonormal_and_blur_is_the_heat_equation_on_each_patch():
    x, _ = _signals()
    u = br.to_dct(x, 8)
    torch.testing.assert_close(br.from_dct(u, 8), x, atol=1e-12, rtol=0)
    assert torch.allclose((u ** 2).sum(), (x ** 2).sum())  # Parseval
    # A cosine of in-patch frequency (fx, fy) on an 8x8 patch is an eigenfunction: factor exp(-pi^2 (fx^2+fy^2)/64 tau).
    n = torch.arange(8, dtype=torch.float64)
    for fx, fy in [(0, 0), (1, 0), (3, 5), (7, 7)]:
        patch = torch.cos(math.pi * (2 * n[:, None] + 1) * fx / 16) * torch.cos(math.pi * (2 * n[None] + 1) * fy / 16)
        tau = 0.7
        expected = math.exp(-math.pi ** 2 * (fx ** 2 + fy ** 2) / 64 * tau)
        torch.testing.assert_close(br.blur(patch, tau, 8), expected * patch, atol=1e-12, rtol=0)
    # Patches do not talk to each other; the 4-wide edge patch uses its own size in Lambda.
    x[..., :8, :8] = 0
    assert br.blur(x, 1.0, 8)[..., :8, :8].abs().max() < 1e-12
    lam = br.frequencies(H, W, 8)
    assert lam[0, 17].item() == pytest.approx(-math.pi ** 2 * (1 / 4) ** 2)
    assert lam[9, 0].item() == pytest.approx(-math.pi ** 2 * (1 / 4) ** 2)


def test_forward_process_mean_and_variance_are_the_papers():
    s = _schedule()
    x0, y = _signals(1, (1, 16, 16))
    p = s.patch
    for t in (0, 7, 14):
        d = br.decay(16, 16, p, s.tau(t))
        u0, ul = br.to_dct(x0, p), br.to_dct(y, p)
        e_t = ul - d * u0                                           # e_t = u_l - D_t u_0
        mean, var = br.marginal(u0, ul, t, s)
        torch.testing.assert_close(mean, d * u0 + s.eta(t) * e_t)   # D_t u_0 + eta_t e_t
        torch.testing.assert_close(mean, (1 - s.eta(t)) * d * u0 + s.eta(t) * ul)
        assert var == pytest.approx(s.kappa ** 2 * float(s.base.etas[t]))
        # q_sample in pixel space: the mean, plus kappa sqrt(eta_t) times white noise (Monte Carlo, 40k draws/pixel)
        draws = torch.stack([br.q_sample(x0, y, t, s, torch.randn(x0.shape, generator=_gen(100 + k),
                                                                   dtype=torch.float64)) for k in range(4000)])
        dct_draws = br.to_dct(draws, p)
        assert (dct_draws.mean(0) - mean).abs().max() < 5 * math.sqrt(var / 4000)
        emp_var = dct_draws.var(0).mean().item()
        assert emp_var == pytest.approx(var, rel=0.01)


@pytest.mark.parametrize("chain", br.CHAINS)
def test_posterior_is_bayes_rule_on_the_chain(chain):
    """Against the joint Gaussian of (u_{t-1}, u_t) built from the marginal and the transition."""
    s = _schedule(chain)
    u0, ul = (br.to_dct(v, 8) for v in _signals(2))
    u_t = torch.randn(u0.shape, generator=_gen(3), dtype=torch.float64)
    for t in range(1, 15):
        lam, beta = br.chain_coefficients(H, W, t, s)
        m_prev, v_prev = br.marginal(u0, ul, t - 1, s)
        mean_t_given_prev, var_t_given_prev = br.transition(m_prev, u0, ul, t, s)  # E[u_t] = transition of E[u_{t-1}]
        torch.testing.assert_close(var_t_given_prev, beta)
        cov = lam * v_prev
        var_t = lam ** 2 * v_prev + beta
        mean, var = br.posterior(u0, u_t, ul, t, s)
        torch.testing.assert_close(mean, m_prev + cov / var_t * (u_t - mean_t_given_prev), atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(var, v_prev - cov ** 2 / var_t, atol=1e-12, rtol=1e-10)
    mean0, var0 = br.posterior(u0, u_t, ul, 0, s)  # the first step lands on the clean signal
    torch.testing.assert_close(mean0, u0)
    assert var0.abs().max() == 0


@pytest.mark.parametrize("chain", ["resshift", "markov"])
def test_consistent_chains_reproduce_the_stated_marginals(chain):
    """One transition from q(u_{t-1}|u_0,u_l) gives q(u_t|u_0,u_l), and the posterior of a
    marginal draw of u_t is the marginal of u_{t-1} (both exactly, in closed form)."""
    s = _schedule(chain)
    u0, ul = (br.to_dct(v, 8) for v in _signals(4))
    for t in range(1, 15):
        lam, beta = br.chain_coefficients(H, W, t, s)
        m_prev, v_prev = br.marginal(u0, ul, t - 1, s)
        m_t, v_t = br.marginal(u0, ul, t, s)
        mean_t, _ = br.transition(m_prev, u0, ul, t, s)
        torch.testing.assert_close(mean_t, m_t, atol=1e-12, rtol=0)
        torch.testing.assert_close(lam ** 2 * v_prev + beta, torch.full_like(beta, v_t), atol=1e-12, rtol=0)
        # posterior mean is affine in u_t with slope A: E = posterior(m_t), Var = A^2 v_t + var
        mean_at_m, var = br.posterior(u0, m_t, ul, t, s)
        slope = br.posterior(u0, m_t + 1, ul, t, s)[0] - mean_at_m
        torch.testing.assert_close(mean_at_m, m_prev, atol=1e-12, rtol=0)
        assert (slope ** 2 * v_t + var - v_prev).abs().max() < 1e-12
    if chain == "markov":  # its transition ignores u_0
        other_u0 = u0 + 1.0
        torch.testing.assert_close(br.transition(ul, u0, ul, 5, s)[0], br.transition(ul, other_u0, ul, 5, s)[0])


def test_posterior_by_monte_carlo():
    """Sample (u_{t-1}, u_t) from the forward chain, regress u_{t-1} on u_t: slope and residual variance."""
    s = _schedule("markov")
    t, n = 9, 200_000
    u0 = torch.full((1, 8, 8), 0.7, dtype=torch.float64)
    u0[0, 1, 2] = -1.3
    ul = torch.full((1, 8, 8), -0.2, dtype=torch.float64)
    m_prev, v_prev = br.marginal(u0, ul, t - 1, s)
    g = _gen(11)
    prev = m_prev + math.sqrt(v_prev) * torch.randn((n, 8, 8), generator=g, dtype=torch.float64)
    mean_t, beta = br.transition(prev, u0, ul, t, s)
    cur = mean_t + beta.sqrt() * torch.randn((n, 8, 8), generator=g, dtype=torch.float64)
    for (r, c) in [(0, 0), (1, 2), (5, 3)]:
        a, b = cur[:, r, c], prev[:, r, c]
        slope = ((a - a.mean()) * (b - b.mean())).mean() / a.var()
        resid = (b - b.mean() - slope * (a - a.mean())).var()
        probe = torch.zeros(1, 8, 8, dtype=torch.float64)
        mean_lo, var = br.posterior(u0, probe, ul, t, s)
        mean_hi, _ = br.posterior(u0, probe + 1, ul, t, s)
        assert slope.item() == pytest.approx((mean_hi - mean_lo)[0, r, c].item(), rel=0.01)
        assert resid.item() == pytest.approx(var[r, c].item(), rel=0.01)
        # and the conditional mean at the sample mean of u_t
        assert (b.mean() - br.posterior(u0, a.mean().expand(1, 8, 8).clone(), ul, t, s)[0][0, r, c]).abs() < 0.01


def test_paper_chain_is_the_printed_formula_with_the_sign_fixed():
    s = _schedule("paper")
    u0, ul = (br.to_dct(v, 8) for v in _signals(5))
    u_t = torch.randn(u0.shape, generator=_gen(6), dtype=torch.float64)
    k2 = s.kappa ** 2
    for t in (1, 6, 14):
        e, ep = s.eta(t), s.eta(t - 1)
        a = e - ep
        lam = (1 - e) / (1 - ep) * br.decay(H, W, 8, s.tau(t) - s.tau(t - 1))
        d_prev = br.decay(H, W, 8, s.tau(t - 1))
        den = lam ** 2 * ep + a
        mu = (lam * ep * u_t + a * (1 - ep) * d_prev * u0 + (lam ** 2 * ep ** 2 - lam * ep * e + a * ep) * ul) / den
        mean, var = br.posterior(u0, u_t, ul, t, s)
        torch.testing.assert_close(mean, mu, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(var, k2 * a * ep / den, atol=1e-12, rtol=1e-10)
        # methods.md's printed "- alpha_t eta_{t-1}" would not even keep a constant signal constant
        c = torch.ones_like(u0)
        flat = _schedule("paper", sigma_max=0.0)
        lam0 = (1 - e) / (1 - ep)
        printed = (lam0 * ep + a * (1 - ep) + lam0 ** 2 * ep ** 2 - lam0 * ep * e - a * ep) / (lam0 ** 2 * ep + a)
        torch.testing.assert_close(br.posterior(c, c, c, t, flat)[0], c)
        # printed = 1 - 2 alpha_t eta_{t-1} / (lambda^2 eta_{t-1} + alpha_t): off by ~8e-4 at t=1, ~1.6 at t=14
        assert abs(printed - 1) > 1e-4
    # The paper's transition variance does not give back the stated marginal variance (lambda < 1):
    lam, beta = br.chain_coefficients(H, W, 14, s)
    assert (lam ** 2 * s.kappa ** 2 * s.eta(13) + beta).max() < s.kappa ** 2 * s.eta(14) - 0.1


def test_zero_blur_resshift_chain_is_exactly_plain_resshift():
    s = _schedule("resshift", sigma_max=0.0)
    plain = rs.resshift_schedule(15)
    x0, y = _signals(7)
    x_t = torch.randn(x0.shape, generator=_gen(8), dtype=torch.float64)
    for t in range(15):
        mean, var = rs.posterior(x0, x_t, t, plain)
        torch.testing.assert_close(br.posterior_sample(x0, x_t, y, t, s, None), mean, atol=1e-13, rtol=0)
        torch.testing.assert_close(br.from_dct(br.posterior(br.to_dct(x0), br.to_dct(x_t), br.to_dct(y), t, s)[0]),
                                   mean, atol=1e-12, rtol=0)
        torch.testing.assert_close(br.posterior(x0, x_t, y, t, s)[1], torch.full((H, W), var, dtype=torch.float64))
        nz = torch.randn(x0.shape, generator=_gen(9 + t), dtype=torch.float64)
        torch.testing.assert_close(br.q_sample(x0, y, t, s, nz), rs.q_sample(x0, y, t, plain, nz),
                                   atol=1e-13, rtol=0)
    # whole reverse chains with the same noise and the same (toy, deterministic) denoiser
    noise = {i: torch.randn((2, H, W), generator=_gen(20 + i)) for i in range(16)}
    denoise = lambda x, t: (torch.tanh(x) * 0.5 + 0.1 * t, None)  # noqa: E731
    y32 = y.float()
    a = rs.sample_resshift_from(denoise, rs.prior_sample(y32, plain, noise[15]), plain, noise.get)
    b = br.sample_blur_resshift(denoise, br.prior_sample(y32, s, noise[15]), s, noise.get, y=y32)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_blur_times_grow_and_bad_settings():
    taus = br.blur_times(15, 0.5, 2.0)
    assert taus[0].item() == pytest.approx(0.125) and taus[-1].item() == pytest.approx(2.0)
    assert (taus[1:] > taus[:-1]).all()
    assert br.blur_times(4, 0.0, 0.0).abs().max() == 0
    with pytest.raises(InputError, match="chain"):
        br.BlurResShift(chain="ihdm")
    with pytest.raises(InputError, match="sigma_min"):
        br.BlurResShift(sigma_min=3.0, sigma_max=1.0)
    with pytest.raises(InputError, match="patch"):
        br.BlurResShift(patch=0)

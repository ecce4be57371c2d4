"""SeeClear's blurring residual shift: ResShift whose forward process also blurs,
computed per p x p patch in the DCT domain (methods.md section 3), as pure functions.

Notation (u = per-patch orthonormal DCT-II of a latent/image frame, all
operators diagonal in u, so every formula below holds coefficient by coefficient):

    Lambda_{x,y} = -pi^2 (x^2/p^2 + y^2/p^2)      x, y = 0..p-1 in-patch frequencies
    D_t = exp(Lambda tau_t)                        heat-equation blur for time tau_t
    q(u_t | u_0, u_l) = N(D_t u_0 + eta_t (u_l - D_t u_0), kappa^2 eta_t I)
                      = N((1 - eta_t) D_t u_0 + eta_t u_l, kappa^2 eta_t I)
    prior: u_T ~ N(u_l, kappa^2 eta_T I)  (the paper's p(u_T|u_l) ~ N(u_l, kappa^2 E), as ResShift)

Step indices t = 0..T-1 as in resshift.py (t = 0 is the least noisy step), with
eta_{-1} = 0 and tau_{-1} = 0, so "t-1" of the first step is the clean signal.

What the paper does not state, chosen here and documented:
- The patch size p: default 8 (the JPEG block). Edge patches of a frame whose
  size is not a multiple of p use their own, smaller DCT (Lambda with their own
  size), so any frame size works.
- The blur time tau_t: the paper writes D_t = e^{Lambda t}. Here tau_t follows
  IHDM (Rissanen et al.): the blur std grows geometrically, sigma_t =
  sigma_min (sigma_max/sigma_min)^(t/(T-1)), tau_t = sigma_t^2 / 2, in pixels
  of the signal the DCT runs on (latent pixels in this pack). Defaults
  sigma_min 0.5, sigma_max 2.0: at the noisiest step the highest in-patch
  frequency keeps e^{-pi^2 (49/64+49/64) 2} ~ 1e-13 and the lowest
  non-DC one e^{-pi^2/64 * 2} ~ 0.73. Zero blur (sigma_max = 0) is plain ResShift.

The one-step chain. The marginals above fix the mean and variance of u_t for
every t but not the transition q(u_t | u_{t-1}, u_0, u_l). Write it as
N(lambda u_{t-1} + (m_t - lambda m_{t-1}), beta_t) with m_t the marginal mean.
Three choices (`chain`):

- "resshift" (default): lambda = 1, beta_t = kappa^2 alpha_t (alpha_t =
  eta_t - eta_{t-1}). ResShift's own transition form (a shift that depends on
  u_0, plus noise); consistent with the marginals, and with zero blur it is
  exactly plain ResShift (resshift.posterior).
- "markov": lambda = ((1-eta_t)/(1-eta_{t-1})) e^{Lambda (tau_t - tau_{t-1})},
  the only lambda for which the transition does not depend on u_0 (it becomes
  N(lambda u_{t-1} + (eta_t - lambda eta_{t-1}) u_l, beta_t)), with
  beta_t = kappa^2 (eta_t - lambda^2 eta_{t-1}) as the marginals require.
- "paper": SeeClear's printed posterior: the same lambda (the paper's
  e^Lambda is e^{Lambda (tau_t - tau_{t-1})} with tau_t = t) but beta_t =
  kappa^2 alpha_t. It is Bayes' rule for that transition and the stated
  marginal of u_{t-1}, but that transition does not reproduce the stated
  marginal variance of u_t unless lambda = 1, and with zero blur it is not
  ResShift (lambda = (1-eta_t)/(1-eta_{t-1}) != 1).

For every chain the posterior is Bayes' rule on its transition and the prior
N(m_{t-1}, kappa^2 eta_{t-1}):

    var  = kappa^2 eta_{t-1} beta_t / (beta_t + lambda^2 kappa^2 eta_{t-1})
    mean = (beta_t m_{t-1} + lambda kappa^2 eta_{t-1} (u_t - m_t + lambda m_{t-1}))
           / (beta_t + lambda^2 kappa^2 eta_{t-1})

For "paper" this is methods.md's
    mu = [lambda eta_{t-1} u_t + alpha_t (1-eta_{t-1}) e^{Lambda(t-1)} u_0
          + (lambda^2 eta_{t-1}^2 - lambda eta_{t-1} eta_t + alpha_t eta_{t-1}) u_l] / (lambda^2 eta_{t-1} + alpha_t)
    sigma^2 = kappa^2 alpha_t eta_{t-1} / (lambda^2 eta_{t-1} + alpha_t)
with one deliberate difference: the u_l coefficient's last term is
+alpha_t eta_{t-1}; methods.md prints -alpha_t eta_{t-1}, which cannot be
right (with u_0 = u_l = u_t = c and no blur the posterior mean must be c; the
printed sign gives c (1 - 2 alpha_t eta_{t-1} / (lambda^2 eta_{t-1} + alpha_t))).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

from ..errors import InputError
from .resshift import ResShiftSchedule, resshift_schedule

CHAINS = ("resshift", "markov", "paper")


# ----------------------------------------------------------------------------
# Per-patch DCT and the heat-equation blur
# ----------------------------------------------------------------------------

def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix [n,n] (float64): u = C x, x = C^T u."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c


@lru_cache(maxsize=64)
def _axis(n: int, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-diagonal DCT along one axis of length n (blocks of `patch`, a smaller last one)
    and each coefficient's (frequency / block size)^2."""
    m = torch.zeros(n, n, dtype=torch.float64)
    freq2 = torch.zeros(n, dtype=torch.float64)
    for s in range(0, n, patch):
        q = min(patch, n - s)
        m[s:s + q, s:s + q] = dct_matrix(q)
        freq2[s:s + q] = (torch.arange(q, dtype=torch.float64) / q) ** 2
    return m, freq2


def _check_patch(patch: int) -> None:
    if not isinstance(patch, int) or patch < 1:
        raise InputError(f"blur patch size={patch!r}; expected a positive integer (e.g. 8)")


def to_dct(x: torch.Tensor, patch: int = 8) -> torch.Tensor:
    """Per-patch orthonormal DCT-II over the last two dims of x [...,h,w]."""
    _check_patch(patch)
    mh, _ = _axis(x.shape[-2], patch)
    mw, _ = _axis(x.shape[-1], patch)
    return mh.to(x) @ x @ mw.to(x).T


def from_dct(u: torch.Tensor, patch: int = 8) -> torch.Tensor:
    """Inverse of to_dct."""
    _check_patch(patch)
    mh, _ = _axis(u.shape[-2], patch)
    mw, _ = _axis(u.shape[-1], patch)
    return mh.to(u).T @ u @ mw.to(u)


def frequencies(h: int, w: int, patch: int = 8) -> torch.Tensor:
    """Lambda [h,w] (float64) in to_dct's coefficient layout: -pi^2 (fx^2/px^2 + fy^2/py^2)."""
    _check_patch(patch)
    return -math.pi ** 2 * (_axis(h, patch)[1][:, None] + _axis(w, patch)[1][None, :])


def decay(h: int, w: int, patch: int, tau: float) -> torch.Tensor:
    """D = exp(Lambda tau) [h,w] float64: each DCT coefficient's blur factor."""
    return torch.exp(frequencies(h, w, patch) * float(tau))


def blur(x: torch.Tensor, tau: float, patch: int = 8) -> torch.Tensor:
    """The per-patch heat-equation blur D_tau applied in pixel space (identity for tau = 0)."""
    if tau == 0:
        return x
    return from_dct(decay(*x.shape[-2:], patch, tau).to(x) * to_dct(x, patch), patch)


# ----------------------------------------------------------------------------
# Schedule
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class BlurResShift:
    """Settings of the blurring variant (what the paper leaves open; see the module docstring)."""

    patch: int = 8
    sigma_min: float = 0.5      # blur std at the least noisy step, in signal pixels
    sigma_max: float = 2.0      # ... at the noisiest step; 0 = no blur (plain ResShift)
    chain: str = "resshift"

    def __post_init__(self):
        _check_patch(self.patch)
        if self.chain not in CHAINS:
            raise InputError(f"blur chain={self.chain!r}; expected one of {', '.join(CHAINS)}")
        if self.sigma_max != 0 and not 0 <= self.sigma_min <= self.sigma_max:
            raise InputError(f"blur sigma_min={self.sigma_min}, sigma_max={self.sigma_max}; "
                             f"expected 0 <= sigma_min <= sigma_max (or sigma_max = 0: no blur)")


def blur_times(steps: int, sigma_min: float = 0.5, sigma_max: float = 2.0) -> torch.Tensor:
    """tau_t = sigma_t^2 / 2 for t = 0..steps-1, sigma_t geometric from sigma_min to sigma_max (IHDM)."""
    if sigma_max == 0:
        return torch.zeros(steps, dtype=torch.float64)
    if sigma_min <= 0:
        sig = torch.linspace(sigma_min, sigma_max, steps, dtype=torch.float64)
    else:
        sig = sigma_min * (sigma_max / sigma_min) ** (torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1))
    return sig ** 2 / 2


@dataclass(frozen=True)
class BlurResShiftSchedule:
    """ResShift's eta schedule plus blur times; quacks like a ResShiftSchedule for motion guidance
    (posterior_variance / posterior_log_variance are the plain ResShift ones, a scalar per step)."""

    base: ResShiftSchedule
    taus: torch.Tensor          # [T] float64 blur time per step; tau_{-1} = 0
    patch: int
    chain: str

    @property
    def num_steps(self) -> int:
        return self.base.num_steps

    @property
    def kappa(self) -> float:
        return self.base.kappa

    @property
    def posterior_variance(self) -> torch.Tensor:
        return self.base.posterior_variance

    @property
    def posterior_log_variance(self) -> torch.Tensor:
        return self.base.posterior_log_variance

    def eta(self, t: int) -> float:
        return 0.0 if t < 0 else float(self.base.etas[t])

    def tau(self, t: int) -> float:
        return 0.0 if t < 0 else float(self.taus[t])


def blur_resshift_schedule(steps: int = 15, kappa: float = 2.0, power: float = 0.3, min_noise: float = 0.04,
                           blur_settings: BlurResShift = BlurResShift()) -> BlurResShiftSchedule:
    return with_blur(resshift_schedule(steps, kappa=kappa, power=power, min_noise=min_noise), blur_settings)


def with_blur(base: ResShiftSchedule, blur_settings: BlurResShift) -> BlurResShiftSchedule:
    """A plain ResShift schedule with SeeClear's blur times added."""
    taus = blur_times(base.num_steps, blur_settings.sigma_min, blur_settings.sigma_max)
    return BlurResShiftSchedule(base=base, taus=taus, patch=blur_settings.patch, chain=blur_settings.chain)


# ----------------------------------------------------------------------------
# The process in the DCT domain (u = to_dct(x)); all tensors [..., h, w]
# ----------------------------------------------------------------------------

def _decay(u: torch.Tensor, s: BlurResShiftSchedule, t: int) -> torch.Tensor:
    return decay(*u.shape[-2:], s.patch, s.tau(t)).to(u)


def marginal(u0: torch.Tensor, ul: torch.Tensor, t: int, s: BlurResShiftSchedule):
    """Mean and variance of q(u_t | u_0, u_l) = N(D_t u_0 + eta_t e_t, kappa^2 eta_t), e_t = u_l - D_t u_0.

    t = -1 is the clean signal (mean u_0, variance 0)."""
    du0 = _decay(u0, s, t) * u0
    return du0 + s.eta(t) * (ul - du0), s.kappa ** 2 * s.eta(t)


def chain_coefficients(h: int, w: int, t: int, s: BlurResShiftSchedule) -> tuple[torch.Tensor, torch.Tensor]:
    """(lambda, beta) [h,w] float64 of the transition q(u_t | u_{t-1}) = N(lambda u_{t-1} + c_t, beta) at step t."""
    eta, eta_prev = s.eta(t), s.eta(t - 1)
    k2 = s.kappa ** 2
    if s.chain == "resshift":
        lam = torch.ones(h, w, dtype=torch.float64)
        return lam, torch.full((h, w), k2 * (eta - eta_prev), dtype=torch.float64)
    lam = (1 - eta) / (1 - eta_prev) * decay(h, w, s.patch, s.tau(t) - s.tau(t - 1))
    if s.chain == "markov":
        return lam, k2 * (eta - lam ** 2 * eta_prev)
    return lam, torch.full((h, w), k2 * (eta - eta_prev), dtype=torch.float64)


def transition(u_prev: torch.Tensor, u0: torch.Tensor, ul: torch.Tensor, t: int, s: BlurResShiftSchedule):
    """Mean and variance [h,w] of the chain's one step q(u_t | u_{t-1}, u_0, u_l)."""
    lam, beta = (c.to(u_prev) for c in chain_coefficients(*u_prev.shape[-2:], t, s))
    m_t, _ = marginal(u0, ul, t, s)
    m_prev, _ = marginal(u0, ul, t - 1, s)
    return lam * u_prev + (m_t - lam * m_prev), beta


def posterior(u0: torch.Tensor, u_t: torch.Tensor, ul: torch.Tensor, t: int, s: BlurResShiftSchedule):
    """Mean and variance [h,w] of q(u_{t-1} | u_t, u_0, u_l), Bayes' rule on the chain."""
    lam, beta = (c.to(u_t) for c in chain_coefficients(*u_t.shape[-2:], t, s))
    m_t, _ = marginal(u0, ul, t, s)
    m_prev, v_prev = marginal(u0, ul, t - 1, s)
    denom = beta + lam ** 2 * v_prev
    mean = (beta * m_prev + lam * v_prev * (u_t - m_t + lam * m_prev)) / denom
    return mean, v_prev * beta / denom


# ----------------------------------------------------------------------------
# Pixel (latent) space: what a sampler uses
# ----------------------------------------------------------------------------

def q_sample(x0: torch.Tensor, y: torch.Tensor, t: int, s: BlurResShiftSchedule, noise: torch.Tensor) -> torch.Tensor:
    """A draw of x_t given x0 and the LR signal y (noise is white, so it is added in pixel space)."""
    bx0 = blur(x0, s.tau(t), s.patch)
    return bx0 + s.eta(t) * (y - bx0) + s.kappa * math.sqrt(s.eta(t)) * noise


def prior_sample(y: torch.Tensor, s: BlurResShiftSchedule, noise: torch.Tensor) -> torch.Tensor:
    return y + s.kappa * math.sqrt(s.eta(s.num_steps - 1)) * noise


def posterior_sample(x0: torch.Tensor, x_t: torch.Tensor, y: torch.Tensor, t: int, s: BlurResShiftSchedule,
                     noise: torch.Tensor | None) -> torch.Tensor:
    """x_{t-1} = posterior mean + std * noise (noise white in pixel space; None or t = 0: the mean)."""
    if s.chain == "resshift":  # scalar variance: stay in pixel space (blur only), exact ResShift at zero blur
        m_t = blur(x0, s.tau(t), s.patch)
        m_t = m_t + s.eta(t) * (y - m_t)
        m_prev = blur(x0, s.tau(t - 1), s.patch)
        m_prev = m_prev + s.eta(t - 1) * (y - m_prev)
        mean = m_prev + s.eta(t - 1) / s.eta(t) * (x_t - m_t)
        if noise is None or t == 0:
            return mean
        return mean + math.exp(0.5 * float(s.base.posterior_log_variance[t])) * noise
    p = s.patch
    mean, var = posterior(to_dct(x0, p), to_dct(x_t, p), to_dct(y, p), t, s)
    if noise is not None and t > 0:
        mean = mean + var.sqrt() * to_dct(noise, p)  # the DCT of white noise is white noise
    return from_dct(mean, p)


def sample_blur_resshift(denoise: Callable[[torch.Tensor, int], tuple], x: torch.Tensor,
                         s: BlurResShiftSchedule, noise: Callable[[int], torch.Tensor], *,
                         y: torch.Tensor, guide=None, callback=None) -> torch.Tensor:
    """The reverse chain from x (a prior sample) to t=0; denoise(x_t, t) -> (x0, _) sees the unscaled x_t.

    samplers.py's signature; the posterior needs the LR signal y."""
    for t in reversed(range(s.num_steps)):
        x0, _ = denoise(x, t)
        x = posterior_sample(x0, x, y, t, s, noise(t) if t > 0 else None)
        if guide is not None:
            x = guide(x, t)
        if callback is not None:
            callback(t, x)
    return x


def sample_blur_resshift_from(denoise: Callable[[torch.Tensor, int], tuple], x: torch.Tensor,
                              base: ResShiftSchedule, noise: Callable[[int], torch.Tensor], *,
                              y: torch.Tensor, guide=None, callback=None, patch: int = 8, sigma_min: float = 0.5,
                              sigma_max: float = 2.0, chain: str = "resshift") -> torch.Tensor:
    """sample_blur_resshift over a plain ResShift schedule, the blur given as keyword options
    (the form samplers.SAMPLERS registers: the blur is the sampler's, the schedule the process's)."""
    s = with_blur(base, BlurResShift(patch=patch, sigma_min=sigma_min, sigma_max=sigma_max, chain=chain))
    return sample_blur_resshift(denoise, x, s, noise, y=y, guide=guide, callback=callback)

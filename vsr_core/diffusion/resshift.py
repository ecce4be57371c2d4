"""Residual-shift diffusion (ResShift; the base of SeeClear): few steps from the LR prior.

The chain moves the residual e0 = y - x0 between the LR (upscaled) signal y and
the HR signal x0:  q(x_t | x0, y) = N(x0 + eta_t (y - x0), kappa^2 eta_t I),
prior x_T = y + kappa sqrt(eta_T) z.  Indices t = 0..T-1 as in the reference
code (t = 0 is the least noisy step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import InputError


@dataclass(frozen=True)
class ResShiftSchedule:
    kappa: float
    sqrt_etas: torch.Tensor            # [T] float64, ascending
    etas: torch.Tensor
    etas_prev: torch.Tensor            # eta_{t-1}, 0 before the first
    alphas: torch.Tensor               # eta_t - eta_{t-1}
    posterior_variance: torch.Tensor   # kappa^2 eta_{t-1}/eta_t alpha_t
    posterior_log_variance: torch.Tensor  # log, with t=0 clipped to t=1's value
    mean_coef_xt: torch.Tensor         # eta_{t-1}/eta_t
    mean_coef_x0: torch.Tensor         # alpha_t/eta_t

    @property
    def num_steps(self) -> int:
        return len(self.etas)


def resshift_schedule(steps: int = 15, kappa: float = 2.0, power: float = 0.3, min_noise: float = 0.04,
                      eta_end: float = 0.99) -> ResShiftSchedule:
    """The 'exponential' eta schedule: sqrt(eta_t) = eta_1' * b^(((t)/(T-1))^p (T-1))."""
    if not isinstance(steps, int) or steps < 2:
        raise InputError(f"steps={steps!r}; expected an integer of at least 2 for residual shifting")
    if kappa <= 0 or power <= 0 or not 0 < min_noise < 1 or not 0 < eta_end <= 1:
        raise InputError(f"kappa={kappa}, power={power}, min_noise={min_noise}, eta_end={eta_end}; expected "
                         f"kappa > 0, power > 0, 0 < min_noise < 1, 0 < eta_end <= 1")
    start = min(min_noise / kappa, min_noise)
    growth = math.exp(math.log(eta_end / start) / (steps - 1))
    exponent = torch.linspace(0, 1, steps, dtype=torch.float64) ** power * (steps - 1)
    sqrt_etas = start * growth ** exponent
    etas = sqrt_etas ** 2
    etas_prev = torch.cat([etas.new_zeros(1), etas[:-1]])
    alphas = etas - etas_prev
    var = kappa ** 2 * etas_prev / etas * alphas
    clipped = torch.cat([var[1:2], var[1:]])
    return ResShiftSchedule(kappa=kappa, sqrt_etas=sqrt_etas, etas=etas, etas_prev=etas_prev, alphas=alphas,
                            posterior_variance=var, posterior_log_variance=torch.log(clipped),
                            mean_coef_xt=etas_prev / etas, mean_coef_x0=alphas / etas)


def q_sample(x0: torch.Tensor, y: torch.Tensor, t: int, s: ResShiftSchedule, noise: torch.Tensor) -> torch.Tensor:
    return x0 + float(s.etas[t]) * (y - x0) + s.kappa * float(s.sqrt_etas[t]) * noise


def posterior(x0: torch.Tensor, x_t: torch.Tensor, t: int, s: ResShiftSchedule):
    """Mean and variance of q(x_{t-1} | x_t, x0)."""
    return float(s.mean_coef_xt[t]) * x_t + float(s.mean_coef_x0[t]) * x0, float(s.posterior_variance[t])


def prior_sample(y: torch.Tensor, s: ResShiftSchedule, noise: torch.Tensor) -> torch.Tensor:
    return y + s.kappa * float(s.sqrt_etas[-1]) * noise


def scale_input(x_t: torch.Tensor, t: int, s: ResShiftSchedule) -> torch.Tensor:
    """Latent inputs are divided by their marginal std, sqrt(kappa^2 eta_t + 1), before the network."""
    return x_t / math.sqrt(s.kappa ** 2 * float(s.etas[t]) + 1.0)


def sample_resshift(predict_x0: Callable[[torch.Tensor, int], torch.Tensor], y: torch.Tensor,
                    s: ResShiftSchedule, noise: Callable[[int], torch.Tensor],
                    guide=None, callback=None) -> torch.Tensor:
    """Sample from the prior at y down to t=0; predict_x0 sees the already-scaled input."""
    return sample_resshift_from(lambda x, t: (predict_x0(scale_input(x, t, s), t), None),
                                prior_sample(y, s, noise(s.num_steps)), s, noise, guide=guide, callback=callback)


def sample_resshift_from(denoise: Callable[[torch.Tensor, int], tuple], x: torch.Tensor,
                         s: ResShiftSchedule, noise: Callable[[int], torch.Tensor], *,
                         y: torch.Tensor | None = None, guide=None, callback=None) -> torch.Tensor:
    """The reverse chain from a given start x (a prior sample) down to t=0 (samplers.py's signature).

    denoise(x_t, t) -> (x0, _) sees the *unscaled* x_t (the caller applies
    scale_input), so windowed/tiled pipelines wrap it like the DDPM samplers'
    denoise; y is not needed (x_t carries it). guide(x, t) runs after each
    step, then callback(t, x).
    """
    for t in reversed(range(s.num_steps)):
        x0, _ = denoise(x, t)
        mean, _var = posterior(x0, x, t, s)
        x = mean + math.exp(0.5 * float(s.posterior_log_variance[t])) * noise(t) if t > 0 else mean
        if guide is not None:
            x = guide(x, t)
        if callback is not None:
            callback(t, x)
    return x

"""Ancestral DDPM and DDIM over a respaced schedule, as pure functions.

A sampler takes
- denoise(x, i) -> (x0, eps): the network at schedule index i (see prediction.py),
- x: the start (for super-resolution, the noised upscaled LR latent, see
  schedules.q_sample), and
- noise(i) -> tensor like x: fresh noise for the step leaving index i,
and runs from the noisiest index down to 0. `guide(x, i)` is called after each
step (motion guidance lives there) and `callback(i, x)` after that.
"""
from __future__ import annotations

from typing import Callable

import torch

from .schedules import DDPMSchedule

Denoise = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
Noise = Callable[[int], torch.Tensor]
Guide = Callable[[torch.Tensor, int], torch.Tensor]


def sample_ddpm(denoise: Denoise, x: torch.Tensor, schedule: DDPMSchedule, noise: Noise,
                guide: Guide | None = None, callback=None) -> torch.Tensor:
    """Ancestral sampling: x <- mu(x, x0) + sigma * z, no noise on the last step (ldm p_sample)."""
    for i in reversed(range(schedule.num_steps)):
        x0, _eps = denoise(x, i)
        mean = float(schedule.posterior_mean_coef_x0[i]) * x0 + float(schedule.posterior_mean_coef_xt[i]) * x
        x = mean + float(torch.exp(0.5 * schedule.posterior_log_variance[i])) * noise(i) if i > 0 else mean
        if guide is not None:
            x = guide(x, i)
        if callback is not None:
            callback(i, x)
    return x


def sample_ddim(denoise: Denoise, x: torch.Tensor, schedule: DDPMSchedule, noise: Noise,
                eta: float = 0.0, guide: Guide | None = None, callback=None) -> torch.Tensor:
    """DDIM (Song et al.): eta=0 is deterministic, eta=1 matches DDPM's marginals."""
    for i in reversed(range(schedule.num_steps)):
        x0, eps = denoise(x, i)
        ac, ac_prev = float(schedule.alphas_cumprod[i]), float(schedule.alphas_cumprod_prev[i])
        sigma = eta * ((1 - ac_prev) / (1 - ac) * (1 - ac / ac_prev)) ** 0.5
        x = ac_prev ** 0.5 * x0 + max(1 - ac_prev - sigma ** 2, 0.0) ** 0.5 * eps
        if sigma > 0 and i > 0:
            x = x + sigma * noise(i)
        if guide is not None:
            x = guide(x, i)
        if callback is not None:
            callback(i, x)
    return x


SAMPLERS = {"ddpm": sample_ddpm, "ddim": sample_ddim}

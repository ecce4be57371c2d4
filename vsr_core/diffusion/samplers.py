"""Every sampler of the project behind one signature, as pure functions (k-diffusion's sampling.py style).

    sampler(denoise, x, schedule, noise, *, y=None, guide=None, callback=None, **options) -> x

- denoise(x, i) -> (x0, eps): the network at schedule index i (see prediction.py;
  ResShift's samplers use x0 only),
- x: the start (DDPM/DDIM: the noised upscaled LR latent, schedules.q_sample;
  ResShift: a prior sample around the LR latent),
- schedule: the process's schedule (DDPMSchedule, ResShiftSchedule, BlurResShiftSchedule),
- noise(i) -> tensor like x: fresh noise for the step leaving index i,
- y: the LR latent the process shifts from (only blurring ResShift reads it),
- guide(x, i) after each step (motion guidance lives there), then callback(i, x).

Each runs from the noisiest index down to 0. Here: ancestral DDPM and DDIM over a
respaced schedule; ResShift's two chains live beside their schedules and are
listed in SAMPLERS too.
"""
from __future__ import annotations

from typing import Callable

import torch

from .blur_resshift import sample_blur_resshift   # ResShift's chains sit beside their schedules
from .resshift import sample_resshift_from
from .schedules import DDPMSchedule

Denoise = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
Noise = Callable[[int], torch.Tensor]
Guide = Callable[[torch.Tensor, int], torch.Tensor]


def sample_ddpm(denoise: Denoise, x: torch.Tensor, schedule: DDPMSchedule, noise: Noise, *,
                y: torch.Tensor | None = None, guide: Guide | None = None, callback=None) -> torch.Tensor:
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


def sample_ddim(denoise: Denoise, x: torch.Tensor, schedule: DDPMSchedule, noise: Noise, *,
                y: torch.Tensor | None = None, guide: Guide | None = None, callback=None,
                eta: float = 0.0) -> torch.Tensor:
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


SAMPLERS = {"ddpm": sample_ddpm, "ddim": sample_ddim, "resshift": sample_resshift_from,
            "blur_resshift": sample_blur_resshift}

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
respaced schedule; ResShift's two chains live beside their schedules.

SAMPLERS, at the end, is the one list of samplers: the library, the command
line and every node read their names, default steps and options from it. A
new sampler is a function here and one entry there (docs/contributing.md).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import InputError
from .blur_resshift import CHAINS, BlurResShift, sample_blur_resshift_from  # ResShift's chains sit beside
from .resshift import resshift_schedule, sample_resshift_from                # their schedules
from .sampler_options import SamplerEntry, SamplerOption
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


# ----------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------

# ResShift's schedule (its reference code's values; the journal setting is steps=4, min_noise=0.2)
RESSHIFT_SCHEDULE = {
    "kappa": SamplerOption(2.0, "noise scale of the residual shift (> 0)"),
    "power": SamplerOption(0.3, "shape of the eta schedule (> 0)"),
    "min_noise": SamplerOption(0.04, "eta at the least noisy step (0 to 1)"),
}


def _check_resshift(steps: int, options: dict) -> None:
    resshift_schedule(steps, **{k: options[k] for k in RESSHIFT_SCHEDULE})


def _check_blur_resshift(steps: int, options: dict) -> None:
    _check_resshift(steps, options)
    BlurResShift(**{k: options[k] for k in ("patch", "sigma_min", "sigma_max", "chain")})


SAMPLERS: dict[str, SamplerEntry] = {
    "ddpm": SamplerEntry(sample_ddpm, "ddpm", 50, "DDPM ancestral sampling (as MGLD-VSR)"),
    "ddim": SamplerEntry(sample_ddim, "ddpm", 50, "DDIM", options={
        "eta": SamplerOption(0.0, "0: deterministic, 1: DDPM's marginals", minimum=0.0, maximum=1.0)}),
    "resshift": SamplerEntry(
        sample_resshift_from, "resshift", 15, "residual shifting from the LR latent (ResShift, the base of "
        "SeeClear; x0-predicting models)", process_options=RESSHIFT_SCHEDULE, check=_check_resshift),
    "blur_resshift": SamplerEntry(
        sample_blur_resshift_from, "resshift", 15, "SeeClear's blurring residual shift (a per-patch DCT blur "
        "in the forward process; x0-predicting models)", process_options=RESSHIFT_SCHEDULE, options={
            "patch": SamplerOption(8, "blur block size in latent pixels", minimum=1),
            "sigma_min": SamplerOption(0.5, "blur std at the least noisy step, latent pixels", minimum=0.0),
            "sigma_max": SamplerOption(2.0, "blur std at the noisiest step (0: no blur)", minimum=0.0),
            "chain": SamplerOption("resshift", "the one-step chain (docs/guided_sample.md)", choices=CHAINS)},
        check=_check_blur_resshift),
}


def find_sampler(name: str) -> SamplerEntry:
    if name not in SAMPLERS:
        raise InputError(f"sampler={name!r}; expected one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


def describe_samplers(separator: str = "\n") -> str:
    """Each sampler, what it is and its options with their defaults (help texts, tooltips)."""
    return separator.join(f"{name}: {entry.describe()}" for name, entry in SAMPLERS.items())

"""Noise schedules of latent diffusion (SD/StableSR/MGLD): betas, respacing, posteriors.

Everything is computed in float64, as in ldm, and turned into tensors of the
sample's dtype only when used.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError


def scaled_linear_betas(num_train: int = 1000, start: float = 0.00085, end: float = 0.012) -> torch.Tensor:
    """SD's 'linear' schedule, linear in sqrt(beta): linspace(sqrt(start), sqrt(end))^2."""
    return torch.linspace(start ** 0.5, end ** 0.5, num_train, dtype=torch.float64) ** 2


def space_timesteps(num_train: int, num_steps: int) -> list[int]:
    """The training timesteps a `num_steps` sampler visits, evenly strided, both ends kept.

    guided-diffusion/ldm's space_timesteps(num_train, [num_steps]); for 1000 and 50:
    0, 20, 41, 61, ..., 979, 999.
    """
    if not isinstance(num_steps, int) or not 1 <= num_steps <= num_train:
        raise InputError(f"steps={num_steps!r} is out of range; expected an integer from 1 to {num_train}")
    if num_steps == 1:
        return [num_train - 1]
    stride = (num_train - 1) / (num_steps - 1)
    return [round(i * stride) for i in range(num_steps)]


@dataclass(frozen=True)
class DDPMSchedule:
    """A respaced ancestral schedule; index i (0 = least noisy) runs at training step timesteps[i]."""

    timesteps: torch.Tensor              # [N] int64 training steps, ascending
    alphas_cumprod: torch.Tensor         # [N] at those steps
    alphas_cumprod_prev: torch.Tensor    # [N] at the previous visited step (1 before the first)
    betas: torch.Tensor                  # [N] respaced betas: 1 - ac/ac_prev
    posterior_variance: torch.Tensor     # [N]
    posterior_log_variance: torch.Tensor  # [N] log(max(var, 1e-20)), ldm's clipping
    posterior_mean_coef_x0: torch.Tensor  # [N]
    posterior_mean_coef_xt: torch.Tensor  # [N]
    train_alphas_cumprod: torch.Tensor   # [num_train] the unrespaced schedule

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)


def ddpm_schedule(num_steps: int, betas: torch.Tensor | None = None) -> DDPMSchedule:
    """Respace a training schedule (default: SD's, 1000 steps) to `num_steps` steps."""
    betas = scaled_linear_betas() if betas is None else betas.double()
    train_ac = torch.cumprod(1.0 - betas, dim=0)
    steps = torch.tensor(space_timesteps(len(betas), num_steps), dtype=torch.long)
    ac = train_ac[steps]
    ac_prev = torch.cat([ac.new_ones(1), ac[:-1]])
    new_betas = 1.0 - ac / ac_prev
    var = new_betas * (1.0 - ac_prev) / (1.0 - ac)
    return DDPMSchedule(
        timesteps=steps, alphas_cumprod=ac, alphas_cumprod_prev=ac_prev, betas=new_betas,
        posterior_variance=var, posterior_log_variance=torch.log(var.clamp(min=1e-20)),
        posterior_mean_coef_x0=new_betas * ac_prev.sqrt() / (1.0 - ac),
        posterior_mean_coef_xt=(1.0 - ac_prev) * (1.0 - new_betas).sqrt() / (1.0 - ac),
        train_alphas_cumprod=train_ac)


def q_sample(x0: torch.Tensor, timestep: int, train_alphas_cumprod: torch.Tensor,
             noise: torch.Tensor) -> torch.Tensor:
    """Noise clean latents to training step `timestep`: sqrt(ac) x0 + sqrt(1-ac) noise."""
    ac = float(train_alphas_cumprod[timestep])
    return ac ** 0.5 * x0 + (1.0 - ac) ** 0.5 * noise

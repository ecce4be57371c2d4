"""The diffusion network as the video sampler sees it."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError
from .prediction import PREDICTIONS

SD_LATENT_SCALE = 0.18215


@dataclass
class DiffusionModel:
    """A UNet (plain, SFT/StructCond, MGLD temporal or SATeCo) with what it needs to run.

    Called as model(x, t, lr_latent, num_frames) with x [N,4,h,w] scaled latents
    and t a training timestep; returns the raw network output, which
    `prediction` says how to read.
    """

    unet: nn.Module
    context: torch.Tensor | None = None      # [1, L, D] text embedding (the empty prompt for SR)
    prediction: str = "eps"
    betas: torch.Tensor | None = None        # training betas; None = SD's scaled-linear 1000
    latent_scale: float = SD_LATENT_SCALE

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise InputError(f"prediction={self.prediction!r}; expected one of {', '.join(PREDICTIONS)}")

    def __call__(self, x: torch.Tensor, t: int, lr_latent: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Differentiable; samplers run it under torch.no_grad unless guidance needs gradients.

        Inputs move to the UNet's device (it may sit on a GPU while the sampler's
        small tensors stay on the CPU) and the output comes back to x's device.
        """
        n = x.shape[0]
        device = next(self.unet.parameters()).device
        context = None if self.context is None else self.context.to(device).expand(n, -1, -1)
        timesteps = torch.full((n,), int(t), dtype=torch.long, device=device)
        lr = None if lr_latent is None else lr_latent.to(device)
        out = self.unet(x.to(device), timesteps, context, lr_latent=lr, num_frames=num_frames)
        return out.to(x.device)


@dataclass
class SigmaDenoiser:
    """A k-diffusion style denoiser seen as a DiffusionModel (x0-prediction).

    denoise(x_k, sigma [N], context) -> x0 with x_k = x0 + sigma * eps, which is
    what ComfyUI's BaseModel.apply_model computes. DDPM latents relate by
    x_k = x_t / sqrt(alpha_cumprod_t) and sigma_t = sqrt((1 - ac_t) / ac_t), so
    any SD-family model ComfyUI loads (eps or v) can drive the video sampler.
    """

    denoise: object
    alphas_cumprod: torch.Tensor              # [num_train] of the model's training schedule
    context: torch.Tensor | None = None
    latent_scale: float = SD_LATENT_SCALE
    prediction: str = "x0"

    @property
    def betas(self) -> torch.Tensor:
        ac = self.alphas_cumprod.double()
        return 1.0 - ac / torch.cat([ac.new_ones(1), ac[:-1]])

    def __call__(self, x: torch.Tensor, t: int, lr_latent: torch.Tensor, num_frames: int) -> torch.Tensor:
        ac = float(self.alphas_cumprod[int(t)])
        sigma = torch.full((x.shape[0],), ((1 - ac) / ac) ** 0.5, dtype=x.dtype, device=x.device)
        context = None if self.context is None else self.context.to(x).expand(x.shape[0], -1, -1)
        return self.denoise(x / ac ** 0.5, sigma, context)

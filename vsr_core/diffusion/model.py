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

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t: int, lr_latent: torch.Tensor, num_frames: int) -> torch.Tensor:
        n = x.shape[0]
        context = None if self.context is None else self.context.to(x).expand(n, -1, -1)
        timesteps = torch.full((n,), int(t), dtype=torch.long, device=x.device)
        return self.unet(x, timesteps, context, lr_latent=lr_latent, num_frames=num_frames)

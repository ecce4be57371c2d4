"""What a diffusion network predicts, turned into (x0, eps) at a given alpha_cumprod."""
from __future__ import annotations

import torch

from ..errors import InputError

PREDICTIONS = ("eps", "v", "x0")


def to_x0_eps(output: torch.Tensor, x_t: torch.Tensor, alpha_cumprod: float,
              prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) from an eps-, v- or x0-prediction, with x_t = sqrt(a) x0 + sqrt(1-a) eps."""
    a, s = alpha_cumprod ** 0.5, (1.0 - alpha_cumprod) ** 0.5
    if prediction == "eps":
        return (x_t - s * output) / a, output
    if prediction == "v":  # v = sqrt(a) eps - sqrt(1-a) x0
        return a * x_t - s * output, s * x_t + a * output
    if prediction == "x0":
        return output, (x_t - a * output) / s
    raise InputError(f"prediction={prediction!r}; expected one of {', '.join(PREDICTIONS)}")

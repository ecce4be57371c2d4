"""Spatial tiling of a denoiser with Gaussian-weighted aggregation (StableSR's canvas).

At every step each latent tile is denoised on its own and the predictions are
averaged with weights that peak at the tile centre, so no seam appears and
memory depends on the tile size only.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import InputError
from ..models.tiling import tile_starts

TileDenoise = Callable[[torch.Tensor, slice, slice], tuple[torch.Tensor, torch.Tensor]]


def gaussian_weights(height: int, width: int, var: float = 0.01) -> torch.Tensor:
    """[h,w] product of per-axis Gaussians, exp(-(x-mid)^2 / (W^2 * 2 var)) (StableSR, var 0.01)."""
    def axis(n):
        x = torch.arange(n, dtype=torch.float64)
        mid = (n - 1) / 2
        return torch.exp(-(x - mid) ** 2 / (n * n) / (2 * var)) / math.sqrt(2 * math.pi * var)
    return (axis(height)[:, None] * axis(width)[None, :]).float()


def tiled_denoise(denoise_tile: TileDenoise, x: torch.Tensor, tile: int, overlap: int,
                  var: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) for latents x [...,h,w], from tiles of `tile` latent pixels.

    denoise_tile(x_tile, rows, cols) returns the tile's (x0, eps); rows/cols
    locate the tile, so per-tile conditions (the LR structure) can be cropped.
    A tile at least as large as x runs once, exactly like the untiled call.
    """
    h, w = x.shape[-2:]
    if tile < 8 or not 0 <= overlap < tile:
        raise InputError(f"latent tile={tile}, overlap={overlap}; expected tile >= 8 and 0 <= overlap < tile")
    if tile >= h and tile >= w:
        return denoise_tile(x, slice(0, h), slice(0, w))
    x0_sum = torch.zeros_like(x)
    eps_sum = torch.zeros_like(x)
    weight_sum = x.new_zeros((h, w))
    for top in tile_starts(h, tile, overlap):
        for left in tile_starts(w, tile, overlap):
            rows, cols = slice(top, min(top + tile, h)), slice(left, min(left + tile, w))
            x0, eps = denoise_tile(x[..., rows, cols], rows, cols)
            weight = gaussian_weights(rows.stop - rows.start, cols.stop - cols.start, var).to(x)
            x0_sum[..., rows, cols] += weight * x0
            eps_sum[..., rows, cols] += weight * eps
            weight_sum[rows, cols] += weight
    return x0_sum / weight_sum, eps_sum / weight_sum

"""SRVGGNetCompact, Real-ESRGAN's compact per-frame network (realesr-animevideov3, realesr-general-x4v3),
with the original parameter names so its checkpoints load key for key.

body = [conv 3->F, PReLU] + num_conv x [conv F->F, PReLU] + [conv F->3*s^2]; the output is
pixel_shuffle(body(x), s) plus the nearest-upsampled input, so the network learns a residual.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class SRVGGConfig:
    num_feat: int = 64
    num_conv: int = 16
    scale: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


class SRVGGNetCompact(nn.Module):
    """RGB 0..1 [B,3,h,w] -> [B,3,h*scale,w*scale] (not clamped, like the original)."""

    def __init__(self, config: SRVGGConfig | None = None):
        super().__init__()
        cfg = self.config = config or SRVGGConfig()
        self.scale = cfg.scale
        f = cfg.num_feat
        self.body = nn.ModuleList([nn.Conv2d(3, f, 3, 1, 1), nn.PReLU(f)])
        for _ in range(cfg.num_conv):
            self.body.extend([nn.Conv2d(f, f, 3, 1, 1), nn.PReLU(f)])
        self.body.append(nn.Conv2d(f, 3 * cfg.scale * cfg.scale, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.body:
            y = layer(y)
        return F.pixel_shuffle(y, self.scale) + F.interpolate(x, scale_factor=self.scale, mode="nearest")

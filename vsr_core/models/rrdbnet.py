"""RRDBNet, the generator of ESRGAN / Real-ESRGAN (x4plus, x4plus-anime, x2plus), with the original
parameter names so a Real-ESRGAN checkpoint loads key for key.

conv_first -> num_block Residual-in-Residual Dense Blocks (body.N.rdb1..3, each five 3x3 convolutions
with dense connections, LeakyReLU 0.2, residuals scaled by 0.2) -> conv_body, added to conv_first's
output -> two nearest x2 upsamplings, each followed by a convolution (conv_up1, conv_up2) -> conv_hr ->
conv_last. The network always upsamples x4 internally; the x2 and x1 variants first fold their input
into channels with pixel_unshuffle (12 or 48 input channels), which is how their scale is read back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# pixel_unshuffle factor in front of the network, by output scale (the body always upsamples x4)
UNSHUFFLE = {4: 1, 2: 2, 1: 4}


@dataclass
class RRDBNetConfig:
    num_block: int = 23
    num_feat: int = 64
    num_grow_ch: int = 32
    scale: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


class ResidualDenseBlock(nn.Module):
    """ESRGAN residual dense block (basicsr): 5 dense convs, LeakyReLU 0.2, x0.2 residual."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three RDBs, x0.2 residual."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """RGB 0..1 [B,3,h,w] -> [B,3,h*scale,w*scale] (not clamped, like the original)."""

    def __init__(self, config: RRDBNetConfig | None = None):
        super().__init__()
        cfg = self.config = config or RRDBNetConfig()
        if cfg.scale not in UNSHUFFLE:
            raise ValueError(f"RRDBNet scale={cfg.scale!r}; expected one of {sorted(UNSHUFFLE)}")
        self.scale = cfg.scale
        f = cfg.num_feat
        self.conv_first = nn.Conv2d(3 * UNSHUFFLE[cfg.scale] ** 2, f, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(f, cfg.num_grow_ch) for _ in range(cfg.num_block)])
        self.conv_body = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_hr = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_last = nn.Conv2d(f, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fold = UNSHUFFLE[self.scale]
        if fold > 1:
            x = F.pixel_unshuffle(x, fold)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))

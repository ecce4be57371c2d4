"""The relay's learned fusion: a small network that corrects the hand-designed mix of carried detail.

Per frame t at output resolution it sees the faithful frame S_t, the detail carried from the previous and
the next keyframe (already warped, relay/transfer.py), their trust maps, the hand-designed mix M_t and how
near each keyframe is. It returns the detail to add:

    detail = M_t + a_prev * D_prev + a_next * D_next + r

where the per-pixel weights ``a`` (at input resolution, upsampled) re-open or close each keyframe's gate
and ``r`` corrects what is left. The last layer starts at zero, so an untrained fusion is exactly the
hand-designed relay (a safe warm start). It works at 1/``unshuffle`` of the output size (pixel-unshuffle
in, pixel-shuffle out), so it costs a small share of the relay's time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError

# Carried detail is small (a few hundredths); scaled up so it weighs like the image in the first layer.
DETAIL_GAIN = 8.0
FRAME_CHANNELS = 14        # S (3), D_prev (3), trust_prev (1), D_next (3), trust_next (1), M (3)
WEIGHT_MAPS = 2            # a_prev, a_next


@dataclass
class RelayFusionConfig:
    channels: int = 16
    blocks: int = 2
    unshuffle: int = 4

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RelayFusionConfig":
        return cls(**{k: d[k] for k in ("channels", "blocks", "unshuffle") if k in d})


class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


class RelayFusion(nn.Module):
    def __init__(self, config: RelayFusionConfig | None = None, **kwargs):
        super().__init__()
        self.config = cfg = config or RelayFusionConfig(**kwargs)
        if cfg.channels < 1 or cfg.blocks < 0 or cfg.unshuffle < 1:
            raise InputError(f"relay fusion {cfg}; expected channels >= 1, blocks >= 0, unshuffle >= 1")
        u = cfg.unshuffle
        self.inp = nn.Conv2d(FRAME_CHANNELS * u * u + 2, cfg.channels, 1)
        self.body = nn.Sequential(*[_Block(cfg.channels) for _ in range(cfg.blocks)])
        self.head = nn.Conv2d(cfg.channels, WEIGHT_MAPS + 3 * u * u, 3, 1, 1)
        nn.init.zeros_(self.head.weight)        # starts as the hand-designed relay, exactly
        nn.init.zeros_(self.head.bias)

    def forward(self, faithful: torch.Tensor, prev_detail: torch.Tensor, prev_trust: torch.Tensor,
                next_detail: torch.Tensor, next_trust: torch.Tensor, mix: torch.Tensor,
                nearness: torch.Tensor) -> torch.Tensor:
        """All [N,C,H,W] at output size (H, W multiples of ``unshuffle``; C 3 or 1 for trust), ``nearness``
        [N,2] (1/(1 + distance) of the previous and next keyframe, 0 where there is none) -> detail [N,3,H,W]."""
        u = self.config.unshuffle
        parts = (faithful, prev_detail * DETAIL_GAIN, prev_trust, next_detail * DETAIL_GAIN, next_trust,
                 mix * DETAIL_GAIN)
        x = torch.cat([p.float() for p in parts], 1)
        n, _, h, w = x.shape
        if h % u or w % u:
            raise InputError(f"relay fusion input {w}x{h}; expected sides that are multiples of {u}")
        near = nearness.float().reshape(n, 2, 1, 1).expand(n, 2, h // u, w // u)
        feat = F.leaky_relu(self.inp(torch.cat([F.pixel_unshuffle(x, u), near], 1)), 0.1)
        out = self.head(self.body(feat))
        weights = F.interpolate(out[:, :WEIGHT_MAPS], scale_factor=u, mode="bilinear", align_corners=False)
        residual = F.pixel_shuffle(out[:, WEIGHT_MAPS:], u)
        return mix + weights[:, :1] * prev_detail + weights[:, 1:] * next_detail + residual / DETAIL_GAIN

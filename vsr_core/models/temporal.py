"""Temporal layers of MGLD-VSR: a temporal conv and a temporal self-attention.

Both work on frame batches laid out as ldm does, x [B*T, C, H, W] with the T
frames of each clip contiguous, and blend their result with the input through
a learnable scalar: out = alpha * f(x) + (1 - alpha) * x.

Key names follow MGLD (`temporal_conv`, `temporal_attn`, `norm`,
`temporal_alpha`) so its checkpoints load unchanged. MGLD leaves
`temporal_alpha` uninitialised (torch.Tensor(1)); we start it at 0, which makes
a fresh layer an exact identity: 0 * f(x) + 1 * x == x bit for bit.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError

__all__ = ["SpatialTemporalConv", "TemporalAttention", "frames_of"]


def frames_of(x: torch.Tensor, num_frames: int | None) -> int:
    """Frames per clip in a [B*T, ...] batch; None means the batch is one clip."""
    n = x.shape[0]
    if num_frames is None:
        return n
    num_frames = int(num_frames)
    if num_frames < 1 or n % num_frames:
        raise InputError(
            f"num_frames: expected a positive divisor of the batch size {n} "
            f"(the batch holds B clips of T frames), got {num_frames}")
    return num_frames


def _like(x: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """res reshaped to x's shape AND memory layout (x may be channels-last after a
    conv): the blend then keeps x's layout, so the next layers run exactly the
    same kernels as without this layer and alpha = 0 stays bit-exact end to end."""
    return torch.empty_like(x).copy_(res.reshape(x.shape))


class SpatialTemporalConv(nn.Module):
    """Per-pixel 1-D conv over time (kernel 3, zero padded at the clip ends)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.temporal_conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
        self.temporal_alpha = nn.Parameter(torch.zeros(1))

    def reset_parameters(self) -> None:
        """Fresh conv, alpha = 0: an exact identity again."""
        self.temporal_conv.reset_parameters()
        with torch.no_grad():
            self.temporal_alpha.zero_()

    def forward(self, x: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        bt, c, h, w = x.shape
        t = frames_of(x, num_frames)
        # (b t) c h w -> b c t h w
        v = x.reshape(bt // t, t, c, h, w).transpose(1, 2)
        res = _like(x, self.temporal_conv(v).transpose(1, 2))
        alpha = self.temporal_alpha.to(x.dtype)
        return alpha * res + (1 - alpha) * x


class TemporalSelfAttention(nn.Module):
    """MGLD's MemoryEfficientSelfAttention: q/k/v without bias, to_out.0 Linear."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (f(x).reshape(b, n, self.heads, -1).transpose(1, 2)
                   for f in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class TemporalAttention(nn.Module):
    """LayerNorm then self-attention over the T tokens of each pixel."""

    def __init__(self, channels: int, num_heads: int = 8, dim_head: int = 64):
        super().__init__()
        self.channels = channels
        self.temporal_attn = TemporalSelfAttention(channels, num_heads, dim_head)
        self.norm = nn.LayerNorm(channels)
        self.temporal_alpha = nn.Parameter(torch.zeros(1))

    def reset_parameters(self) -> None:
        """Fresh projections and norm, alpha = 0: an exact identity again."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.LayerNorm)):
                m.reset_parameters()
        with torch.no_grad():
            self.temporal_alpha.zero_()

    def forward(self, x: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        bt, c, h, w = x.shape
        t = frames_of(x, num_frames)
        b = bt // t
        # (b t) c h w -> (b h w) t c
        tokens = x.reshape(b, t, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, t, c)
        res = self.temporal_attn(self.norm(tokens))
        res = _like(x, res.reshape(b, h * w, t, c).permute(0, 2, 3, 1))
        alpha = self.temporal_alpha.to(x.dtype)
        return alpha * res + (1 - alpha) * x

"""Attention layers of the ldm UNet, computed with torch SDPA.

Key names match ldm/modules/attention.py (SD 2.x `SpatialTransformer` with
`use_linear`, which StableSR calls SpatialTransformerV2) and the legacy
`AttentionBlock` of openaimodel.py used by StableSR's structure encoder.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .timestep import GroupNorm32, normalization, zero_module

__all__ = ["CrossAttention", "FeedForward", "BasicTransformerBlock",
           "SpatialTransformer", "AttentionBlock"]


class CrossAttention(nn.Module):
    """Multi-head attention; self-attention when context is None."""

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 8,
                 dim_head: int = 64, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        if context.shape[0] != x.shape[0]:
            # One prompt for a batch of frames: repeat it (as MGLD's xformers path does).
            context = context.repeat_interleave(x.shape[0] // context.shape[0], dim=0)
        b, n, _ = x.shape
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        q, k, v = (z.reshape(b, z.shape[1], self.heads, -1).transpose(1, 2) for z in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """ff.net = [GEGLU (net.0.proj), Dropout, Linear (net.2)]."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None,
                 disable_self_attn: bool = False):
        super().__init__()
        self.disable_self_attn = disable_self_attn
        self.attn1 = CrossAttention(dim, context_dim if disable_self_attn else None, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attn1(self.norm1(x), context if self.disable_self_attn else None) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """norm -> proj_in -> transformer_blocks -> proj_out, plus the input.

    use_linear (SD 2.x) projects tokens with Linear layers; otherwise (SD 1.x)
    with 1x1 convs before flattening. ldm builds the linear proj_out as
    Linear(in_channels, inner_dim); both are equal whenever the layer is used
    (heads * dim_head == channels), and we use the shape-correct order.
    """

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int = 1,
                 context_dim: int | None = None, use_linear: bool = True,
                 disable_self_attn: bool = False):
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        # ldm's Normalize: GroupNorm(32, C, eps=1e-6).
        self.norm = GroupNorm32(32, channels, eps=1e-6)
        if use_linear:
            self.proj_in = nn.Linear(channels, inner)
        else:
            self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim, disable_self_attn)
            for _ in range(depth))
        if use_linear:
            self.proj_out = zero_module(nn.Linear(inner, channels))
        else:
            self.proj_out = zero_module(nn.Conv2d(inner, channels, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        x_in = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.flatten(2).transpose(1, 2)
        if self.use_linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context)
        if self.use_linear:
            x = self.proj_out(x)
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in


class AttentionBlock(nn.Module):
    """openaimodel AttentionBlock: norm, qkv (Conv1d), proj_out (Conv1d).

    legacy_order=True is QKVAttentionLegacy (split heads, then q/k/v), the
    default of StableSR's structure encoder.
    """

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1,
                 legacy_order: bool = True):
        super().__init__()
        self.num_heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        self.legacy_order = legacy_order
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        n, heads = qkv.shape[-1], self.num_heads
        if self.legacy_order:
            q, k, v = qkv.reshape(b, heads, 3 * c // heads, n).chunk(3, dim=2)
        else:
            q, k, v = (z.reshape(b, heads, c // heads, n) for z in qkv.chunk(3, dim=1))
        # [b, heads, ch, n] -> [b, heads, n, ch], contiguous so SDPA takes its fused (flash) kernel
        q, k, v = (z.transpose(2, 3).contiguous() for z in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        h = self.proj_out(out.transpose(2, 3).reshape(b, c, n))
        return (x + h).reshape(b, c, *spatial)

"""SATeCo's spatial and temporal feature adaptation (methods.md section 1).

SATeCo inserts, in every decoder block of the frozen UNet and of the VAE
decoder, an SFA (per-pixel affine modulation of the feature by the LR latent
feature) and a TFA (self-attention inside 8x8xL tubelets, then cross-attention
to the matching LR tubelet). No code is public, so the exact layer shapes are
ours; the equations follow the paper.

Both modules are residual and their last layers start at zero, so an untrained
SFA or TFA returns its input bit for bit and a model with them reproduces the
frozen base model exactly (tests/test_unet.py checks this).

Inputs: feature x [B*T, C, H, W] (T frames of a clip contiguous, as ldm lays
out video batches), LR condition g [B*T, Cg, H, W] at the same spatial size,
and num_frames T (None: the whole batch is one clip).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from .temporal import frames_of

__all__ = ["SFA", "TFA", "LRConditionEncoder", "zero_module"]


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _check_cond(x: torch.Tensor, g: torch.Tensor, cond_channels: int, who: str) -> None:
    if g is None:
        raise InputError(f"{who}: the LR condition g is required (got None)")
    if g.dim() != 4 or g.shape[0] != x.shape[0] or g.shape[-2:] != x.shape[-2:] \
            or g.shape[1] != cond_channels:
        raise InputError(
            f"{who}: expected the LR condition g as [{x.shape[0]}, {cond_channels}, "
            f"{x.shape[-2]}, {x.shape[-1]}] to match the feature {list(x.shape)}, "
            f"got {list(g.shape)}")


class SFA(nn.Module):
    """Spatial feature adaptation: f~ = S(g) * (f - mu)/sigma + M(g).

    Written in residual form, f~ = f + S(g) * norm(f) + M(g), which is the
    paper's equation with S' = sigma + S and M' = mu + M; S and M start at zero.
    mu and sigma are per frame and per channel (instance statistics over H, W).
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int = 128):
        super().__init__()
        self.channels, self.cond_channels = channels, cond_channels
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.SiLU())
        self.to_scale = zero_module(nn.Conv2d(hidden, channels, 3, padding=1))
        self.to_shift = zero_module(nn.Conv2d(hidden, channels, 3, padding=1))

    def reset_parameters(self) -> None:
        """Fresh hidden conv, zero outputs: an exact identity again."""
        self.shared[0].reset_parameters()
        zero_module(self.to_scale)
        zero_module(self.to_shift)

    def forward(self, x: torch.Tensor, g: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        _check_cond(x, g, self.cond_channels, "SFA")
        xf = x.float()
        mu = xf.mean(dim=(2, 3), keepdim=True)
        var = xf.var(dim=(2, 3), keepdim=True, unbiased=False)
        normed = ((xf - mu) * torch.rsqrt(var + 1e-5)).to(x.dtype)
        a = self.shared(g.to(x.dtype))
        # The update takes x's memory layout so x + 0 keeps it (see temporal._like).
        delta = torch.empty_like(x).copy_(self.to_scale(a) * normed + self.to_shift(a))
        return x + delta


def _attention(q, k, v, heads, mask):
    n, L, c = q.shape
    q, k, v = (z.reshape(n, z.shape[1], heads, -1).transpose(1, 2) for z in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(n, L, c)


class TFA(nn.Module):
    """Temporal feature alignment in window x window x frames tubelets.

    Self-attention over the hwL tokens of each tubelet (the paper's Conv3D
    1x1x1 projections are Linear layers on the tokens), then cross-attention
    from those tokens to the LR tubelet at the same place. Frames and pixels
    added to fill the last tubelet are masked out of the keys and cropped.
    """

    def __init__(self, channels: int, cond_channels: int, window: int = 8, frames: int = 6,
                 head_channels: int = 64):
        super().__init__()
        self.channels, self.cond_channels = channels, cond_channels
        self.window, self.frames = int(window), int(frames)
        self.heads = max(1, channels // head_channels)
        if channels % self.heads:
            raise InputError(f"TFA channels: expected a multiple of {self.heads}, got {channels}")
        self.norm_in = nn.LayerNorm(channels)
        self.to_qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.proj_self = zero_module(nn.Linear(channels, channels))
        self.norm_q = nn.LayerNorm(channels)
        self.norm_cond = nn.LayerNorm(cond_channels)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_kv = nn.Linear(cond_channels, 2 * channels, bias=False)
        self.proj_cross = zero_module(nn.Linear(channels, channels))

    def reset_parameters(self) -> None:
        """Fresh projections and norms, zero output projections: an exact identity again."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.LayerNorm)):
                m.reset_parameters()
        zero_module(self.proj_self)
        zero_module(self.proj_cross)

    def _tubes(self, z, b, t, geo):
        """[B*T, C, H, W] -> [tubelets, L*wh*ww, C] (with padding)."""
        L, wh, ww, pt, ph, pw = geo
        c, h, w = z.shape[1:]
        z = z.reshape(b, t, c, h, w)
        if pt or ph or pw:
            z = F.pad(z, (0, pw, 0, ph, 0, 0, 0, pt))
        nt, nh, nw = (t + pt) // L, (h + ph) // wh, (w + pw) // ww
        z = z.reshape(b, nt, L, c, nh, wh, nw, ww).permute(0, 1, 4, 6, 2, 5, 7, 3)
        return z.reshape(b * nt * nh * nw, L * wh * ww, c)

    def _untube(self, z, b, t, h, w, geo):
        L, wh, ww, pt, ph, pw = geo
        c = z.shape[-1]
        nt, nh, nw = (t + pt) // L, (h + ph) // wh, (w + pw) // ww
        z = z.reshape(b, nt, nh, nw, L, wh, ww, c).permute(0, 1, 4, 7, 2, 5, 3, 6)
        z = z.reshape(b, nt * L, c, nh * wh, nw * ww)[:, :t, :, :h, :w]
        return z.reshape(b * t, c, h, w)

    def forward(self, x: torch.Tensor, g: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        _check_cond(x, g, self.cond_channels, "TFA")
        bt, c, h, w = x.shape
        t = frames_of(x, num_frames)
        b = bt // t
        L, wh, ww = min(self.frames, t), min(self.window, h), min(self.window, w)
        geo = (L, wh, ww, -t % L, -h % wh, -w % ww)
        tokens = self._tubes(x, b, t, geo)
        cond = self._tubes(g.to(x.dtype), b, t, geo)
        mask = None
        if any(geo[3:]):
            valid = torch.ones(bt, 1, h, w, dtype=x.dtype, device=x.device)
            mask = self._tubes(valid, b, t, geo)[:, None, None, :, 0] > 0.5

        q, k, v = self.to_qkv(self.norm_in(tokens)).chunk(3, dim=-1)
        d_self = self.proj_self(_attention(q, k, v, self.heads, mask))
        f_hat = tokens + d_self
        k2, v2 = self.to_kv(self.norm_cond(cond)).chunk(2, dim=-1)
        d_cross = self.proj_cross(_attention(self.to_q(self.norm_q(f_hat)), k2, v2, self.heads, mask))
        # Add only the learned update to x, so zero updates leave x untouched.
        delta = torch.empty_like(x).copy_(self._untube(d_self + d_cross, b, t, h, w, geo))
        return x + delta


class LRConditionEncoder(nn.Module):
    """LR latent -> one feature map per UNet resolution, keyed by width.

    g at the latent size, then halved once per UNet level, so every decoder
    block finds a condition at its own spatial size (looked up by
    str(width), as StableSR looks up its structure features).
    """

    def __init__(self, in_channels: int, channels: int, levels: int):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Conv2d(channels, channels, 3, stride=2, padding=1))
            for _ in range(max(0, levels - 1)))

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.reset_parameters()

    def forward(self, lr_latent: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.conv_in(lr_latent)
        out = {str(h.shape[-1]): h}
        for layer in self.down:
            h = layer(h)
            out[str(h.shape[-1])] = h
        return out

"""The video upscaler: SATeCo's first stage with VideoGigaGAN's stabilisers.

Shape of the network (everything before the last layer runs at LR resolution,
so it is cheap enough for a CPU)::

    LR frames x_t ─ conv ─ ResBlocks ─(+ context branch: BlurPool down, ResBlock, up)─ f_t
    backward pass  t = T-1 … 0:  b_t = Prop([f_t, W(b_{t+1}, flow t→t+1), |x_t − W(x_{t+1})|, valid])
    forward pass   t = 0 … T-1:  h_t = Prop([f_t, b_t, W(h_{t-1}, flow t→t−1), |x_t − W(x_{t-1})|, valid])
    TMSA-like blocks: window self-attention over tubelets of `attn_frames`
                      frames × `attn_window`² pixels (shifted every other block)
    reconstruction: conv(h_t + P(HF shuttle of f_t)) ─ conv → 3·s² ─ PixelShuffle(s)  + bicubic(x_t)

- Bidirectional flow-guided propagation is BasicVSR++'s first-order grid
  (VideoGigaGAN uses it in front of its generator). W is ``backward_warp``
  from ``vsr_core.flow``; the absolute difference of the warped LR frame and a
  validity mask tell the network where the flow can be trusted.
- ``blurpool=True`` makes the (only) downsampling, in the context branch, a
  stride-1 conv followed by BlurPool instead of a stride-2 conv.
- ``hf_shuttle=True`` carries ``f − LowPass(f)`` of the shallow features
  straight to the reconstruction, so propagation and attention (which smooth)
  do not wash out fine texture.
- ``cleaner_blocks > 0`` puts RealBasicVSR's image pre-cleaning stage in
  front: a small residual network at LR, trained to output the clean bicubic
  LR frame, so noise and codec blocks are removed before propagation can
  spread them (and it learns to do nothing on clean input).
- ``occlusion_mask=True`` gates the warped neighbour state (and the validity
  cue) by forward-backward flow consistency, so features are not carried
  where the flow is wrong (occlusions, non-rigid motion): the ghosting fix.
- ``temporal=False`` (per-frame mode) disables propagation and makes the
  attention windows one frame long: the same weights then act as a single-image
  upscaler. Training uses it on a fraction of steps, so this mode is a fair
  baseline for measuring what the temporal machinery buys (warping error).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from ..flow.occlusion import occlusion_masks
from ..flow.warp import backward_warp, inside_mask
from ..ops.frames import check_frames
from .blurpool import downsample, low_pass

MIN_SIDE = 8


@dataclass
class UpscalerConfig:
    scale: int = 4
    channels: int = 32
    feat_blocks: int = 2
    prop_blocks: int = 2
    attn_blocks: int = 2
    attn_frames: int = 2
    attn_window: int = 8
    heads: int = 2
    mlp_ratio: float = 2.0
    blurpool: bool = True
    hf_shuttle: bool = True
    cleaner_blocks: int = 0       # > 0: RealBasicVSR-style LR cleaning stage in front (real footage)
    occlusion_mask: bool = False  # drop propagated features where forward and backward flow disagree

    def __post_init__(self):
        if self.scale not in (2, 4):
            raise InputError(f"upscaler scale={self.scale!r}; expected 2 or 4")
        if self.channels < 4 or self.channels % self.heads:
            raise InputError(f"upscaler channels={self.channels}; expected >= 4 and divisible by heads={self.heads}")
        if self.attn_frames < 1 or self.attn_window < 1:
            raise InputError(f"attn_frames={self.attn_frames}, attn_window={self.attn_window}; expected >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UpscalerConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"upscaler config has unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**d)


class ResBlock(nn.Module):
    """conv-LeakyReLU-conv with identity skip (BasicVSR's ResidualBlockNoBN)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)
        nn.init.kaiming_normal_(self.conv1.weight, a=0.1)
        self.conv2.weight.data.mul_(0.1)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x):
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


class Propagation(nn.Module):
    """Fuse [inputs] -> C channels, then ResBlocks."""

    def __init__(self, cin: int, c: int, blocks: int):
        super().__init__()
        self.fuse = nn.Conv2d(cin, c, 3, 1, 1)
        self.body = nn.Sequential(*[ResBlock(c) for _ in range(blocks)])

    def forward(self, x):
        return self.body(F.leaky_relu(self.fuse(x), 0.1))


class Cleaner(nn.Module):
    """LR frame -> cleaned LR frame (residual; starts as the identity)."""

    def __init__(self, c: int, blocks: int):
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, 1, 1)
        self.body = nn.Sequential(*[ResBlock(c) for _ in range(blocks)])
        self.tail = nn.Conv2d(c, 3, 3, 1, 1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x):
        return x + self.tail(self.body(F.leaky_relu(self.head(x), 0.1)))


class WindowAttentionBlock(nn.Module):
    """Pre-norm transformer block over tubelets (frames x window x window tokens).

    Windows are built by replicate-padding, not by rolling, so a shifted window
    never mixes the first and the last frame (or opposite image borders).
    """

    def __init__(self, c: int, heads: int, frames: int, window: int, mlp_ratio: float, shift: bool):
        super().__init__()
        self.c, self.heads, self.frames, self.window, self.shift = c, heads, frames, window, shift
        self.norm1 = nn.LayerNorm(c)
        self.pos = nn.Parameter(torch.zeros(frames * window * window, c))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        self.norm2 = nn.LayerNorm(c)
        hidden = int(c * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(c, hidden), nn.GELU(), nn.Linear(hidden, c))
        for lin in (self.proj, self.mlp[2]):   # start as identity
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, temporal: bool = True) -> torch.Tensor:
        b, t, c, h, w = x.shape
        ws = self.window
        tw = min(self.frames, t) if temporal else 1
        so = ws // 2 if self.shift else 0
        to = tw // 2 if (self.shift and tw > 1) else 0
        ph, pw = so + (-(h + so)) % ws, so + (-(w + so)) % ws
        pt = to + (-(t + to)) % tw
        y = x
        if pt:   # replicate frames at both ends in time
            y = torch.cat([y[:, :1].expand(b, to, c, h, w), y, y[:, -1:].expand(b, pt - to, c, h, w)], dim=1)
        tp = y.shape[1]
        y = y.reshape(b * tp, c, h, w)
        if ph or pw:
            y = F.pad(y, (so, pw - so, so, ph - so), mode="replicate")
        hp, wp = h + ph, w + pw
        nt, nh, nw = tp // tw, hp // ws, wp // ws
        # (b nt tw) c (nh ws) (nw ws) -> (b nt nh nw) (tw ws ws) c
        y = y.reshape(b, nt, tw, c, nh, ws, nw, ws).permute(0, 1, 4, 6, 2, 5, 7, 3)
        tokens = y.reshape(b * nt * nh * nw, tw * ws * ws, c)
        tokens = tokens + self._attn(self.norm1(tokens) + self.pos[:tokens.shape[1]])
        tokens = tokens + self.mlp(self.norm2(tokens))
        y = tokens.reshape(b, nt, nh, nw, tw, ws, ws, c).permute(0, 1, 4, 7, 2, 5, 3, 6)
        y = y.reshape(b, tp, c, hp, wp)
        return y[:, to:to + t, :, so:so + h, so:so + w]

    def _attn(self, z: torch.Tensor) -> torch.Tensor:
        n, l, c = z.shape
        q, k, v = self.qkv(z).reshape(n, l, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, l, c))


class VideoUpscaler(nn.Module):
    """x2/x4 video upscaler. ``forward(lr [B,T,3,H,W], flow_forward, flow_backward)``.

    ``flow_forward[:, i]`` takes frame i to i+1 and ``flow_backward[:, i]``
    frame i+1 to i ([B,T-1,2,H,W] in LR pixels, vsr_core.flow convention).
    Returns [B,T,3,sH,sW] (not clamped; clamp for display).
    """

    def __init__(self, config: UpscalerConfig | None = None, **kwargs):
        super().__init__()
        cfg = config or UpscalerConfig(**kwargs)
        self.config = cfg
        c = cfg.channels
        self.cleaner = Cleaner(c // 2, cfg.cleaner_blocks) if cfg.cleaner_blocks > 0 else None
        self.head = nn.Conv2d(3, c, 3, 1, 1)
        self.feat = nn.Sequential(*[ResBlock(c) for _ in range(cfg.feat_blocks)])
        self.down = downsample(c, c, cfg.blurpool)
        self.context = ResBlock(c)
        self.context_out = nn.Conv2d(c, c, 1)
        self.backward_prop = Propagation(2 * c + 4, c, cfg.prop_blocks)
        self.forward_prop = Propagation(3 * c + 4, c, cfg.prop_blocks)
        self.attn = nn.ModuleList([
            WindowAttentionBlock(c, cfg.heads, cfg.attn_frames, cfg.attn_window, cfg.mlp_ratio, shift=bool(i % 2))
            for i in range(cfg.attn_blocks)])
        self.hf_proj = nn.Conv2d(c, c, 1) if cfg.hf_shuttle else None
        self.recon = nn.Conv2d(c, c, 3, 1, 1)
        self.to_pixels = nn.Conv2d(c, 3 * cfg.scale ** 2, 3, 1, 1)
        nn.init.zeros_(self.to_pixels.bias)
        self.to_pixels.weight.data.mul_(0.1)

    @property
    def scale(self) -> int:
        return self.config.scale

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- stages -----------------------------------------------------------
    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f0 = F.leaky_relu(self.head(x), 0.1)
        f = self.feat(f0)
        h, w = f.shape[-2:]
        ctx = self.context(F.leaky_relu(self.down(f), 0.1))
        ctx = F.interpolate(ctx, size=(h, w), mode="bilinear", align_corners=False)
        return f + self.context_out(ctx), f0

    @staticmethod
    def _neighbour(state, frame_n, frame, flow, consistent=None):
        """Warp the neighbour's state and frame onto this frame; reliability cues.

        ``consistent`` [N,1,H,W] (1 = forward-backward consistent) gates the
        warped state, so nothing is propagated where the flow is wrong."""
        if state is None or flow is None:
            n, _, h, w = frame.shape
            z = frame.new_zeros(n, 1, h, w)
            return None, z.expand(n, 3, h, w), z
        valid = inside_mask(flow)
        warped = backward_warp(state, flow)
        if consistent is not None:
            valid = valid * consistent
            warped = warped * valid
        diff = (frame - backward_warp(frame_n, flow)).abs() * valid
        return warped, diff, valid

    def _consistency(self, flow_forward, flow_backward):
        """(to_next, to_prev) [B,T-1,1,H,W]: 1 where frame i's (resp. i+1's) flow is confirmed."""
        if not self.config.occlusion_mask:
            return None, None
        b, n, _, h, w = flow_forward.shape
        occ_f, occ_b = occlusion_masks(flow_forward.reshape(b * n, 2, h, w), flow_backward.reshape(b * n, 2, h, w))
        return (1 - occ_f).reshape(b, n, 1, h, w), (1 - occ_b).reshape(b, n, 1, h, w)

    def forward(self, lr: torch.Tensor, flow_forward: torch.Tensor | None = None,
                flow_backward: torch.Tensor | None = None, temporal: bool = True,
                return_clean: bool = False):
        """``return_clean=True`` also returns the cleaning stage's LR output (training)."""
        check_frames(lr, "lr", MIN_SIDE, batched=True, values=False)   # values: checked where frames enter
        b, t, _, h, w = lr.shape
        temporal = temporal and t > 1 and flow_forward is not None and flow_backward is not None
        if temporal:
            for name, fl in (("flow_forward", flow_forward), ("flow_backward", flow_backward)):
                if tuple(fl.shape) != (b, t - 1, 2, h, w):
                    raise InputError(f"{name} has shape {tuple(fl.shape)}; expected {(b, t - 1, 2, h, w)} "
                                     f"(LR-resolution flow between consecutive frames)")
        c = self.config.channels
        flat = lr.reshape(b * t, 3, h, w)
        if self.cleaner is not None:
            flat = self.cleaner(flat)
            lr = flat.reshape(b, t, 3, h, w)
        feats, shallow = self._features(flat)
        feats = feats.reshape(b, t, c, h, w)
        to_next, to_prev = self._consistency(flow_forward, flow_backward) if temporal else (None, None)

        zeros = lr.new_zeros(b, c, h, w)
        back = [None] * t
        state = None
        for i in reversed(range(t)):
            fl = flow_forward[:, i] if temporal and i < t - 1 else None
            ok = to_next[:, i] if to_next is not None and fl is not None else None
            warped, diff, valid = self._neighbour(state, lr[:, i + 1] if fl is not None else None, lr[:, i], fl, ok)
            state = self.backward_prop(torch.cat([feats[:, i], zeros if warped is None else warped, diff, valid], 1))
            back[i] = state
        outs = []
        state = None
        for i in range(t):
            fl = flow_backward[:, i - 1] if temporal and i > 0 else None
            ok = to_prev[:, i - 1] if to_prev is not None and fl is not None else None
            warped, diff, valid = self._neighbour(state, lr[:, i - 1] if fl is not None else None, lr[:, i], fl, ok)
            state = self.forward_prop(torch.cat([feats[:, i], back[i], zeros if warped is None else warped,
                                                 diff, valid], 1))
            outs.append(state)
        y = torch.stack(outs, 1)
        for blk in self.attn:
            y = blk(y, temporal=temporal)
        y = y.reshape(b * t, c, h, w)
        if self.hf_proj is not None:
            y = y + self.hf_proj(shallow - low_pass(shallow))
        y = self.to_pixels(F.leaky_relu(self.recon(y), 0.1))
        y = F.pixel_shuffle(y, self.config.scale)
        base = F.interpolate(flat, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        out = (y + base).reshape(b, t, 3, h * self.config.scale, w * self.config.scale)
        return (out, lr) if return_clean else out


def clip_flows(lr: torch.Tensor, estimator=None, preset: str = "medium") -> tuple[torch.Tensor, torch.Tensor]:
    """DIS forward/backward flows [T-1,2,H,W] between consecutive LR frames [T,3,H,W]."""
    if estimator is None:
        from ..flow.dis import DISFlow
        estimator = DISFlow(preset)
    if lr.shape[0] < 2:
        z = lr.new_zeros(0, 2, *lr.shape[-2:])
        return z, z
    a, b = lr[:-1].detach(), lr[1:].detach()
    return estimator(a, b).to(lr), estimator(b, a).to(lr)


@torch.no_grad()
def upscale_clip(model: VideoUpscaler, lr: torch.Tensor, temporal: bool = True, estimator=None,
                 flows: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Upscale one in-memory clip [T,3,H,W] (0..1) in a single pass -> [T,3,sH,sW] clamped.

    For long videos use ``vsr_core.pipeline.upscale.upscale_frames``, which
    streams over overlapping windows with bounded memory.
    """
    check_frames(lr, "frames", MIN_SIDE)
    if temporal and lr.shape[0] > 1:
        ff, fb = flows if flows is not None else clip_flows(lr, estimator)
        out = model(lr[None], ff[None], fb[None], temporal=True)
    else:
        out = model(lr[None], temporal=False)
    return out[0].clamp_(0, 1)

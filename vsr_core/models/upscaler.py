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
- ``degradation_input=True`` gives the network a level (noise, compression,
  blur, each 0..1) that scales and shifts the cleaning stage's, the features'
  and the reconstruction's channels (FiLM); without one it estimates the
  level from the clip. 0 keeps everything in the input as detail.
- ``temporal=False`` (per-frame mode) disables propagation and makes the
  attention windows one frame long: the same weights then act as a single-image
  upscaler. Training uses it on a fraction of steps, so this mode is a fair
  baseline for measuring what the temporal machinery buys (warping error).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from ..flow.occlusion import occlusion_masks
from ..flow.warp import grid_warp, inside_mask, sampling_grid
from ..ops.frames import check_frames
from ..ops.resize import bicubic_phases
from .blurpool import downsample, low_pass
from .degradation_level import LevelEstimator, LevelModulation, modulate
from .fused_conv import conv_add, conv_leaky

MIN_SIDE = 8
# DIS preset of the propagation's flow at inference: "fast" is 2.8x cheaper than "medium" per 180x320 pair here,
# and on the held-out real clips PSNR-Y +0.04 dB (clean) / -0.02 dB (h264) against the "medium" flow of training
FLOW_PRESET = "fast"
CUE_CHANNELS = 4   # |frame - warped neighbour frame| (3) and the validity mask (1)


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
    degradation_input: bool = False  # told how degraded its input is (models.degradation_level), or estimates it
    level_motion: bool = False       # its level estimator also reads the motion-compensated change between frames
    level_grid: bool = False         # ... and the codec's block grid (steps across its lines vs elsewhere)

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
        return conv_add(self.conv2, conv_leaky(self.conv1, x, 0.1), x)     # fused on CPUs (models.fused_conv)


class Propagation(nn.Module):
    """Fuse [context..., neighbour state, cues] -> C channels, then ResBlocks.

    The fuse convolution is linear in its input, so it runs as two parts: the
    part over what is known for all frames beforehand (context, cues) batched
    over the clip (``prefuse``), and only the part over the recurrent
    neighbour state frame by frame (``step``). Same weights, same sums, no
    per-frame concatenation; the state's C input channels sit just before the
    4 cue channels in ``fuse``'s weight (checkpoint layout)."""

    def __init__(self, cin: int, c: int, blocks: int):
        super().__init__()
        self.fuse = nn.Conv2d(cin, c, 3, 1, 1)
        self.body = nn.Sequential(*[ResBlock(c) for _ in range(blocks)])

    def _split_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.fuse.weight
        c, state_at = w.shape[0], w.shape[1] - w.shape[0] - CUE_CHANNELS
        fmt = torch.channels_last if w.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        known = torch.cat([w[:, :state_at], w[:, state_at + c:]], 1).contiguous(memory_format=fmt)
        return known, w[:, state_at:state_at + c].contiguous(memory_format=fmt)

    def prefuse(self, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``known`` [N, cin-C, H, W] (context then cues) -> (its share of the fusion with the bias, state weight)."""
        w_known, w_state = self._split_weight()
        return F.conv2d(known, w_known, self.fuse.bias, padding=1), w_state

    def step(self, pre: torch.Tensor, state: torch.Tensor | None, w_state: torch.Tensor) -> torch.Tensor:
        x = pre if state is None else pre + F.conv2d(state, w_state, padding=1)
        return self.body(F.leaky_relu(x, 0.1))


class Cleaner(nn.Module):
    """LR frame -> cleaned LR frame (residual; starts as the identity)."""

    def __init__(self, c: int, blocks: int):
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, 1, 1)
        self.body = nn.Sequential(*[ResBlock(c) for _ in range(blocks)])
        self.tail = nn.Conv2d(c, 3, 3, 1, 1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x, film=None, frames: int = 1):
        h = conv_leaky(self.head, x, 0.1)
        if film is not None:
            h = modulate(h, film, frames)
        return conv_add(self.tail, self.body(h), x)


@functools.lru_cache(maxsize=8)
def window_rows(t: int, h: int, w: int, tw: int, ws: int, shift: bool,
                device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather indices between one clip's pixels (rows t*h*w of a [T,H,W,C] tensor) and its tubelet tokens.

    ``tokens = rows[gather]`` lays out windows of tw x ws x ws tokens (token order frame, y, x), padded by
    replicating the nearest pixel (frames at both ends in time, borders in space) and, when ``shift``,
    offset by half a window in space and time; ``rows = tokens[scatter]`` takes each pixel back from
    its one unpadded token. Padding by replication, not rolling, never mixes the first and the last
    frame (or opposite borders). One gather each way replaces pad + permute copies."""
    so = ws // 2 if shift else 0
    to = tw // 2 if (shift and tw > 1) else 0
    tp, hp, wp = t + to + (-(t + to)) % tw, h + so + (-(h + so)) % ws, w + so + (-(w + so)) % ws
    ti = (torch.arange(tp) - to).clamp_(0, t - 1)
    yi = (torch.arange(hp) - so).clamp_(0, h - 1)
    xi = (torch.arange(wp) - so).clamp_(0, w - 1)
    padded = (ti[:, None, None] * h + yi[None, :, None]) * w + xi[None, None, :]        # [tp,hp,wp]
    windows = padded.reshape(tp // tw, tw, hp // ws, ws, wp // ws, ws).permute(0, 2, 4, 1, 3, 5)
    gather = windows.reshape(-1)
    position = torch.arange(gather.numel()).reshape(windows.shape).permute(0, 3, 1, 4, 2, 5).reshape(tp, hp, wp)
    scatter = position[to:to + t, so:so + h, so:so + w].reshape(-1)
    return gather.to(device), scatter.to(device)


class WindowAttentionBlock(nn.Module):
    """Pre-norm transformer block over tubelets (frames x window x window tokens), see ``window_rows``."""

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
        """``x`` [B,T,H,W,C] (channels last) -> the same shape."""
        b, t, h, w, c = x.shape
        tw = min(self.frames, t) if temporal else 1
        gather, scatter = window_rows(t, h, w, tw, self.window, self.shift, x.device)
        tokens = x.reshape(b, t * h * w, c)[:, gather]
        tokens = tokens.reshape(-1, tw * self.window * self.window, c)
        tokens = tokens + self._attn(self.norm1(tokens) + self.pos[:tokens.shape[1]])
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.reshape(b, -1, c)[:, scatter].reshape(b, t, h, w, c)

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
        self.level_estimator = self.level_modulation = None
        if cfg.degradation_input:
            self.level_estimator = LevelEstimator(motion=cfg.level_motion, grid=cfg.level_grid)
            self.level_modulation = LevelModulation(((c // 2,) if self.cleaner is not None else ()) + (c, c))

    @property
    def scale(self) -> int:
        return self.config.scale

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- stages -----------------------------------------------------------
    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f0 = conv_leaky(self.head, x, 0.1)
        f = self.feat(f0)
        h, w = f.shape[-2:]
        ctx = self.context(F.leaky_relu(self.down(f), 0.1))
        ctx = F.interpolate(ctx, size=(h, w), mode="bilinear", align_corners=False)
        return f + self.context_out(ctx), f0

    def _cues(self, frames, neighbours, flow, consistent):
        """Reliability cues of all neighbour pairs at once ([N,3,H,W] frames and their neighbours, flow
        from frame to neighbour): ([|frame - W(neighbour)|·valid, valid] [N,4,H,W], sampling grid, state gate).

        ``consistent`` [N,1,H,W] (1 = forward-backward consistent, or None) also gates the warped state
        (gate), so nothing is propagated where the flow is wrong."""
        valid = inside_mask(flow)
        if consistent is not None:
            valid = valid * consistent
        grid = sampling_grid(flow)
        diff = (frames - grid_warp(neighbours, grid)).abs() * valid
        return torch.cat([diff, valid], 1), grid, (valid if consistent is not None else None)

    def _consistency(self, flow_forward, flow_backward):
        """(to_next, to_prev) [B,T-1,1,H,W]: 1 where frame i's (resp. i+1's) flow is confirmed."""
        if not self.config.occlusion_mask:
            return None, None
        b, n, _, h, w = flow_forward.shape
        occ_f, occ_b = occlusion_masks(flow_forward.reshape(b * n, 2, h, w), flow_backward.reshape(b * n, 2, h, w))
        return (1 - occ_f).reshape(b, n, 1, h, w), (1 - occ_b).reshape(b, n, 1, h, w)

    def _directions(self, lr, flow_forward, flow_backward, like: torch.Tensor) -> dict:
        """Per direction ("backward": from frame i+1, "forward": from frame i-1): cues [B*T,4,H,W] in
        ``like``'s dtype and memory format (what the fusion conv reads, so no conversion per conv; zero
        where a frame has no neighbour that way), and per pair the grid [B,T-1,H,W,2] and 0/1 gate
        [B,T-1,1,H,W] (or None) that warp the neighbour's state. No flow (per-frame mode): zero cues."""
        b, t, _, h, w = lr.shape
        if flow_forward is None:
            none = (_like(lr.new_zeros(b * t, CUE_CHANNELS, h, w), like), None, None)
            return {"backward": none, "forward": none}
        to_next, to_prev = self._consistency(flow_forward, flow_backward)
        out = {}
        for name, frames, neighbours, flow, ok in (
                ("backward", lr[:, :-1], lr[:, 1:], flow_forward, to_next),
                ("forward", lr[:, 1:], lr[:, :-1], flow_backward, to_prev)):
            cues, grid, gate = self._cues(frames.flatten(0, 1), neighbours.flatten(0, 1), flow.flatten(0, 1),
                                          None if ok is None else ok.flatten(0, 1))
            cues = cues.reshape(b, t - 1, CUE_CHANNELS, h, w)
            none = cues.new_zeros(b, 1, CUE_CHANNELS, h, w)
            cues = torch.cat([cues, none] if name == "backward" else [none, cues], 1).flatten(0, 1)
            gate = None if gate is None else gate.reshape(b, t - 1, 1, h, w).to(like.dtype)   # 0/1: exact
            out[name] = (_like(cues, like), grid.reshape(b, t - 1, h, w, 2), gate)
        return out

    @staticmethod
    def _propagate(prop: Propagation, known: torch.Tensor, b: int, t: int, order, grid, gate) -> list:
        """Recurrent pass over frames in ``order`` ([B,C,H,W] states, by frame); ``known`` [B*T,cin-C,H,W].
        ``grid``/``gate`` [B,T-1,...] (or None) warp frame j±1's state onto frame j for pair j:
        order descending (backward pass) uses pair i for frame i, ascending pair i-1."""
        pre, w_state = prop.prefuse(known)
        pre = pre.reshape(b, t, *pre.shape[1:])
        states = [None] * t
        previous = None
        for i in order:
            warped = None
            if previous is not None and grid is not None:
                pair = i if previous > i else i - 1
                warped = grid_warp(states[previous], grid[:, pair])
                if gate is not None:
                    warped = warped * gate[:, pair]
            states[i] = prop.step(pre[:, i], warped, w_state)
            previous = i
        return states

    def estimate_level(self, lr: torch.Tensor, flow_forward: torch.Tensor | None = None) -> torch.Tensor:
        """Degradation level [B,3] of LR clips [B,T,3,H,W] (models.degradation_level); an estimator that reads
        motion uses ``flow_forward`` [B,T-1,2,H,W], or estimates it (DIS) when not given."""
        if self.level_estimator is None:
            raise InputError("these upscaler weights have no degradation input, so no level can be estimated")
        if self.level_estimator.motion and lr.shape[1] > 1 and flow_forward is None:
            from ..flow.dis import DISFlow
            dis = DISFlow(FLOW_PRESET)     # forward flows only: clip_flows would also make the backward ones
            flow_forward = torch.stack([dis(clip[:-1].detach(), clip[1:].detach()).to(clip) for clip in lr])
        with torch.autocast(lr.device.type, enabled=False):
            return self.level_estimator(lr, flow_forward)

    def _films(self, lr: torch.Tensor, level: torch.Tensor | None, flow_forward: torch.Tensor | None) -> list:
        """(scale, shift) pairs for the cleaner (when there is one), the features and the reconstruction;
        [None, None, None] without a degradation input (a level given to such weights is ignored)."""
        if self.level_modulation is None:
            return [None, None, None]
        if level is None:
            level = self.estimate_level(lr, flow_forward)
        level = level.to(lr.device).reshape(-1, 3).expand(lr.shape[0], 3)
        films = self.level_modulation(level)
        return films if self.cleaner is not None else [None] + films

    def forward(self, lr: torch.Tensor, flow_forward: torch.Tensor | None = None,
                flow_backward: torch.Tensor | None = None, temporal: bool = True,
                return_clean: bool = False, level: torch.Tensor | None = None):
        """``return_clean=True`` also returns the cleaning stage's LR output (training). ``level`` [B,3] or [3]
        (noise, compression, blur in 0..1) for weights with a degradation input; None estimates it per clip."""
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
        film_clean, film_feats, film_recon = self._films(lr, level, flow_forward if temporal else None)
        if self.cleaner is not None:
            flat = self.cleaner(flat, film_clean, t)
            lr = flat.reshape(b, t, 3, h, w)
        feats, shallow = self._features(flat)                             # [B*T,C,H,W]
        if film_feats is not None:
            feats = modulate(feats, film_feats, t)
        cues = self._directions(lr, flow_forward if temporal else None, flow_backward, feats)
        back = self._propagate(self.backward_prop, torch.cat([feats, cues["backward"][0]], 1), b, t,
                               range(t - 1, -1, -1), *cues["backward"][1:])
        known = torch.cat([feats, _stack_frames(back), cues["forward"][0]], 1)
        states = self._propagate(self.forward_prop, known, b, t, range(t), *cues["forward"][1:])
        y = torch.stack([s.permute(0, 2, 3, 1) for s in states], 1)      # [B,T,H,W,C] for the attention
        for blk in self.attn:
            y = blk(y, temporal=temporal)
        y = y.reshape(b * t, h, w, c).permute(0, 3, 1, 2)                # channels-last view, no copy
        if self.hf_proj is not None:
            y = y + self.hf_proj(shallow - low_pass(shallow))
        if film_recon is not None:
            y = modulate(y, film_recon, t)
        y = self.to_pixels(conv_leaky(self.recon, y, 0.1))
        with torch.autocast(y.device.type, enabled=False):   # the bicubic base keeps float32 precision
            y = F.pixel_shuffle(y.float() + bicubic_phases(flat.float(), self.config.scale), self.config.scale)
        out = y.reshape(b, t, 3, h * self.config.scale, w * self.config.scale)
        return (out, lr) if return_clean else out


def _like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``x`` in ``ref``'s dtype and memory format (channels-last or not)."""
    cl = ref.is_contiguous(memory_format=torch.channels_last) and not ref.is_contiguous()
    return x.to(ref.dtype).contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)


def _stack_frames(states: list) -> torch.Tensor:
    """Per-frame [B,C,H,W] -> [B*T,C,H,W] (batch-major), channels-last: one copy of channels-last states."""
    return torch.stack([s.permute(0, 2, 3, 1) for s in states], 1).flatten(0, 1).permute(0, 3, 1, 2)


def clip_flows(lr: torch.Tensor, estimator=None, preset: str = FLOW_PRESET) -> tuple[torch.Tensor, torch.Tensor]:
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
                 flows: tuple[torch.Tensor, torch.Tensor] | None = None,
                 level: torch.Tensor | None = None) -> torch.Tensor:
    """Upscale one in-memory clip [T,3,H,W] (0..1) in a single pass -> [T,3,sH,sW] clamped. ``level`` [3]:
    the degradation level for weights with a degradation input (None: read from the clip).

    For long videos use ``vsr_core.pipeline.upscale.upscale_frames``, which
    streams over overlapping windows with bounded memory.
    """
    check_frames(lr, "frames", MIN_SIDE)
    if temporal and lr.shape[0] > 1:
        ff, fb = flows if flows is not None else clip_flows(lr, estimator)
        out = model(lr[None], ff[None], fb[None], temporal=True, level=level)
    else:
        out = model(lr[None], temporal=False, level=level)
    return out[0].clamp_(0, 1)

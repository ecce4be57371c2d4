"""The relay over a clip in memory: every frame takes the detail of its nearest keyframes (before and after,
in its own scene), carried by motion (relay/motion.py, relay/transfer.py).

``relay_clip`` is what the Relay Detail node and each segment of the streaming job run; memory is the
clip's faithful frames plus the chained flows of one keyframe interval.
"""
from __future__ import annotations

import torch

from ..errors import InputError
from ..flow.dis import DISFlow
from ..progress import Reporter, get_reporter
from .keyframes import nearest_keyframes, scene_bounds
from .learned import fused_detail, fusion_inputs
from .motion import KeyframeFlows
from .transfer import GateSettings, carry, fuse, keyframe_detail, trust

RELAY_FLOW_PRESET = "medium"   # DIS between faithful frames at output size: +2.4 dB at 4 frames (LR flow: +1.0)
                               # measured with flows straight to the keyframe, before they were chained


def check_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= float(strength) <= 1.0:
        raise InputError(f"detail strength={strength!r}; expected a number from 0 (faithful only) to 1")
    return float(strength)


def check_keyframes(keyframes: dict, faithful: torch.Tensor) -> None:
    """Keyframes {frame index: HR [3,H,W] or [1,3,H,W]} must lie in the clip and have the output's size."""
    t, _, h, w = faithful.shape
    for k, img in keyframes.items():
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < t:
            raise InputError(f"keyframe index {k!r}; expected an integer frame index from 0 to {t - 1}")
        if not isinstance(img, torch.Tensor) or tuple(img.shape[-3:]) != (3, h, w):
            shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise InputError(f"keyframe {k}: {shape}; expected a [3,{h},{w}] image, the size of the "
                             f"upscaled frames (resize the keyframe source's output to {w}x{h})")
        if not bool(torch.isfinite(img).all()):
            raise InputError(f"keyframe {k} contains NaN or infinite values")


def frame_carried(t: int, faithful: torch.Tensor, details: dict, cuts, flows: KeyframeFlows,
                  gate: GateSettings = GateSettings()) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """(carried detail, trust, distance t - k) of frame t's nearest keyframes in its scene (``details``
    {k: [1,3,H,W]}), along ``flows`` (relay/motion.py); a keyframe itself comes alone, at distance 0, fully
    trusted."""
    here = faithful[t:t + 1].float()
    before, after = nearest_keyframes(t, sorted(details), cuts)
    if t in (before, after):
        return [(details[t], torch.ones_like(here[:, :1]), 0)]
    first, last = scene_bounds(t, cuts, faithful.shape[0])
    span = (first if before is None else before, last if after is None else after)
    carried = []
    for k in (before, after):
        if k is not None:
            to_key, from_key = flows.pair(t, k, span)
            carried.append((carry(details[k], to_key), trust(to_key, from_key, here, faithful[k:k + 1].float(), gate),
                            t - k))
    return carried


def relay_frame(here: torch.Tensor, carried: list, strength: float, fusion=None) -> torch.Tensor:
    """Faithful frame [1,3,H,W] plus its carried detail: the learned ``fusion``'s where one is given and
    the frame is not a keyframe, else the hand-designed mix (transfer.fuse)."""
    if fusion is None or not carried or carried[0][2] == 0 or strength == 0:
        return fuse(here, carried, strength)
    detail = fused_detail(fusion, fusion_inputs(here, carried))
    return (here.float() + strength * detail).clamp_(0, 1)


@torch.inference_mode()
def relay_clip(faithful: torch.Tensor, keyframes: dict, scale: int, strength: float = 1.0,
               cuts: list[int] | tuple[int, ...] = (), estimator=None, gate: GateSettings = GateSettings(),
               reporter: Reporter | None = None, fusion=None) -> torch.Tensor:
    """Faithful frames [T,3,H,W] (0..1) plus the detail of ``keyframes`` {index: HR [3,H,W]} -> [T,3,H,W].

    ``scale``: output/input size ratio (the detail finer than the input's pixels is what is carried);
    ``cuts``: indices where a scene starts (detail never crosses them); ``strength`` 0 returns ``faithful``
    unchanged. Each frame is fused from at most two keyframes of its scene: by the learned ``fusion``
    (models/relay_fusion.py) when one is given, else by the hand-designed mix. ``estimator(a, b)``: the flow
    a -> b between neighbouring faithful frames that the chains are made of (default DIS medium)."""
    strength = check_strength(strength)
    check_keyframes(keyframes, faithful)
    if strength == 0.0 or not keyframes:
        return faithful
    rep = get_reporter(reporter)
    flows = KeyframeFlows(faithful, estimator or DISFlow(RELAY_FLOW_PRESET))
    if fusion is not None:
        fusion.to(faithful.device)      # small; the frames may be on the upscaler's device
    details = {k: keyframe_detail(keyframes[k].reshape(1, *faithful.shape[1:]).to(faithful.device),
                                  faithful[k:k + 1], scale) for k in sorted(keyframes)}
    out = torch.empty_like(faithful, dtype=torch.float32)
    for t in range(faithful.shape[0]):
        rep.check_interrupt()
        carried = frame_carried(t, faithful, details, cuts, flows, gate)
        out[t] = relay_frame(faithful[t:t + 1].float(), carried, strength, fusion)[0]
        rep.update(1)
    return out.to(faithful.dtype)

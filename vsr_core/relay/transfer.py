"""Carrying a keyframe's detail to another frame by motion: warp, gate, fuse (pure functions).

The detail of keyframe k is what its high-resolution picture (any image model's, or the truth) adds to the
faithful upscale of the same frame: ``D_k = K_k - S_k``. To frame t it is carried by one backward warp along
the flow t -> k (one resampling, so it stays sharp however far t is from k), where that flow is computed
between the faithful frames S_t and S_k at output resolution. It is let in only where the warp can be
trusted:

- the flows t -> k and k -> t agree (forward-backward consistency: occlusion, disocclusion, bad matches);
- the warped faithful keyframe looks like the faithful frame t (lighting change, a cut that was missed);
- the source lies inside the keyframe.

The high-pass of the detail is carried, not its local mean: what the low-resolution frame shows stays the
faithful path's, so the result agrees with the input; a keyframe's colour or brightness drift does not
travel. ``strength`` scales the carried detail (0: the faithful frames, bit for bit).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..flow.warp import backward_warp, inside_mask


@dataclass(frozen=True)
class GateSettings:
    """How strict the warp's trust is. Units: pixels at output resolution, and 0..1 intensity."""
    consistency_px: float = 2.0        # forward-backward mismatch (px) where trust falls to exp(-1)
    consistency_rel: float = 0.05      # ... plus this share of the flow's length (long motion is less exact)
    photometric: float = 0.12          # local faithful-frame difference where trust falls to exp(-1)
    photometric_window: int = 7        # box window (px) the photometric difference is averaged over


def high_pass(x: torch.Tensor, scale: int) -> torch.Tensor:
    """``x`` minus its content at 1/``scale`` resolution (area down, bicubic up): the detail a frame of
    ``scale`` times fewer pixels cannot hold."""
    h, w = x.shape[-2:]
    low = F.interpolate(F.avg_pool2d(x, scale, ceil_mode=True), size=(h, w), mode="bicubic", align_corners=False)
    return x - low


def keyframe_detail(keyframe: torch.Tensor, faithful: torch.Tensor, scale: int) -> torch.Tensor:
    """[N,3,H,W] detail a keyframe adds to the faithful frame: its high-pass difference."""
    return high_pass(keyframe.float() - faithful.float(), scale)


def trust(flow_to_key: torch.Tensor, flow_from_key: torch.Tensor, faithful: torch.Tensor,
          faithful_key: torch.Tensor, gate: GateSettings = GateSettings()) -> torch.Tensor:
    """[N,1,H,W] in 0..1: how far frame t's pixels may take detail warped from the keyframe.

    ``flow_to_key`` t -> k and ``flow_from_key`` k -> t [N,2,H,W] in output pixels; ``faithful`` and
    ``faithful_key`` the faithful frames t and k [N,3,H,W]."""
    back = backward_warp(flow_from_key, flow_to_key, padding_mode="border")
    mismatch = (flow_to_key + back).pow(2).sum(1, keepdim=True)
    length = flow_to_key.pow(2).sum(1, keepdim=True) + back.pow(2).sum(1, keepdim=True)
    scale2 = gate.consistency_px ** 2 + gate.consistency_rel ** 2 * length
    t_flow = torch.exp(-mismatch / scale2)
    warped = backward_warp(faithful_key.float(), flow_to_key, padding_mode="border")
    k = gate.photometric_window
    diff = F.avg_pool2d((warped - faithful.float()).abs().mean(1, keepdim=True), k, stride=1, padding=k // 2,
                        count_include_pad=False)
    t_photo = torch.exp(-(diff / gate.photometric) ** 2)
    return t_flow * t_photo * inside_mask(flow_to_key)


def carry(detail_key: torch.Tensor, flow_to_key: torch.Tensor) -> torch.Tensor:
    """The keyframe's detail [N,3,H,W] warped onto frame t along ``flow_to_key`` (t -> k). Bicubic sampling:
    bilinear's half-pixel averaging took a tenth of a generated keyframe's fine detail away."""
    return backward_warp(detail_key, flow_to_key, padding_mode="zeros", mode="bicubic")


def distance_weight(distance: int) -> float:
    """Nearer keyframes count more; a keyframe itself counts alone."""
    return 1.0 / (1.0 + abs(distance))


MAX_BLEND_GAIN = 2 ** 0.5   # what two unrelated textures mixed half and half need; more would boost misaligned ones


def _local_mean(x: torch.Tensor, window: int = 7) -> torch.Tensor:
    return F.avg_pool2d(x, window, stride=1, padding=window // 2, count_include_pad=False)


def _keep_variance(a: torch.Tensor, b: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
    """[N,1,H,W] gain that gives ``wa*a + wb*b`` (wa + wb = 1) the local energy of ``wa*a² + wb*b²``.

    Two keyframes made by a generative model hold different textures: averaged, they would cancel into a
    fainter texture halfway between keyframes (and the detail would swell and fade with the distance).
    Where the two agree (true detail, or the same texture carried twice) the gain is 1."""
    ea, eb = (_local_mean(x.pow(2).mean(1, keepdim=True)) for x in (a, b))
    mixed = wa * wa * ea + wb * wb * eb + 2 * wa * wb * _local_mean((a * b).mean(1, keepdim=True))
    wanted = wa * ea + wb * eb
    return (wanted / mixed.clamp_min(1e-8)).sqrt().clamp(max=MAX_BLEND_GAIN)


def mix_detail(carried: list[tuple[torch.Tensor, torch.Tensor, int]]) -> torch.Tensor:
    """[N,3,H,W] the hand-designed mix of the carried detail (before ``strength``).

    ``carried``: (warped detail [N,3,H,W], trust [N,1,H,W], distance in frames) per keyframe. Where both
    keyframes are trusted their detail is mixed by distance, keeping its local energy (_keep_variance);
    where one is, it alone is used; where neither is, nothing is added."""
    weights = [w * distance_weight(d) for _, w, d in carried]
    total = sum(weights).clamp_min(1e-6)
    weights = [w / total for w in weights]
    mixed = sum(w * det for (det, _, _), w in zip(carried, weights))
    if len(carried) == 2:
        mixed = mixed * _keep_variance(carried[0][0], carried[1][0], *weights)
    reach = torch.stack([w for _, w, _ in carried]).amax(0)
    return reach * mixed


def fuse(faithful: torch.Tensor, carried: list[tuple[torch.Tensor, torch.Tensor, int]],
         strength: float = 1.0) -> torch.Tensor:
    """Faithful frame t [N,3,H,W] plus ``strength`` times the carried detail's mix (mix_detail), clamped
    to 0..1; the faithful frame itself where nothing is carried or ``strength`` is 0."""
    if strength == 0 or not carried:
        return faithful
    return (faithful.float() + strength * mix_detail(carried)).clamp_(0, 1)

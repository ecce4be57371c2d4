"""Bidirectional flow over a whole clip, window by window.

``estimate_clip_flow`` validates the frames, then walks the clip in windows
of ``window`` frames that share one frame with the next window. For each
window it computes forward and backward flow of its consecutive pairs and
their occlusion masks, and writes them into the output. Only one window of
frames (optionally downscaled, see ``max_side``) is on the estimator's device
at a time, so the working memory depends on the window and the frame size,
not on the clip length.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.frames import check_finite
from ..progress import Reporter, get_reporter
from .field import FlowField, resize_flow, resize_mask
from .occlusion import CONVENTIONS, occlusion_masks


def validate_frames(frames, name: str = "frames") -> torch.Tensor:
    """Check a clip and return it as one float32 [T,3,H,W] tensor (0..1).

    Accepts a [T,3,H,W] tensor or a sequence of [3,H,W] tensors. Raises
    InputError for fewer than 2 frames, frames of different sizes, a wrong
    layout, NaN/inf, or values outside 0..1.
    """
    if isinstance(frames, torch.Tensor):
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise InputError(f"{name}: expected a [T,3,H,W] RGB tensor (T frames, 0..1), got shape "
                             f"{tuple(frames.shape)}" + (" (looks like [T,H,W,3]: permute(0,3,1,2) first)"
                                                         if frames.dim() == 4 and frames.shape[-1] == 3 else ""))
        clip = frames
    elif isinstance(frames, Sequence) and not isinstance(frames, (str, bytes)):
        if len(frames) and not all(isinstance(f, torch.Tensor) for f in frames):
            raise InputError(f"{name}: expected tensors, got {sorted({type(f).__name__ for f in frames})}")
        for i, f in enumerate(frames):
            if f.dim() != 3 or f.shape[0] != 3:
                raise InputError(f"{name}: frame {i} has shape {tuple(f.shape)}, expected [3,H,W]")
            if f.shape != frames[0].shape:
                raise InputError(f"{name}: frame {i} is {f.shape[1]}x{f.shape[2]} (HxW) but frame 0 is "
                                 f"{frames[0].shape[1]}x{frames[0].shape[2]}; all frames must have the same size")
        clip = torch.stack(list(frames)) if len(frames) else torch.empty(0, 3, 1, 1)
    else:
        raise InputError(f"{name}: expected a [T,3,H,W] tensor or a list of [3,H,W] tensors, got "
                         f"{type(frames).__name__}")
    t = clip.shape[0]
    if t < 2:
        raise InputError(f"{name}: flow needs at least 2 frames, got {t}")
    if clip.shape[2] < 1 or clip.shape[3] < 1:
        raise InputError(f"{name}: frames are empty ({clip.shape[2]}x{clip.shape[3]})")
    if not clip.is_floating_point():
        raise InputError(f"{name}: expected float values in 0..1, got dtype {clip.dtype} "
                         f"(convert 8-bit frames with .float() / 255)")
    clip = clip.float()
    check_finite(clip, name)
    lo, hi = float(clip.min()), float(clip.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise InputError(f"{name}: values must be in 0..1, got min {lo:.4g}, max {hi:.4g}"
                         + (" (8-bit values? divide by 255)" if hi > 2 else ""))
    return clip


def _fit_size(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(h, w) <= max_side:
        return h, w
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def estimate_clip_flow(frames, estimator, *, window: int = 4, occlusion: str = "squared",
                       max_side: int | None = None,
                       reporter: Reporter | None = None) -> FlowField:
    """Forward and backward flow, and occlusion masks, for a clip.

    ``frames``: [T,3,H,W] float RGB in 0..1 (or a list of [3,H,W]), T >= 2.
    ``estimator``: e.g. ``DISFlow("medium")`` or ``RaftFlow(...)``, see
    ``make_estimator``. ``window``: frames per window (>= 2); consecutive
    windows share one frame. ``occlusion``: "squared" or "mgld" (see
    occlusion.py). ``max_side``: if the longer side exceeds it, flow is
    computed on frames area-downscaled to fit and then resized back to
    (H, W) with magnitudes scaled (bounds RAFT's memory at high resolution).
    Returns a FlowField at (H, W) on CPU.
    """
    if not isinstance(window, int) or window < 2:
        raise InputError(f"window: expected an integer >= 2 (frames per window), got {window!r}")
    if occlusion not in CONVENTIONS:
        raise InputError(f"occlusion: expected one of {CONVENTIONS}, got {occlusion!r}")
    if max_side is not None and (not isinstance(max_side, int) or max_side < 16):
        raise InputError(f"max_side: expected None or an integer >= 16, got {max_side!r}")
    clip = validate_frames(frames)
    rep = get_reporter(reporter)
    t, _, h, w = clip.shape
    eh, ew = _fit_size(h, w, max_side)
    device = getattr(estimator, "device", torch.device("cpu"))

    fwd = torch.empty(t - 1, 2, h, w)
    bwd = torch.empty(t - 1, 2, h, w)
    occ_f = torch.empty(t - 1, 1, h, w)
    occ_b = torch.empty(t - 1, 1, h, w)

    step = window - 1
    n_windows = math.ceil((t - 1) / step)
    rep.start(t - 1, desc=f"flow ({getattr(estimator, 'name', 'estimator')})")
    for k in range(n_windows):
        rep.check_interrupt()
        s, e = k * step, min(k * step + window, t)
        chunk = clip[s:e].to(device)
        if (eh, ew) != (h, w):
            chunk = F.interpolate(chunk, size=(eh, ew), mode="area")
        a, b = chunk[:-1], chunk[1:]
        f = _run(estimator, a, b, rep, "forward")
        bk = _run(estimator, b, a, rep, "backward")
        of, ob = occlusion_masks(f, bk, convention=occlusion)
        if (eh, ew) != (h, w):
            f, bk = resize_flow(f, h, w), resize_flow(bk, h, w)
            of, ob = resize_mask(of, h, w), resize_mask(ob, h, w)
        fwd[s:e - 1], bwd[s:e - 1] = f.cpu(), bk.cpu()
        occ_f[s:e - 1], occ_b[s:e - 1] = of.cpu(), ob.cpu()
        rep.update(e - 1 - s)
    method = getattr(estimator, "name", type(estimator).__name__)
    if (eh, ew) != (h, w):
        method += f",computed_at={eh}x{ew}"
    return FlowField(fwd, bwd, occ_f, occ_b, method=method)


def _run(estimator, a: torch.Tensor, b: torch.Tensor, rep: Reporter, which: str) -> torch.Tensor:
    """estimator(a, b) in batches of ``estimator.batch_size`` pairs (all at
    once if it has none), checking for interruption before each batch."""
    step = max(1, int(getattr(estimator, "batch_size", a.shape[0]) or a.shape[0]))
    out = []
    for s in range(0, a.shape[0], step):
        rep.check_interrupt()
        out.append(_checked(estimator(a[s:s + step], b[s:s + step]), a[s:s + step], which))
    return torch.cat(out)


def _checked(flow: torch.Tensor, like: torch.Tensor, which: str) -> torch.Tensor:
    n, _, h, w = like.shape
    if tuple(flow.shape) != (n, 2, h, w):
        raise RuntimeError(f"flow estimator returned {which} flow of shape {tuple(flow.shape)}, "
                           f"expected {(n, 2, h, w)}")
    if not bool(torch.isfinite(flow).all()):
        raise RuntimeError(f"flow estimator returned non-finite {which} flow (NaN/inf); "
                           f"check the RAFT weights")
    return flow.float()


def estimate_pair_flow(image1: torch.Tensor, image2: torch.Tensor, estimator) -> torch.Tensor:
    """Flow from image1 to image2 ([3,H,W] float 0..1 each) as [2,H,W]:
    pixel p of image1 appears at p + flow[:, p] in image2."""
    clip = validate_frames([image1, image2], name="images")
    return _checked(estimator(clip[0:1], clip[1:2]), clip[0:1], "forward")[0].cpu()


def estimate_flow(frames, method: str = "dis", *, preset: str = "medium", weights=None,
                  iters: int = 12, input_range: str = "unit", window: int = 4,
                  occlusion: str = "squared", max_side: int | None = None,
                  device: str | torch.device = "cpu",
                  reporter: Reporter | None = None) -> FlowField:
    """One call for the Estimate Flow node and scripts: build the estimator
    (``make_estimator``: "dis" with ``preset``, or "raft" with ``weights``,
    ``iters``, ``input_range``, ``device``) and run ``estimate_clip_flow``.
    ``frames``: [T,3,H,W] float 0..1. Returns a FlowField at (H, W) on CPU."""
    from .estimators import make_estimator

    estimator = make_estimator(method, preset=preset, weights=weights, iters=iters,
                               input_range=input_range, device=device)
    return estimate_clip_flow(frames, estimator, window=window, occlusion=occlusion,
                              max_side=max_side, reporter=reporter)

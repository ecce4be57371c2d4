"""Flow-guided temporal stabilisation of any upscaler's output (`upscale --stabilize`, and
the `stabilize` input of the Upscale nodes).

A causal recursive filter that blends each output frame with the warped
previous output where the LR flow is reliable (see ``stabilize_with_flow``);
``FlowStabilizer`` is its streaming form.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..models.upscaler import MIN_SIDE
from ..ops.frames import check_frames
from ..progress import Reporter, get_reporter


class FlowStabilizer:
    """Streaming form of ``stabilize_with_flow``: call it on consecutive chunks;
    it carries the previous output and LR frame across calls."""

    def __init__(self, strength: float = 0.6, flow_preset: str = "medium", photometric_tol: float = 0.04,
                 detail_tol: float = 0.12, pair_flows=None):
        from ..flow.dis import DISFlow
        from ..flow.pairs import PairFlows
        if not 0.0 <= strength <= 1.0:
            raise InputError(f"strength={strength}; expected 0..1")
        if photometric_tol <= 0 or detail_tol <= 0:
            raise InputError(f"photometric_tol={photometric_tol}, detail_tol={detail_tol}; expected > 0")
        self.strength, self.photometric_tol, self.detail_tol = strength, photometric_tol, detail_tol
        self.flows = pair_flows or PairFlows(DISFlow(flow_preset))   # pairs keyed by frame index
        self.prev_out = None
        self.prev_lr = None
        self.next_index = 0

    def get_state(self) -> dict:
        """What continuing after the last frame needs (cached by resumable jobs)."""
        return {} if self.prev_out is None else {"prev_out": self.prev_out, "prev_lr": self.prev_lr}

    def set_state(self, state: dict) -> None:
        self.prev_out, self.prev_lr = state.get("prev_out"), state.get("prev_lr")

    @torch.inference_mode()
    def __call__(self, upscaled: torch.Tensor, lr_frames: torch.Tensor, reporter: Reporter | None = None,
                 first_index: int | None = None) -> torch.Tensor:
        """``first_index``: the video frame index of ``upscaled[0]`` (default: right after the last call)."""
        from ..flow.field import resize_flow
        from ..flow.occlusion import occlusion_masks
        from ..flow.warp import backward_warp, inside_mask

        check_frames(lr_frames, "lr_frames", MIN_SIDE)
        if not isinstance(upscaled, torch.Tensor) or upscaled.dim() != 4 or upscaled.shape[1] != 3:
            raise InputError(f"upscaled: expected float frames [T,3,H,W], got "
                             f"{tuple(upscaled.shape) if isinstance(upscaled, torch.Tensor) else type(upscaled).__name__}")
        if upscaled.shape[0] != lr_frames.shape[0]:
            raise InputError(f"upscaled has {upscaled.shape[0]} frames and lr_frames {lr_frames.shape[0]}; "
                             f"expected the same count")
        if not bool(torch.isfinite(upscaled).all()):
            raise InputError("upscaled contains NaN or infinite values")
        rep = get_reporter(reporter)
        t, _, H, W = upscaled.shape
        first = self.next_index if first_index is None else first_index
        self.next_index = first + t
        out = torch.empty(upscaled.shape, dtype=torch.float32)
        for i in range(t):
            rep.check_interrupt()
            up = upscaled[i:i + 1].float()
            cur = lr_frames[i:i + 1].float()
            if self.prev_out is None or self.strength == 0.0 or self.prev_out.shape[-2:] != (H, W):
                out[i] = up[0]
            else:
                prev = self.prev_lr
                ff, fb = self.flows.pair(first + i - 1, prev, cur)   # frame i-1 -> i, and i -> i-1
                occ_b, _ = occlusion_masks(fb, ff)    # pixels of frame i not visible in i-1
                lr_err = (cur - backward_warp(prev, fb, padding_mode="border")).abs().mean(1, keepdim=True)
                m_lr = inside_mask(fb) * (1 - occ_b) * torch.exp(-(lr_err / self.photometric_tol) ** 2)
                flow_hr = resize_flow(fb, H, W)
                m = F.interpolate(m_lr, size=(H, W), mode="bilinear", align_corners=False) * inside_mask(flow_hr)
                warped = backward_warp(self.prev_out, flow_hr, mode="bicubic", padding_mode="border").clamp(0, 1)
                diff = warped - up
                m = m * torch.exp(-(diff.abs().mean(1, keepdim=True) / self.detail_tol) ** 2)
                out[i] = (up + self.strength * m * diff)[0]
            self.prev_out, self.prev_lr = out[i:i + 1].clamp(0, 1), cur
            rep.update(1)
        return out.clamp_(0, 1).to(upscaled.dtype)


def stabilize_with_flow(upscaled: torch.Tensor, lr_frames: torch.Tensor, strength: float = 0.6,
                        flow_preset: str = "medium", photometric_tol: float = 0.04, detail_tol: float = 0.12,
                        reporter: Reporter | None = None) -> torch.Tensor:
    """Make any per-frame upscaler's output temporally stable.

    ``upscaled`` [T,3,H,W] (e.g. from ComfyUI's UPSCALE_MODEL, frame by
    frame) and ``lr_frames`` [T,3,h,w], both 0..1. A causal recursive filter:

        out_0 = up_0
        out_t = up_t + strength · m_t · (W(out_{t−1}) − up_t)

    W warps the previous *output* onto frame t (bicubic sampling, to keep
    detail) with DIS flow computed on the LR frames (cheap, and not fooled by
    the upscaler's own flicker), scaled to the output size. The blend mask
    m_t is the product of:

    - flow reliability: forward-backward consistency (not occluded) and the
      sampled point lying inside the frame;
    - an LR photometric check exp(−(|LR_t − W(LR_{t−1})| / photometric_tol)²):
      where the flow is wrong the LR frames disagree, so no blending (no
      ghosting on new content or fast motion);
    - a detail check exp(−(|up_t − W(out_{t−1})| / detail_tol)²): flicker is a
      small difference; a large one is a real change, kept as the upscaler drew it.

    Because the previous output already carries its own history, texture that
    the per-frame model redraws differently each frame converges instead of
    flickering, while anything the flow cannot explain stays per-frame. For
    long videos use ``FlowStabilizer`` chunk by chunk (same result).
    """
    rep = get_reporter(reporter)
    rep.start(int(upscaled.shape[0]) if isinstance(upscaled, torch.Tensor) else 0, "stabilise")
    return FlowStabilizer(strength, flow_preset, photometric_tol, detail_tol)(upscaled, lr_frames, rep)

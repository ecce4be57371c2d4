"""Conversions between the frame layouts used at the edges of vsr_core.

uint8 [T,H,W,3] numpy arrays come from the video readers; float32 0..1 torch
tensors [T,H,W,3] are ComfyUI's IMAGE; [T,3,H,W] is what models take.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError


def uint8_to_float(frames: np.ndarray) -> torch.Tensor:
    """uint8 [...,3] -> float32 tensor in 0..1, same layout."""
    return torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)


def check_finite(frames: torch.Tensor, what: str = "frames", first_index: int = 0) -> None:
    """Refuse NaN/inf (they would be written as black, or spread by later filters), naming the frame."""
    frames = frames.detach()
    if not frames.is_floating_point() or bool(torch.isfinite(frames.sum(dtype=torch.float32))):
        return          # a sum is finite only if every term is (one reduction, no mask: 8x faster)
    finite = torch.isfinite(frames)
    if bool(finite.all()):
        return          # the sum overflowed on large finite values
    per_frame = finite.reshape(finite.shape[0], -1).all(1) if finite.dim() > 3 else finite.reshape(1, -1).all(1)
    bad = int((~per_frame).nonzero()[0, 0]) + first_index
    raise InputError(f"{what}: frame {bad} contains NaN or infinite values; expected finite values in 0..1 "
                     f"(an upstream node produced invalid pixels)")


def check_frames(frames, name: str = "frames", min_side: int = 1, batched: bool = False,
                 values: bool = True) -> None:
    """Validate float frames [T,3,H,W] (or [B,T,3,H,W]): RGB, at least one frame, both sides >= min_side and,
    with ``values``, float and finite (one pass over the data: do it once where frames enter a stage)."""
    dims = 5 if batched else 4
    layout = "[B,T,3,H,W]" if batched else "[T,3,H,W]"
    if not isinstance(frames, torch.Tensor):
        raise InputError(f"{name} is a {type(frames).__name__}; expected a float tensor {layout}")
    if frames.dim() != dims or frames.shape[-3] != 3:
        raise InputError(f"{name} has shape {tuple(frames.shape)}; expected {layout} RGB")
    if frames.shape[-4] < 1:
        raise InputError(f"{name} has no frames; expected at least one")
    if min(frames.shape[-2:]) < min_side:
        raise InputError(f"{name} frames are {frames.shape[-1]}x{frames.shape[-2]}; expected both sides >= "
                         f"{min_side} pixels")
    if values:
        if not frames.is_floating_point():
            raise InputError(f"{name} has dtype {frames.dtype}; expected float values in 0..1")
        check_finite(frames.flatten(0, 1) if batched else frames, name)


def float_to_uint8(frames: torch.Tensor, what: str = "frames", first_index: int = 0) -> np.ndarray:
    """float 0..1 tensor -> uint8 numpy array, rounded and clamped; NaN/inf are refused, not written."""
    check_finite(frames, what, first_index)
    # round then clamp (the same bytes as clamp then round, one pass fewer); elementwise ops keep a
    # permuted view's memory order, so a [T,H,W,C] view of [T,C,H,W] frames converts at full speed
    return frames.detach().float().mul(255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


def check_image_batch(images, name: str = "images") -> torch.Tensor:
    """Validate a ComfyUI IMAGE: float [T,H,W,3] (a single [H,W,3] frame is accepted)."""
    if not isinstance(images, torch.Tensor):
        raise InputError(f"{name} is a {type(images).__name__}; expected an IMAGE tensor [frames,H,W,3]")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"{name} has shape {tuple(images.shape)}; expected [frames,H,W,3] RGB")
    if images.shape[0] == 0:
        raise InputError(f"{name} has no frames; expected at least one")
    if not images.is_floating_point():
        raise InputError(f"{name} has dtype {images.dtype}; expected float values in 0..1")
    return images


def thwc_to_tchw(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 3, 1, 2)


def tchw_to_thwc(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 2, 3, 1)

"""FlowField: the VSR_FLOW payload passed between nodes.

Conventions (all tensors float32, on CPU unless moved with ``.to``):

* ``forward``  [T-1,2,H,W], pixels. ``forward[i]`` maps frame i -> i+1: the
  pixel p of frame i appears at ``p + forward[i][:, p]`` in frame i+1, so
  ``backward_warp(frame[i+1], forward[i]) ~= frame[i]``.
* ``backward`` [T-1,2,H,W], pixels. ``backward[i]`` maps frame i+1 -> i, so
  ``backward_warp(frame[i], backward[i]) ~= frame[i+1]``.
* ``occlusion_forward`` [T-1,1,H,W] in {0,1}: 1 where a pixel of frame i has
  no match in frame i+1 (``forward[i]`` unreliable there).
* ``occlusion_backward`` [T-1,1,H,W] in {0,1}: 1 where a pixel of frame i+1
  has no match in frame i.
* Channel 0 is dx (along W), channel 1 is dy (along H).
* (H, W) is the resolution the flows are expressed at; ``resized`` converts
  to another one (latent size included), scaling magnitudes too.

MGLD-VSR names (methods.md 2.2): its ``f^b_i = RAFT(x_i, x_{i+1})`` is our
``forward[i]`` and its ``f^f_i = RAFT(x_{i+1}, x_i)`` is our ``backward[i]``;
its ``O^fwd_i`` / ``O^bwd_i`` correspond to ``occlusion_forward[i]`` /
``occlusion_backward[i]`` (with occlusion convention "mgld").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError


def resize_flow(flow: torch.Tensor, height: int, width: int, mode: str = "bilinear") -> torch.Tensor:
    """Resample a [N,2,h,w] flow field to [N,2,height,width] and rescale its
    values: dx by width/w, dy by height/h (BasicSR/MGLD ``resize_flow``:
    bilinear, align_corners=False). ``mode="area"`` averages when shrinking."""
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise InputError(f"resize_flow: flow must be [N,2,H,W], got {tuple(flow.shape)}")
    _check_size(height, width)
    h, w = flow.shape[-2:]
    if (h, w) == (height, width):
        return flow.clone()
    if mode == "bilinear":
        out = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
    elif mode == "area":
        out = F.interpolate(flow, size=(height, width), mode="area")
    else:
        raise InputError(f"resize_flow: mode must be 'bilinear' or 'area', got {mode!r}")
    scale = torch.tensor([width / w, height / h], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)
    return out * scale


def resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resample a {0,1} [N,1,h,w] mask: area average when shrinking, bilinear
    when enlarging, then a majority vote (>= 0.5) so it stays binary."""
    _check_size(height, width)
    h, w = mask.shape[-2:]
    if (h, w) == (height, width):
        return mask.clone()
    if height <= h and width <= w:
        soft = F.interpolate(mask, size=(height, width), mode="area")
    else:
        soft = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False)
    return (soft >= 0.5).to(mask.dtype)


def _check_size(height, width):
    if not (isinstance(height, int) and isinstance(width, int)) or height < 1 or width < 1:
        raise InputError(f"size: height and width must be positive integers, got ({height!r}, {width!r})")


@dataclass(frozen=True)
class FlowField:
    """Bidirectional flow of a clip of T frames, with occlusion masks."""

    forward: torch.Tensor
    backward: torch.Tensor
    occlusion_forward: torch.Tensor
    occlusion_backward: torch.Tensor
    method: str = "unknown"

    def __post_init__(self):
        f, b = self.forward, self.backward
        if f.dim() != 4 or f.shape[1] != 2 or f.shape[0] < 1:
            raise InputError(f"FlowField.forward: expected [T-1,2,H,W] with T >= 2, got {tuple(f.shape)}")
        if b.shape != f.shape:
            raise InputError(f"FlowField.backward: expected {tuple(f.shape)} like forward, got {tuple(b.shape)}")
        mshape = (f.shape[0], 1, f.shape[2], f.shape[3])
        for name in ("occlusion_forward", "occlusion_backward"):
            m = getattr(self, name)
            if tuple(m.shape) != mshape:
                raise InputError(f"FlowField.{name}: expected {mshape}, got {tuple(m.shape)}")

    # -- shape -----------------------------------------------------------
    @property
    def height(self) -> int:
        return int(self.forward.shape[-2])

    @property
    def width(self) -> int:
        return int(self.forward.shape[-1])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) the flows are expressed at."""
        return self.height, self.width

    @property
    def num_frames(self) -> int:
        return int(self.forward.shape[0]) + 1

    # -- conversions -----------------------------------------------------
    def resized(self, height: int, width: int, mode: str = "bilinear") -> "FlowField":
        """The same motion at another resolution (e.g. latent size H/8 x W/8):
        flows resampled with magnitudes scaled (x by width/W, y by height/H),
        masks resampled and kept binary (see ``resize_mask``)."""
        return FlowField(
            forward=resize_flow(self.forward, height, width, mode),
            backward=resize_flow(self.backward, height, width, mode),
            occlusion_forward=resize_mask(self.occlusion_forward, height, width),
            occlusion_backward=resize_mask(self.occlusion_backward, height, width),
            method=self.method,
        )

    def frames(self, start: int, stop: int) -> "FlowField":
        """The flow of frames [start, stop) of the clip (stop - start >= 2),
        i.e. pairs start..stop-2; for window-by-window consumers."""
        t = self.num_frames
        if not (0 <= start < stop <= t) or stop - start < 2:
            raise InputError(f"FlowField.frames: need 0 <= start < stop <= {t} and at least 2 "
                             f"frames, got start={start}, stop={stop}")
        s = slice(start, stop - 1)
        return FlowField(self.forward[s], self.backward[s], self.occlusion_forward[s],
                         self.occlusion_backward[s], self.method)

    def to(self, device=None, dtype=None) -> "FlowField":
        def mv(x):
            return x.to(device=device, dtype=dtype)
        return FlowField(mv(self.forward), mv(self.backward), mv(self.occlusion_forward),
                         mv(self.occlusion_backward), self.method)

    def __repr__(self) -> str:
        return (f"FlowField(frames={self.num_frames}, size={self.height}x{self.width}, "
                f"method={self.method!r}, device={self.forward.device})")

"""Weight-free optical flow: OpenCV's DIS (Kroeger et al., ECCV 2016).

Works on any machine with opencv installed, no checkpoint needed; the pack's
default. Frames are converted to 8-bit grayscale (ITU-R 601 luma, as
``cv2.cvtColor(RGB2GRAY)``) because that is what DIS takes.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import InputError

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
DEFAULT_PRESET = "medium"
# OpenCV's DIS needs min(H, W) >= patch_size * 2**finest_scale (32 for the
# ultrafast/fast presets) or it fails, and for some sizes (e.g. 24x300)
# crashes the process; smaller frames are replicate-padded to this size.
MIN_SIDE = 32


def _to_gray_u8(image: torch.Tensor) -> np.ndarray:
    """[3,H,W] float 0..1 RGB -> [H,W] uint8 gray."""
    rgb = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    rgb = np.ascontiguousarray(rgb.permute(1, 2, 0).cpu().numpy())
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class DISFlow:
    """Callable estimator: ``DISFlow("medium")(img1, img2) -> [N,2,H,W]``.

    ``img1``, ``img2``: [N,3,H,W] float RGB in 0..1. Returns float32 flow in
    pixels from img1 to img2 (pixel p of img1 is at p + flow(p) in img2) on
    the images' device.
    """

    def __init__(self, preset: str = DEFAULT_PRESET):
        if preset not in PRESETS:
            raise InputError(f"DIS preset: expected one of {sorted(PRESETS)}, got {preset!r}")
        self.preset = preset
        self.name = f"dis:{preset}"
        self.device = torch.device("cpu")
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])

    def __call__(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        if image1.shape != image2.shape or image1.dim() != 4 or image1.shape[1] != 3:
            raise InputError(f"DIS: image1 and image2 must both be [N,3,H,W] of one shape, got "
                             f"{tuple(image1.shape)} and {tuple(image2.shape)}")
        h, w = image1.shape[-2:]
        ph, pw = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
        out = []
        for a, b in zip(image1, image2):
            g1, g2 = _to_gray_u8(a), _to_gray_u8(b)
            if ph or pw:
                g1 = cv2.copyMakeBorder(g1, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
                g2 = cv2.copyMakeBorder(g2, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
            flow = self._dis.calc(g1, g2, None)[:h, :w]
            out.append(torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1))
        return torch.stack(out).to(device=image1.device, dtype=torch.float32)

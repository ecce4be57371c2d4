"""Video clips with exactly known motion, filmed from a still photograph.

A virtual camera pans, zooms and rolls over a real photo that a PyPI package
ships (scikit-image's sample images), so tests and training get natural image
statistics with no download, and the true motion between frames is known.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "motorcycle_left")


def photo(name: str = "astronaut") -> np.ndarray:
    """An RGB uint8 photograph shipped inside scikit-image."""
    from skimage import data  # test and training dependency only
    if name == "motorcycle_left":
        return data.stereo_motorcycle()[0]
    if name not in SKIMAGE_PHOTOS:
        raise InputError(f"photo '{name}' is unknown; expected one of {', '.join(SKIMAGE_PHOTOS)}")
    image = getattr(data, name)()
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


@dataclass(frozen=True)
class CameraPath:
    """Per-frame camera motion: pan in source pixels, zoom factor and roll in degrees."""

    pan: tuple[float, float] = (2.0, 1.0)
    zoom: float = 1.0
    roll: float = 0.0

    def matrix(self, t: int, size: tuple[int, int], center: tuple[float, float]) -> np.ndarray:
        """2x3 affine mapping output pixels of frame t to photo coordinates."""
        h, w = size
        scale = self.zoom ** -t
        angle = np.deg2rad(self.roll * t)
        cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
        cx, cy = center[0] + self.pan[0] * t, center[1] + self.pan[1] * t
        # out (x,y) -> photo: R*S*(x - w/2, y - h/2) + (cx, cy)
        return np.array([[cos, -sin, cx - cos * (w - 1) / 2 + sin * (h - 1) / 2],
                         [sin, cos, cy - sin * (w - 1) / 2 - cos * (h - 1) / 2]], dtype=np.float64)


def virtual_camera_clip(image: np.ndarray, frames: int, size: tuple[int, int],
                        path: CameraPath = CameraPath(), start: tuple[float, float] | None = None) -> np.ndarray:
    """uint8 [frames,h,w,3] filmed from `image` along `path` (bicubic sampling, reflected borders)."""
    h, w = size
    if frames < 1 or h < 1 or w < 1:
        raise InputError(f"clip of {frames} frames at {w}x{h}; expected positive sizes")
    center = start or (image.shape[1] / 2, image.shape[0] / 2)
    out = np.empty((frames, h, w, 3), dtype=np.uint8)
    for t in range(frames):
        m = path.matrix(t, size, center)
        out[t] = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT101)
    return out


def camera_flow(path: CameraPath, t: int, k: int, size: tuple[int, int], center: tuple[float, float]) -> np.ndarray:
    """float32 [2,h,w]: the true flow from frame t to frame k of ``virtual_camera_clip(..., path, start=center)``
    in output pixels (frame t's pixel p shows what frame k shows at p + flow(p); channel 0 is x)."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    m_t, m_k = path.matrix(t, size, center), path.matrix(k, size, center)
    px = m_t[0, 0] * xs + m_t[0, 1] * ys + m_t[0, 2]          # frame t -> photo
    py = m_t[1, 0] * xs + m_t[1, 1] * ys + m_t[1, 2]
    inv = np.linalg.inv(m_k[:, :2])                             # photo -> frame k
    qx = inv[0, 0] * (px - m_k[0, 2]) + inv[0, 1] * (py - m_k[1, 2])
    qy = inv[1, 0] * (px - m_k[0, 2]) + inv[1, 1] * (py - m_k[1, 2])
    return np.stack([qx - xs, qy - ys]).astype(np.float32)

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


@dataclass(frozen=True)
class SceneMotion:
    """Non-rigid motion of the scene itself (cloth that sways, a face that turns): frame t shows the photo
    point ``q + t * v(q)`` where the camera alone would show ``q``, with ``v`` a sum of a few smooth waves
    (px per frame, photo coordinates). Each wave is (amplitude x, amplitude y, wave vector x, y, phase)."""

    waves: tuple[tuple[float, float, float, float, float], ...] = ()

    def velocity(self, qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vx, vy = np.zeros_like(qx), np.zeros_like(qy)
        for ax, ay, kx, ky, phase in self.waves:
            s = np.sin(kx * qx + ky * qy + phase)
            vx, vy = vx + ax * s, vy + ay * s
        return vx, vy

    def steepness(self) -> float:
        """Bound on |dv/dq| per frame: the moves stay one-to-one while t times this is below 1."""
        return float(sum(np.hypot(ax, ay) * np.hypot(kx, ky) for ax, ay, kx, ky, _ in self.waves))

    def moved(self, qx: np.ndarray, qy: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        vx, vy = self.velocity(qx, qy)
        return qx + t * vx, qy + t * vy

    def unmoved(self, px: np.ndarray, py: np.ndarray, t: int, iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
        """The q with moved(q, t) = p (fixed-point iteration: a contraction while t * steepness < 1)."""
        if t * self.steepness() >= 1:
            raise InputError(f"scene motion too steep for frame {t}: t * steepness = {t * self.steepness():.2f}; "
                             f"expected below 1 (fewer frames or gentler waves)")
        qx, qy = px, py
        for _ in range(iterations):
            vx, vy = self.velocity(qx, qy)
            qx, qy = px - t * vx, py - t * vy
        return qx, qy


def random_scene_motion(rng: np.random.Generator, frames: int, max_speed: float = 1.5, waves: int = 3,
                        wavelength: tuple[float, float] = (48.0, 192.0)) -> SceneMotion:
    """A random smooth non-rigid motion, gentle enough to stay one-to-one over ``frames`` frames."""
    drawn = []
    for _ in range(waves):
        length, angle = rng.uniform(*wavelength), rng.uniform(0, 2 * np.pi)
        k = 2 * np.pi / length
        ax, ay = rng.uniform(-max_speed, max_speed, size=2) / waves
        drawn.append([ax, ay, k * np.cos(angle), k * np.sin(angle), rng.uniform(0, 2 * np.pi)])
    steep = SceneMotion(tuple(map(tuple, drawn))).steepness() * max(frames - 1, 1)
    shrink = min(1.0, 0.5 / steep) if steep > 0 else 1.0       # at most half-way to folding over
    return SceneMotion(tuple((ax * shrink, ay * shrink, kx, ky, ph) for ax, ay, kx, ky, ph in drawn))


def _photo_coords(m: np.ndarray, xs: np.ndarray, ys: np.ndarray):
    return m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]


def virtual_camera_clip(image: np.ndarray, frames: int, size: tuple[int, int],
                        path: CameraPath = CameraPath(), start: tuple[float, float] | None = None,
                        scene: SceneMotion | None = None) -> np.ndarray:
    """uint8 [frames,h,w,3] filmed from `image` along `path` (bicubic sampling, reflected borders); ``scene``:
    the scene's own non-rigid motion on top of the camera's."""
    h, w = size
    if frames < 1 or h < 1 or w < 1:
        raise InputError(f"clip of {frames} frames at {w}x{h}; expected positive sizes")
    center = start or (image.shape[1] / 2, image.shape[0] / 2)
    out = np.empty((frames, h, w, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) if scene is not None else (None, None)
    for t in range(frames):
        m = path.matrix(t, size, center)
        if scene is None:
            out[t] = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REFLECT101)
            continue
        mx, my = scene.moved(*_photo_coords(m, xs, ys), t)
        out[t] = cv2.remap(image, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT101)
    return out


def camera_flow(path: CameraPath, t: int, k: int, size: tuple[int, int], center: tuple[float, float],
                scene: SceneMotion | None = None) -> np.ndarray:
    """float32 [2,h,w]: the true flow from frame t to frame k of ``virtual_camera_clip(..., path, start=center,
    scene=scene)`` in output pixels (frame t's pixel p shows what frame k shows at p + flow(p); channel 0 is x)."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    m_t, m_k = path.matrix(t, size, center), path.matrix(k, size, center)
    px, py = _photo_coords(m_t, xs, ys)                        # frame t -> photo
    if scene is not None:       # the photo point frame t shows -> where frame k's camera must look for it
        px, py = scene.unmoved(*scene.moved(px, py, t), k)
    inv = np.linalg.inv(m_k[:, :2])                             # photo -> frame k
    qx = inv[0, 0] * (px - m_k[0, 2]) + inv[0, 1] * (py - m_k[1, 2])
    qy = inv[1, 0] * (px - m_k[0, 2]) + inv[1, 1] * (py - m_k[1, 2])
    return np.stack([qx - xs, qy - ys]).astype(np.float32)

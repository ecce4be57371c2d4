"""Training and evaluation clips: real photos shipped by PyPI packages, filmed by a
random virtual camera (pan, zoom, slight roll), plus frames from any video folder.

Photo names carry their source: ``skimage:astronaut``, ``sklearn:china.jpg``,
``matplotlib:grace_hopper.jpg``. Nothing is downloaded: scikit-image's
bundled images, scikit-learn's ``load_sample_image`` files and matplotlib's
``sample_data`` folder are all inside the installed wheels.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from ..errors import InputError
from .virtual_camera import CameraPath, photo, virtual_camera_clip

# Used to train the shipped upscaler. Grey photos are repeated to RGB: they
# still teach luminance detail (PSNR-Y is measured on luminance).
TRAIN_PHOTOS = (
    "skimage:astronaut", "skimage:chelsea", "skimage:immunohistochemistry", "skimage:motorcycle_left",
    "skimage:hubble_deep_field", "skimage:retina", "skimage:colorwheel",
    "skimage:camera", "skimage:brick", "skimage:grass", "skimage:gravel", "skimage:coins",
    "skimage:text", "skimage:clock", "skimage:page", "skimage:moon",
    "sklearn:china.jpg", "sklearn:flower.jpg",
    "matplotlib:grace_hopper.jpg", "matplotlib:Minduka_Present_Blue_Pack.png",
)
# Never seen in training: the benchmark and the README numbers use these.
HELDOUT_PHOTOS = ("skimage:coffee", "skimage:rocket")


@functools.lru_cache(maxsize=64)
def load_photo(name: str) -> np.ndarray:
    """RGB uint8 [H,W,3] photo by ``source:name`` (a bare name means scikit-image)."""
    source, _, key = name.rpartition(":")
    source = source or "skimage"
    try:
        if source == "skimage":
            if key in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "motorcycle_left"):
                img = photo(key)
            else:
                from skimage import data
                img = getattr(data, key)()
        elif source == "sklearn":
            from sklearn.datasets import load_sample_image
            img = load_sample_image(key)
        elif source == "matplotlib":
            import matplotlib.cbook as cbook
            import matplotlib.image as mpimg
            with cbook.get_sample_data(key) as f:
                img = mpimg.imread(f)
        else:
            raise InputError(f"photo source '{source}' in '{name}'; expected skimage, sklearn or matplotlib")
    except ImportError as err:
        raise InputError(f"photo '{name}' needs the package that ships it ({err.name}); "
                         f"pip install scikit-image scikit-learn matplotlib") from err
    except (AttributeError, FileNotFoundError, ValueError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"photo '{name}' was not found in the installed {source} package") from err
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        img = np.clip(np.asarray(img, dtype=np.float64) * (255.0 if img.max() <= 1.0 else 1.0), 0, 255)
        img = img.round().astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


@functools.lru_cache(maxsize=256)
def scaled_photo(name: str, factor: float) -> np.ndarray:
    """The photo resized by ``factor``: area-downscaled below 1 (a clean, sharper source), bicubic-upscaled
    above 1 (a soft source, as footage out of focus or closer than the camera resolves: the upscaler must
    learn to leave such content smooth, not to sharpen it)."""
    img = load_photo(name)
    if factor == 1.0:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)


def random_path(rng: np.random.Generator, max_pan: float = 3.0, max_zoom: float = 0.015,
                max_roll: float = 0.4) -> CameraPath:
    """A random smooth camera move: pan in source px/frame, zoom per frame, roll in deg/frame."""
    pan = tuple(float(v) for v in rng.uniform(-max_pan, max_pan, size=2))
    zoom = float(np.exp(rng.uniform(-max_zoom, max_zoom)))
    roll = float(rng.uniform(-max_roll, max_roll))
    return CameraPath(pan=pan, zoom=zoom, roll=roll)


PHOTO_SCALES = (1.0, 0.8, 0.6, 0.5)


def random_clip(name: str, frames: int, size: tuple[int, int], rng: np.random.Generator,
                scales=PHOTO_SCALES, grain: float = 0.0, **path_kwargs) -> np.ndarray:
    """uint8 [frames,h,w,3]: a random virtual-camera move over a (randomly resized) photo; ``grain`` > 0:
    Gaussian grain of that sigma (code values; grey or colour) added to the photo itself, so it moves with
    the picture as the scene's own fine texture does, unlike noise, which is new in every frame."""
    img = scaled_photo(name, float(scales[rng.integers(len(scales))]))
    if grain > 0:
        shape = img.shape[:2] + ((1,) if rng.random() < 0.5 else (3,))
        img = np.clip(img + rng.normal(0.0, grain, shape), 0, 255).round().astype(np.uint8)
    ih, iw = img.shape[:2]
    h, w = size
    path = random_path(rng, **path_kwargs)
    # Keep the start inside the photo where possible (borders are reflected otherwise).
    mx, my = min(w / 2, iw / 2), min(h / 2, ih / 2)
    cx = rng.uniform(mx, max(mx, iw - mx))
    cy = rng.uniform(my, max(my, ih - my))
    return virtual_camera_clip(img, frames, size, path, start=(cx, cy))


def heldout_clips(frames: int = 7, size: tuple[int, int] = (256, 384), names=HELDOUT_PHOTOS) -> dict:
    """Deterministic evaluation clips over the held-out photos: {name: uint8 [T,h,w,3]}."""
    paths = (CameraPath(pan=(2.5, 1.0), zoom=1.004, roll=0.15), CameraPath(pan=(-1.5, 2.0), zoom=0.996, roll=-0.2))
    out = {}
    for i, name in enumerate(names):
        img = load_photo(name)
        out[name] = virtual_camera_clip(img, frames, size, paths[i % len(paths)])
    return out

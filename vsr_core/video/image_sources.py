"""Frames from still images: numbered image folders and animated GIF/WebP."""
from __future__ import annotations

import os
import re
from fractions import Fraction
from statistics import median
from typing import Iterator

import cv2
import numpy as np
from PIL import Image, ImageSequence

from ..errors import InputError
from .options import VideoInfo

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr")


def natural_key(name: str):
    """Sort 'frame2.png' before 'frame10.png'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def read_image_rgb(path: str) -> np.ndarray:
    """An image file as RGB uint8 [H,W,3]; grey, alpha and 16-bit files are converted.

    Reads through np.fromfile so non-ASCII paths work on every OS.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise InputError(f"cannot read image '{path}': {err}") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InputError(f"cannot decode image '{path}'; expected a valid PNG/JPEG/BMP/TIFF/WebP file")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = (np.clip(image.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def frame_names(path: str) -> list[str]:
    """The image files of a frame folder, in natural order (hidden files skipped)."""
    return sorted((n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")),
                  key=natural_key)


def _image_size(path: str) -> tuple[int, int]:
    """(width, height) from the file header, without decoding pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError):
        return tuple(reversed(read_image_rgb(path).shape[:2]))


class ImageFolderSource:
    """A folder of numbered images, in natural order, at a user-given rate.

    Every size is checked from the headers when opening, so a stray image of
    another size is reported before any work starts.
    """

    def __init__(self, path: str, fps: Fraction):
        self.path = path
        names = frame_names(path)
        if not names:
            raise InputError(f"folder '{path}' holds no images; expected numbered frames "
                             f"({', '.join(IMAGE_EXTENSIONS)})")
        self.files = [os.path.join(path, n) for n in names]
        width, height = _image_size(self.files[0])
        for f in self.files[1:]:
            size = _image_size(f)
            if size != (width, height):
                raise InputError(f"'{f}' is {size[0]}x{size[1]} but '{self.files[0]}' is {width}x{height}; "
                                 f"expected every frame in '{path}' to have the same size")
        self.info = VideoInfo(path=path, width=width, height=height, fps=fps,
                              frame_count_hint=len(self.files), has_audio=False, kind="image-folder")

    def timed_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        for i, f in enumerate(self.files):
            yield float(i / self.info.fps), read_image_rgb(f)


class AnimatedImageSource:
    """Animated GIF/WebP (and single still images) through Pillow, with per-frame durations."""

    DEFAULT_FRAME_MS = 100  # what browsers show for GIF frames without a delay

    def __init__(self, path: str):
        self.path = path
        try:
            with Image.open(path) as im:
                durations = []
                for frame in ImageSequence.Iterator(im):
                    frame.load()  # WebP fills in 'duration' only once the frame is decoded
                    durations.append(frame.info.get("duration") or self.DEFAULT_FRAME_MS)
                width, height = im.size
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read image '{path}': {err}; expected an animated GIF/WebP or an image") from None
        if not durations:
            raise InputError(f"'{path}' contains no frames")
        self.durations_ms = durations
        fps = Fraction(1000, int(round(median(durations))) or self.DEFAULT_FRAME_MS)
        self.info = VideoInfo(path=path, width=width, height=height, fps=fps,
                              frame_count_hint=len(durations), has_audio=False, kind="animated-image",
                              variable_rate=len(set(durations)) > 1)

    def timed_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        t = 0.0
        with Image.open(self.path) as im:
            for frame, duration in zip(ImageSequence.Iterator(im), self.durations_ms):
                yield t / 1000.0, np.asarray(frame.convert("RGB"))
                t += duration

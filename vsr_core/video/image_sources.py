"""Frames from still images: numbered image folders, single stills and animated GIF/WebP."""
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
from .frame_numbers import check_numbering
from .options import VideoInfo
from .pixel_limit import LIMIT_TEXT, header_size

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr")


def natural_key(name: str):
    """Sort 'frame2.png' before 'frame10.png'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def read_image_rgb(path: str, frame: int | None = None) -> np.ndarray:
    """An image file as RGB uint8 [H,W,3]; grey, alpha, 16-bit and float files are converted.

    The header's size is checked before decoding (pixel_limit); float images
    holding NaN or infinity are refused, naming the file and `frame` (its index
    in the video), never turned black. Reads through np.fromfile so non-ASCII
    paths work on every OS.
    """
    where = "" if frame is None else f"frame {frame}: "
    header_size(path, where)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise InputError(f"{where}cannot read image '{path}': {err}") from None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as err:        # OpenCV's own size limit, for formats Pillow cannot parse
        reason = str(err).strip().splitlines()[-1]
        raise InputError(f"{where}cannot decode image '{path}' ({reason}); expected a valid image of at most "
                         f"{LIMIT_TEXT}") from None
    if image is None:
        raise InputError(f"{where}cannot decode image '{path}'; expected a valid PNG/JPEG/BMP/TIFF/WebP file")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = image.astype(np.float32)
        if not np.isfinite(image).all():
            y, x = np.argwhere(~np.isfinite(image))[0][:2]
            raise InputError(f"{where}'{path}' holds NaN or infinite pixel values (first at x={x}, y={y}); "
                             f"expected finite values (re-export the image)")
        image = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
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
                  key=lambda n: (natural_key(n), n))        # frame_1 and frame_001: a fixed order


def _image_size(path: str, index: int) -> tuple[int, int]:
    """(width, height) from the file header (checked against the pixel limit), decoding only when Pillow
    cannot parse the header."""
    return header_size(path, f"frame {index}: ") or tuple(reversed(read_image_rgb(path, index).shape[:2]))


class ImageFolderSource:
    """A folder of numbered images at a user-given rate, each frame at the time its number gives.

    Every size is checked from the headers when opening, so a stray image of
    another size is reported before any work starts; so are gaps and duplicates
    in the numbering (frame_numbers).
    """

    def __init__(self, path: str, fps: Fraction, accept_numbering: bool = False):
        self.path = path
        names = frame_names(path)
        if not names:
            raise InputError(f"folder '{path}' holds no images; expected numbered frames "
                             f"({', '.join(IMAGE_EXTENSIONS)})")
        names, self.times, self.notes = check_numbering(path, names, fps, accept_numbering)
        self.files = [os.path.join(path, n) for n in names]
        width, height = _image_size(self.files[0], 0)
        for i, f in enumerate(self.files[1:], 1):
            size = _image_size(f, i)
            if size != (width, height):
                raise InputError(f"'{f}' is {size[0]}x{size[1]} but '{self.files[0]}' is {width}x{height}; "
                                 f"expected every frame in '{path}' to have the same size")
        steady = all(t == i / fps for i, t in enumerate(self.times))
        self.info = VideoInfo(path=path, width=width, height=height, fps=fps,
                              frame_count_hint=len(self.files), has_audio=False, kind="image-folder",
                              variable_rate=not steady)

    def timed_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        for i, (f, t) in enumerate(zip(self.files, self.times)):
            yield float(t), read_image_rgb(f, i)


class StillImageSource:
    """One still image (PNG, JPEG, TIFF, EXR...) as a one-frame video, decoded like a folder's frames."""

    def __init__(self, path: str, fps: Fraction):
        self.path = path
        width, height = _image_size(path, 0)
        self.info = VideoInfo(path=path, width=width, height=height, fps=fps, frame_count_hint=1,
                              has_audio=False, kind="animated-image")

    def timed_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        yield 0.0, read_image_rgb(self.path, 0)


class AnimatedImageSource:
    """Animated GIF/WebP through Pillow, with per-frame durations; the declared size is checked first."""

    DEFAULT_FRAME_MS = 100  # what browsers show for GIF frames without a delay

    def __init__(self, path: str):
        self.path = path
        header_size(path)
        try:
            with Image.open(path) as im:
                durations = []
                for frame in ImageSequence.Iterator(im):
                    frame.load()  # WebP fills in 'duration' only once the frame is decoded
                    durations.append(frame.info.get("duration") or self.DEFAULT_FRAME_MS)
                width, height = im.size
        except (OSError, ValueError, MemoryError) as err:
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

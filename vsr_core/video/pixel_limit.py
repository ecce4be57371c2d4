"""The largest frame any source may declare, checked from the header before a pixel is decoded.

A 10,000-megapixel PNG is a few hundred bytes; decoding it would exhaust
memory (or Pillow raises its DecompressionBombError, or OpenCV an assertion).
64 megapixels (8192x8192) is twice 8K UHD and, upscaled x4, already a
gigapixel per output frame: anything larger is refused with one line.
"""
from __future__ import annotations

import re
import warnings

from PIL import Image

from ..errors import InputError

MAX_FRAME_PIXELS = 8192 * 8192
LIMIT_TEXT = "64 megapixels per frame (8192x8192)"


def check_frame_size(path: str, width: int, height: int, where: str = "") -> None:
    """InputError if a `width` x `height` frame of `path` is over the limit (nothing is decoded)."""
    if width * height > MAX_FRAME_PIXELS:
        raise InputError(f"{where}'{path}' declares {width}x{height} frames ({width * height / 1e6:.0f} megapixels); "
                         f"the limit is {LIMIT_TEXT}, refused before decoding")


def header_size(path: str, where: str = "") -> tuple[int, int] | None:
    """(width, height) from an image file's header, checked against the limit; None if Pillow cannot parse it
    (then the decoder's own size limit applies)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size = im.size
    except Image.DecompressionBombError as err:
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        stated = f"{int(pixels.group(1)) / 1e6:.0f} megapixels" if pixels else "more pixels than Pillow allows"
        raise InputError(f"{where}'{path}' declares a frame of {stated}; the limit is {LIMIT_TEXT}, refused "
                         f"before decoding") from None
    except (OSError, ValueError, SyntaxError):
        return None
    check_frame_size(path, size[0], size[1], where)
    return size

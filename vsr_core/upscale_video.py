"""File-to-file upscaling, streamed window by window from decoder to encoder."""
from __future__ import annotations

from .errors import InputError
from .frames import float_to_uint8, thwc_to_tchw, tchw_to_thwc, uint8_to_float
from .progress import Reporter, get_reporter
from .resize import bicubic_upscale
from .video import LoadOptions, VideoWriter, open_video

METHODS = ("bicubic",)


def upscale_file(src: str, dst: str, scale: int = 4, method: str = "bicubic",
                 options: LoadOptions | None = None, fmt: str | None = None, crf: int = 18,
                 overwrite: bool = False, window: int = 8, reporter: Reporter | None = None) -> int:
    """Upscale a video or image folder into a video file or PNG folder; returns the frame count.

    Memory is bounded by `window` frames: each window is decoded, upscaled and
    encoded before the next is read. The output has the input's frame count,
    fps and audio.
    """
    if method not in METHODS:
        raise InputError(f"method={method!r}; expected one of {', '.join(METHODS)}")
    if scale not in (2, 4):
        raise InputError(f"scale={scale!r}; expected 2 or 4")
    reporter = get_reporter(reporter)
    reader = open_video(src, options)
    # Check the destination before decoding anything.
    writer = VideoWriter(dst, reader.fps, fmt=fmt, crf=crf, audio=reader.audio, overwrite=overwrite,
                         reporter=reporter)
    with writer:
        reporter.start(reader.info.frame_count_hint or 0, f"upscale x{scale} ({method})")
        for batch in reader.windows(window):
            reporter.check_interrupt()
            x = thwc_to_tchw(uint8_to_float(batch))
            y = bicubic_upscale(x, scale)
            writer.write(float_to_uint8(tchw_to_thwc(y)))
            reporter.update(len(batch))
    return writer.frame_count

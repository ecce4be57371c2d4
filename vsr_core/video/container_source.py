"""Video files read through PyAV (FFmpeg): mp4, mkv, webm, avi, mov and friends."""
from __future__ import annotations

from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from ..errors import InputError
from .options import VideoInfo


def _open(path: str):
    try:
        return av.open(path, mode="r")
    except (av.error.FFmpegError, OSError) as err:
        raise InputError(f"cannot read video '{path}': {err}; expected a readable video file") from None


class ContainerSource:
    """Decodes the first video stream lazily, one frame at a time."""

    def __init__(self, path: str):
        self.path = path
        container = _open(path)
        try:
            if not container.streams.video:
                raise InputError(f"'{path}' has no video stream; expected a video file")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not fps or fps <= 0:
                raise InputError(f"'{path}' does not state a frame rate; expected a video with a known fps")
            width = stream.codec_context.width
            height = stream.codec_context.height
            if not width or not height:
                raise InputError(f"'{path}' has a video stream of size {width}x{height}; expected a decodable video")
            self.info = VideoInfo(path=path, width=width, height=height, fps=Fraction(fps),
                                  frame_count_hint=stream.frames or None,
                                  has_audio=bool(container.streams.audio), kind="container")
        finally:
            container.close()

    def timed_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """Yield (seconds since stream start, RGB uint8 [H,W,3]) in presentation order."""
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start = stream.start_time if stream.start_time is not None else 0
            tb = stream.time_base
            count = 0
            try:
                for frame in container.decode(stream):
                    pts = frame.pts if frame.pts is not None else start + count / (self.info.fps * tb)
                    image = frame.to_ndarray(format="rgb24")
                    if image.shape[:2] != (self.info.height, self.info.width):
                        raise InputError(
                            f"frame {count} of '{self.path}' is {image.shape[1]}x{image.shape[0]}, "
                            f"expected {self.info.width}x{self.info.height} like the first frame")
                    count += 1
                    yield float((pts - start) * tb), image
            except av.error.FFmpegError as err:
                raise InputError(f"'{self.path}' is damaged after frame {count}: {err}") from None
        finally:
            container.close()

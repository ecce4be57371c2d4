"""Video files read through PyAV (FFmpeg): mp4, mkv, webm, avi, mov and friends."""
from __future__ import annotations

from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from ..errors import InputError
from .options import Colour, VideoInfo
from .pixel_limit import check_frame_size
from .yuv import to_rgb24

# Frame-time deviation (in frames) beyond which a stream counts as variable-rate;
# Matroska's millisecond timestamps jitter by up to 0.03 frame at 30 fps.
VFR_TOLERANCE = 0.25


def _open(path: str):
    try:
        return av.open(path, mode="r")
    except (av.error.FFmpegError, OSError) as err:
        raise InputError(f"cannot read video '{path}': {err}; expected a readable video file") from None


def _scan_packets(container, stream) -> tuple[list[float], str | None]:
    """Every video packet's time (s), without decoding; and a demuxing error, if the file breaks off."""
    times, error = [], None
    start = stream.start_time or 0
    try:
        for pkt in container.demux(stream):
            if pkt.pts is not None:
                times.append(float((pkt.pts - start) * stream.time_base))
    except av.error.FFmpegError as err:
        error = str(err)
    return sorted(times), error


def _declared(container, stream) -> tuple[int | None, float | None]:
    """What the file declares: its index's frame count (mp4/mov), and its duration in seconds."""
    duration = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    return (int(stream.frames) or None), duration


def _damage(path: str, times: list[float], frames: int | None, duration: float | None, fps: Fraction,
            error: str | None) -> str | None:
    held = len(times)
    if error:
        return f"'{path}' is damaged: reading stopped after {held} frame(s) ({error})"
    if frames and held < frames:
        return f"'{path}' is damaged or cut short: its index lists {frames} frames but it holds only {held}"
    step = 1 / float(fps)
    if duration and times and times[-1] + 2 * step < duration - step:   # frames end long before the stated end
        return (f"'{path}' is damaged or cut short: it states {duration:.2f} s but its frames end at "
                f"{times[-1] + step:.2f} s ({held} frames)")
    return None


def _is_variable_rate(times: list[float], fps: Fraction) -> bool:
    if len(times) < 3:
        return False
    step = 1 / float(fps)
    return bool(np.max(np.abs(np.diff(times) - step)) > VFR_TOLERANCE * step)


def display_rotation(path: str) -> int:
    """How far a player turns the stored frames, counter-clockwise in degrees (0, 90, 180 or 270): the
    display matrix FFmpeg attaches to the first decoded frame (phones store portrait video landscape)."""
    try:
        with av.open(path) as container:
            for frame in container.decode(container.streams.video[0]):
                return int(round(getattr(frame, "rotation", 0) or 0)) % 360 // 90 * 90
    except (av.error.FFmpegError, OSError, IndexError):
        pass            # a damaged start is reported by the scan and the read
    return 0


def frame_colour(frame, height: int) -> Colour | None:
    """The frame's tags where it has them, the usual assumption for its size where not; None if untagged."""
    if frame.colorspace in (0, 2) and frame.color_primaries in (0, 2) and frame.color_trc in (0, 2):
        return None
    default = Colour.default_for(height)
    matrix = frame.colorspace if frame.colorspace not in (0, 2) else default.matrix     # RGB / unspecified
    return Colour(matrix=matrix,
                  range=frame.color_range if frame.color_range in (1, 2) else default.range,
                  primaries=frame.color_primaries if frame.color_primaries not in (0, 2) else default.primaries,
                  transfer=frame.color_trc if frame.color_trc not in (0, 2) else default.transfer)


class ContainerSource:
    """Decodes the first video stream lazily, one frame at a time.

    Opening scans the packets (no decoding) to find a file that is cut short
    or broken, and frame times that vary (variable frame rate).
    """

    def __init__(self, path: str, allow_damaged: bool = False):
        self.path, self.allow_damaged = path, allow_damaged
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
            check_frame_size(path, width, height)
            fps = Fraction(fps)
            self.rotation = display_rotation(path)
            self.stored_height = height
            if self.rotation in (90, 270):          # frames are read as displayed (upright)
                width, height = height, width
            declared_frames, duration = _declared(container, stream)
            has_audio = bool(container.streams.audio)
            times, error = _scan_packets(container, stream)
            self.packets = len(times)
            self.info = VideoInfo(path=path, width=width, height=height, fps=fps,
                                  frame_count_hint=self.packets or declared_frames, has_audio=has_audio,
                                  kind="container", variable_rate=_is_variable_rate(times, fps),
                                  damage=_damage(path, times, declared_frames, duration, fps, error))
        finally:
            container.close()
        self.colour: Colour | None = None        # the file's own tags (None: untagged)
        self.decoded: int | None = None
        self.concealed: list[int] = []          # frames decoded with concealed errors (allow_damaged)

    def timed_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """Yield (seconds since stream start, RGB uint8 [H,W,3]) in presentation order.

        RGB is computed with the stream's own matrix and range (BT.709 HD video
        stays BT.709), recorded in ``colour`` for the writer.
        """
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start = stream.start_time if stream.start_time is not None else 0
            tb = stream.time_base
            count = 0
            self.concealed = []
            decode_as = None
            for frame in self._decode(container, stream, lambda: count):
                pts = frame.pts if frame.pts is not None else start + count / (self.info.fps * tb)
                if decode_as is None:
                    self.colour = frame_colour(frame, self.stored_height)
                    decode_as = self.colour or Colour.default_for(self.stored_height)
                image = to_rgb24(frame, decode_as)
                if self.rotation:
                    image = np.ascontiguousarray(np.rot90(image, self.rotation // 90))
                if image.shape[:2] != (self.info.height, self.info.width):
                    raise InputError(
                        f"frame {count} of '{self.path}' is {image.shape[1]}x{image.shape[0]}, "
                        f"expected {self.info.width}x{self.info.height} like the first frame")
                self._check_concealed(frame, count)
                count += 1
                yield float((pts - start) * tb), image
            self.decoded = count
        finally:
            container.close()

    def _check_concealed(self, frame, index: int) -> None:
        """A frame FFmpeg decoded with errors and concealed them (its corrupt flag) is damage, like truncation."""
        if not getattr(frame, "is_corrupt", False):
            return
        if not self.allow_damaged:
            raise InputError(f"'{self.path}' is damaged: frame {index} was decoded with errors that FFmpeg "
                             f"concealed; expected an intact file (or accept it with allow_damaged / "
                             f"--allow-damaged)")
        self.concealed.append(index)

    def _decode(self, container, stream, count):
        """Frames packet by packet; a broken packet fails the read, or (allow_damaged) is skipped."""
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
                frames = packet.decode()
            except StopIteration:
                return
            except av.error.FFmpegError as err:
                if not self.allow_damaged:
                    raise InputError(f"'{self.path}' is damaged after frame {count()}: {err}") from None
                if isinstance(err, av.error.EOFError):
                    return
                continue
            yield from frames

"""Open any supported video source and stream its selected frames in windows."""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterator

import numpy as np

from ..errors import InputError
from .audio import AudioSegment, AudioStreamRef, probe_audio
from .container_source import ContainerSource
from .frame_numbers import number_ranges
from .image_sources import IMAGE_EXTENSIONS, AnimatedImageSource, ImageFolderSource, StillImageSource
from .options import Colour, LoadOptions, VideoInfo
from .timeline import select

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")
ANIMATED_EXTENSIONS = (".gif", ".webp")


def _open_source(path: str, options: LoadOptions):
    if not os.path.exists(path):
        raise InputError(f"video '{path}' does not exist; expected a video file or a folder of frames")
    if os.path.isdir(path):
        return ImageFolderSource(path, options.folder_fps, options.accept_numbering)
    ext = os.path.splitext(path)[1].lower()
    if os.path.getsize(path) == 0:
        raise InputError(f"video '{path}' is an empty file (0 bytes)")
    if ext in VIDEO_EXTENSIONS:
        return ContainerSource(path, options.allow_damaged)
    if ext in ANIMATED_EXTENSIONS:
        return AnimatedImageSource(path)
    if ext in IMAGE_EXTENSIONS:     # decoded like a folder's frames (float TIFF/EXR included)
        return StillImageSource(path, Fraction(1000, AnimatedImageSource.DEFAULT_FRAME_MS))
    supported = VIDEO_EXTENSIONS + ANIMATED_EXTENSIONS + IMAGE_EXTENSIONS
    raise InputError(f"'{path}' has an unknown extension '{ext}'; expected one of {', '.join(supported)} "
                     f"or a folder of numbered images")


def _snap_to_frame_grid(t: float, fps: Fraction, tolerance: float = 0.002) -> float:
    """Undo container timestamp rounding (Matroska stores milliseconds: 2/24 s is 0.083 s),
    so audio cut at a frame starts on the right sample."""
    on_grid = round(t * fps) / fps
    return float(on_grid) if abs(t - on_grid) <= tolerance else t


class VideoReader:
    """Streams the frames a LoadOptions selects, as uint8 RGB [H,W,3] arrays.

    The frames are decoded on demand, so memory is one window regardless of
    the video's length. After iterating, `frame_count` is exact and `audio()`
    returns the audio that matches the selected frames.
    """

    def __init__(self, path: str, options: LoadOptions | None = None):
        self.path = os.fspath(path)
        self.options = options or LoadOptions()
        self._source = _open_source(self.path, self.options)
        self.info: VideoInfo = self._source.info
        base = self.options.force_rate or self.info.fps
        self.fps: Fraction = base / self.options.select_every_nth
        self.frame_count: int | None = None
        self.start_time: float | None = None
        self.timestamps: list[float] = []         # seconds of each selected frame after the first
        self.warnings: list[str] = list(getattr(self._source, "notes", []))
        if self.info.damage:
            if not self.options.allow_damaged:
                raise InputError(f"{self.info.damage}; expected an intact file (repair it, or accept what it "
                                 f"still holds with allow_damaged / --allow-damaged)")
            self.warnings.append(f"WARNING: {self.info.damage}; reading what is left")

    @property
    def variable_rate(self) -> bool:
        """Frame durations differ (and no force_rate re-timed them): keep each frame's time on output."""
        return self.info.variable_rate and self.options.force_rate is None

    @property
    def expected_frames(self) -> int | None:
        """How many frames the selection will give, from the source's stated count (None: not stated); the
        exact count is `frame_count`, known after reading."""
        n, o = self.info.frame_count_hint, self.options
        if not n:
            return None
        if o.force_rate is not None:
            n = int(n * o.force_rate / self.info.fps)
        n = -(-max(n - o.skip_first_frames, 0) // o.select_every_nth)
        return min(n, o.frame_load_cap) if o.frame_load_cap else n

    def timestamp(self, index: int) -> float:
        """Seconds from the first selected frame to frame ``index`` (once it has been read)."""
        return self.timestamps[index]

    @property
    def colour(self) -> Colour | None:
        """The source's own colour tags (known once a frame is decoded); None when it has none."""
        return getattr(self._source, "colour", None)

    @property
    def width(self) -> int:
        return self.info.width

    @property
    def height(self) -> int:
        return self.info.height

    def frames(self) -> Iterator[np.ndarray]:
        count, t0 = 0, 0.0
        self.timestamps = []
        for t, frame in select(self._source.timed_frames(), self.options, self.info.fps):
            if count == 0:
                self.start_time = _snap_to_frame_grid(t, self.options.force_rate or self.info.fps)
                t0 = t
            self.timestamps.append(t - t0)
            count += 1
            yield frame
        self.frame_count = count
        self._check_decoded()
        if count == 0:
            if self.options.skip_first_frames:
                raise InputError(f"skip_first_frames={self.options.skip_first_frames} skips every frame "
                                 f"of '{self.path}'; expected fewer than its frame count")
            raise InputError(f"video '{self.path}' contains no frames")

    def _check_decoded(self) -> None:
        """Frames the decoder dropped without an error (corrupt data), or decoded with concealed errors
        (allow_damaged: the read did not stop at the first), are damage too."""
        concealed = getattr(self._source, "concealed", None)
        if concealed:
            self.warnings.append(f"WARNING: '{self.path}' is damaged: {len(concealed)} frame(s) were decoded "
                                 f"with errors FFmpeg concealed (frames {number_ranges(concealed)}; frames "
                                 f"predicted from them may be off too); they are kept as decoded")
        decoded, packets = getattr(self._source, "decoded", None), getattr(self._source, "packets", None)
        if decoded is None or not packets or decoded >= packets:
            return
        message = f"'{self.path}' is damaged: {packets} frames are stored but only {decoded} could be decoded"
        if not self.options.allow_damaged:
            raise InputError(f"{message}; expected an intact file (or allow_damaged / --allow-damaged)")
        self.warnings.append(f"WARNING: {message}")

    def windows(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive frames stacked into uint8 [n,H,W,3] arrays of up to `size` frames."""
        if size < 1:
            raise InputError(f"window size {size} is out of range; expected at least 1")
        batch = []
        for frame in self.frames():
            batch.append(frame)
            if len(batch) == size:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)

    def read_all(self) -> np.ndarray:
        """Every selected frame as one uint8 [T,H,W,3] array (for short clips)."""
        return np.concatenate(list(self.windows(64)))

    def audio_ref(self) -> AudioStreamRef | None:
        """The source's audio stream, if any, for bit-exact copying (untrimmed)."""
        if self.info.kind != "container" or not self.info.has_audio:
            return None
        return probe_audio(self.path)

    @property
    def trims_timeline(self) -> bool:
        """Whether the selection changed the timeline, so audio must be cut to match."""
        o = self.options
        return bool(o.force_rate or o.skip_first_frames or o.frame_load_cap or o.select_every_nth != 1)

    def audio(self) -> AudioSegment | AudioStreamRef | None:
        """The audio that belongs to the frames read: the stream itself when the
        timeline is untouched, otherwise the segment under the selected frames.

        Call it once the first frame has been read (its time is where the audio
        starts); before the end of the video, a frame cap bounds the segment.
        """
        ref = self.audio_ref()
        if ref is None or not self.trims_timeline:
            return ref
        if self.start_time is None:
            raise RuntimeError("read a frame before asking for the audio of a trimmed selection")
        count = self.frame_count or self.options.frame_load_cap or None
        duration = None if count is None else float(count / self.fps)
        return AudioSegment(ref, self.start_time, duration)


def open_video(path: str, options: LoadOptions | None = None) -> VideoReader:
    return VideoReader(path, options)

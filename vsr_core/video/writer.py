"""Streaming video writer: h264 (yuv420p, CRF), lossless FFV1, or a PNG sequence.

Frames are encoded as they arrive, so memory does not grow with the video.
Audio is interleaved as the video advances: copied packet for packet when the
container accepts the source codec, otherwise encoded (AAC in mp4/mov, FLAC in
mkv, a FLAC file beside a PNG sequence). Nothing appears at the destination
until close() succeeds (see atomic.py).
"""
from __future__ import annotations

import hashlib
import os
from fractions import Fraction

import av
import cv2
import numpy as np

from ..errors import InputError, OutputError
from ..progress import Reporter, get_reporter
from ..safe_files import file_sha256, open_exclusive, resolve, write_new
from . import atomic
from .audio import AudioClip, AudioSegment, AudioStreamRef
from .options import Colour, to_fraction
from .yuv import from_rgb24

CONTAINERS = {"h264": (".mp4", ".mkv", ".mov"), "ffv1": (".mkv",)}
FORMATS = ("h264", "ffv1", "png")
# Source audio codecs each container can take without re-encoding.
COPYABLE_AUDIO = {
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    ".mov": {"aac", "mp3", "ac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    ".mkv": None,  # Matroska takes any codec
}
ENCODED_AUDIO = {".mp4": ("aac", "fltp"), ".mov": ("aac", "fltp"), ".mkv": ("flac", "s16")}
AUDIO_LOOKAHEAD = 0.25  # seconds of audio muxed ahead of the video
REORDER_FRAMES = 4      # decode-to-presentation delay given to copied chunks (x264: B-frames 3, pyramid 2)
VFR_TIME_BASE = Fraction(1, 90000)  # frame times of variable-rate output (MPEG's clock: exact for ms and 1/fps)


def format_for_path(path: str) -> str:
    """The default format for an output path: PNG for a folder, h264 for a video file."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".mp4", ".mov", ".mkv"):
        return "h264"
    if ext == "" or os.path.isdir(path):
        return "png"
    raise InputError(f"output '{path}' has extension '{ext}'; expected .mp4, .mov or .mkv for a video, "
                     f"or a folder path (no extension) for PNG frames")


def validate_output(path: str, fmt: str | None = None, crf: int = 18, overwrite: bool = False) -> str:
    """Check an output path and its settings before any work; returns the format. Writes nothing."""
    fmt = fmt or format_for_path(path)
    ext = os.path.splitext(path)[1].lower()
    if fmt not in FORMATS:
        raise InputError(f"format={fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt != "png" and ext not in CONTAINERS[fmt]:
        raise InputError(f"format {fmt} cannot be written to '{path}'; expected a path ending in "
                         f"{' or '.join(CONTAINERS[fmt])}")
    if fmt == "png" and ext:
        raise InputError(f"PNG frames go into a folder; '{path}' looks like a file (extension "
                         f"'{ext}'); expected a folder path without extension")
    if not isinstance(crf, int) or isinstance(crf, bool) or not 0 <= crf <= 51:
        raise InputError(f"crf={crf!r} is out of range; expected an integer 0 (lossless) to 51 (worst)")
    atomic.check_destination(path, overwrite, fmt)
    return fmt


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


class _AudioCopier:
    """Copies packets of an audio stream up to a given time."""

    def __init__(self, ref: AudioStreamRef, output):
        self.input = av.open(ref.path)
        in_stream = self.input.streams.audio[0]
        self.stream = output.add_stream_from_template(in_stream)
        self.start = in_stream.start_time or 0
        self.packets = self.input.demux(in_stream)
        self.pending = None

    def write_until(self, output, t: float | None) -> None:
        while True:
            pkt = self.pending or next(self.packets, None)
            self.pending = None
            if pkt is None:
                return
            if pkt.dts is None:  # the demuxer's flush packet
                continue
            if t is not None and pkt.pts is not None and float((pkt.pts - self.start) * pkt.time_base) > t:
                self.pending = pkt
                return
            pkt.stream = self.stream
            output.mux(pkt)

    def close(self):
        self.input.close()


class _AudioEncoder:
    """Encodes decoded audio chunks (from a clip or a segment) up to a given time."""

    def __init__(self, source: AudioClip | AudioSegment | AudioStreamRef, output, codec: str, sample_format: str):
        self.sample_rate, self.channels = source.sample_rate, source.channels
        self.chunks = source.chunks()
        self.stream = output.add_stream(codec, rate=self.sample_rate, layout=_layout(self.channels))
        self.stream.codec_context.format = sample_format
        if codec == "aac":
            self.stream.codec_context.bit_rate = 192_000
        self.position = 0
        self.pending = None

    def write_until(self, output, t: float | None) -> None:
        end = None if t is None else int(t * self.sample_rate)
        while end is None or self.position < end:
            data = self.pending if self.pending is not None else next(self.chunks, None)
            self.pending = None
            if data is None:
                break
            if end is not None and self.position + data.shape[1] > end:
                data, self.pending = data[:, :end - self.position], data[:, end - self.position:]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.clip(data, -1.0, 1.0)),
                                               format="fltp", layout=_layout(self.channels))
            frame.sample_rate = self.sample_rate
            frame.pts = self.position
            frame.time_base = Fraction(1, self.sample_rate)
            output.mux(self.stream.encode(frame))
            self.position += data.shape[1]
        if t is None:
            output.mux(self.stream.encode(None))

    def close(self):
        pass


class VideoWriter:
    """Write uint8 RGB frames [H,W,3] or [n,H,W,3] to a video file or PNG folder.

    `audio` is an AudioStreamRef, AudioSegment or AudioClip, or a function
    returning one, called when the first frame arrives (a reader only knows
    where a trimmed selection's audio starts once it has decoded a frame).
    `colour` (a Colour, or a function returning one or None) is the matrix,
    range and tags of the source; h264 is encoded and tagged with it (None:
    BT.709 for HD, BT.601 below). `timestamps(i)` gives frame i's time in
    seconds for variable-rate video (None: constant `fps`). `first_frame`
    numbers the frames of a chunk within the whole video.
    Use as a context manager: an exception inside discards the partial output.
    """

    def __init__(self, path: str, fps, fmt: str | None = None, crf: int = 18, preset: str = "medium",
                 audio=None, overwrite: bool = False, colour=None, timestamps=None, first_frame: int = 0,
                 reporter: Reporter | None = None):
        self.path = os.fspath(path)
        self.fps = to_fraction(fps, "fps")
        self.format = validate_output(self.path, fmt, crf, overwrite)
        self.target = resolve(self.path)      # a link is written through, judged by what it points to
        self.ext = os.path.splitext(self.path)[1].lower()
        self.crf, self.preset, self.audio = crf, preset, audio
        self.colour, self.timestamps, self.first_frame = colour, timestamps, first_frame
        self.reporter = get_reporter(reporter)
        self.tmp = atomic.temporary_name(self.target)
        self.frame_count = 0
        self.written: dict[str, str] = {}    # PNG frames: name -> SHA-256, recorded for later clean-ups
        self.size = None
        self._container = self._video = self._audio = None
        self._closed = False
        self._copying = False
        self.overwrite = overwrite
        if self.format == "png":
            os.mkdir(self.tmp)
        else:
            try:
                open_exclusive(self.tmp).close()
            except OSError as err:
                raise OutputError(f"cannot write '{self.path}': {err}") from None

    # -- set-up on the first frame, once the size is known
    def _start(self, height: int, width: int, template=None) -> None:
        self.size = (height, width)
        if callable(self.audio):
            self.audio = self.audio()
        if callable(self.colour):
            self.colour = self.colour()
        self.colour = self.colour or Colour.default_for(height)
        if self.format == "png":
            return
        if self.format == "h264" and (height % 2 or width % 2):
            self.reporter.log(f"note: h264/yuv420p needs even sizes; padding {width}x{height} frames by "
                              f"repeating the last row/column")
        options = {"movflags": "+faststart"} if self.ext in (".mp4", ".mov") else {}
        self._container = av.open(self.tmp, mode="w", options=options)
        self._copying = template is not None
        self._time_base = VFR_TIME_BASE if self.timestamps else Fraction(1) / self.fps
        if template is not None:     # copying encoded chunks: the stream is the chunks' stream
            self._video = self._container.add_stream_from_template(template)
            self._video.time_base = self._time_base
        elif self.format == "h264":
            self._video = self._container.add_stream("libx264", rate=self.fps)
            self._video.pix_fmt = "yuv420p"
            self._video.options = {"crf": str(self.crf), "preset": self.preset}
            self._video.width, self._video.height = width + width % 2, height + height % 2
        else:
            self._video = self._container.add_stream("ffv1", rate=self.fps)
            self._video.pix_fmt = "bgr0"  # RGB kept as RGB: lossless for RGB input
            self._video.width, self._video.height = width, height
        if template is None:
            cc = self._video.codec_context
            cc.time_base = self._time_base
            if self.format == "h264":
                cc.colorspace, cc.color_range = self.colour.matrix, self.colour.range
                cc.color_primaries, cc.color_trc = self.colour.primaries, self.colour.transfer
        if isinstance(self.audio, AudioStreamRef) and (
                COPYABLE_AUDIO[self.ext] is None or self.audio.codec in COPYABLE_AUDIO[self.ext]):
            self._audio = _AudioCopier(self.audio, self._container)
        elif self.audio is not None:
            self._audio = _AudioEncoder(self.audio, self._container, *ENCODED_AUDIO[self.ext])

    def write(self, frames: np.ndarray) -> None:
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InputError(f"frames of shape {frames.shape} and dtype {frames.dtype}; "
                             f"expected uint8 RGB [n,H,W,3]")
        if self.size is None:
            self._start(*frames.shape[1:3])
        if frames.shape[1:3] != self.size:
            raise InputError(f"frame {self.frame_count} is {frames.shape[2]}x{frames.shape[1]}, expected "
                             f"{self.size[1]}x{self.size[0]} like the first frame")
        for image in frames:
            self._write_one(image)

    def _write_one(self, image: np.ndarray) -> None:
        if self.format == "png":
            ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if not ok:
                raise OutputError(f"could not encode frame {self.frame_count} as PNG")
            self._write_png(f"frame_{self.first_frame + self.frame_count + 1:06d}.png", data.tobytes())
        else:
            if self.format == "h264" and (image.shape[0] % 2 or image.shape[1] % 2):
                image = np.pad(image, ((0, image.shape[0] % 2), (0, image.shape[1] % 2), (0, 0)), mode="edge")
            if self.format == "h264":
                frame = from_rgb24(image, self.colour)
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            index = self.first_frame + self.frame_count
            frame.pts = self._tick(index)
            self._container.mux(self._video.encode(frame))
            self._audio_until(index)
        self.frame_count += 1

    def _frame_end(self, index: int) -> float:
        """Seconds at which frame ``index`` ends (variable rate: when the next one starts, or one median step)."""
        if not self.timestamps:
            return float((index + 1) / self.fps)
        try:
            return self.timestamps(index + 1)
        except IndexError:
            return self.timestamps(index) + float(1 / self.fps)

    def _audio_until(self, index: int) -> None:
        if self._audio is not None:
            self._audio.write_until(self._container, self._frame_end(index) + AUDIO_LOOKAHEAD)

    def append_encoded(self, chunk: str) -> int:
        """Copy a finished chunk (a video or PNG folder written by a VideoWriter with this writer's format,
        size, rate and colour) after the frames so far, without re-encoding; returns its frame count.

        Timestamps are rebuilt from frame numbers, not copied: muxers shift a
        chunk's own times (mp4 edit lists, Matroska's milliseconds), and a
        packet's presentation number is its rank by time within the chunk.
        """
        if self.format == "png":
            return self._append_png_chunk(chunk)
        with av.open(chunk) as source:
            stream = source.streams.video[0]
            if self._container is None:
                self._start(stream.codec_context.height, stream.codec_context.width, template=stream)
            elif stream.codec_context.extradata != self._video.codec_context.extradata:
                raise OutputError(f"chunk '{chunk}' was encoded with other settings than the chunks before it")
            packets = [p for p in source.demux(stream) if p.size]
        first = self.first_frame + self.frame_count
        order = sorted(range(len(packets)), key=lambda j: packets[j].pts)
        rank = {j: r for r, j in enumerate(order)}
        if any(j - rank[j] > REORDER_FRAMES for j in rank):
            raise OutputError(f"chunk '{chunk}' reorders frames further than {REORDER_FRAMES}; expected x264's "
                              f"default B-frames")
        for j, pkt in enumerate(packets):     # decode order
            shown = first + rank[j]
            pkt.pts, pkt.dts = self._tick(shown), self._tick(first + j - REORDER_FRAMES)
            pkt.duration = round((self._frame_end(shown) - self._frame_start(shown)) / self._time_base)
            pkt.time_base = self._time_base
            pkt.stream = self._video
            self._container.mux(pkt)
            self._audio_until(shown)
        self.frame_count += len(packets)
        return len(packets)

    def _frame_start(self, index: int) -> float:
        return self.timestamps(index) if self.timestamps else float(index / self.fps)

    def _tick(self, index: int) -> int:
        """Frame ``index``'s time in ``_time_base`` units (frame numbers at a constant rate; before frame 0
        of a variable-rate video, steps at the mean rate)."""
        if not self.timestamps:
            return index
        if index < 0:
            return round(index / self.fps / VFR_TIME_BASE)
        return round(self.timestamps(index) / VFR_TIME_BASE)

    def _write_png(self, name: str, data: bytes) -> None:
        write_new(os.path.join(self.tmp, name), data)      # an OSError keeps its errno (ENOSPC: disk full)
        self.written[name] = hashlib.sha256(data).hexdigest()

    def _append_png_chunk(self, chunk: str) -> int:
        names = sorted(n for n in os.listdir(chunk) if n.startswith("frame_") and n.endswith(".png"))
        for name in names:
            with open(os.path.join(chunk, name), "rb") as f:
                data = f.read()
            if self.size is None:
                self._start(*cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2])
            self._write_png(f"frame_{self.frame_count + 1:06d}.png", data)
            self.frame_count += 1
        return len(names)

    def close(self) -> int:
        """Finish the file and move it into place; returns the number of frames written."""
        if self._closed:
            return self.frame_count
        if self.frame_count == 0:
            self.abort()
            raise InputError(f"no frames were given for '{self.path}'; expected at least one frame")
        try:
            if self.format == "png":
                if self.audio is not None:
                    _write_audio_file(self.audio, os.path.join(self.tmp, "audio.mka"))
                    self.written["audio.mka"] = file_sha256(os.path.join(self.tmp, "audio.mka"))
                atomic.write_frames_manifest(self.tmp, self.written)
            else:
                if not self._copying:
                    self._container.mux(self._video.encode(None))
                if self._audio is not None:
                    self._audio.write_until(self._container, None)
                    self._audio.close()
                self._container.close()
            note = atomic.commit(self.tmp, self.target, self.overwrite)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        if note:
            self.reporter.log(note)
        return self.frame_count

    def abort(self) -> None:
        """Drop the partial output; the destination keeps what it had."""
        self._closed = True
        try:
            if self._audio is not None:
                self._audio.close()
            if self._container is not None:
                self._container.close()
        except Exception:  # the partial file is deleted anyway
            pass
        atomic.discard(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def _write_audio_file(audio, path: str) -> None:
    """The audio of a PNG sequence, kept beside the frames as a Matroska audio file."""
    with av.open(path, mode="w") as container:
        if isinstance(audio, AudioStreamRef):
            enc = _AudioCopier(audio, container)
        else:
            enc = _AudioEncoder(audio, container, *ENCODED_AUDIO[".mkv"])
        enc.write_until(container, None)
        enc.close()

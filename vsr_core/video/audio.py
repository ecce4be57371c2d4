"""Audio carried alongside the frames.

Three forms, from most to least faithful:
- AudioStreamRef: the audio stream of a source file; a writer copies its
  packets bit for bit when the output container accepts the codec.
- AudioSegment: a time range of such a stream (when frames were skipped or
  capped), decoded and encoded chunk by chunk, so memory stays small.
- AudioClip: decoded samples in memory, which is what ComfyUI's AUDIO carries.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import av
import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class AudioStreamRef:
    """The first audio stream of `path`, to be copied untouched."""

    path: str
    codec: str
    sample_rate: int
    channels: int

    def chunks(self) -> Iterator[np.ndarray]:
        return iter_audio(self)


@dataclass(frozen=True)
class AudioSegment:
    """Seconds [start, start+duration) of a stream; duration None runs to its end."""

    ref: AudioStreamRef
    start: float
    duration: float | None

    @property
    def sample_rate(self) -> int:
        return self.ref.sample_rate

    @property
    def channels(self) -> int:
        return self.ref.channels

    def chunks(self) -> Iterator[np.ndarray]:
        return iter_audio(self.ref, self.start, self.duration)


@dataclass
class AudioClip:
    """Decoded audio: float32 samples [channels, samples] in -1..1."""

    waveform: np.ndarray
    sample_rate: int

    def __post_init__(self):
        w = np.asarray(self.waveform, dtype=np.float32)
        if w.ndim == 1:
            w = w[None]
        if w.ndim != 2 or w.shape[0] < 1:
            raise InputError(f"audio waveform has shape {tuple(np.shape(self.waveform))}; "
                             f"expected [channels, samples]")
        if not (isinstance(self.sample_rate, (int, np.integer)) and 0 < self.sample_rate <= 768_000):
            raise InputError(f"audio sample_rate={self.sample_rate!r}; expected a positive integer rate in Hz")
        if not np.isfinite(w).all():
            channel, sample = np.argwhere(~np.isfinite(w))[0]
            raise InputError(f"audio waveform holds NaN or infinite samples (first at channel {channel}, sample "
                             f"{sample}); expected finite samples in -1..1")
        self.waveform = w
        self.sample_rate = int(self.sample_rate)

    @property
    def channels(self) -> int:
        return self.waveform.shape[0]

    def chunks(self, size: int = 65536) -> Iterator[np.ndarray]:
        for i in range(0, self.waveform.shape[1], size):
            yield self.waveform[:, i:i + size]

    def segment(self, start: float, duration: float) -> "AudioClip":
        """Samples [start, start+duration) seconds."""
        lo = int(round(start * self.sample_rate))
        return AudioClip(self.waveform[:, lo:lo + int(round(duration * self.sample_rate))], self.sample_rate)


def probe_audio(path: str) -> AudioStreamRef | None:
    """The first audio stream of a media file, or None if it has none."""
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                return None
            s = container.streams.audio[0]
            return AudioStreamRef(path=path, codec=s.codec_context.name,
                                  sample_rate=s.codec_context.sample_rate,
                                  channels=s.codec_context.channels)
    except av.error.FFmpegError:
        return None


def _decoded(ref: AudioStreamRef) -> Iterator[tuple[int, np.ndarray]]:
    """(first sample index, float32 [C,n]) for every decoded frame, on the stream's clock."""
    resampler = av.AudioResampler(format="fltp", rate=ref.sample_rate)
    with av.open(ref.path) as container:
        stream = container.streams.audio[0]
        origin = stream.start_time or 0
        position = None
        for frame in container.decode(stream):
            if position is None:
                # Start where the stream's first timestamp says, so A/V offsets survive.
                pts = frame.pts if frame.pts is not None else origin
                position = int(round(float((pts - origin) * stream.time_base) * ref.sample_rate))
            for out in resampler.resample(frame):
                data = out.to_ndarray()
                yield position, data
                position += data.shape[1]
        for out in resampler.resample(None):
            data = out.to_ndarray()
            yield position or 0, data
            position = (position or 0) + data.shape[1]


def iter_audio(ref: AudioStreamRef, start: float = 0.0,
               duration: float | None = None) -> Iterator[np.ndarray]:
    """Decoded float32 [C,n] chunks covering exactly [start, start+duration) seconds."""
    first = int(round(start * ref.sample_rate))
    end = None if duration is None else first + int(round(duration * ref.sample_rate))
    cursor = first
    for pos, data in _decoded(ref):
        hi = pos + data.shape[1] if end is None else min(pos + data.shape[1], end)
        if pos > cursor:  # a gap in the stream: keep the timing with silence
            gap = pos - cursor if end is None else min(pos, end) - cursor
            if gap > 0:
                yield np.zeros((data.shape[0], gap), dtype=np.float32)
                cursor += gap
        if hi > cursor:
            yield np.ascontiguousarray(data[:, cursor - pos:hi - pos])
            cursor = hi
        if end is not None and cursor >= end:
            return


def decode_audio(source: AudioStreamRef | AudioSegment) -> AudioClip:
    """All samples of a stream or segment, in memory."""
    parts = list(source.chunks())
    channels = source.channels or (parts[0].shape[0] if parts else 1)
    wave = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
    return AudioClip(wave, source.sample_rate)

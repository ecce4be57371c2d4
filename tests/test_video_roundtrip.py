"""Decode/encode round trips: frames, frame count, exact fps and audio survive."""
from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest

from conftest import tone
from vsr_core.video import AudioClip, AudioStreamRef, LoadOptions, VideoWriter, decode_audio, open_video


def test_ffv1_roundtrip_is_lossless_with_exact_fps_and_audio(tmp_path, clip, media):
    fps = Fraction(30000, 1001)
    audio = tone(len(clip) / float(fps))
    src = media("src.mkv", fps=fps, audio=audio)
    reader = open_video(src)
    assert reader.fps == fps
    frames = reader.read_all()
    np.testing.assert_array_equal(frames, clip)
    assert reader.frame_count == len(clip)

    dst = str(tmp_path / "out.mkv")
    with VideoWriter(dst, reader.fps, fmt="ffv1", audio=reader.audio()) as w:
        w.write(frames)
    again = open_video(dst)
    np.testing.assert_array_equal(again.read_all(), clip)
    assert again.fps == fps
    got = decode_audio(again.audio())
    assert got.sample_rate == 48000
    np.testing.assert_array_equal(got.waveform, audio)  # pcm -> copied packets -> identical samples


def test_decoded_audio_encodes_losslessly_to_flac(tmp_path, clip):
    audio = AudioClip(tone(0.5, rate=44100, channels=1), 44100)
    dst = str(tmp_path / "out.mkv")
    with VideoWriter(dst, 24, fmt="h264", audio=audio) as w:
        w.write(clip)
    ref = open_video(dst).audio_ref()
    assert ref.codec == "flac"
    np.testing.assert_array_equal(decode_audio(ref).waveform, audio.waveform)


def test_aac_packets_are_copied_bit_for_bit_into_mp4(tmp_path, clip):
    src = str(tmp_path / "src.mp4")
    with VideoWriter(src, 24, fmt="h264", audio=AudioClip(tone(0.5), 48000)) as w:
        w.write(clip)
    dst = str(tmp_path / "copy.mp4")
    reader = open_video(src)
    with VideoWriter(dst, reader.fps, fmt="h264", audio=reader.audio()) as w:
        for window in reader.windows(5):
            w.write(window)

    def packets(path):
        with av.open(path) as c:
            return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]

    assert packets(src) == packets(dst)
    assert open_video(dst).read_all().shape[0] == len(clip)


@pytest.mark.parametrize("fmt,name", [("h264", "o.mp4"), ("h264", "o.mov"), ("ffv1", "o.mkv"), ("png", "o")])
def test_every_format_keeps_the_frame_count(tmp_path, clip, fmt, name):
    dst = str(tmp_path / name)
    with VideoWriter(dst, Fraction(25), fmt=fmt, crf=10) as w:
        w.write(clip[:7])
        w.write(clip[7:])
    reader = open_video(dst)
    frames = reader.read_all()
    assert frames.shape == clip.shape
    tolerance = 0 if fmt in ("ffv1", "png") else 12
    assert np.abs(frames.astype(int) - clip).mean() <= tolerance
    if fmt != "png":
        assert reader.fps == 25


def test_h264_pads_odd_sizes_to_even(tmp_path, clip):
    dst = str(tmp_path / "odd.mp4")
    with VideoWriter(dst, 24, fmt="h264") as w:
        w.write(clip[:, :47, :63])
    r = open_video(dst)
    assert (r.height, r.width) == (48, 64)
    assert r.read_all().shape[0] == len(clip)


def test_png_sequence_keeps_audio_beside_frames(tmp_path, clip):
    dst = str(tmp_path / "frames")
    audio = AudioClip(tone(0.5), 48000)
    with VideoWriter(dst, 24, fmt="png", audio=audio) as w:
        w.write(clip)
    names = sorted(os.listdir(dst))
    assert names[-1] == "frame_000012.png" and "audio.mka" in names
    np.testing.assert_array_equal(open_video(dst).read_all(), clip)
    sidecar = decode_audio(AudioStreamRef(os.path.join(dst, "audio.mka"), "flac", 48000, 2))
    np.testing.assert_array_equal(sidecar.waveform, audio.waveform)


def test_trimmed_selection_trims_the_audio_to_match(tmp_path, clip, media):
    fps = Fraction(24)
    audio = tone(len(clip) / 24)
    src = media("src.mkv", fps=fps, audio=audio)
    reader = open_video(src, LoadOptions(skip_first_frames=3, frame_load_cap=6))
    frames = reader.read_all()
    np.testing.assert_array_equal(frames, clip[3:9])
    segment = decode_audio(reader.audio())
    per_frame = 48000 // 24
    np.testing.assert_array_equal(segment.waveform, audio[:, 3 * per_frame:9 * per_frame])

    dst = str(tmp_path / "trim.mkv")
    reader = open_video(src, LoadOptions(skip_first_frames=3, frame_load_cap=6))
    with VideoWriter(dst, reader.fps, audio=reader.audio, fmt="ffv1") as w:
        for window in reader.windows(4):
            w.write(window)
    np.testing.assert_array_equal(decode_audio(open_video(dst).audio_ref()).waveform,
                                  audio[:, 3 * per_frame:9 * per_frame])

"""Sources (containers, GIF/WebP, image folders), frame selection and streaming memory."""
from __future__ import annotations

import tracemalloc
from fractions import Fraction

import cv2
import numpy as np
from PIL import Image

from vsr_core.video import LoadOptions, open_video
from vsr_core.video.timeline import resample_to_rate, select, select_indices


def test_selection_order_is_force_rate_skip_nth_cap():
    timed = [(i / 30, i) for i in range(30)]
    opts = LoadOptions(force_rate=Fraction(15), skip_first_frames=1, select_every_nth=2, frame_load_cap=4)
    assert [f for _t, f in select(timed, opts, Fraction(30))] == [2, 6, 10, 14]


def test_force_rate_repeats_frames_of_a_slower_source():
    timed = [(i / 10, i) for i in range(5)]
    out = [f for _t, f in resample_to_rate(timed, Fraction(20), source_fps=Fraction(10))]
    assert out == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_select_indices_matches_streaming_selection():
    opts = LoadOptions(skip_first_frames=2, select_every_nth=3)
    indices, start, fps = select_indices(20, Fraction(24), opts)
    assert indices == [2, 5, 8, 11, 14, 17]
    assert start == 2 / 24 and fps == 8


def test_reader_applies_options_and_reports_the_resulting_fps(clip, media):
    src = media("c.mkv", fps=Fraction(24))
    reader = open_video(src, LoadOptions(select_every_nth=2, skip_first_frames=1))
    np.testing.assert_array_equal(reader.read_all(), clip[1::2])
    assert reader.fps == 12
    assert reader.frame_count == len(clip[1::2])


def test_image_folder_is_read_in_natural_order(tmp_path, clip):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(clip[:11]):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a frame")
    reader = open_video(str(folder), LoadOptions(folder_fps="30000/1001"))
    np.testing.assert_array_equal(reader.read_all(), clip[:11])  # f10 after f9, not after f1
    assert reader.fps == Fraction(30000, 1001)


def test_animated_gif_and_webp_keep_frames_and_timing(tmp_path, clip):
    images = [Image.fromarray(f) for f in clip[:6]]
    images[0].save(tmp_path / "a.webp", save_all=True, append_images=images[1:], duration=40, lossless=True)
    reader = open_video(str(tmp_path / "a.webp"))
    np.testing.assert_array_equal(reader.read_all(), clip[:6])
    assert reader.fps == 25
    images[0].save(tmp_path / "a.gif", save_all=True, append_images=images[1:], duration=50)
    reader = open_video(str(tmp_path / "a.gif"))
    assert reader.read_all().shape == (6, 48, 64, 3)
    assert reader.fps == 20


def _peak_while_streaming(path: str) -> int:
    reader = open_video(path)
    tracemalloc.start()
    for window in reader.windows(8):
        window.sum()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_streaming_memory_does_not_grow_with_length(tmp_path, media):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (8, 96, 128, 3), dtype=np.uint8)
    short = media("short.mkv", frames=np.concatenate([base] * 3))   # 24 frames
    long = media("long.mkv", frames=np.concatenate([base] * 30))    # 240 frames
    p_short, p_long = _peak_while_streaming(short), _peak_while_streaming(long)
    window_bytes = 8 * 96 * 128 * 3
    assert p_long < 4 * window_bytes
    assert p_long < 1.3 * p_short


def test_common_containers_are_read(tmp_path, clip):
    """webm (VP9), avi (MPEG-4 part 2), mov (h264): frame count, size and fps come through."""
    import av
    for name, codec in (("c.webm", "libvpx-vp9"), ("c.avi", "mpeg4"), ("c.mov", "libx264")):
        path = str(tmp_path / name)
        with av.open(path, "w") as out:
            s = out.add_stream(codec, rate=Fraction(25))
            s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
            for i, f in enumerate(clip):
                frame = av.VideoFrame.from_ndarray(f, format="rgb24")
                frame.pts = i
                out.mux(s.encode(frame))
            out.mux(s.encode(None))
        reader = open_video(path)
        frames = reader.read_all()
        assert frames.shape == clip.shape, name
        assert reader.fps == 25, name
        assert np.abs(frames.astype(int) - clip).mean() < 20, name

"""Every bad input gets an error naming it, and nothing partial is left behind."""
from __future__ import annotations

import os

import av
import cv2
import numpy as np
import pytest

from vsr_core.errors import InputError, OutputError
from vsr_core.video import AudioClip, LoadOptions, VideoWriter, open_video


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_video(str(tmp_path / "nope.mp4"))


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        open_video(str(tmp_path / "empty.mp4"))


def test_unreadable_file(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(os.urandom(4096))
    with pytest.raises(InputError, match="junk.mp4"):
        open_video(str(tmp_path / "junk.mp4")).read_all()


def test_zero_frame_video(tmp_path):
    path = str(tmp_path / "zero.mkv")
    with av.open(path, "w") as out:
        s = out.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "bgr0"
        out.start_encoding()  # header only: a valid file with no frames
    with pytest.raises(InputError, match=r"zero\.mkv.*(no frames|End of file)"):
        open_video(path).read_all()


def test_unknown_extension(tmp_path):
    (tmp_path / "clip.xyz").write_bytes(b"data")
    with pytest.raises(InputError, match=r"unknown extension '\.xyz'.*\.mp4"):
        open_video(str(tmp_path / "clip.xyz"))


def test_folder_with_mixed_frame_sizes_names_the_odd_file(tmp_path, clip):
    cv2.imwrite(str(tmp_path / "0001.png"), clip[0])
    cv2.imwrite(str(tmp_path / "0002.png"), clip[1])
    cv2.imwrite(str(tmp_path / "0003.png"), clip[2, :40])
    with pytest.raises(InputError, match=r"0003\.png' is 64x40 .* 64x48"):
        open_video(str(tmp_path))


def test_empty_folder(tmp_path):
    with pytest.raises(InputError, match="holds no images"):
        open_video(str(tmp_path))


@pytest.mark.parametrize("kwargs,name", [({"frame_load_cap": -1}, "frame_load_cap"),
                                         ({"select_every_nth": 0}, "select_every_nth"),
                                         ({"skip_first_frames": 1.5}, "skip_first_frames"),
                                         ({"force_rate": -3}, "force_rate"),
                                         ({"folder_fps": "abc"}, "folder_fps")])
def test_out_of_range_options(kwargs, name):
    with pytest.raises(InputError, match=name):
        LoadOptions(**kwargs)


def test_skipping_every_frame_is_reported(media):
    with pytest.raises(InputError, match="skip_first_frames=50 skips every frame"):
        open_video(media("c.mkv"), LoadOptions(skip_first_frames=50)).read_all()


def test_missing_output_folder(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        VideoWriter(str(tmp_path / "no" / "such" / "out.mp4"), 24)


def test_output_under_a_file_is_not_writable(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError):
        VideoWriter(str(tmp_path / "afile" / "out.mp4"), 24)


def test_existing_output_is_kept_unless_overwrite(tmp_path, clip):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"the user's precious file")
    with pytest.raises(OutputError, match="already exists"):
        VideoWriter(str(dst), 24)
    assert dst.read_bytes() == b"the user's precious file"


@pytest.mark.parametrize("kwargs,name", [({"crf": 60}, "crf"), ({"fmt": "gif"}, "format"),
                                         ({"fps": 0}, "fps")])
def test_bad_writer_options(tmp_path, kwargs, name):
    args = {"fps": 24, **kwargs}
    with pytest.raises(InputError, match=name):
        VideoWriter(str(tmp_path / "o.mp4"), **args)


def test_format_must_fit_the_container(tmp_path):
    with pytest.raises(InputError, match="ffv1 cannot be written to .*mkv"):
        VideoWriter(str(tmp_path / "o.mp4"), 24, fmt="ffv1")


def test_failure_midway_leaves_the_previous_output_untouched(tmp_path, clip):
    dst = tmp_path / "out.mkv"
    dst.write_bytes(b"previous good render")
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(str(dst), 24, fmt="ffv1", overwrite=True, audio=AudioClip(np.zeros((2, 4800)), 48000)) as w:
            w.write(clip[:5])
            raise RuntimeError("boom")
    assert dst.read_bytes() == b"previous good render"
    assert os.listdir(tmp_path) == ["out.mkv"]  # no temporary left behind


def test_wrong_frames_are_refused(tmp_path, clip):
    w = VideoWriter(str(tmp_path / "o.mkv"), 24, fmt="ffv1")
    with pytest.raises(InputError, match="uint8 RGB"):
        w.write(clip.astype(np.float32))
    w.write(clip[:2])
    with pytest.raises(InputError, match="expected 64x48"):
        w.write(clip[:2, :32])
    w.abort()
    assert os.listdir(tmp_path) == []


def test_closing_without_frames_writes_nothing(tmp_path):
    w = VideoWriter(str(tmp_path / "o.mkv"), 24, fmt="ffv1")
    with pytest.raises(InputError, match="no frames"):
        w.close()
    assert os.listdir(tmp_path) == []


def test_bad_audio_is_refused():
    with pytest.raises(InputError, match="sample_rate"):
        AudioClip(np.zeros((2, 10)), 0)
    with pytest.raises(InputError, match="channels, samples"):
        AudioClip(np.zeros((1, 2, 3)), 48000)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_non_finite_frames_are_named_and_large_finite_values_pass(dtype):
    import torch
    from vsr_core.ops.frames import check_finite, float_to_uint8
    big = torch.full((4, 3, 300, 300), 6e4, dtype=getattr(torch, dtype))   # their sum overflows float16
    check_finite(big)
    for bad in (float("nan"), float("inf"), float("-inf")):
        x = torch.rand(4, 3, 8, 8).to(getattr(torch, dtype))
        x[2, 1, 3, 4] = bad
        with pytest.raises(InputError, match="frame 7 contains NaN or infinite values"):
            float_to_uint8(x, first_index=5)
    y = torch.tensor([[-0.2, 0.0, 0.4999, 0.5, 1.0, 1.3]]).reshape(1, 1, 2, 3)
    assert float_to_uint8(y).reshape(-1).tolist() == [0, 0, 127, 128, 255, 255]

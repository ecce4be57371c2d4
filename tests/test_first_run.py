"""A new user's first ten minutes (issue 29): the shipped sample, help, messages, progress and paths."""
from __future__ import annotations

import os

from vsr_core.cli import main
from vsr_core.samples import example_clip
from vsr_core.video import open_video


def test_example_clip_ships_small_and_upscales_with_no_input_of_the_users(tmp_path, capsys):
    assert os.path.getsize(example_clip()) < 300_000
    reader = open_video(example_clip())
    assert (reader.width, reader.height, reader.fps) == (160, 90, 24)
    out = tmp_path / "out.mp4"
    assert main(["upscale", "--example", str(out)]) == 0
    frames = open_video(str(out)).read_all()
    assert frames.shape == (24, 360, 640, 3)
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote 24 frames to {out}"


def test_example_takes_one_path_and_plain_upscale_two(tmp_path, capsys):
    assert main(["upscale", "--example"]) == 2
    assert "--example takes exactly one path" in capsys.readouterr().err
    assert main(["upscale", "--example", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]) == 2
    assert "--example takes exactly one path" in capsys.readouterr().err
    assert main(["upscale", str(tmp_path / "a.mp4")]) == 2
    assert "expected INPUT and OUTPUT" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []

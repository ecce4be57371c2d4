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


def test_progress_total_counts_the_selected_frames_and_wrote_is_a_clean_last_line(tmp_path, media, capsys):
    src = media("in.mkv")                                 # 12 frames
    for k, (flags, expected) in enumerate(((["--frame-load-cap", "5", "--select-every-nth", "2"], 5),
                                           (["--skip-first-frames", "3", "--select-every-nth", "2"], 5),
                                           (["--frame-load-cap", "7", "--method", "learned"], 7))):
        out = tmp_path / f"out{k}.mkv"
        assert main(["upscale", src, str(out), "--format", "ffv1", "--window", "4", "--overlap", "1",
                     "--method", "bicubic", *flags]) == 0
        captured = capsys.readouterr()
        bars = captured.err.replace("\r", "\n").splitlines()
        counts = [line.split("] ")[1].split(" ")[0] for line in bars if "] " in line]
        assert counts[0] == f"0/{expected}" and counts[-1] == f"{expected}/{expected}"
        assert all(c.endswith(f"/{expected}") for c in counts)
        assert "elapsed" in bars[-1] and captured.err.endswith("\n")
        assert captured.out.splitlines()[-1] == f"wrote {expected} frames to {out}"


def test_terminal_reporter_shows_elapsed_eta_and_progress_within_a_window():
    import io

    from vsr_core.progress import TerminalReporter
    stream = io.StringIO()
    rep = TerminalReporter(stream)
    rep.start(24, "upscale")
    rep._last = 0.0
    rep.working(0.5, 8)                                   # half of the first 8-frame window
    line = stream.getvalue().split("\r")[-1]
    assert "0/24" in line and "elapsed, ETA " in line and "#" * 5 in line   # 4 of 24 frames drawn in the bar
    rep.log("a note")                                     # a message never lands on the bar's line
    assert stream.getvalue().endswith("\na note\n")
    rep.update(24)
    assert stream.getvalue().endswith("elapsed)\n")        # the finished bar closes its line
    rep.finish()
    assert not stream.getvalue().endswith("\n\n")

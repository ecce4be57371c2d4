"""A new user's first ten minutes (issue 29): the shipped sample, help, messages, progress and paths."""
from __future__ import annotations

import os

import numpy as np
import pytest

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


def _cancel_after(monkeypatch, frames: int):
    """Ctrl-C once the bar has counted `frames` frames (at the next interrupt check)."""
    import vsr_core.commands.upscale as command
    from vsr_core.progress import TerminalReporter

    class CtrlC(TerminalReporter):
        def check_interrupt(self):
            if self.done >= frames:
                raise KeyboardInterrupt
    monkeypatch.setattr(command, "TerminalReporter", CtrlC)


def test_a_short_clip_resumes_after_ctrl_c_and_the_message_says_so(tmp_path, media, capsys, monkeypatch):
    src = media("in.mkv")                                 # 12 frames: one 48-frame chunk before
    args = ["--format", "ffv1", "--window", "4", "--overlap", "1"]
    fresh = tmp_path / "fresh.mkv"
    assert main(["upscale", src, str(fresh), *args]) == 0
    out = tmp_path / "out.mkv"
    with monkeypatch.context() as m:
        _cancel_after(m, 3)
        assert main(["upscale", src, str(out), *args]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("interrupted: ") and "finished frame(s) are kept in" in err
    assert "run the same command again to resume" in err and err.endswith(f"'{out}' was not written")
    assert "existing output" not in err and not out.exists()
    assert main(["upscale", src, str(out), *args]) == 0
    assert "resuming: " in capsys.readouterr().err
    np.testing.assert_array_equal(open_video(str(out)).read_all(), open_video(str(fresh)).read_all())


def test_ctrl_c_before_any_chunk_or_without_cache_says_a_rerun_starts_over(tmp_path, media, capsys, monkeypatch):
    src = media("in.mkv")
    out = tmp_path / "out.mkv"
    out.write_bytes(b"an older result")
    with monkeypatch.context() as m:
        _cancel_after(m, 0)
        assert main(["upscale", src, str(out), "--format", "ffv1", "--overwrite"]) == 130
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "no chunk of frames was finished yet" in err and "starts from the beginning" in err
        assert err.endswith(f"'{out}' is unchanged") and out.read_bytes() == b"an older result"
        assert main(["upscale", src, str(out), "--format", "ffv1", "--overwrite", "--method", "bicubic"]) == 130
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"interrupted: nothing is kept; running the same command again starts from the beginning; "
            f"'{out}' is unchanged")
    assert main(["upscale", src, str(out), "--format", "ffv1", "--overwrite"]) == 0
    assert "holds no finished chunk of this job" in capsys.readouterr().err


def test_already_exists_names_overwrite_and_help_shows_defaults(tmp_path, media, capsys):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep")
    assert main(["upscale", media("in.mkv"), str(out)]) == 2
    assert "already exists; choose another name or allow overwriting (--overwrite)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--scale {4,2} output size: x4 or x2 the input (x2 resamples the x4 network's output) "
                  "(default: 4)", "(default: 12)",
                  "default 512 for the learned methods", "(default: 18)"):
        assert shown in text


def test_a_missing_output_folder_is_created_and_removed_again_if_the_job_is_refused(tmp_path, media, capsys):
    src = media("in.mkv")
    out = tmp_path / "new" / "deeper" / "out.mkv"
    assert main(["upscale", src, str(out), "--format", "ffv1", "--method", "bicubic"]) == 0
    assert out.exists() and f"created folder '{out.parent}'" in capsys.readouterr().err
    refused = tmp_path / "other" / "out.mkv"
    assert main(["upscale", src, str(refused), "--select-every-nth", "0"]) == 2
    assert not (tmp_path / "other").exists()

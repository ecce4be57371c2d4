"""`python -m vsr_core upscale`: the main job, end to end, as a user runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from conftest import tone
from vsr_core.cli import main
from vsr_core.video import decode_audio, open_video

ROOT = Path(__file__).resolve().parents[1]


def test_upscale_keeps_count_fps_and_audio_and_is_really_bicubic(tmp_path, media, clip):
    audio = tone(len(clip) / 25)
    src = media("in.mkv", fps=Fraction(25), audio=audio)
    out = str(tmp_path / "out.mkv")
    assert main(["upscale", src, out, "--scale", "2", "--format", "ffv1", "--window", "5", "--method", "bicubic"]) == 0
    reader = open_video(out)
    frames = reader.read_all()
    assert frames.shape == (12, 96, 128, 3) and reader.fps == 25
    np.testing.assert_array_equal(decode_audio(reader.audio_ref()).waveform, audio)
    x = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
    expected = F.interpolate(x, scale_factor=2, mode="bicubic").clamp(0, 1).mul(255).round().byte()
    np.testing.assert_array_equal(frames, expected.permute(0, 2, 3, 1).numpy())


def test_upscale_to_png_folder_with_selection(tmp_path, media):
    src = media("in.mkv")
    out = tmp_path / "frames"
    assert main(["upscale", src, str(out), "--select-every-nth", "2", "--frame-load-cap", "4"]) == 0
    assert sorted(n for n in os.listdir(out) if not n.startswith(".")) == [f"frame_{i:06d}.png" for i in range(1, 5)]
    assert open_video(str(out)).read_all().shape == (4, 192, 256, 3)


def test_upscale_errors_are_clear_and_leave_nothing(tmp_path, media, capsys):
    src = media("in.mkv")
    existing = tmp_path / "done.mp4"
    existing.write_bytes(b"keep me")
    assert main(["upscale", src, str(existing)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me"
    assert main(["upscale", str(tmp_path / "nope.mp4"), str(tmp_path / "o.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["upscale", src, str(tmp_path / "o.avi")]) == 2
    assert "expected .mp4, .mov or .mkv" in capsys.readouterr().err
    assert main(["upscale", src, str(tmp_path / "o.mp4"), "--select-every-nth", "0"]) == 2
    assert "select_every_nth=0" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["done.mp4", "in.mkv"]


def test_module_entry_point_runs_in_a_fresh_process(tmp_path, media):
    src = media("in.mkv")
    out = tmp_path / "o.mp4"
    run = subprocess.run([sys.executable, "-m", "vsr_core", "upscale", src, str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "wrote 12 frames" in run.stdout
    assert open_video(str(out)).read_all().shape == (12, 192, 256, 3)

"""Fault injection, part two (issue 30, part A): links, parked outputs, nesting, planted files, no-clobber
for every command that writes. Each test failed before its fix."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from conftest import write_media
from vsr_core.cli import main
from vsr_core.errors import OutputError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def small(tmp_path, clip):
    return write_media(tmp_path / "in.mkv", clip[:6, :24, :32])


def _frames_folder(folder, n=12, seed=0):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f"frame_{i + 1:06d}.png"), rng.integers(0, 255, (24, 32, 3), np.uint8))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


# 1 -------------------------------------------------------------- links are resolved before deciding
def test_1_overwrite_through_a_link_to_the_users_frames_deletes_nothing(tmp_path, small, capsys):
    before = _frames_folder(tmp_path / "target")         # named exactly like the frames a job writes
    os.symlink(tmp_path / "target", tmp_path / "link")
    assert main(["upscale", small, str(tmp_path / "link"), "--method", "bicubic", "--overwrite"]) == 2
    assert "holds files this job did not write" in capsys.readouterr().err
    assert _contents(tmp_path / "target") == before and os.path.islink(tmp_path / "link")
    assert sorted(os.listdir(tmp_path)) == ["in.mkv", "link", "target"]


def test_1_a_link_to_an_earlier_output_is_replaced_through_the_link(tmp_path, small):
    (tmp_path / "target").mkdir()
    assert main(["upscale", small, str(tmp_path / "target"), "--method", "bicubic"]) == 0
    os.symlink(tmp_path / "target", tmp_path / "link")
    assert main(["upscale", small, str(tmp_path / "link"), "--method", "bicubic", "--overwrite",
                 "--frame-load-cap", "2"]) == 0
    assert os.path.islink(tmp_path / "link")
    assert sorted(os.listdir(tmp_path / "target")) == [".vsr-frames.json", "frame_000001.png", "frame_000002.png"]
    assert sorted(os.listdir(tmp_path)) == ["in.mkv", "link", "target"]


def test_1_frames_named_like_ours_but_not_recorded_are_never_replaced(tmp_path, small, capsys):
    before = _frames_folder(tmp_path / "out")
    assert main(["upscale", small, str(tmp_path / "out"), "--method", "bicubic", "--overwrite"]) == 2
    assert _contents(tmp_path / "out") == before


def test_1_a_recorded_frame_the_user_edited_is_kept_when_the_folder_is_replaced(tmp_path, small):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["upscale", small, str(out), "--method", "bicubic"]) == 0
    (out / "frame_000002.png").write_bytes(b"retouched by hand")
    assert main(["upscale", small, str(out), "--method", "bicubic", "--overwrite"]) == 0
    kept = [n for n in os.listdir(tmp_path) if n.endswith(".old")]
    assert len(kept) == 1 and (tmp_path / kept[0] / "frame_000002.png").read_bytes() == b"retouched by hand"


# 4 -------------------------------------------------------------- a parked output is restored or kept
def test_4_an_output_parked_by_a_killed_run_is_restored_not_deleted(tmp_path, small, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["upscale", small, str(out), "--method", "bicubic"]) == 0
    before = _contents(out)
    parked = tmp_path / ".out.partial-0123abcd.old"
    os.rename(out, parked)                       # killed between "output -> .old" and "new -> output"
    (tmp_path / ".out.partial-89abcdef").mkdir()  # ... and its unfinished new frames
    assert main(["upscale", small, str(out), "--method", "bicubic"]) == 2
    err = capsys.readouterr().err
    assert "restored" in err and "already holds frames" in err
    assert _contents(out) == before and not parked.exists()
    assert main(["upscale", small, str(out), "--method", "bicubic", "--overwrite"]) == 0   # asked: replaced


def test_4_a_parked_output_beside_a_finished_one_is_kept(tmp_path, small, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["upscale", small, str(out), "--method", "bicubic"]) == 0
    parked = tmp_path / ".out.partial-0123abcd.old"
    os.rename(out, parked)
    before = _contents(parked)
    out.mkdir()                                  # killed after the second rename, before the clean-up
    assert main(["upscale", small, str(out), "--method", "bicubic", "--overwrite"]) == 0
    assert "kept" in capsys.readouterr().err and _contents(parked) == before


# 5 -------------------------------------------------------------- input, output and cache kept apart
@pytest.mark.parametrize("case", ["output in cache", "cache in output", "cache in input", "output in input"])
def test_5_nested_output_cache_and_input_are_refused_before_work(tmp_path, clip, case, capsys):
    frames = tmp_path / "frames"
    _frames_folder(frames, n=4)
    cache = tmp_path / "cache"
    out, cache_dir = {"output in cache": (cache / "out.mkv", cache),
                      "cache in output": (tmp_path / "out", tmp_path / "out" / "cache"),
                      "cache in input": (tmp_path / "o.mkv", frames / "cache"),
                      "output in input": (frames / "o.mkv", cache)}[case]
    cache.mkdir()
    before = _contents(frames)
    assert main(["upscale", str(frames), str(out), "--window", "4", "--overlap", "1",
                 "--cache-dir", str(cache_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected separate places" in err[0]
    assert _contents(frames) == before and not os.path.exists(out) and os.listdir(cache) == []


# 3 -------------------------------------------------------------- every command that writes: no clobbering
@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, (32, 48, 3), np.uint8)
    paths = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(paths[0]), a)
    cv2.imwrite(str(paths[1]), np.roll(a, 2, axis=1))
    return tuple(map(str, paths))


def test_3_flow_never_writes_over_an_input_image(tmp_path, pair, capsys):
    before = open(pair[0], "rb").read()
    os.symlink(pair[1], tmp_path / "link.npy")
    for out in (pair[0], str(tmp_path / "link.npy")):
        assert main(["flow", pair[0], pair[1], out, "--overwrite"]) == 2
        assert "is the input" in capsys.readouterr().err
    assert open(pair[0], "rb").read() == before and cv2.imread(pair[1]) is not None


def test_3_flow_replaces_an_existing_file_only_with_overwrite(tmp_path, pair, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    assert main(["flow", *pair, str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "mine"
    assert main(["flow", *pair, str(out), "--overwrite"]) == 0
    assert np.load(out).shape == (32, 48, 2)
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png", "notes.txt"]


def test_3_train_refuses_a_folder_of_the_users_and_resumes_its_own(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    args = ["train", "--steps", "1", "--batch", "1", "--frames", "2", "--lr-size", "12", "--eval-every", "0",
            "--photos", "skimage:astronaut"]
    assert main(args + ["--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "did not write (config.json)" in err and (mine / "config.json").read_text() == '{"my": "settings"}'
    run = tmp_path / "run"
    assert main(args + ["--out", str(run)]) == 0
    assert main(args[:2] + ["2"] + args[3:] + ["--out", str(run)]) == 0          # its own folder: resumed
    assert "resumed" in capsys.readouterr().out


def test_3_prepare_real_videos_refuses_a_folder_of_the_users(tmp_path, monkeypatch):
    from vsr_core.data import real_videos
    from vsr_core.data.real_videos import prepare_real_videos
    monkeypatch.setattr(real_videos, "find_webps", lambda packages: iter(()))    # the media packages' list
    monkeypatch.setattr(real_videos, "package_dirs", lambda packages: {})
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "manifest.json").write_text("my list")
    with pytest.raises(OutputError, match="did not write"):
        prepare_real_videos(str(mine), packages=())
    assert (mine / "manifest.json").read_text() == "my list"
    m = prepare_real_videos(str(tmp_path / "clips"), packages=(), log=lambda s: None)
    assert m["clips"] == [] and prepare_real_videos(str(tmp_path / "clips"), packages=())["clips"] == []


def test_8_flow_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, pair, monkeypatch, capsys):
    import errno
    from vsr_core import safe_files

    def full(f, data, path):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(safe_files, "_write_bytes", full)
    out = tmp_path / "flow.npy"
    assert main(["flow", *pair, str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "flow.npy" in err[0]
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]


def test_1_a_folder_named_like_an_unfinished_output_but_holding_other_files_is_kept(tmp_path, small, capsys):
    planted = tmp_path / ".out.partial-0badc0de"
    planted.mkdir()
    (planted / "thesis.tex").write_text("mine")
    unfinished = tmp_path / ".out.partial-00c0ffee"
    unfinished.mkdir()
    (unfinished / "frame_000001.png").write_bytes(b"half")
    assert main(["upscale", small, str(tmp_path / "out"), "--method", "bicubic"]) == 0
    assert (planted / "thesis.tex").read_text() == "mine" and not unfinished.exists()
    assert "kept '.out.partial-0badc0de'" in capsys.readouterr().err

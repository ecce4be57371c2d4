"""Fault injection, part two (issue 30, part A): the resume cache trusts and deletes only what it recorded,
planted links are never followed, and a full disk is one line with the cache still resumable."""
from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
import torch

from conftest import StopAfter, run_workflow, write_media, read_video as read
from vsr_core.cli import main
from vsr_core.errors import Interrupted, OutputError
from vsr_core.jobs.upscale import upscale_file
from vsr_core.pipeline.upscale_settings import UpscaleSettings
from vsr_core.jobs.job_settings import JobSettings

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = UpscaleSettings(window=4, window_overlap=1)


def job(**kw) -> JobSettings:
    return JobSettings(format="ffv1", chunk_frames=2, **kw)


Log = StopAfter       # a reporter that keeps the log and may cancel


@pytest.fixture
def small(tmp_path, clip):
    return write_media(tmp_path / "in.mkv", clip[:9, :24, :32])


def _contents(folder):
    return {p.name: (os.readlink(p) if p.is_symlink() else p.read_bytes()) for p in folder.iterdir()}


def _interrupted(src, out, cache, stop_after=5):
    with pytest.raises(Interrupted):
        upscale_file(src, str(out), SETTINGS, job(cache_dir=str(cache)), reporter=Log(stop_after))
    assert any(n.startswith("chunk_") for n in os.listdir(cache))


# 2 -------------------------------------------------------------- a user's folder is never a cache
@pytest.mark.parametrize("names", [("job.json", "job.lock", "chunk_000001.mp4"), ("job.lock",),
                                   ("chunk_000000.mkv", "chunk_000000.json")])
def test_2_a_users_folder_with_cache_like_names_is_refused_untouched(tmp_path, small, names, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in names:
        (mine / name).write_text(f"the user's own {name}\n")
    before = _contents(mine)
    assert main(["upscale", small, str(tmp_path / "o.mkv"), "--window", "4", "--overlap", "1",
                 "--cache-dir", str(mine)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and str(mine) in err[0]
    assert _contents(mine) == before and not (tmp_path / "o.mkv").exists()


def test_2_a_cache_with_a_file_the_user_added_is_refused(tmp_path, small):
    cache = tmp_path / "cache"
    _interrupted(small, tmp_path / "o.mkv", cache)
    (cache / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds files this pack did not write \\(notes.txt\\)"):
        upscale_file(small, str(tmp_path / "o.mkv"), SETTINGS, job(cache_dir=str(cache)))
    assert (cache / "notes.txt").read_text() == "mine"


def test_2_after_success_only_the_recorded_files_are_deleted(tmp_path, small):
    cache = tmp_path / "cache"
    out = tmp_path / "o.mkv"

    class Dropper(Log):          # the user drops a file into the cache while the job runs
        def update(self, n=1):
            super().update(n)
            if cache.exists() and not (cache / "keep.txt").exists():
                (cache / "keep.txt").write_text("mine")
    upscale_file(small, str(out), SETTINGS, job(cache_dir=str(cache)), reporter=Dropper())
    assert out.exists() and os.listdir(cache) == ["keep.txt"]


# 6 -------------------------------------------------------------- chunks are checked before they are used
@pytest.mark.parametrize("fault", ["flipped bytes", "another job's chunk", "another job's chunk and record"])
def test_6_a_damaged_or_swapped_chunk_is_recomputed_never_copied(tmp_path, clip, small, fault):
    other_src = write_media(tmp_path / "other.mkv", 255 - clip[:9, :24, :32])
    cache, other = tmp_path / "cache", tmp_path / "other_cache"
    _interrupted(small, tmp_path / "o.mkv", cache)
    _interrupted(other_src, tmp_path / "p.mkv", other)
    chunk = cache / "chunk_000001.mkv"
    if fault == "flipped bytes":
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    else:
        chunk.write_bytes((other / "chunk_000001.mkv").read_bytes())
        if fault.endswith("record"):
            (cache / "chunk_000001.json").write_bytes((other / "chunk_000001.json").read_bytes())
    log = Log()
    out = tmp_path / "o.mkv"
    upscale_file(small, str(out), SETTINGS, job(cache_dir=str(cache)), reporter=log)
    assert any("fails its check" in m for m in log.messages)
    fresh = tmp_path / "fresh.mkv"
    upscale_file(small, str(fresh), SETTINGS, job())
    np.testing.assert_array_equal(read(out), read(fresh))


def test_6_a_chunk_changed_during_the_run_never_reaches_the_output(tmp_path, small):
    cache, out = tmp_path / "cache", tmp_path / "o.mkv"

    class Swapper(Log):
        def update(self, n=1):
            super().update(n)
            if self.done >= 9 and (cache / "chunk_000000.mkv").exists():
                (cache / "chunk_000000.mkv").write_bytes(b"swapped")
    with pytest.raises(OutputError, match="chunk_000000.mkv' changed while the job ran"):
        upscale_file(small, str(out), SETTINGS, job(cache_dir=str(cache)), reporter=Swapper())
    assert not out.exists()
    upscale_file(small, str(out), SETTINGS, job(cache_dir=str(cache)))          # recomputed
    fresh = tmp_path / "fresh.mkv"
    upscale_file(small, str(fresh), SETTINGS, job())
    np.testing.assert_array_equal(read(out), read(fresh))


# 7 -------------------------------------------------------------- planted links are never followed
def _victim(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    return victim


def test_7_a_link_planted_as_the_output_lock_is_refused(tmp_path, small, capsys):
    victim = _victim(tmp_path)
    os.symlink(victim, tmp_path / ".o.mkv.vsr-lock")
    assert main(["upscale", small, str(tmp_path / "o.mkv"), "--method", "bicubic"]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "precious" and not (tmp_path / "o.mkv").exists()


def test_7_a_link_planted_as_the_cache_lock_is_refused(tmp_path, small, capsys):
    victim = _victim(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    os.symlink(victim, cache / "job.lock")
    assert main(["upscale", small, str(tmp_path / "o.mkv"), "--cache-dir", str(cache)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and "symbolic link" in err[0]
    assert victim.read_text() == "precious"


def test_7_links_planted_at_temporary_names_in_the_cache_are_not_followed(tmp_path, small):
    victim = _victim(tmp_path)
    cache, out = tmp_path / "cache", tmp_path / "o.mkv"
    _interrupted(small, out, cache)
    for name in ("job.json.tmp", "chunk_000002.json.tmp", "state_000002.safetensors.tmp", ".job.json.abcd1234.tmp"):
        os.symlink(victim, cache / name)
    upscale_file(small, str(out), SETTINGS, job(cache_dir=str(cache)))
    assert victim.read_text() == "precious" and read(out).shape[0] == 9 and not cache.exists()


def test_7_a_default_cache_folder_planted_as_a_link_is_refused_before_work(tmp_path, small, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / ".o.mkv.vsr-cache")
    assert main(["upscale", small, str(tmp_path / "o.mkv")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and "symbolic link" in err[0]
    assert os.listdir(elsewhere) == [] and not (tmp_path / "o.mkv").exists()


def _save_workflow(tmp_path, video, prefix):
    wf = {"1": {"class_type": "VSR_LoadVideo", "inputs": {"video": video}},
          "2": {"class_type": "VSR_SaveVideo", "inputs": {"frames": ["1", 0], "fps": ["1", 1],
                                                          "filename_prefix": prefix, "format": "h264-mkv"}}}
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    return path


def test_7_a_save_prefix_through_a_linked_folder_cannot_leave_the_output_folder(tmp_path, small, capsys,
                                                                                 monkeypatch):
    root, outside = tmp_path / "output", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "shared")
    path = _save_workflow(tmp_path, small, "shared/clip")
    assert run_workflow([str(path), "--output-dir", str(root)]) == 2
    assert "outside the output folder" in capsys.readouterr().err
    monkeypatch.setenv("VSR_OUTPUT_DIR", str(root))
    from nodes.nodes_video import VSR_SaveVideo
    with pytest.raises(OutputError, match="outside the output folder"):
        VSR_SaveVideo().save(torch.rand(2, 8, 8, 3), 24.0, "shared/clip", "h264-mp4", 18)
    assert "outside the output folder" in VSR_SaveVideo.VALIDATE_INPUTS(filename_prefix="shared/clip")
    assert os.listdir(outside) == []


def test_7_an_output_folder_that_is_itself_a_link_still_works(tmp_path, small):
    real = tmp_path / "real_output"
    real.mkdir()
    os.symlink(real, tmp_path / "output")
    path = _save_workflow(tmp_path, small, "vsr/clip")
    assert run_workflow([str(path), "--output-dir", str(tmp_path / "output")]) == 0
    assert os.listdir(real / "vsr") == ["clip_00001.mkv"]


# 8 -------------------------------------------------------------- a full disk: one line, resumable
def _disk_full_when(monkeypatch, condition):
    from vsr_core import safe_files
    real = safe_files._write_bytes

    def write(f, data, path):
        if condition(os.path.basename(path)):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data, path)
    monkeypatch.setattr(safe_files, "_write_bytes", write)


@pytest.mark.parametrize("what", ["state", "record", "png chunk"])
def test_8_disk_full_while_writing_the_cache_is_one_line_and_resumes(tmp_path, small, monkeypatch, capsys, what):
    cache = tmp_path / "cache"
    out = tmp_path / ("out" if what == "png chunk" else "out.mkv")
    full = {"state": lambda n: "state_000002" in n, "record": lambda n: "chunk_000002.json" in n,
            "png chunk": lambda n: n == "frame_000006.png"}[what]
    settings = ["--window", "4", "--overlap", "1", "--chunk-frames", "2"] + (
        [] if what == "png chunk" else ["--format", "ffv1"])
    args = ["upscale", small, str(out), "--cache-dir", str(cache)] + settings
    with monkeypatch.context() as m:
        _disk_full_when(m, full)
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "No space left on device" in err[-1] and "run the same command again" in err[-1]
    assert not any(line.startswith(("Traceback", "  File")) for line in err)
    assert not out.exists() and [n for n in os.listdir(tmp_path) if "partial" in n] == []
    assert [n for n in os.listdir(cache) if n.endswith(".tmp") or "partial" in n] == []
    assert main(args) == 0                                                   # space freed: resumed
    assert "resuming: " in capsys.readouterr().err
    fresh = tmp_path / ("fresh" if what == "png chunk" else "fresh.mkv")
    assert main(["upscale", small, str(fresh)] + settings) == 0
    np.testing.assert_array_equal(read(out), read(fresh))


def test_8_disk_full_while_writing_png_frames_keeps_the_old_output(tmp_path, small, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["upscale", small, str(out), "--method", "bicubic"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _disk_full_when(monkeypatch, lambda n: n == "frame_000003.png")
    capsys.readouterr()
    assert main(["upscale", small, str(out), "--method", "bicubic", "--overwrite", "--scale", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "No space left on device" in err[-1]
    assert not any(line.startswith(("Traceback", "  File")) for line in err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["in.mkv", "out"]

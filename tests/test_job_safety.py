"""Fault injection: the numbered cases of the job-safety issue, each tried the way a hurried user or a
hostile file would (every test here failed before the fix)."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from conftest import StopAfter, run_workflow, write_media, read_video as read
from vsr_core.cli import main
from vsr_core.errors import CheckpointError, InputError, Interrupted, OutputError
from vsr_core.jobs.file_job import output_lock_path
from vsr_core.jobs.lock import JobLock
from vsr_core.jobs.upscale import upscale_file
from vsr_core.video import LoadOptions, open_video
from vsr_core.pipeline.upscale_settings import UpscaleSettings
from vsr_core.jobs.job_settings import JobSettings

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


Log = StopAfter       # a reporter that keeps the log and may cancel


@pytest.fixture
def small(tmp_path, clip):
    return write_media(tmp_path / "in.mkv", clip[:9, :24, :32])


# 1 -------------------------------------------------------------- folder outputs delete only our frames
def test_1_folder_output_with_other_files_is_refused_even_with_overwrite(tmp_path, small):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "x.png").write_bytes(b"x")
    assert main(["upscale", small, str(out), "--method", "bicubic", "--overwrite"]) == 2
    assert (out / "notes.txt").read_text() == "mine" and (out / "sub" / "x.png").exists()


def test_1_folder_with_only_our_frames_is_replaced_and_an_empty_one_filled(tmp_path, small):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["upscale", small, str(out), "--method", "bicubic"]) == 0          # empty folder: fine
    assert sorted(os.listdir(out))[:3] == [".vsr-frames.json", "frame_000001.png", "frame_000002.png"]
    assert main(["upscale", small, str(out), "--method", "bicubic"]) == 2          # frames there: ask first
    assert main(["upscale", small, str(out), "--method", "bicubic", "--overwrite", "--frame-load-cap", "3"]) == 0
    assert sorted(os.listdir(out)) == [".vsr-frames.json", "frame_000001.png", "frame_000002.png", "frame_000003.png"]


def test_1_input_inside_the_output_folder_survives(tmp_path, clip):
    out = tmp_path / "work"
    out.mkdir()
    src = write_media(out / "in.mkv", clip[:4, :24, :32])
    assert main(["upscale", src, str(out), "--method", "bicubic", "--overwrite"]) == 2
    assert os.path.exists(src)


# 2 -------------------------------------------------------------- output = input
@pytest.mark.parametrize("link", ["same", "hardlink", "symlink"])
def test_2_output_that_is_the_input_is_refused_before_any_work(tmp_path, clip, link):
    src = tmp_path / "x.mkv"
    write_media(src, clip[:4, :24, :32])
    before = src.read_bytes()
    dst = src
    if link == "hardlink":
        dst = tmp_path / "y.mkv"
        os.link(src, dst)
    elif link == "symlink":
        dst = tmp_path / "y.mkv"
        os.symlink(src, dst)
    with pytest.raises(OutputError, match="is the input itself"):
        upscale_file(str(src), str(dst), UpscaleSettings(method="bicubic"),
                     JobSettings(format="ffv1", overwrite=True))
    assert src.read_bytes() == before


# 3 -------------------------------------------------------------- one job per output and per cache
def test_3_a_second_job_on_the_same_output_is_told_who_writes_it(tmp_path, small):
    out = tmp_path / "out.mkv"
    with JobLock(output_lock_path(str(out)), "test"):
        with pytest.raises(OutputError, match=f"already being written by process {os.getpid()}"):
            upscale_file(small, str(out), UpscaleSettings(method="bicubic"), JobSettings(format="ffv1"))
    assert not out.exists()
    upscale_file(small, str(out), UpscaleSettings(method="bicubic"), JobSettings(format="ffv1"))   # released: fine now
    assert not os.path.exists(output_lock_path(str(out)))


def test_3_a_shared_cache_folder_is_refused_while_in_use(tmp_path, small):
    cache = tmp_path / "cache"
    cache.mkdir()
    with JobLock(str(cache / "job.lock"), "test"):
        with pytest.raises(OutputError, match="cache folder .* already being written"):
            upscale_file(small, str(tmp_path / "b.mkv"), UpscaleSettings(window=4, window_overlap=1),
                         JobSettings(format="ffv1", cache_dir=str(cache)))
    assert not (tmp_path / "b.mkv").exists()


def test_3_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, small):
    out = tmp_path / "out.mkv"
    with open(output_lock_path(str(out)), "w") as f:
        f.write("999999 otherhost\n")                 # written, never locked: its process is gone
    upscale_file(small, str(out), UpscaleSettings(method="bicubic"), JobSettings(format="ffv1"))
    assert out.exists()


def test_3_an_output_that_appears_meanwhile_is_not_replaced(tmp_path, small):
    out = tmp_path / "out.mkv"

    class Racer(Log):
        def update(self, n=1):
            super().update(n)
            if not out.exists():
                out.write_bytes(b"another job's finished video")
    with pytest.raises(OutputError, match="appeared while the job ran"):
        upscale_file(small, str(out), UpscaleSettings(method="bicubic"), JobSettings(format="ffv1"), reporter=Racer())
    assert out.read_bytes() == b"another job's finished video"
    assert [n for n in os.listdir(tmp_path) if "partial" in n] == []


# 4 -------------------------------------------------------------- cache keyed by content
def test_4_rerendered_frames_of_a_folder_start_the_cache_over(tmp_path, clip):
    folder = tmp_path / "frames"
    folder.mkdir()
    import cv2

    def render(images):
        for i, im in enumerate(images):
            cv2.imwrite(str(folder / f"f{i:03d}.png"), im[:, :, ::-1])
            os.utime(folder / f"f{i:03d}.png", ns=(10 ** 18, 10 ** 18 + i))   # same times after re-rendering
    render(clip[:8, :24, :32])
    out, cache = tmp_path / "out.mkv", tmp_path / "cache"
    with pytest.raises(Interrupted):
        upscale_file(str(folder), str(out), UpscaleSettings(window=4, window_overlap=1),
                     JobSettings(format="ffv1", cache_dir=str(cache), chunk_frames=2), reporter=Log(3))
    render(255 - clip[:8, :24, :32])                  # new content, same names, sizes and times
    log = Log()
    upscale_file(str(folder), str(out), UpscaleSettings(window=4, window_overlap=1),
                 JobSettings(format="ffv1", cache_dir=str(cache), chunk_frames=2), reporter=log)
    assert any("starting over" in m for m in log.messages)
    fresh = tmp_path / "fresh.mkv"
    upscale_file(str(folder), str(fresh), UpscaleSettings(window=4, window_overlap=1),
                 JobSettings(format="ffv1", chunk_frames=2))
    np.testing.assert_array_equal(read(out), read(fresh))


# 5 -------------------------------------------------------------- damaged input is reported
@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_5_a_file_cut_in_half_is_reported_not_shortened(tmp_path, clip, ext):
    whole = tmp_path / f"whole{ext}"
    noise = np.random.default_rng(0).integers(0, 60, (16, 48, 64, 3))   # big frames: half a file holds several
    frames = np.ascontiguousarray(np.clip(np.concatenate([clip, clip])[:16, :48, :64].astype(int) + noise, 0, 255)
                                  .astype(np.uint8))
    with av.open(str(whole), "w", options={"movflags": "+faststart"} if ext == ".mp4" else {}) as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode())
    cut = tmp_path / f"cut{ext}"
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    out = tmp_path / "out.mkv"
    with pytest.raises(InputError, match="damaged"):
        upscale_file(str(cut), str(out), UpscaleSettings(method="bicubic"), JobSettings(format="ffv1"))
    assert not out.exists()
    log = Log()
    n = upscale_file(str(cut), str(out), UpscaleSettings(method="bicubic"),
                     JobSettings(format="ffv1", load=LoadOptions(allow_damaged=True)), reporter=log)
    assert 0 < n < 16 and any(m.startswith("WARNING") and "damaged" in m for m in log.messages)
    assert main(["upscale", str(cut), str(tmp_path / "o2.mkv"), "--method", "bicubic", "--allow-damaged"]) == 0


# 6 -------------------------------------------------------------- variable frame rate keeps frame times
def _vfr_file(path, clip, times_ms):
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=30)
        s.width, s.height, s.pix_fmt = 32, 24, "bgr0"
        s.codec_context.time_base = Fraction(1, 1000)
        for t, f in zip(times_ms, clip):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:24, :32]), format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            c.mux(s.encode(vf))
        c.mux(s.encode())


def _frame_times(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)]


@pytest.mark.parametrize("method", ["bicubic", "learned"])
def test_6_variable_frame_rate_keeps_each_frames_time(tmp_path, clip, method):
    times = [0, 33, 66, 200, 233, 400, 433, 466]
    src = tmp_path / "vfr.mkv"
    _vfr_file(src, clip, times)
    out = tmp_path / "out.mkv"
    upscale_file(str(src), str(out), UpscaleSettings(method=method, window=4, window_overlap=1),
                 JobSettings(chunk_frames=3))
    np.testing.assert_allclose(_frame_times(out), np.array(times) / 1000, atol=0.002)


def test_6_gif_with_mixed_durations_keeps_them(tmp_path, clip):
    from PIL import Image
    durations = [100, 100, 300, 50, 100]
    images = [Image.fromarray(np.ascontiguousarray(f[:24, :32])) for f in clip[:5]]
    src = tmp_path / "a.gif"
    images[0].save(src, save_all=True, append_images=images[1:], duration=durations, loop=0)
    out = tmp_path / "out.mp4"
    upscale_file(str(src), str(out), UpscaleSettings(method="bicubic"))
    np.testing.assert_allclose(_frame_times(out), np.cumsum([0] + durations[:-1]) / 1000, atol=0.002)


# 7 -------------------------------------------------------------- NaN never reaches a file
def test_7_nan_frames_are_refused_with_the_frame_index(tmp_path):
    sys.path.insert(0, os.path.dirname(ROOT))
    from vsr_core.ops.colorfix import color_fix
    from vsr_core.ops.frames import float_to_uint8
    frames = torch.rand(4, 8, 8, 3)
    frames[2, 3, 3, 1] = float("nan")
    with pytest.raises(InputError, match="frame 2 contains NaN"):
        float_to_uint8(frames, "Save Video (VSR) frames")
    with pytest.raises(InputError, match="color fix output: frame 2 contains NaN"):
        color_fix(frames.permute(0, 3, 1, 2), torch.rand(4, 3, 8, 8))


def test_7_save_video_node_refuses_nan_before_writing(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_OUTPUT_DIR", str(tmp_path))
    from nodes.nodes_video import VSR_SaveVideo
    frames = torch.rand(3, 8, 8, 3)
    frames[1, 0, 0, 0] = float("inf")
    with pytest.raises(InputError, match="Save Video \\(VSR\\) frames: frame 1"):
        VSR_SaveVideo().save(frames, 24.0, "clip", "h264-mp4", 18)
    assert os.listdir(tmp_path) == []


# 8 -------------------------------------------------------------- the cache costs about the output
def test_8_cache_holds_encoded_chunks_about_the_outputs_size(tmp_path, clip):
    src = write_media(tmp_path / "in.mkv", np.concatenate([clip, clip])[:, :48, :64])
    out, cache = tmp_path / "out.mp4", tmp_path / "cache"
    upscale_file(src, str(out), UpscaleSettings(window=6, window_overlap=2),
                 JobSettings(cache_dir=str(cache), keep_cache=True, chunk_frames=8))
    chunks = [p for p in cache.iterdir() if p.name.startswith("chunk_") and p.suffix == ".mp4"]
    states = [p for p in cache.iterdir() if p.name.startswith("state_")]
    assert len(chunks) == 3 and len(states) == 1              # only the latest float state is kept
    assert sum(p.stat().st_size for p in chunks) <= 2 * out.stat().st_size
    raw = 24 * 192 * 256 * 3
    assert sum(p.stat().st_size for p in cache.iterdir()) < raw / 4


# 9 -------------------------------------------------------------- partials of killed jobs, SIGTERM
def test_9_stale_partials_of_this_output_are_removed_others_kept(tmp_path, small):
    out = tmp_path / "out.mkv"
    stale = tmp_path / ".out.partial-deadbeef.mkv"
    other = tmp_path / ".other.partial-deadbeef.mkv"
    stale.write_bytes(b"x")
    other.write_bytes(b"y")
    log = Log()
    upscale_file(small, str(out), UpscaleSettings(method="bicubic"), JobSettings(format="ffv1"), reporter=log)
    assert not stale.exists() and other.exists()
    assert any("left by an earlier run" in m for m in log.messages)


def test_9_sigterm_discards_the_partial_keeps_the_cache_and_resumes(tmp_path, clip):
    src = write_media(tmp_path / "in.mkv", np.concatenate([clip[:12, :48, :64]] * 3))
    out, cache = tmp_path / "out.mkv", tmp_path / "cache"
    cmd = [sys.executable, "-m", "vsr_core", "upscale", src, str(out), "--format", "ffv1", "--window", "4",
           "--overlap", "1", "--threads", "1", "--cache-dir", str(cache), "--chunk-frames", "3"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not any(n.endswith(".json") and n.startswith("chunk_")
                                              for n in (os.listdir(cache) if cache.exists() else [])):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the job finished before SIGTERM arrived")
    assert proc.returncode == 130, err.decode()
    assert not out.exists()
    assert [n for n in os.listdir(tmp_path) if "partial" in n or n.endswith("vsr-lock")] == []
    assert any(n.startswith("chunk_") for n in os.listdir(cache))
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "resuming" in done.stderr + done.stdout
    assert read(out).shape[0] == 36


# 10 ------------------------------------------------------------- colour
def _tagged_709(path, frame):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
        cc = s.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1
        s.options = {"crf": "0"}
        for i in range(3):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode())


def test_10_bt709_input_stays_bt709_and_keeps_its_colours(tmp_path):
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0], red[..., 1], red[..., 2] = 200, 30, 40
    src = tmp_path / "in.mp4"
    _tagged_709(src, red)
    got_in = read(src)
    assert np.abs(got_in.astype(int) - red).max() <= 3      # read with its own matrix
    out = tmp_path / "out.mp4"
    upscale_file(str(src), str(out), UpscaleSettings(method="bicubic"))
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert (frame.colorspace, frame.color_primaries, frame.color_trc) == (1, 1, 1)
    assert np.abs(read(out)[:, 8:-8, 8:-8].astype(int) - red[0, 0]).max() <= 4     # a flat colour, upscaled


# 11 ------------------------------------------------------------- one-line errors, checked before work
def test_11_bad_options_are_messages_not_tracebacks(tmp_path, small, capsys):
    base = ["upscale", small, str(tmp_path / "o.mkv")]
    for extra, expected in [(["--tile", "16"], "tile_px=16"), (["--tile-px", "-5"], "tile_px=-5")]:
        assert main(base + extra) == 2
        assert expected in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(base + ["--cache-dir", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(base + ["--cache-dir", str(tmp_path / "missing" / "c")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_11_wrong_weights_and_cards_are_named(tmp_path, small):
    from safetensors.torch import save_file
    from vsr_core.models.upscaler import UpscalerConfig, VideoUpscaler
    w = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in VideoUpscaler(UpscalerConfig(channels=8)).state_dict().items()}, w)
    card = {"architecture": "VideoUpscaler", "config": UpscalerConfig(channels=16).to_dict()}
    (tmp_path / "w.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="does not fit the architecture"):
        upscale_file(small, str(tmp_path / "o.mkv"), UpscaleSettings(weights=str(w)))
    (tmp_path / "w.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        upscale_file(small, str(tmp_path / "o.mkv"), UpscaleSettings(weights=str(w)))


def test_11_full_disk_is_a_message_and_replaces_nothing(tmp_path, small, monkeypatch):
    from vsr_core.video import writer
    out = tmp_path / "out.mkv"
    out.write_bytes(b"old")

    def full(self, frames):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(writer.VideoWriter, "write", full)
    with pytest.raises(OutputError, match="No space left"):
        upscale_file(small, str(out), UpscaleSettings(method="bicubic"), JobSettings(format="ffv1", overwrite=True))
    assert out.read_bytes() == b"old"
    assert [n for n in os.listdir(tmp_path) if "partial" in n] == []


def test_11_out_of_memory_in_upscale_shrinks_tiles(tmp_path, small, monkeypatch):
    from vsr_core.pipeline import upscale as upscale_video
    real = upscale_video._run_window

    def picky(lr, model, flows, tile, tile_overlap, precision, *progress):
        if not tile or tile > 20:
            raise torch.OutOfMemoryError("CPU out of memory")
        return real(lr, model, flows, tile, tile_overlap, precision, *progress)
    monkeypatch.setattr(upscale_video, "_run_window", picky)
    log = Log()
    assert upscale_file(small, str(tmp_path / "o.mkv"), UpscaleSettings(window=4, window_overlap=1, tile_px=128),
                        JobSettings(format="ffv1"), reporter=log) == 9
    assert any("out of memory; retrying" in m for m in log.messages)


def test_11_fps_inf_is_a_message():
    from vsr_core.video import to_fraction
    with pytest.raises(InputError, match="fps=inf"):
        to_fraction(float("inf"))


def _workflow(tmp_path, video, prefix="vsr/out"):
    wf = {"1": {"class_type": "VSR_LoadVideo", "inputs": {"video": video}},
          "2": {"class_type": "VSR_SaveVideo", "inputs": {"frames": ["1", 0], "fps": ["1", 1],
                                                          "filename_prefix": prefix, "format": "h264-mkv"}}}
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    return wf, path


def test_11_workflow_mistakes_fail_before_the_graph_runs(tmp_path, small, capsys):
    wf, path = _workflow(tmp_path, small)
    out = ["--output-dir", str(tmp_path / "o")]
    assert run_workflow([str(path), "--set", "1.vidoe=other.mp4"] + out) == 2
    assert "has no input 'vidoe'" in capsys.readouterr().err
    wf["1"]["inputs"] = [small]
    path.write_text(json.dumps(wf))
    assert run_workflow([str(path)] + out) == 2
    assert "'inputs' is a list" in capsys.readouterr().err
    _, path = _workflow(tmp_path, small, prefix="../../escape")
    t0 = time.time()
    assert run_workflow([str(path)] + out) == 2
    assert "outside the output folder" in capsys.readouterr().err and time.time() - t0 < 5
    assert not (tmp_path / "o").exists() or os.listdir(tmp_path / "o") == []


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".mov"])
def test_8_output_assembled_from_chunks_keeps_the_exact_rate_and_count(tmp_path, clip, ext):
    src = write_media(tmp_path / "in.mkv", np.concatenate([clip, clip])[:20, :24, :32], fps=Fraction(30000, 1001))
    out = tmp_path / f"out{ext}"
    assert upscale_file(src, str(out), UpscaleSettings(window=6, window_overlap=2), JobSettings(chunk_frames=4)) == 20
    reader = open_video(str(out))
    assert reader.read_all().shape == (20, 96, 128, 3) and reader.fps == Fraction(30000, 1001)
    assert reader.info.damage is None and not reader.variable_rate


def test_4_a_model_without_a_weights_file_is_refused_not_keyed_to_the_shipped_one(tmp_path, small):
    from vsr_core.models.upscaler import UpscalerConfig, VideoUpscaler
    with pytest.raises(InputError, match="no weights file to key the resume cache"):
        upscale_file(small, str(tmp_path / "o.mkv"), model=VideoUpscaler(UpscalerConfig(channels=8)))
    assert not (tmp_path / "o.mkv").exists()

"""Fault injection, part two (issue 30, part B): damaged or odd input is refused with one line naming it,
never shipped silently; bad settings are refused before any work. Every test here failed before the fix."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from conftest import load_node_pack, run_workflow, write_media
from vsr_core.cli import main
from vsr_core.errors import InputError
from vsr_core.jobs.upscale import upscale_file
from vsr_core.video import LoadOptions, open_video
from vsr_core.pipeline.upscale_settings import UpscaleSettings
from vsr_core.jobs.job_settings import JobSettings

ROOT = Path(__file__).resolve().parents[1]


def one_error_line(capsys) -> str:
    """The command's stderr holds one error line (after any progress bar) and no traceback; returns it."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _noise(frames: int, height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (frames, height, width, 3), dtype=np.uint8)


# force_rate: the frame count follows the duration, whatever the container's timestamp rounding
@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
@pytest.mark.parametrize("rate,expected", [(12, 4), (8, 3), (48, 16), (24, 8), (Fraction(30000, 1001), 10)])
def test_force_rate_gives_the_frames_the_duration_holds(tmp_path, ext, rate, expected):
    src = write_media(tmp_path / f"c{ext}", _noise(8))         # 8 frames at 24 fps: 1/3 s
    reader = open_video(src, LoadOptions(force_rate=rate))
    assert len(reader.read_all()) == expected
    np.testing.assert_allclose(reader.timestamps, [float(k / Fraction(rate)) for k in range(expected)])


# NaN and infinity: one validator for every float setting, on the command line, in workflows and on nodes
@pytest.mark.parametrize("argv", [["restore", "IN", "OUT", "--guidance=nan"],
                                  ["upscale", "IN", "OUT", "--stabilize=inf"],
                                  ["train", "--out", "OUT", "--lr=-inf"]])
def test_nan_and_inf_command_line_floats_are_one_line_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "not a finite number" in err and argv[-1].split("=")[0].lstrip("-") in err


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_refine_node_refuses_a_non_finite_blend(value):
    refine = load_node_pack()["VSR_Refine"]()
    frames = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    hr = torch.from_numpy(frames)
    with pytest.raises(InputError, match=r"VSR_Refine input 'blend' = (nan|inf) is not a finite number"):
        refine.refine(hr, hr, "fixed blend (no weights)", value, "none")


def test_every_node_checks_its_number_inputs(tmp_path):
    from nodes.input_guard import _GUARDED
    for kind, cls in load_node_pack().items():
        assert getattr(getattr(cls, cls.FUNCTION), _GUARDED, False), kind


@pytest.mark.parametrize("setting", ["VSR_Refine.blend=NaN", "VSR_Refine.blend=Infinity",
                                     "VSR_LoadVideo.frame_load_cap=NaN", "VSR_LoadVideo.frame_load_cap=-Infinity"])
def test_workflow_number_inputs_refuse_nan_before_running(setting, capsys):
    workflow = ROOT / "workflows" / "api" / "full_pipeline_default.json"
    assert run_workflow([str(workflow), "--set", setting]) != 0
    err = capsys.readouterr().err.strip()
    name = setting.split(".")[1].split("=")[0]
    assert len(err.splitlines()) == 1 and f"'{name}'" in err and "not a finite number" in err


# frame folders: gaps and duplicate numbers are reported; accepted, each frame keeps its number's time
def _folder(path, numbers, names=None):
    path.mkdir()
    frames = _noise(len(numbers), 16, 16)
    for n, f, name in zip(numbers, frames, names or [f"frame_{n:04d}.png" for n in numbers]):
        cv2.imwrite(str(path / name), f)
    return str(path), frames


def test_a_folder_with_gaps_is_refused_naming_the_missing_numbers(tmp_path):
    folder, _ = _folder(tmp_path / "f", [1, 2, 3, 5, 6, 7, 8, 12])
    with pytest.raises(InputError, match=r"'.*f': numbers 4, 9-11 are missing \(frames 1 to 12\).*"
                                         r"--accept-numbering"):
        open_video(folder)
    assert main(["upscale", folder, str(tmp_path / "out.mkv"), "--method", "bicubic"]) == 2
    assert not (tmp_path / "out.mkv").exists()


def test_duplicate_numbers_are_refused_naming_them(tmp_path):
    numbers = [1, 2, 3, 1, 2, 3]
    names = [f"frame_{n}.png" for n in numbers[:3]] + [f"frame_{n:03d}.png" for n in numbers[3:]]
    folder, _ = _folder(tmp_path / "f", numbers, names)
    with pytest.raises(InputError, match=r"numbers 1-3 are used by more than one file \(e.g. frame_001.png, "
                                         r"frame_1.png\)"):
        open_video(folder)
    reader = open_video(folder, LoadOptions(accept_numbering=True))
    assert len(reader.read_all()) == 3 and "first file of each number" in reader.warnings[0]


def test_accepted_gaps_keep_each_frames_time_by_number(tmp_path):
    numbers = [1, 2, 3, 5, 6, 7, 8, 12]
    folder, frames = _folder(tmp_path / "f", numbers)
    reader = open_video(folder, LoadOptions(accept_numbering=True, folder_fps=Fraction(8)))
    np.testing.assert_array_equal(reader.read_all(), frames[..., ::-1])
    assert reader.timestamps == [(n - 1) / 8 for n in numbers] and reader.warnings[0].startswith("WARNING")
    out = tmp_path / "out.mkv"
    upscale_file(folder, str(out), UpscaleSettings(method="bicubic"),
                 JobSettings(format="ffv1", load=LoadOptions(accept_numbering=True, folder_fps=Fraction(8))))
    with av.open(str(out)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    np.testing.assert_allclose(times, [(n - 1) / 8 for n in numbers], atol=0.002)


# non-finite pixels: refused naming file and frame, never turned black
def _float_tiff(path, nan_at=None):
    image = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    if nan_at is not None:
        image[nan_at] = np.nan if nan_at[2] else np.inf
    assert cv2.imwrite(str(path), image)
    return str(path)


def test_a_float_tiff_holding_nan_is_refused_naming_file_and_frame(tmp_path):
    (tmp_path / "f").mkdir()
    for i in range(3):
        _float_tiff(tmp_path / "f" / f"{i:03d}.tif", (2, 5, 1) if i == 1 else None)
    with pytest.raises(InputError, match=r"frame 1: '.*001\.tif' holds NaN or infinite pixel values "
                                         r"\(first at x=5, y=2\)"):
        open_video(str(tmp_path / "f")).read_all()
    with pytest.raises(InputError, match=r"frame 0: '.*one\.tif' holds NaN"):
        open_video(_float_tiff(tmp_path / "one.tif", (3, 3, 0))).read_all()
    good = open_video(_float_tiff(tmp_path / "good.tif")).read_all()       # a clean float TIFF still reads
    assert good.shape == (1, 16, 16, 3) and good.max() > 200


# size bombs: refused from the header, before decoding, with the limit stated
def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def _gif_header(width: int, height: int) -> bytes:
    import struct
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00\x3b")


@pytest.mark.parametrize("name,data,stated", [("bomb.png", _png_header(100_000, 100_000), "10000 megapixels"),
                                              ("bomb.gif", _gif_header(65535, 65535), "4295 megapixels"),
                                              ("big.gif", _gif_header(12000, 12000), "12000x12000")])
def test_size_bombs_are_refused_before_decoding(tmp_path, name, data, stated, capsys):
    (tmp_path / name).write_bytes(data)
    limit = r"the limit is 64 megapixels per frame \(8192x8192\), refused before decoding"
    with pytest.raises(InputError, match=f"{stated}.*{limit}"):
        open_video(str(tmp_path / name))
    (tmp_path / "frames").mkdir()
    for i in range(2):
        (tmp_path / "frames" / f"{i:03d}.png").write_bytes(_png_header(16, 16) if i == 0 else data)
    assert main(["upscale", str(tmp_path / "frames"), str(tmp_path / "out.mkv"), "--method", "bicubic"]) == 2
    err = one_error_line(capsys)
    assert "frame 1:" in err and "refused before decoding" in err


def test_a_bomb_given_to_the_flow_command_is_one_line(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(_png_header(100_000, 100_000))
    assert main(["flow", str(tmp_path / "a.png"), str(tmp_path / "a.png"), str(tmp_path / "f.npy")]) == 2
    assert "refused before decoding" in one_error_line(capsys)


# concealed decoding errors: reported like truncation, never shipped silently
@pytest.fixture
def flipped(tmp_path, clip):
    """An h264 .mkv with 8 bytes flipped inside its first frame: FFmpeg decodes it, concealing the errors."""
    good = write_media(tmp_path / "good.mkv", clip[:8], video_codec="libx264")
    with av.open(good) as c:
        pos, size = next((p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size)
    data = bytearray((tmp_path / "good.mkv").read_bytes())
    start = pos + int(size * 0.7)
    data[start:start + 8] = bytes(b ^ 0xFF for b in data[start:start + 8])
    (tmp_path / "flipped.mkv").write_bytes(data)
    with av.open(str(tmp_path / "flipped.mkv")) as c:       # the premise: FFmpeg flags what it concealed
        assert [i for i, f in enumerate(c.decode(video=0)) if f.is_corrupt] == [0]
    return str(tmp_path / "flipped.mkv")


def test_concealed_decoding_errors_are_refused_naming_the_frame(flipped, tmp_path, capsys):
    with pytest.raises(InputError, match=r"flipped\.mkv' is damaged: frame 0 was decoded with errors that FFmpeg "
                                         r"concealed.*--allow-damaged"):
        open_video(flipped).read_all()
    out = tmp_path / "out.mkv"
    assert main(["upscale", flipped, str(out), "--method", "bicubic", "--format", "ffv1"]) == 2
    assert "frame 0" in one_error_line(capsys) and not out.exists()


def test_allow_damaged_keeps_concealed_frames_with_a_loud_warning(flipped, tmp_path, capsys):
    reader = open_video(flipped, LoadOptions(allow_damaged=True))
    assert len(reader.read_all()) == 8
    assert reader.warnings == [f"WARNING: '{flipped}' is damaged: 1 frame(s) were decoded with errors FFmpeg "
                               f"concealed (frames 0; frames predicted from them may be off too); they are kept "
                               f"as decoded"]
    out = tmp_path / "out.mkv"
    assert main(["upscale", flipped, str(out), "--method", "bicubic", "--format", "ffv1", "--allow-damaged"]) == 0
    assert "WARNING" in capsys.readouterr().err and len(open_video(str(out)).read_all()) == 8


# train and inspect: bad options and damaged files are one line
@pytest.mark.parametrize("extra,expected", [
    (["--model", "not json"], "argument --model: 'not json' is not valid JSON"),
    (["--model", "[1]"], "argument --model: '[1]' is a JSON list"),
    (["--degradation", "real", "--degradation-shares", "{nope"], "argument --degradation-shares"),
])
def test_train_options_that_are_not_json_objects_are_usage_errors(tmp_path, extra, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", str(tmp_path / "run"), "--steps", "1", *extra])
    assert exit_.value.code == 2 and expected in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("task,config", [("upscaler", "UpscalerConfig"), ("refiner", "RefinerConfig")])
def test_train_model_with_an_unknown_key_names_it(tmp_path, task, config, capsys):
    assert main(["train", "--task", task, "--out", str(tmp_path / "run"), "--steps", "1",
                 "--model", '{"chanels": 8}']) == 2
    assert f"--model names 'chanels', which {config} does not have; expected keys among" in one_error_line(capsys)


def test_train_with_garbage_init_weights_or_a_corrupt_state_is_one_line(tmp_path, capsys):
    (tmp_path / "w.safetensors").write_bytes(b"garbage" * 10)
    assert main(["train", "--out", str(tmp_path / "a"), "--steps", "1",
                 "--init-weights", str(tmp_path / "w.safetensors")]) == 2
    assert "init_weights: checkpoint" in one_error_line(capsys)
    from vsr_core.safe_files import claim_folder
    from vsr_core.train.trainer import RUN_FOLDER
    claim_folder(str(tmp_path / "b"), RUN_FOLDER, "run")          # a run folder of train's own
    (tmp_path / "b" / "state.pt").write_bytes(b"not a state" * 10)
    assert main(["train", "--out", str(tmp_path / "b"), "--steps", "1"]) == 2
    assert "training state" in one_error_line(capsys)
    assert (tmp_path / "b" / "state.pt").read_bytes() == b"not a state" * 10      # left for the user


@pytest.mark.parametrize("content", [b"hello, I am text\n", b"", os.urandom(300), b"PK\x03\x04broken zip"])
def test_inspect_of_a_file_that_is_no_checkpoint_is_one_line(tmp_path, content, capsys):
    (tmp_path / "x.ckpt").write_bytes(content)
    assert main(["inspect", str(tmp_path / "x.ckpt")]) == 2
    assert "x.ckpt" in one_error_line(capsys)


# nodes: wrong objects and NaN audio are named; names too long for the file system are refused up front
def test_temporal_decode_and_guided_sample_name_a_latent_without_samples():
    classes = load_node_pack()
    with pytest.raises(InputError, match=r"latent is a dict with keys \['noise_mask'\]; expected a ComfyUI LATENT"):
        classes["VSR_TemporalDecode"]().decode({"noise_mask": 1}, None, -1.0, 8, 2, 64, 8)
    with pytest.raises(InputError, match=r"latent\['samples'\] is \(2, 3\); expected a float tensor"):
            classes["VSR_TemporalDecode"]().decode({"samples": torch.zeros(2, 3)}, None, -1.0, 8, 2, 64, 8)


def test_load_video_names_a_video_in_that_is_not_a_video():
    load = load_node_pack()["VSR_LoadVideo"]()
    with pytest.raises(InputError, match="video_in is a str; expected a ComfyUI VIDEO"):
        load.load("", 0, 0, 1, 0.0, video_in="not a video")


def test_save_video_refuses_nan_audio_before_writing(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_OUTPUT_DIR", str(tmp_path))
    save = load_node_pack()["VSR_SaveVideo"]()
    wave = torch.zeros(1, 2, 4800)
    wave[0, 1, 100] = float("nan")
    with pytest.raises(InputError, match=r"audio waveform holds NaN or infinite samples \(first at channel 1, "
                                         r"sample 100\)"):
        save.save(torch.rand(2, 8, 8, 3), 24.0, "clip", "h264-mp4", 18, {"waveform": wave, "sample_rate": 48000})
    with pytest.raises(InputError, match="sample_rate=nan"):
        save.save(torch.rand(2, 8, 8, 3), 24.0, "clip", "h264-mp4", 18,
                  {"waveform": torch.zeros(1, 2, 10), "sample_rate": float("nan")})
    assert os.listdir(tmp_path) == []


def test_a_filename_prefix_too_long_for_the_file_system_is_refused_before_the_graph_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_OUTPUT_DIR", str(tmp_path))
    save = load_node_pack()["VSR_SaveVideo"]
    message = save.VALIDATE_INPUTS(filename_prefix="vsr/" + "x" * 300)
    assert "filename_prefix: the name 'xxxx" in message and "is 300 bytes long; expected at most 223" in message
    assert save.VALIDATE_INPUTS(filename_prefix="x" * 200) is True


@pytest.mark.parametrize("which", ["output", "train out"])
def test_a_name_too_long_on_the_command_line_is_one_line(tmp_path, which, capsys):
    src = write_media(tmp_path / "in.mkv", _noise(3, 16, 16))
    long = str(tmp_path / ("x" * 300))
    argv = {"output": ["upscale", src, long + ".mkv", "--method", "bicubic"],
            "train out": ["train", "--out", long, "--steps", "1"]}[which]
    assert main(argv) == 2 and "too long" in one_error_line(capsys)


# Ray: a wrong address fails in seconds with one line; a local cluster dies with its driver
@pytest.mark.parametrize("address,expected", [("127.0.0.1:1", "no Ray cluster answers at .*:1 \\(Connection refused"),
                                              ("garbage", "Invalid address format: garbage"),
                                              ("", "is empty"),
                                              ("ray://127.0.0.1:1", "no Ray cluster answers at 127.0.0.1:1"),
                                              ("auto", "Could not find any running Ray instance")])
def test_a_wrong_ray_address_fails_in_seconds_with_one_line(tmp_path, monkeypatch, address, expected):
    pytest.importorskip("ray")
    import ray._private.services as services
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])     # no cluster here, whatever else runs
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    src = write_media(tmp_path / "in.mkv", _noise(4, 16, 16))
    start = time.monotonic()
    with pytest.raises(InputError, match=f"--ray-address '{address}': {expected}"):
        upscale_file(src, str(tmp_path / "out.mkv"), UpscaleSettings(), JobSettings(workers=2, ray_address=address))
    assert time.monotonic() - start < 15 and not (tmp_path / "out.mkv").exists()


DRIVER = """
import os, time
from vsr_core.jobs.distributed import RayPool
class Worker:
    def pid(self):
        return os.getpid()
pool = RayPool(1, None, Worker, (), 1)
import ray
ray.get(pool.actors[0].pid.remote())
print("ready", flush=True)
time.sleep(300)
"""


def test_a_local_ray_cluster_dies_with_its_driver_killed_by_sigkill(tmp_path):
    pytest.importorskip("ray")
    import psutil      # Ray puts its own copy on sys.path
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_ADDRESS="")
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=env, cwd=tmp_path)
    noted = []
    try:
        assert driver.stdout.readline().strip() == b"ready"
        time.sleep(1)      # the watchdog notes the driver's descendants every half second
        noted = [(p, p.create_time()) for p in psutil.Process(driver.pid).children(recursive=True)]
        names = " ".join(p.name() for p, _ in noted)
        assert "raylet" in names and "Agent" in names      # the agents are what outlived the driver before
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alive = [p for p, started in noted if _running(psutil, p, started)]
            if not alive:
                break
            time.sleep(0.5)
        assert not alive, [p.name() for p in alive]
    finally:
        driver.kill()
        for p, started in noted:          # only what this test started
            if _running(psutil, p, started):
                p.kill()


def _running(psutil, process, started) -> bool:
    try:
        return process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_the_library_refuses_nan_guidance_and_blend_too():
    from vsr_core.diffusion.motion_guidance import MotionGuidance
    from vsr_core.models.refiner import refine
    with pytest.raises(InputError, match="guidance_scale = nan is not a finite number"):
        MotionGuidance(scale=float("nan"))
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(InputError, match="refine blend w = inf is not a finite number"):
        refine(x, x, None, w=float("inf"))


def test_force_rate_on_variable_frame_times_picks_the_frame_shown_at_each_time():
    from vsr_core.video.timeline import resample_to_rate
    timed = [(0.0, "a"), (0.1, "b"), (0.4, "c"), (0.45, "d")]           # a GIF's 100/300/50 ms frames
    out = list(resample_to_rate(timed, Fraction(20), source_fps=Fraction(10)))
    assert [f for _t, f in out] == ["a", "a", "b", "b", "b", "b", "b", "b", "c", "d", "d"]


def test_a_video_stream_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    from vsr_core.video import pixel_limit
    src = write_media(tmp_path / "in.mkv", _noise(2, 16, 16))
    monkeypatch.setattr(pixel_limit, "MAX_FRAME_PIXELS", 255)     # a 16x16 stream stands in for a huge one
    with pytest.raises(InputError, match=r"in\.mkv' declares 16x16 frames \(0 megapixels\); the limit is"):
        open_video(src)

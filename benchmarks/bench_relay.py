"""Benchmark of the detail relay on held-out real videos: keyframe detail carried by motion, against the
faithful default and a detail model run on every frame.

    python -m vsr_core prepare-real-videos /path/to/real_videos        # once (needs the media packages)
    python benchmarks/bench_relay.py --real-videos /path/to/real_videos [--frames 17] [--every 8] [--figure DIR]

Clips: the held-out videos (whole templates never trained on), first ``--frames`` frames, centre crop.
Degradations (x4): clean bicubic and bicubic + h264 CRF 30. Methods:

- ``default``: the shipped flow-guided upscaler (faithful);
- ``relay, GT keyframes``: the oracle: the ground truth at every ``--every``-th frame (and the last), relayed;
- ``relay, detail keyframes``: the shipped detail model (Real-ESRGAN x4plus) on the same keyframes, relayed
  by the hand-designed mix, and ``(learned)`` by the learned fusion (``--fusion``, default the shipped one);
- ``detail per frame``: the detail model on every frame (the boiling baseline).

Metrics: PSNR-Y (BT.601, all frames) and the oracle's gain over the default by distance to the nearest
keyframe; temporal: tOF (TecoGAN) and E*warp (x1000, DIS flow of the ground truth, occlusion-masked);
detail: high-frequency energy (mean square of what a 1/4-size frame cannot hold, x1000) and, when
scikit-video is installed, NIQE (lower is more natural); time per frame of each method on this CPU.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_real_footage import degrade, ewarp, gt_flows, labelled, tof  # noqa: E402
from vsr_core.checkpoints.detail_loader import load_detail_model  # noqa: E402
from vsr_core.checkpoints.shipped import has_shipped, load_default_upscaler, load_relay_fusion  # noqa: E402
from vsr_core.flow import DISFlow  # noqa: E402
from vsr_core.machine import cpu_name, tune_allocator  # noqa: E402
from vsr_core.metrics import psnr_y  # noqa: E402
from vsr_core.pipeline.detail import detail_upscale  # noqa: E402
from vsr_core.models.upscaler import upscale_clip  # noqa: E402
from vsr_core.relay import high_pass, nearest_keyframes, relay_clip, select_keyframes  # noqa: E402
from vsr_core.train.real_eval import real_hr_clips  # noqa: E402

CASES = ("bi", "h264_crf30")
NIQE_MIN_SIDE = 192     # scikit-video's NIQE parameters need frames larger than this


def hf_energy(frames: torch.Tensor) -> float:
    """x1000 mean square of the detail finer than a quarter-size frame holds."""
    return float(high_pass(frames.float(), 4).pow(2).mean()) * 1000


def _import_niqe():
    """scikit-video 1.1.11's NIQE (it ships its model parameters) on current numpy/scipy: the aliases it
    uses were removed there, so they are put back; its half-size step uses OpenCV's bicubic instead of the
    removed scipy.misc.imresize (PIL's bicubic): scores are comparable with each other, not with papers."""
    import cv2
    import scipy.misc
    for name, kind in (("float", float), ("int", int), ("bool", bool)):
        if not hasattr(np, name):
            setattr(np, name, kind)
    if not hasattr(scipy.misc, "imresize"):
        scipy.misc.imresize = lambda img, f, interp="bicubic", mode="F": cv2.resize(
            np.asarray(img, np.float32), None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    import skvideo.measure
    return skvideo.measure.niqe


def niqe_score(frames: torch.Tensor) -> float | None:
    try:
        niqe = _import_niqe()
    except ImportError:       # optional: pip install scikit-video==1.1.11
        return None
    if min(frames.shape[-2:]) <= NIQE_MIN_SIDE:
        return None
    grey = (frames.clamp(0, 1).mean(1) * 255).numpy()
    return float(np.mean(niqe(grey)))


def timed(fn, *args):
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = fn(*args)
    return out, time.perf_counter() - t0


def per_frame(detail, lr: torch.Tensor) -> torch.Tensor:
    """The detail model on every frame, as `--method detail-per-frame` runs it (mirrored border, tiles,
    precision auto)."""
    return detail_upscale(lr, detail)


def xt_slice(frames: torch.Tensor, row: int) -> np.ndarray:
    """[T,W,3] uint8: one row of every frame stacked in time (texture that boils shows as noise in t)."""
    return (frames[:, :, row].permute(0, 2, 1).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def save_figures(folder: str, name: str, panels: list[tuple[str, torch.Tensor]], frame: int) -> None:
    import cv2
    os.makedirs(folder, exist_ok=True)
    hr = panels[-1][1]
    texture = high_pass(hr[frame:frame + 1].float(), 4).pow(2).mean(1)[0]   # where the truth has fine detail
    s = 64
    pooled = torch.nn.functional.avg_pool2d(texture[None, None], s, stride=8)[0, 0]
    iy, ix = divmod(int(pooled.argmax()), pooled.shape[1])
    y, x = iy * 8, ix * 8
    crops, slices = [], []
    for label, img in panels:
        crop = (img[frame, :, y:y + s, x:x + s].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        crops += labelled(crop, label, (3 * s, 3 * s), 0.45)
        xt = xt_slice(img[:, :, :, x:x + s], y + s // 2)
        slices += labelled(xt, label, (3 * s, 6 * xt.shape[0]), 0.45)
    for kind, tiles in (("crops", crops), ("xt", slices)):
        path = os.path.join(folder, f"relay_{kind}_{name}.png")
        cv2.imwrite(path, cv2.cvtColor(np.concatenate(tiles[:-1], axis=1), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"figure: {path}")


def run_clip(hr, lr, model, detail, every, fusion=None):
    keys = select_keyframes(len(hr), every)
    faithful, t_faithful = timed(upscale_clip, model, lr)
    per, t_per = timed(per_frame, detail, lr)
    oracle = relay_clip(faithful, {k: hr[k] for k in keys}, 4)
    relayed, t_relay = timed(relay_clip, faithful, {k: per[k] for k in keys}, 4)
    n = len(hr)
    t_keys = t_faithful + t_per * len(keys) / n     # the faithful frames and the detail model on the keyframes
    seconds = {"default": t_faithful / n, "detail per frame": t_per / n,
               "relay, detail keyframes": (t_keys + t_relay) / n}
    outs = {"default": faithful, "relay, GT keyframes": oracle, "relay, detail keyframes": relayed,
            "detail per frame": per}
    if fusion is not None:
        outs["relay, GT keyframes (learned)"] = relay_clip(faithful, {k: hr[k] for k in keys}, 4, fusion=fusion)
        learned, t_learned = timed(lambda: relay_clip(faithful, {k: per[k] for k in keys}, 4, fusion=fusion))
        outs["relay, detail keyframes (learned)"] = learned
        seconds["relay, detail keyframes (learned)"] = (t_keys + t_learned) / n
    by_distance = {}
    for t in range(n):
        p, q = nearest_keyframes(t, keys)
        d = min(t - p, q - t)
        by_distance.setdefault(d, []).append(psnr_y(oracle[t:t + 1], hr[t:t + 1]) - psnr_y(faithful[t:t + 1],
                                                                                           hr[t:t + 1]))
    return outs, seconds, by_distance


def print_targets(table: dict, times: dict, case: str) -> None:
    """The issue's targets: each relay of detail keyframes next to the detail model on every frame."""
    base = table[(case, "detail per frame")]
    for (c, name), row in table.items():
        if c != case or not name.startswith("relay, detail keyframes"):
            continue
        ratio = {k: np.mean(row[k]) / np.mean(base[k]) for k in ("ewarp", "tof", "hf")}
        speed = np.mean(times[(case, name)]) / np.mean(times[(case, "detail per frame")])
        print(f"{name} vs per frame: E*warp {ratio['ewarp']:.3f}x, tOF {ratio['tof']:.2f}x (<= 0.5x asked), "
              f"HF energy {ratio['hf']:.1%} (90-110% asked), PSNR-Y {np.mean(row['psnr']) - np.mean(base['psnr']):+.2f} "
              f"dB, time {speed:.2f}x (<= 0.3x asked)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-videos", required=True, help="folder made by `python -m vsr_core prepare-real-videos`")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--every", type=int, default=8, help="frames from one keyframe to the next")
    ap.add_argument("--max-side", type=int, default=256, help="HR centre crop (multiple of 8; NIQE needs > 192)")
    ap.add_argument("--max-clips", type=int, default=0, help="only the first N held-out clips (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fusion", default=None, help="learned relay fusion weights (default: the shipped ones)")
    ap.add_argument("--figure", default=None, help="folder for crop and x-t slice figures")
    ap.add_argument("--figure-clip", default="video_wan21_scail2_character_replacement_int8-1")
    ap.add_argument("--figure-only", action="store_true", help="run only the figure clip (for the pictures)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()
    model, detail = load_default_upscaler(4), load_detail_model()
    fusion = load_relay_fusion(args.fusion) if args.fusion or has_shipped("relay_fusion") else None
    clips = real_hr_clips(args.real_videos, args.frames, args.max_side)
    if args.max_clips:
        clips = dict(list(clips.items())[:args.max_clips])
    if args.figure_only:
        clips = {cid: hr for cid, hr in clips.items() if args.figure_clip in cid}
    dis = DISFlow("medium")
    print(f"{len(clips)} held-out real videos, {args.frames} frames, HR crop <= {args.max_side}px, keyframe "
          f"every {args.every}; {cpu_name()}, {args.threads} thread(s)")
    table, distances, times = {}, {}, {}
    gt = {"hf": [], "niqe": []}
    for ci, (cid, hr) in enumerate(clips.items()):
        flows = gt_flows(hr, dis)
        gt["hf"].append(hf_energy(hr))
        if niqe_score(hr) is not None:
            gt["niqe"].append(niqe_score(hr))
        for case in CASES:
            lr = degrade(hr, case, seed=ci)
            outs, seconds, by_distance = run_clip(hr, lr, model, detail, args.every, fusion)
            for d, gains in by_distance.items():
                distances.setdefault((case, d), []).extend(gains)
            for name, s in seconds.items():
                times.setdefault((case, name), []).append(s)
            for name, out in outs.items():
                row = table.setdefault((case, name), {"psnr": [], "tof": [], "ewarp": [], "hf": [], "niqe": []})
                row["psnr"].append(psnr_y(out, hr))
                row["tof"].append(tof(out, hr))
                row["ewarp"].append(ewarp(out, flows))
                row["hf"].append(hf_energy(out))
                score = niqe_score(out)
                if score is not None:
                    row["niqe"].append(score)
            if args.figure and case == "bi" and args.figure_clip in cid:
                learned = outs.get("relay, detail keyframes (learned)")
                save_figures(args.figure, case, [("default", outs["default"]),
                                                 ("relay (detail model)", outs["relay, detail keyframes"])] +
                             ([("relay (learned fusion)", learned)] if learned is not None else []) +
                             [("detail per frame", outs["detail per frame"]), ("ground truth", hr)],
                             args.every // 2)
        print(f"  done {cid}", flush=True)
    for case in CASES:
        print(f"\n### {case}\n")
        print("| method | PSNR-Y | tOF | E*warp | HF energy | NIQE | s / frame |")
        print("|---|---|---|---|---|---|---|")
        for (c, name), row in table.items():
            if c != case:
                continue
            niqe = f"{np.mean(row['niqe']):.2f}" if row["niqe"] else "-"
            sec = f"{np.mean(times[(case, name)]):.3f}" if (case, name) in times else "-"
            print(f"| {name} | {np.mean(row['psnr']):.2f} | {np.mean(row['tof']):.3f} | {np.mean(row['ewarp']):.3f} "
                  f"| {np.mean(row['hf']):.3f} | {niqe} | {sec} |")
        gains = " ".join(f"{d}: {np.mean(distances[(case, d)]):+.2f}" for d in sorted({d for c, d in distances
                                                                                        if c == case}))
        print(f"\noracle gain over the default by distance to the nearest keyframe (dB): {gains}")
        print_targets(table, times, case)
    print(f"\nground truth: HF energy {np.mean(gt['hf']):.3f}" + (f", NIQE {np.mean(gt['niqe']):.2f}" if gt['niqe'] else ""))


if __name__ == "__main__":
    main()

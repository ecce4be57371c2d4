"""Benchmark of the learned video upscaler on held-out real-photo clips (BI x4).

    python benchmarks/bench_upscaler.py [--weights PATH] [--frames 12] [--threads 1] [--figure docs/images/...]

Prints, for virtual-camera clips over photos never used in training
(scikit-image 'coffee' and 'rocket'):
- PSNR-Y / SSIM-Y (BasicSR convention: BT.601 Y, uint8, crop 0) of bicubic,
  of the upscaler frame by frame (no propagation) and as a video upscaler;
- E_warp x 1000 (Lai et al.; flow = DIS on the ground truth, forward-backward
  occlusion mask), also for the per-frame output stabilised with
  ``stabilize_with_flow`` and for the ground truth itself (the floor);
- frames per second of ``upscale_frames`` at 180p -> 720p on this machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vsr_core.machine import cpu_name  # noqa: E402
from vsr_core.data.clips import HELDOUT_PHOTOS, load_photo  # noqa: E402
from vsr_core.data.virtual_camera import CameraPath, virtual_camera_clip  # noqa: E402
from vsr_core.flow import DISFlow, occlusion_masks  # noqa: E402
from vsr_core.metrics import psnr_y, ssim_y, warping_error  # noqa: E402
from vsr_core.ops.resize import bicubic_upscale  # noqa: E402
from vsr_core.train.degradations import degrade  # noqa: E402
from vsr_core.pipeline.stabilize import stabilize_with_flow
from vsr_core.pipeline.upscale import upscale_frames  # noqa: E402
from vsr_core.checkpoints.shipped import load_default_upscaler, load_upscaler  # noqa: E402
from vsr_core.pipeline.upscale_settings import UpscaleSettings  # noqa: E402

PATHS = {
    "pan": CameraPath(pan=(2.5, 1.0), zoom=1.0, roll=0.0),
    "pan+zoom+roll": CameraPath(pan=(-1.5, 2.0), zoom=1.006, roll=0.25),
}


def to_t(clip: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255.0


def save_figure(path: str, hr, bic, ours, frame: int, box) -> None:
    import cv2
    y, x, s = box
    tiles = []
    for name, img in (("bicubic", bic), ("ours (x4 video)", ours), ("ground truth", hr)):
        crop = (img[frame, :, y:y + s, x:x + s].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        crop = cv2.resize(crop, (2 * s, 2 * s), interpolation=cv2.INTER_NEAREST)
        bar = np.full((22, 2 * s, 3), 255, np.uint8)
        cv2.putText(bar, name, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([bar, crop]))
        tiles.append(np.full((2 * s + 22, 4, 3), 255, np.uint8))
    fig = np.concatenate(tiles[:-1], axis=1)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor(fig, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"figure: {path} ({fig.shape[1]}x{fig.shape[0]})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="upscaler .safetensors (default: the shipped x4)")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", default="320x480", help="HR clip size HxW")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fps-frames", type=int, default=12)
    ap.add_argument("--figure", default=None, help="write a bicubic | ours | GT crop PNG here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_upscaler(args.weights) if args.weights else load_default_upscaler(4)
    h, w = (int(v) for v in args.size.split("x"))
    print(f"machine: {cpu_name()}, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"model: {model.num_parameters()} parameters, config {model.config.to_dict()}")
    print(f"held-out photos: {', '.join(HELDOUT_PHOTOS)}; BI x4; {args.frames} frames of {w}x{h} per clip\n")

    dis = DISFlow("medium")
    rows = {k: {"psnr": [], "ssim": [], "ewarp": []} for k in
            ("bicubic", "ours per-frame", "ours per-frame + stabilize_with_flow", "ours video",
             "ours video + stabilize_with_flow", "ground truth")}
    fig_done = False
    for name in HELDOUT_PHOTOS:
        for pname, path in PATHS.items():
            hr = to_t(virtual_camera_clip(load_photo(name), args.frames, (h, w), path))
            lr = degrade(hr, "bi", 4)
            ff, fb = dis(hr[:-1], hr[1:]), dis(hr[1:], hr[:-1])
            occ_f, _ = occlusion_masks(ff, fb)
            valid = 1 - occ_f
            per_frame = upscale_frames(lr, model, UpscaleSettings(method="learned-per-frame"))
            video = upscale_frames(lr, model)
            outs = {
                "bicubic": bicubic_upscale(lr, 4),
                "ours per-frame": per_frame,
                "ours per-frame + stabilize_with_flow": stabilize_with_flow(per_frame, lr),
                "ours video": video,
                "ours video + stabilize_with_flow": stabilize_with_flow(video, lr),
                "ground truth": hr,
            }
            line = []
            for k, y in outs.items():
                if k != "ground truth":
                    rows[k]["psnr"].append(psnr_y(y, hr))
                    rows[k]["ssim"].append(ssim_y(y, hr))
                rows[k]["ewarp"].append(1000 * warping_error(y, ff, valid))
                if k != "ground truth":
                    line.append(f"{k}: {rows[k]['psnr'][-1]:.2f}")
            print(f"{name:>16} {pname:<14} " + " | ".join(line))
            if args.figure and not fig_done:
                f = args.frames // 2
                # the 96x96 window where bicubic loses most detail
                err = (outs["bicubic"][f] - hr[f]).abs().sum(0, keepdim=True)[None]
                box = torch.nn.functional.avg_pool2d(err, 96, stride=8)[0, 0]
                iy, ix = divmod(int(box.argmax()), box.shape[1])
                save_figure(args.figure, hr, outs["bicubic"], outs["ours video"], f, (iy * 8, ix * 8, 96))
                fig_done = True

    print(f"\n{'method':<38} {'PSNR-Y':>8} {'SSIM-Y':>8} {'E*warp':>8}")
    for k, r in rows.items():
        p = f"{np.mean(r['psnr']):8.2f}" if r["psnr"] else f"{'-':>8}"
        s = f"{np.mean(r['ssim']):8.4f}" if r["ssim"] else f"{'-':>8}"
        print(f"{k:<38} {p} {s} {np.mean(r['ewarp']):8.3f}")
    gain = np.mean(rows["ours video"]["psnr"]) - np.mean(rows["bicubic"]["psnr"])
    print(f"\ngain over bicubic: {gain:+.2f} dB PSNR-Y (target >= +1.5)")
    print(f"E*warp video vs per-frame: {np.mean(rows['ours video']['ewarp']):.3f} vs "
          f"{np.mean(rows['ours per-frame']['ewarp']):.3f} (lower is more stable; GT floor "
          f"{np.mean(rows['ground truth']['ewarp']):.3f})")

    # x2 with the x4 weights (x4 then antialiased resampling to x2), BI x2 inputs
    p2, b2 = [], []
    for name in HELDOUT_PHOTOS:
        hr = to_t(virtual_camera_clip(load_photo(name), 6, (h, w), PATHS["pan"]))
        lr = degrade(hr, "bi", 2)
        p2.append(psnr_y(upscale_frames(lr, model, UpscaleSettings(scale=2)), hr))
        b2.append(psnr_y(bicubic_upscale(lr, 2), hr))
    print(f"x2 (BI x2 input, x4 weights + resampling): ours {np.mean(p2):.2f} dB vs bicubic {np.mean(b2):.2f} dB")

    # speed: 180p -> 720p, the full upscale_frames path (DIS flow + network + windows)
    lr180 = to_t(virtual_camera_clip(load_photo(HELDOUT_PHOTOS[0]), args.fps_frames, (180, 320),
                                     CameraPath(pan=(1.0, 0.5))))
    upscale_frames(lr180[:2], model, UpscaleSettings(window=2, window_overlap=0))   # warm-up
    t0 = time.perf_counter()
    out = upscale_frames(lr180, model)
    dt = time.perf_counter() - t0
    print(f"speed 320x180 -> {out.shape[-1]}x{out.shape[-2]}: {args.fps_frames / dt:.2f} fps "
          f"({args.threads} thread(s), window 12, overlap 2, DIS medium flow included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

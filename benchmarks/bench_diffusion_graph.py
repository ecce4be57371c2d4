"""Benchmark of the full diffusion graph on the shipped tiny weights, against the fast path and bicubic.

    python benchmarks/bench_diffusion_graph.py [--frames 6] [--size 256x384] [--steps 50] [--threads 1]
        [--upscaler PATH] [--refiner PATH] [--timing-frames 8] [--timing-steps 50] [--json OUT.json]

Held-out real-photo clips (scikit-image 'coffee' and 'rocket', never used in
training), each filmed along two virtual-camera paths, BI x4 degradation.
Rows (PSNR-Y / SSIM-Y in the BasicSR convention, E*warp = 1000 x E_warp with
DIS flow on the ground truth and its forward-backward occlusion mask, as in
bench_upscaler.py; seconds per output frame on this machine):

  bicubic
  fast path: the learned video upscaler (the Refine stage needs a
             diffusion output to blend, so the fast path is the upscaler)
  diffusion graph (Upscale = bicubic), guidance off / on, and (Upscale =
             the learned upscaler), guidance on:
             upscaled x4 -> tiny VAE encode -> Guided Sample (DDPM, the tiny
             SFT UNet, motion guidance from DIS flow on the LR clip) ->
             Temporal Decode (tiny video VAE, CFW from the upscaled frames);
             the tiny UNet was trained with bicubic upscales as its condition
  ... + Refine: the decoded frames and the upscaler's output through the
             refiner (its shipped weights if present, else the blend w = 0.5)

`--timing-frames N` also times the whole graph end to end on an N-frame
180p -> 720p clip (quality not measured there: the held-out photos are
smaller than 720p).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vsr_core.checkpoints import load_components  # noqa: E402
from vsr_core.checkpoints.shipped import shipped_path  # noqa: E402
from vsr_core.data.clips import HELDOUT_PHOTOS, load_photo  # noqa: E402
from vsr_core.data.virtual_camera import CameraPath, virtual_camera_clip  # noqa: E402
from vsr_core.diffusion.model import DiffusionModel  # noqa: E402
from vsr_core.diffusion.motion_guidance import MotionGuidance  # noqa: E402
from vsr_core.flow import DISFlow, occlusion_masks  # noqa: E402
from vsr_core.flow.estimate import estimate_flow  # noqa: E402
from vsr_core.metrics import psnr_y, ssim_y, warping_error  # noqa: E402
from vsr_core.pipeline.guided_sample import SampleSettings, guided_sample  # noqa: E402
from vsr_core.pipeline.vae_codec import decode_latents, encode_frames  # noqa: E402
from vsr_core.ops.resize import bicubic_upscale  # noqa: E402
from vsr_core.train.degradations import degrade  # noqa: E402
from vsr_core.machine import cpu_name  # noqa: E402

PATHS = {
    "pan": CameraPath(pan=(2.5, 1.0), zoom=1.0, roll=0.0),
    "pan+zoom+roll": CameraPath(pan=(-1.5, 2.0), zoom=1.006, roll=0.25),
}


def to_t(clip: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255.0


def load_shipped(unet_path=None, vae_path=None):
    """(DiffusionModel, video VAE) from the shipped files (or the given paths), as the loader nodes build them."""
    parts = load_components(unet_path or shipped_path("diffusion"), ("unet", "context"))
    unet = parts["unet"]
    model = DiffusionModel(unet, context=parts.get("context"), prediction=unet.config.prediction,
                           latent_scale=unet.latent_scale)
    vae = load_components(vae_path or shipped_path("video_vae"), ("vae",))["vae"]
    return model, vae


def diffusion_graph(lr: torch.Tensor, model, vae, steps: int, guidance: float, seed: int = 0,
                    window: int = 5, tile: int = 64, upscaled: torch.Tensor | None = None,
                    return_latent: bool = False):
    """LR clip [T,3,h,w] -> x4 frames through Upscale (bicubic) -> encode -> Guided Sample -> Temporal Decode."""
    up = bicubic_upscale(lr, 4) if upscaled is None else upscaled
    flow = estimate_flow(lr, "dis") if guidance > 0 and lr.shape[0] > 1 else None
    z = encode_frames(vae, up)
    settings = SampleSettings(steps=steps, sampler="ddpm", seed=seed, window=window, window_overlap=1,
                              tile_latent=tile, tile_overlap_latent=tile // 4, guidance=MotionGuidance(scale=guidance))
    s = model.latent_scale
    out = guided_sample(z * s, model, settings, flow=flow) / s
    frames = decode_latents(vae, out, upscaled=up, window=window, window_overlap=1)
    return (frames, out, up) if return_latent else frames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--size", default="256x384", help="HR clip size HxW (LR = size / 4)")
    ap.add_argument("--steps", type=int, default=50, help="DDPM steps of Guided Sample")
    ap.add_argument("--guidance", type=float, default=10.0, help="motion-guidance scale of the 'on' row")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--unet", default=None, help="diffusion bundle (default: the shipped tiny UNet)")
    ap.add_argument("--vae", default=None, help="video VAE (default: the shipped tiny video VAE)")
    ap.add_argument("--upscaler", default=None, help="fast-path upscaler .safetensors (default: the shipped one)")
    ap.add_argument("--refiner", default=None, help="refiner .safetensors (default: the shipped one if present)")
    ap.add_argument("--photos", default=",".join(HELDOUT_PHOTOS))
    ap.add_argument("--timing-frames", type=int, default=0, help="also time the graph on N frames at 180p->720p")
    ap.add_argument("--timing-steps", type=int, default=50)
    ap.add_argument("--timing-only", action="store_true", help="skip the quality table")
    ap.add_argument("--no-plain-vae-row", dest="plain_vae_row", action="store_false",
                    help="skip the row that decodes the guided latents with the plain tiny VAE")
    ap.add_argument("--json", default=None, help="write the table here as JSON")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"{args.threads} thread(s)")
    model, vae = load_shipped(args.unet, args.vae)
    print(f"diffusion: {sum(p.numel() for p in model.unet.parameters()):,} parameters, prediction "
          f"{model.prediction}, latent scale {model.latent_scale:.4f}; video VAE "
          f"{sum(p.numel() for p in vae.parameters()):,} parameters, factor {vae.downsample_factor}")

    plain = load_components(shipped_path("vae"), ("vae",))["vae"] if args.plain_vae_row else None
    upscaler = refiner = None
    try:
        from vsr_core.checkpoints.shipped import load_default_upscaler, load_upscaler
        upscaler = load_upscaler(args.upscaler) if args.upscaler else load_default_upscaler(4)
    except Exception as err:  # the fast path is another engineer's; report its absence, do not fail
        print(f"fast path: no upscaler weights ({err})")
    try:
        from vsr_core.checkpoints.shipped import load_refiner
        refiner = load_refiner(args.refiner)
    except Exception as err:
        print(f"refiner: none ({err}); the diffusion + refine row uses the fixed blend w = 0.5")
    photos = [p for p in args.photos.split(",") if p]
    print(f"held-out photos: {', '.join(photos)}; paths {', '.join(PATHS)}; BI x4; {args.frames} frames "
          f"of {w}x{h} (LR {w // 4}x{h // 4}); Guided Sample DDPM {args.steps} steps, window {min(5, args.frames)}\n")

    rows: dict[str, dict] = {}

    def add(name, y, hr, ff, valid, secs):
        r = rows.setdefault(name, {"psnr_y": [], "ssim_y": [], "e_warp_x1000": [], "s_per_frame": []})
        r["psnr_y"].append(psnr_y(y, hr))
        r["ssim_y"].append(ssim_y(y, hr))
        r["e_warp_x1000"].append(1000 * warping_error(y, ff, valid))
        r["s_per_frame"].append(secs / y.shape[0])
        return r["psnr_y"][-1]

    dis = DISFlow("medium")
    for name in ([] if args.timing_only else photos):
        for pname, path in PATHS.items():
            hr = to_t(virtual_camera_clip(load_photo(name), args.frames, (h, w), path))
            lr = degrade(hr, "bi", 4)
            ff, fb = dis(hr[:-1], hr[1:]), dis(hr[1:], hr[:-1])
            valid = 1 - occlusion_masks(ff, fb)[0]
            line = []
            t0 = time.perf_counter()
            bic = bicubic_upscale(lr, 4)
            line.append(("bicubic", add("bicubic", bic, hr, ff, valid, time.perf_counter() - t0)))
            fast = None
            if upscaler is not None:
                from vsr_core.pipeline.upscale import upscale_frames
                t0 = time.perf_counter()
                fast = upscale_frames(lr, upscaler)
                line.append(("fast", add("fast path: upscaler", fast, hr, ff, valid, time.perf_counter() - t0)))
                t_fast = time.perf_counter() - t0
            runs = [("bicubic", 0.0), ("bicubic", args.guidance)]
            if fast is not None:
                runs.append(("upscaler", args.guidance))
            for source, g in runs:
                label = (f"diffusion graph (Upscale = {source}), guidance "
                         f"{'off' if g == 0 else f'on ({g:g})'}")
                t0 = time.perf_counter()
                y, zs, up = diffusion_graph(lr, model, vae, args.steps, g, window=min(5, args.frames),
                                            upscaled=fast if source == "upscaler" else None, return_latent=True)
                secs = time.perf_counter() - t0 + (t_fast if source == "upscaler" else 0.0)
                line.append((f"{source}/{'off' if g == 0 else 'on'}", add(label, y, hr, ff, valid, secs)))
                if plain is not None and source == "bicubic" and g > 0:
                    add(label.replace("guidance", "plain tiny VAE decoder, guidance"),
                        decode_latents(plain, zs, upscaled=up), hr, ff, valid, secs)
                if fast is not None:
                    from vsr_core.models.refiner import refine
                    t1 = time.perf_counter()
                    yr = refine(fast, y, refiner)
                    add(label + " + Refine (with the upscaler output)", yr, hr, ff, valid,
                        secs + (0.0 if source == "upscaler" else t_fast) + time.perf_counter() - t1)
            add("ground truth", hr, hr, ff, valid, 0.0)
            print(f"{name:>16} {pname:<14} " + " | ".join(f"{k}: {v:.2f}" for k, v in line), flush=True)

    if rows:
        print("\n| method | PSNR-Y | SSIM-Y | E*warp | s/frame |\n|---|---|---|---|---|")
    table = {}
    for k, r in rows.items():
        m = {q: float(np.mean(v)) for q, v in r.items()}
        table[k] = {q: round(v, 4) for q, v in m.items()}
        if k == "ground truth":
            print(f"| ground truth (E*warp floor) | - | - | {m['e_warp_x1000']:.3f} | - |")
        else:
            print(f"| {k} | {m['psnr_y']:.2f} | {m['ssim_y']:.4f} | {m['e_warp_x1000']:.3f} | "
                  f"{m['s_per_frame']:.2f} |")

    timing = None
    if args.timing_frames:
        n = args.timing_frames
        src = load_photo(photos[0])
        import cv2
        big = cv2.resize(src, (src.shape[1] * 2, src.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
        hr = to_t(virtual_camera_clip(big, n, (720, 1280), PATHS["pan"]))
        lr = degrade(hr, "bi", 4)
        t0 = time.perf_counter()
        y = diffusion_graph(lr, model, vae, args.timing_steps, args.guidance, window=min(5, n))
        secs = time.perf_counter() - t0
        assert y.shape == hr.shape, (y.shape, hr.shape)
        timing = {"frames": n, "lr": "320x180", "hr": "1280x720", "steps": args.timing_steps,
                  "guidance": args.guidance, "seconds": round(secs, 1), "s_per_frame": round(secs / n, 2)}
        print(f"\nend to end, {n} frames 320x180 -> 1280x720, DDPM {args.timing_steps} steps, guidance "
              f"{args.guidance:g}: {secs:.1f} s ({secs / n:.2f} s/frame), output {tuple(y.shape)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": cpu_name(), "threads": args.threads, "frames": args.frames, "size": args.size,
                       "steps": args.steps, "photos": photos, "paths": list(PATHS), "table": table,
                       "timing_720p": timing}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the time goes: seconds per frame of each stage of the full graph on the shipped weights.

    python benchmarks/bench_stages.py [--frames 8] [--size 90x160] [--steps 20] [--threads 1]
                                      [--channels-last] [--precision fp32|bf16|fp16] [--compile]

Stages, for one clip made here (a virtual camera over a scikit-image photo), with
the models and settings of `python -m vsr_core restore` (workflows/full_pipeline_default):
flow (DIS), upscale (shipped x4), VAE encode (tiny video VAE), one Guided Sample
step (tiny UNet, all windows), the motion-guidance part of a step (guided minus
unguided sampling over --guidance-steps steps), temporal decode, refine; then the
whole graph end to end in frames per second,
against bicubic and against the same graph without its temporal modules (per-frame
upscaler, no guidance, plain decoder). Last, the UNet's achieved GFLOP/s (FLOPs
counted by torch's FlopCounterMode) against a plain float32 matrix multiply on the
same machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vsr_core.data import CameraPath, photo, virtual_camera_clip  # noqa: E402
from vsr_core.diffusion.model import DiffusionModel  # noqa: E402
from vsr_core.diffusion.motion_guidance import MotionGuidance  # noqa: E402
from vsr_core.flow import estimate_flow  # noqa: E402
from vsr_core.machine import cpu_name  # noqa: E402
from vsr_core.metrics import psnr_y  # noqa: E402
from vsr_core.models.refiner import refine  # noqa: E402
from vsr_core.pipeline.guided_sample import SampleSettings, guided_sample  # noqa: E402
from vsr_core.pipeline.vae_codec import decode_latents, encode_frames  # noqa: E402
from vsr_core.pipeline.upscale import upscale_frames  # noqa: E402
from vsr_core.checkpoints import load_components  # noqa: E402
from vsr_core.checkpoints.shipped import shipped_path  # noqa: E402
from vsr_core.checkpoints.restore_models import load_restore_models  # noqa: E402
from vsr_core.speed import PRECISIONS, autocast  # noqa: E402
from vsr_core.pipeline.upscale_settings import UpscaleSettings  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e9


def unet_gflops(model: DiffusionModel, latents: torch.Tensor, frames: int) -> tuple[float, float]:
    """(achieved GFLOP/s, GFLOP per call) of one UNet call on a window of latents."""
    from torch.utils.flop_counter import FlopCounterMode
    x = latents[:frames]
    with torch.no_grad():
        model(x, 500, x, frames)
        with FlopCounterMode(display=False) as counter:
            model(x, 500, x, frames)
        flops = counter.get_total_flops()
        _, sec = timed(lambda: model(x, 500, x, frames))
    return flops / sec / 1e9, flops / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", default="90x160", help="LR size HxW")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--guidance-steps", type=int, default=5)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--check-fp32", action="store_true",
                    help="also run the graph in float32 and print how far the reduced-precision frames are")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with autocast(torch.device("cpu"), args.precision):
        return run(args)


def run(args) -> int:
    h, w = (int(v) for v in args.size.split("x"))
    n = args.frames
    lr = torch.from_numpy(virtual_camera_clip(photo("coffee"), n, (h, w), CameraPath(pan=(1.0, 0.5)))).float()
    lr = lr.permute(0, 3, 1, 2) / 255

    models = load_restore_models(channels_last=args.channels_last, compile=args.compile)
    upscaler, refiner, model, video_vae = models.upscaler, models.refiner, models.diffusion, models.vae
    plain_vae = load_components(shipped_path("vae"), ("vae",))["vae"]  # per-frame decoder, for the no-temporal graph

    rows = {}
    flow, rows["flow (DIS)"] = timed(lambda: estimate_flow(lr, "dis"))
    up, rows["upscale (shipped x4, temporal)"] = timed(lambda: upscale_frames(lr, upscaler))
    z, rows["VAE encode (tiny video VAE)"] = timed(lambda: encode_frames(video_vae, up) * model.latent_scale)
    if args.compile:  # the first calls compile (minutes); keep that out of the stage times
        _, compile_seconds = timed(lambda: guided_sample(z, model, SampleSettings(steps=1, window=5), flow))
        print(f"compiling took {compile_seconds:.0f} s", flush=True)
    k = args.guidance_steps
    plain = SampleSettings(steps=k, window=5, guidance=MotionGuidance(scale=0.0))
    _, unguided = timed(lambda: guided_sample(z, model, plain, flow))
    guided = SampleSettings(steps=k, window=5, guidance=MotionGuidance(scale=10.0))
    _, with_guidance = timed(lambda: guided_sample(z, model, guided, flow))
    rows["one sampler step (all windows)"] = unguided / k
    rows["motion guidance, per step"] = (with_guidance - unguided) / k
    full = SampleSettings(steps=args.steps, window=5, guidance=MotionGuidance(scale=10.0))
    sample, sampling = timed(lambda: guided_sample(z, model, full, flow))
    dec, rows["temporal decode (tiny video VAE)"] = timed(
        lambda: decode_latents(video_vae, sample / model.latent_scale, upscaled=up))
    final, rows["refine (shipped)"] = timed(lambda: refine(up, dec, refiner))

    total = rows["flow (DIS)"] + rows["upscale (shipped x4, temporal)"] + rows["VAE encode (tiny video VAE)"] + sampling \
        + rows["temporal decode (tiny video VAE)"] + rows["refine (shipped)"]
    _, bicubic = timed(lambda: F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1))
    # The same graph without temporal modules: per-frame upscaler, no guidance, plain decoder.
    _, nt_up = timed(lambda: upscale_frames(lr, upscaler, UpscaleSettings(method="learned-per-frame")))
    no_guide = SampleSettings(steps=args.steps, window=1, window_overlap=0, guidance=MotionGuidance(scale=0.0))
    _, nt_sample = timed(lambda: guided_sample(z, model, no_guide, None))
    _, nt_dec = timed(lambda: decode_latents(plain_vae, sample / model.latent_scale))
    no_temporal = nt_up + rows["VAE encode (tiny video VAE)"] + nt_sample + nt_dec + rows["refine (shipped)"]

    if args.check_fp32:
        with torch.autocast("cpu", enabled=False):
            up32 = upscale_frames(lr, upscaler)
            z32 = encode_frames(video_vae, up32) * model.latent_scale
            dec32 = decode_latents(video_vae, guided_sample(z32, model, full, flow) / model.latent_scale,
                                   upscaled=up32)
            reference = refine(up32, dec32, refiner)
    achieved, gflop = unet_gflops(model, z, min(5, n))
    peak = matmul_gflops()

    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); precision {args.precision}, channels-last {args.channels_last}, "
          f"compile {args.compile}")
    print(f"clip: {n} frames {h}x{w} -> {4 * h}x{4 * w}; Guided Sample DDPM {args.steps} steps, window 5, "
          f"guidance 10; shipped tiny weights")
    print(f"\n{'stage':<36} {'s/frame':>9}")
    for name, sec in rows.items():
        print(f"{name:<36} {sec / n:>9.3f}")
    print(f"{'sampling, all ' + str(args.steps) + ' steps':<36} {sampling / n:>9.3f}")
    print(f"\nend to end: {n / total:.3f} fps ({total / n:.2f} s/frame)")
    print(f"bicubic: {n / bicubic:.1f} fps; graph is {total / bicubic:.0f}x slower")
    print(f"same graph without temporal modules: {no_temporal / n:.2f} s/frame "
          f"(temporal modules cost x{total / no_temporal:.2f})")
    if args.check_fp32:
        print(f"final frames against the same graph in float32: PSNR-Y {psnr_y(final, reference):.2f} dB")
    print(f"\nUNet: {gflop:.1f} GFLOP per call on {min(5, n)} latent frames, {achieved:.1f} GFLOP/s achieved; "
          f"float32 1024^3 matmul {peak:.1f} GFLOP/s; ratio {achieved / peak:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of Guided Sample: motion guidance on vs off, for DDPM and ResShift.

    python benchmarks/bench_guided_sample.py [--frames 8] [--size 128] [--threads 1]
        [--unet model.safetensors] [--vae vae.safetensors] [--determinism]

A virtual camera pans over scikit-image's astronaut photo (real image
statistics, no download); the clip is degraded (area-downscaled x4, bicubic
back up), encoded with a VAE, and its flow is estimated with OpenCV DIS on the
upscaled frames. Guided Sample then runs with motion guidance off, on (the
default latent-only gradient) and on through the model, with the same seed.

Reported per sampler and mode:
- latent warping error: warping_loss (the guidance objective, MGLD's masked
  L1, true-neighbour variant) of the sampled latents against the latent-size flow;
- pixel E_warp (x1000) of the decoded frames against the pixel flow, non-occluded pixels;
- seconds per frame (median of --repeats runs after a warm-up), the guidance
  cost per frame (on - off), and the overhead ratio on/off.

Without --unet/--vae the weights are RANDOM (a tiny UNet and a tiny VAE): the
warping numbers then show that the guidance mechanism works, not image
quality, and the overhead ratio is large because a tiny UNet costs almost
nothing next to the guidance's grid_samples (the absolute guidance cost per
frame does not depend on the UNet for latent guidance).

--determinism (instead of the benchmark) measures, on the tiny random UNet,
how much the output moves when only the window size or only the tile size
changes, against a change of seed (the numbers in docs/guided_sample.md).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vsr_core.machine import cpu_name  # noqa: E402
from vsr_core.data.virtual_camera import CameraPath, photo, virtual_camera_clip  # noqa: E402
from vsr_core.diffusion.model import DiffusionModel  # noqa: E402
from vsr_core.diffusion.motion_guidance import MotionGuidance, warping_loss  # noqa: E402
from vsr_core.flow import backward_warp, estimate_flow, inside_mask  # noqa: E402
from vsr_core.models.unet import UNetConfig, UNetModel  # noqa: E402
from vsr_core.models.vae import AutoencoderKL, VAEConfig  # noqa: E402
from vsr_core.pipeline.guided_sample import SampleSettings, guided_sample  # noqa: E402

MGLD_SCALE, MGLD_LATENT = 10.0, 64  # MGLD-VSR's guidance scale, for 64x64x4 latents (512 px)


def tiny_unet(channels: int = 32, temporal: bool = False, seed: int = 0) -> DiffusionModel:
    """The tests' tiny random UNet (x0-prediction, output layers re-randomised so it says something)."""
    torch.manual_seed(seed)
    cfg = UNetConfig(model_channels=channels, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(2,),
                     num_head_channels=16, context_dim=32, temporal_middle=temporal)
    unet = UNetModel(cfg).eval()
    for module in unet.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.reset_parameters()
    if temporal:
        for name, p in unet.named_parameters():
            if "temporal_alpha" in name:
                p.data.fill_(0.5)
    context = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(1))
    return DiffusionModel(unet.requires_grad_(False), context=context, prediction="x0")


class ResidualUNet(torch.nn.Module):
    """x0 = input + 0.3 * random UNet: a random network that, like a trained denoiser near t = 0,
    has a Jacobian close to the identity (through-model guidance needs that to descend)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        self.config = unet.config

    def forward(self, x, timesteps, context=None, **kw):
        return x + 0.3 * self.unet(x, timesteps, context, **kw)


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 2, 2, 2), num_res_blocks=1)).eval().requires_grad_(False)


def load_unet(path: str, prediction: str | None) -> DiffusionModel:
    from vsr_core.checkpoints.loader import load_components
    from vsr_core.models.text_encoder import null_prompt_embedding
    parts = load_components(path, kinds=("unet", "text"))
    unet = parts["unet"].eval().requires_grad_(False)
    cfg = getattr(unet, "config", None) or unet.unet.config
    if "text" in parts:
        context = null_prompt_embedding(parts["text"])
    else:
        print(f"note: {path} holds no text encoder; using a zero context [1,77,{cfg.context_dim}]")
        context = torch.zeros(1, 77, cfg.context_dim)
    return DiffusionModel(unet, context=context, prediction=prediction or cfg.prediction)


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------

def make_clip(frames: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(HR clip, bicubic-upscaled x4 LR clip) as [T,3,H,W] in 0..1."""
    hr = virtual_camera_clip(photo("astronaut"), frames, (size, size), CameraPath(pan=(3.0, 1.5), zoom=1.005))
    lr = [cv2.resize(f, (size // 4, size // 4), interpolation=cv2.INTER_AREA) for f in hr]
    up = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in lr])

    def tt(a):
        return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0
    return tt(hr), tt(up)


@torch.no_grad()
def encode(vae, frames01: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.cat([vae.encode(f[None] * 2 - 1) for f in frames01]) * scale


@torch.no_grad()
def decode(vae, latents: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.cat([((vae.decode(z[None] / scale) + 1) / 2).clamp(0, 1) for z in latents])


def e_warp(frames01: torch.Tensor, flow) -> float:
    """E_warp (plain; x1000 for E*warp): mean over t of the squared RGB error between frame t and frame t+1
    warped back by the forward flow, over non-occluded pixels inside the frame."""
    try:
        from vsr_core.metrics import warping_error
        return warping_error(frames01, flow.forward, 1.0 - flow.occlusion_forward)
    except ImportError:
        x = frames01.double()
        fl = flow.forward.double()
        mask = inside_mask(fl) * (1.0 - flow.occlusion_forward.double())
        err = ((x[:-1] - backward_warp(x[1:], fl)) ** 2).sum(1, keepdim=True) * mask
        return float((err.flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0)).mean())


# ----------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------

def benchmark(args, model, vae, scale_latent, random_weights):
    hr, up = make_clip(args.frames, args.size)
    t_frames = hr.shape[0]
    z_lr = encode(vae, up, scale_latent)
    h, w = z_lr.shape[-2:]
    flow = estimate_flow(up, "dis")
    latent_flow = flow.resized(h, w)
    gscale = args.scale if args.scale is not None else MGLD_SCALE * h * w / MGLD_LATENT ** 2
    print(f"clip: {t_frames} frames {args.size}x{args.size} (astronaut, virtual camera pan 3,1.5 px/frame, "
          f"zoom 1.005), LR x4 area-down + bicubic up; latents {tuple(z_lr.shape)}; flow: OpenCV DIS on the "
          f"upscaled LR")
    print(f"guidance scale {gscale:.3f} (= MGLD's 10 per element of a 64x64 latent, rescaled to {h}x{w}), "
          f"rule log_variance, every step; window {args.window} overlap 1, tile {args.tile}")
    print(f"reference: warping loss of the LR latents themselves {warping_loss(z_lr, latent_flow).item():.4f}; "
          f"pixel E_warp x1000 of the HR clip {1000 * e_warp(hr, flow):.3f}, of the upscaled LR "
          f"{1000 * e_warp(up, flow):.3f}")
    rows = []
    for sampler, steps in (("ddpm", args.ddpm_steps), ("resshift", args.resshift_steps)):
        if sampler == "resshift" and model.prediction != "x0":
            print(f"skipping resshift: the UNet predicts {model.prediction!r}, ResShift needs an x0-predictor")
            continue
        base = dict(sampler=sampler, steps=steps, seed=args.seed, window=args.window, window_overlap=1,
                    tile_latent=args.tile, tile_overlap_latent=args.tile // 2)
        modes = [("off", MotionGuidance(scale=0.0)), ("on", MotionGuidance(scale=gscale))]
        if not args.no_through_model:
            modes.append(("on, through model", MotionGuidance(scale=gscale, through_model=True)))
        settings = {name: SampleSettings(guidance=g, **base) for name, g in modes}
        outs, times = {}, {name: [] for name in settings}
        for name, st in settings.items():  # warm-up
            outs[name] = guided_sample(z_lr, model, st, flow)
        for _ in range(args.repeats):  # interleaved, so load from other processes hits every mode alike
            for name, st in settings.items():
                t0 = time.perf_counter()
                guided_sample(z_lr, model, st, flow)
                times[name].append(time.perf_counter() - t0)
        results = {name: (warping_loss(out, latent_flow).item(),
                          1000 * e_warp(decode(vae, out, scale_latent), flow),
                          statistics.median(times[name]) / t_frames) for name, out in outs.items()}
        off_time = results["off"][2]
        for name, (lat, pix, spf) in results.items():
            rows.append((f"{sampler} ({steps} steps)", name, lat, lat / results["off"][0], pix, spf,
                         spf - off_time, spf / off_time))
    header = ("sampler", "guidance", "latent warp", "vs off", "pixel E_warp x1000", "s/frame", "guid. s/frame",
              "overhead")
    widths = (20, 18, 11, 7, 18, 8, 13, 8)
    print()
    print("  ".join(hd.ljust(wd) for hd, wd in zip(header, widths)))
    for r in rows:
        cells = (r[0], r[1], f"{r[2]:.4f}", f"{r[3]:.3f}", f"{r[4]:.3f}", f"{r[5]:.4f}", f"{r[6]:+.4f}",
                 f"{r[7]:.2f}x")
        print("  ".join(c.ljust(wd) for c, wd in zip(cells, widths)))
    if random_weights:
        print("\nWEIGHTS ARE RANDOM: the warping numbers show the guidance mechanism at work, not image quality; "
              "the decoded frames are not images of anything, and the overhead ratio reflects a tiny UNet "
              "(the guidance cost per frame, 'guid. s/frame', is what carries over to a real UNet).")


def determinism(args):
    """Mean |difference| of outputs when only the window or only the tile changes, vs a new seed."""
    hr, up = make_clip(args.frames, 2 * args.size)  # larger frames so several latent tiles fit
    vae = tiny_vae()
    z = encode(vae, up, 0.18215)
    h, w = z.shape[-2:]
    flow = estimate_flow(up, "dis")
    t = z.shape[0]
    gscale = MGLD_SCALE * h * w / MGLD_LATENT ** 2
    print(f"determinism: tiny random UNet, latents {tuple(z.shape)} from a {2 * args.size}px astronaut clip; "
          f"each cell is mean |x - x_ref| / mean |x_ref| against the run with the whole clip in one window "
          f"and one tile, seed 0 (independent Gaussian outputs would give about 1.41)")
    changes = [("window %d/ov 1 -> 4/ov 1" % t, dict(window=4, window_overlap=1)),
               ("window %d/ov 1 -> 3/ov 0" % t, dict(window=3, window_overlap=0)),
               ("tile %d (one) -> 16/ov 8" % max(h, w), dict(tile_latent=16, tile_overlap_latent=8)),
               ("tile %d (one) -> 24/ov 12" % max(h, w), dict(tile_latent=24, tile_overlap_latent=12)),
               ("seed 0 -> 1", dict(seed=1)),
               ("seed 0 -> 0 (rerun)", dict())]
    print("| sampler | steps | model | " + " | ".join(label for label, _ in changes) + " |")
    print("|---|---|---|" + "---|" * len(changes))
    configs = [("frame-independent UNet, no guidance", False, 0.0),
               ("temporal UNet + motion guidance", True, gscale)]
    for sampler, step_list in (("ddpm", (1, 4, 50)), ("resshift", (2, 4, 15))):
        for steps in step_list:
            for cname, temporal, gs in configs:
                model = tiny_unet(temporal=temporal)
                ref_kw = dict(sampler=sampler, steps=steps, seed=0, window=t, window_overlap=1, tile_latent=max(h, w),
                              tile_overlap_latent=8, guidance=MotionGuidance(scale=gs))
                ref = guided_sample(z, model, SampleSettings(**ref_kw), flow)
                denom = ref.abs().mean().item()
                cells = []
                for label, change in changes:
                    out = guided_sample(z, model, SampleSettings(**{**ref_kw, **change}), flow)
                    cells.append(f"{(out - ref).abs().mean().item() / denom:.4f}")
                print(f"| {sampler} | {steps} | {cname} | " + " | ".join(cells) + " |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128, help="HR frame side in pixels (default 128)")
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--tile", type=int, default=64, help="latent tile (default 64: one tile at 128 px)")
    ap.add_argument("--ddpm-steps", type=int, default=50)
    ap.add_argument("--resshift-steps", type=int, default=15)
    ap.add_argument("--scale", type=float, default=None, help="guidance scale (default: MGLD's 10, rescaled)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    ap.add_argument("--unet", help="UNet checkpoint (loaded with vsr_core.load_model); default: tiny random")
    ap.add_argument("--prediction", choices=("eps", "v", "x0"), help="override the UNet's prediction type")
    ap.add_argument("--vae", help="VAE checkpoint; default: tiny random AutoencoderKL")
    ap.add_argument("--no-through-model", action="store_true", help="skip the through-model guidance rows")
    ap.add_argument("--residual-unet", action="store_true",
                    help="random UNet read as x0 = input + 0.3 * UNet (denoiser-like Jacobian)")
    ap.add_argument("--determinism", action="store_true",
                    help="instead of the benchmark, measure window/tile/seed sensitivity (docs/guided_sample.md)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; threads used: torch {torch.get_num_threads()}, "
          f"OpenCV {args.threads}; torch {torch.__version__}")
    if args.determinism:
        determinism(args)
        return 0
    import vsr_core
    model = load_unet(args.unet, args.prediction) if args.unet else tiny_unet()
    if args.residual_unet and not args.unet:
        model = DiffusionModel(ResidualUNet(model.unet), context=model.context, prediction="x0")
    vae = vsr_core.load_model(args.vae, "vae").eval() if args.vae else tiny_vae()
    random_weights = not (args.unet and args.vae)
    what = []
    kind = "RANDOM tiny (32 ch, x0-prediction" + (", read as x0 = x + 0.3 UNet(x))" if args.residual_unet else ")")
    what.append(f"UNet {'from ' + args.unet if args.unet else kind}")
    what.append(f"VAE {'from ' + args.vae if args.vae else 'RANDOM tiny AutoencoderKL (32 ch, /8)'}")
    print("weights: " + "; ".join(what))
    benchmark(args, model, vae, getattr(model, "latent_scale", 0.18215), random_weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())

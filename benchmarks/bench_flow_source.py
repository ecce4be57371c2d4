"""How much the propagation's flow limits the upscaler on compressed input.

    python benchmarks/bench_flow_source.py --real-videos DIR [--split val] [--presets fast,medium] [--sigmas 1.0]

Runs the shipped upscaler (or ``--weights``) on each clip of a prepared real-videos folder (the
trainer's validation protocol: first 8 frames, centre crop <= 256 px, x4, clean bicubic and
bicubic + h264 CRF 30) with the same network input every time, and changes only the frames its
DIS flow is estimated on:

- ``degraded``: the input itself (what the upscaler does);
- ``cleaned``: the network's own cleaning-stage output;
- ``blurred<s>``: the input smoothed by a Gaussian of sigma ``s`` (codec blocks smoothed away);
- ``oracle_clean_lr``: the clean bicubic LR frames, which no real input comes with: the gap to
  ``degraded`` is what a better flow on compressed input could add at most, with these weights.

Prints the mean PSNR-Y gain over bicubic (dB) per case and flow source. ``--split val`` (default)
keeps the benchmark's held-out clips out of the investigation.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vsr_core.checkpoints.shipped import load_default_upscaler, load_upscaler  # noqa: E402
from vsr_core.machine import cpu_name  # noqa: E402
from vsr_core.metrics import psnr_y  # noqa: E402
from vsr_core.models.upscaler import clip_flows  # noqa: E402
from vsr_core.ops.resize import bicubic_upscale  # noqa: E402
from vsr_core.train.degradations import bi_downsample, gaussian_blur, quantize  # noqa: E402
from vsr_core.train.real_eval import CASES, degrade_case, real_hr_clips  # noqa: E402


def flow_sources(model, lr: torch.Tensor, hr: torch.Tensor, sigmas) -> dict[str, torch.Tensor]:
    sources = {"degraded": lr, "cleaned": model.cleaner(lr).clamp(0, 1) if model.cleaner is not None else lr}
    # an odd kernel size keeps the smoothed frames centred on the input
    sources.update({f"blurred{s:g}": gaussian_blur(lr, s, 2 * int(3 * s) + 1) for s in sigmas})
    sources["oracle_clean_lr"] = quantize(bi_downsample(hr, model.scale))
    return sources


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-videos", required=True, help="folder made by `python -m vsr_core prepare-real-videos`")
    ap.add_argument("--split", default="val", choices=("val", "heldout"))
    ap.add_argument("--weights", default=None, help="upscaler weights (default: the shipped default)")
    ap.add_argument("--presets", default="fast", help="comma-separated DIS presets (inference uses fast)")
    ap.add_argument("--sigmas", default="1.0", help="comma-separated Gaussian sigmas for the blurred source")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = (load_upscaler(args.weights) if args.weights else load_default_upscaler(4)).eval()
    presets = args.presets.split(",")
    sigmas = [float(s) for s in args.sigmas.split(",") if s]
    clips = real_hr_clips(args.real_videos, 8, split=args.split)
    print(f"{len(clips)} {args.split} clips, 8 frames, x{model.scale}; {cpu_name()}, {args.threads} thread(s)")
    for case in CASES:
        gains: dict[str, list] = {}
        for hr in clips.values():
            lr = degrade_case(hr, case, model.scale)
            bicubic = psnr_y(bicubic_upscale(lr, model.scale), hr)
            with torch.inference_mode():
                for name, frames in flow_sources(model, lr, hr, sigmas).items():
                    for preset in presets:
                        ff, fb = clip_flows(frames, preset=preset)
                        out = model(lr[None], ff[None], fb[None])[0].clamp(0, 1)
                        gains.setdefault(f"{name} ({preset})", []).append(psnr_y(out, hr) - bicubic)
        print(f"\n### {case}: gain over bicubic (dB)\n\n| flow estimated on | mean | worst clip |\n|---|---|---|")
        for name, g in gains.items():
            print(f"| {name} | {np.mean(g):+.3f} | {np.min(g):+.3f} |")


if __name__ == "__main__":
    main()

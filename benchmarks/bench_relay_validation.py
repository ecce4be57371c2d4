"""The relay's design numbers on the validation clips (never the benchmark's held-out ones):

    python benchmarks/bench_relay_validation.py --real-videos DIR [--clips 8]

- the oracle: ground-truth keyframes every 8 frames (17-frame clips, 256 px crops), clean and h264 CRF 30
  input, PSNR-Y gain of the relayed frames over the default's by distance to the nearest keyframe;
- generated keyframes: Real-ESRGAN x4plus on frames 0 and 8 (9-frame clips, 200 px crops), the share of
  the keyframes' high-frequency energy the relayed frames 1-7 keep, and E*warp beside the default's.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_real_footage import ewarp, gt_flows  # noqa: E402
from vsr_core.checkpoints.detail_loader import load_detail_model  # noqa: E402
from vsr_core.checkpoints.shipped import load_default_upscaler, load_relay_fusion  # noqa: E402
from vsr_core.flow import DISFlow  # noqa: E402
from vsr_core.machine import cpu_name  # noqa: E402
from vsr_core.metrics import psnr_y  # noqa: E402
from vsr_core.models.upscaler import upscale_clip  # noqa: E402
from vsr_core.pipeline.detail import detail_upscale  # noqa: E402
from vsr_core.relay import high_pass, nearest_keyframes, relay_clip, select_keyframes  # noqa: E402
from vsr_core.train.real_eval import degrade_case, real_hr_clips  # noqa: E402


def oracle(folder: str, case: str, model, clips: int) -> dict:
    gains: dict[int, list] = {}
    for hr in list(real_hr_clips(folder, frames=17, max_side=256, split="val").values())[:clips]:
        faithful = upscale_clip(model, degrade_case(hr, case, 4))
        keys = select_keyframes(len(hr), 8)
        out = relay_clip(faithful, {k: hr[k] for k in keys}, 4)
        for t in range(len(hr)):
            before, after = nearest_keyframes(t, keys)
            d = min(t - before, after - t)
            if d:
                gains.setdefault(d, []).append(psnr_y(out[t:t + 1], hr[t:t + 1]) -
                                               psnr_y(faithful[t:t + 1], hr[t:t + 1]))
    return {d: float(np.mean(v)) for d, v in sorted(gains.items())}


def generated(folder: str, model, clips: int, fusion=None) -> dict:
    """{fusion: (share of the keyframes' HF energy the relayed frames 1-7 keep, E*warp)}, and the default's
    E*warp under "default"; the hand-designed mix, and the learned ``fusion`` when one is given."""
    detail, dis = load_detail_model(), DISFlow("medium")
    fusions = {"hand": None, **({"learned": fusion} if fusion is not None else {})}
    relayed, made, warp = {name: [] for name in fusions}, [], {name: [] for name in [*fusions, "default"]}
    for hr in list(real_hr_clips(folder, frames=9, max_side=200, split="val").values())[:clips]:
        lr = degrade_case(hr, "bi", 4)
        faithful = upscale_clip(model, lr)
        keys = {k: detail_upscale(lr[k:k + 1], detail)[0] for k in (0, 8)}
        made.append(float(high_pass(torch.stack(list(keys.values())), 4).pow(2).mean()))
        flows = gt_flows(hr, dis)
        warp["default"].append(ewarp(faithful, flows))
        for name, chosen in fusions.items():
            out = relay_clip(faithful, keys, 4, fusion=chosen)
            relayed[name].append(float(high_pass(out[1:8], 4).pow(2).mean()))
            warp[name].append(ewarp(out, flows))
    return {name: (float(np.mean(relayed[name]) / np.mean(made)) if name in relayed else None,
                   float(np.mean(warp[name]))) for name in warp}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-videos", required=True, help="folder made by `prepare-real-videos --validation-share`")
    ap.add_argument("--clips", type=int, default=14, help="validation clips to use (14: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fusion", default=None, help="also the learned relay fusion (a RelayFusion .safetensors, "
                                                   "or 'shipped')")
    ap.add_argument("--generated-only", action="store_true", help="skip the oracle")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_default_upscaler(4)
    fusion = None if args.fusion is None else load_relay_fusion(None if args.fusion == "shipped" else args.fusion)
    print(f"validation clips of {args.real_videos}; {cpu_name()}, {args.threads} thread(s)")
    with torch.inference_mode():
        for case in () if args.generated_only else ("bi", "h264_crf30"):
            gains = oracle(args.real_videos, case, model, args.clips)
            print(f"oracle, {case}: gain by distance (dB) " + " ".join(f"{d}: {g:+.2f}" for d, g in gains.items()))
        results = generated(args.real_videos, model, min(args.clips, 8), fusion)
    for name, (kept, warp) in results.items():
        if kept is not None:
            print(f"x4plus keyframes, {name} fusion: relayed frames keep {kept:.2f} of the keyframes' HF energy; "
                  f"E*warp {warp:.3f} (default {results['default'][1]:.3f})")


if __name__ == "__main__":
    main()

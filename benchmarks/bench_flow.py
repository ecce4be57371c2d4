"""Benchmark of the flow estimators: accuracy on real data, and speed.

    python benchmarks/bench_flow.py [--raft-weights raft-things.pth] [--threads 1]

Accuracy: end-point error (EPE, pixels) on scikit-image's ``stereo_motorcycle``
(Middlebury 2014 "Motorcycle", downsampled x4 to 741x500, with ground-truth
disparity). It is a rectified stereo pair, so the true flow from the left to
the right image is horizontal: pixel (x, y) of the left image is at
(x - d(x, y), y) in the right image, i.e. flow = (-d, 0). This is the
Middlebury convention for a left-view disparity map (skimage's docstring
example reads the other way; this script prints a photometric check that
decides it on the data). Pixels without ground truth are excluded: skimage
documents them as NaN, the 0.26 release stores +inf; any non-finite value
counts as invalid. Reported: mean EPE, and "bad3" = share of pixels with EPE > 3 px.

Speed: median wall time per frame pair (one direction) at 854x480, on the
motorcycle pair resized to that size, after one warm-up run.

RAFT needs user-supplied weights (raft-things.pth or torchvision raft_large);
without --raft-weights its accuracy is not measured, because RAFT with random
weights has no meaningful accuracy. ``--raft-timing-only`` times the RAFT
architecture with random weights (run time does not depend on the values) and
still reports no accuracy for it.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import torch  # noqa: E402

from vsr_core.machine import cpu_name  # noqa: E402
from vsr_core.flow import DISFlow, RaftFlow, backward_warp, build_raft, deterministic_weights, load_raft  # noqa: E402


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255.0


def motorcycle():
    import skimage.data
    left, right, disp = skimage.data.stereo_motorcycle()
    valid = np.isfinite(disp)
    d = np.where(valid, disp, 0.0)
    gt = np.stack([-d, np.zeros_like(d)]).astype(np.float32)  # left -> right
    return left, right, gt, valid


def convention_check(left, right, gt, valid) -> str:
    """Photometric error of the two readings of the disparity map."""
    L, R = to_tensor(left), to_tensor(right)
    g = torch.from_numpy(gt)[None]
    v = torch.from_numpy(valid)
    e_left = (backward_warp(R, g) - L).abs().mean(1)[0][v].mean().item()        # left[x] = right[x - d]
    e_right = (backward_warp(L, -g) - R).abs().mean(1)[0][v].mean().item()      # right[x] = left[x + d]
    e_none = (R - L).abs().mean(1)[0][v].mean().item()
    verdict = "left-referenced (flow = -d)" if e_left < e_right else "right-referenced"
    return (f"disparity convention check, mean |warp - target| on valid pixels: left-referenced "
            f"{e_left:.4f}, right-referenced {e_right:.4f}, no warp {e_none:.4f} -> {verdict}")


def epe_stats(flow: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    err = np.sqrt(((flow[:, valid] - gt[:, valid]) ** 2).sum(0))
    return float(err.mean()), float((err > 3).mean() * 100)


def time_pair(est, a, b, repeats: int) -> float:
    est(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        est(a, b)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raft-weights", default=None, help="RAFT-large checkpoint (either layout)")
    ap.add_argument("--raft-iters", type=int, default=12)
    ap.add_argument("--raft-timing-only", action="store_true",
                    help="time RAFT with random weights (no accuracy reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per DIS preset (RAFT: 2)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    left, right, gt, valid = motorcycle()
    h, w = left.shape[:2]
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; threads used: {args.threads}")
    print(f"torch {torch.__version__}, opencv {cv2.__version__}, python {platform.python_version()}")
    print(f"data: skimage stereo_motorcycle {w}x{h}, {valid.sum()} pixels with ground truth "
          f"({valid.mean() * 100:.1f}%), disparity {np.nanmin(-gt[0][valid]):.1f}..{np.nanmax(-gt[0][valid]):.1f} px")
    print(convention_check(left, right, gt, valid))

    zero = np.zeros_like(gt)
    rows = [("zero flow (baseline)", *epe_stats(zero, gt, valid), None)]
    L, R = to_tensor(left), to_tensor(right)
    L480 = to_tensor(cv2.resize(left, (854, 480), interpolation=cv2.INTER_AREA))
    R480 = to_tensor(cv2.resize(right, (854, 480), interpolation=cv2.INTER_AREA))

    for preset in ("ultrafast", "fast", "medium"):
        est = DISFlow(preset)
        flow = est(L, R)[0].numpy()
        rows.append((f"DIS {preset}", *epe_stats(flow, gt, valid), time_pair(est, L480, R480, args.repeats)))

    notes = []
    if args.raft_weights:
        est = RaftFlow(load_raft(args.raft_weights), iters=args.raft_iters, batch_size=1)
        flow = est(L, R)[0].numpy()
        rows.append((f"RAFT ({os.path.basename(args.raft_weights)}, {args.raft_iters} it)",
                     *epe_stats(flow, gt, valid), time_pair(est, L480, R480, 2)))
    else:
        notes.append("RAFT accuracy: not measured - RAFT needs user weights (--raft-weights "
                     "raft-things.pth or torchvision raft_large); random weights would be meaningless.")
        if args.raft_timing_only:
            model = build_raft()
            model.load_state_dict(deterministic_weights(0))
            est = RaftFlow(model, iters=args.raft_iters, batch_size=1)
            rows.append((f"RAFT architecture, random weights ({args.raft_iters} it)", None, None,
                         time_pair(est, L480, R480, 2)))
            notes.append("RAFT time measured with random weights: run time does not depend on weight values.")

    print()
    print(f"{'method':<44} {'EPE px':>8} {'bad3 %':>8} {'s/pair @854x480':>16}")
    for name, e, bad, t in rows:
        es = f"{e:8.3f}" if e is not None else f"{'n/a':>8}"
        bs = f"{bad:8.2f}" if bad is not None else f"{'n/a':>8}"
        ts = f"{t:16.3f}" if t is not None else f"{'-':>16}"
        print(f"{name:<44} {es} {bs} {ts}")
    for n in notes:
        print("note:", n)
    return 0


if __name__ == "__main__":
    sys.exit(main())

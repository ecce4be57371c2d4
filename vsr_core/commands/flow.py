"""`python -m vsr_core flow IMG1 IMG2 OUT.npy`: optical flow of an image pair.

Writes a float32 [H,W,2] array: for each pixel p of IMG1 the displacement
(dx, dy) to where it appears in IMG2. The file is written to a temporary
name next to OUT and renamed, so a failed run never leaves a partial file; an
existing OUT is replaced only with --overwrite, and never when it is IMG1/IMG2.
"""
from __future__ import annotations

import io
import os
import sys

import numpy as np

from ..errors import InputError
from ..safe_files import check_new_file, write_atomic
from ..video.pixel_limit import header_size


def register(subparsers) -> None:
    from ..flow.dis import DEFAULT_PRESET, PRESETS
    from ..flow.estimators import METHODS, RAFT_INPUT_MODES

    p = subparsers.add_parser(
        "flow", help="optical flow between two images, saved as a float32 [H,W,2] .npy",
        description="Estimate optical flow from IMG1 to IMG2 and save it as a float32 [H,W,2] "
                    "NumPy array: out[y, x] = (dx, dy), the displacement of pixel (x, y) of IMG1 "
                    "to where it appears in IMG2.")
    p.add_argument("img1", metavar="IMG1", help="first image (any format OpenCV reads)")
    p.add_argument("img2", metavar="IMG2", help="second image, same size as IMG1")
    p.add_argument("out", metavar="OUT.npy", help="output .npy file")
    p.add_argument("--method", choices=METHODS, default="dis",
                   help="dis: OpenCV DIS, no weights needed (default); raft: RAFT-large, needs --weights")
    p.add_argument("--weights", metavar="PATH", default=None,
                   help="RAFT checkpoint: princeton-vl raft-things.pth or torchvision raft_large "
                        "(.pth or .safetensors); never downloaded")
    p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                   help=f"DIS quality preset (default {DEFAULT_PRESET})")
    p.add_argument("--iters", type=int, default=12, help="RAFT refinement iterations (default 12; MGLD uses 10)")
    p.add_argument("--input-range", choices=RAFT_INPUT_MODES, default="unit",
                   help="RAFT input: unit = normalise to [-1,1] like the references (default); "
                        "mgld_raw = feed 0..1 unnormalised like MGLD-VSR's RAFT_SR")
    p.add_argument("--device", default="cpu", help="torch device for RAFT (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (never an input image)")
    p.set_defaults(func=run)


def read_image(path: str, name: str):
    """An RGB image file as a [3,H,W] float32 tensor in 0..1."""
    import cv2
    import torch

    if not os.path.isfile(path):
        raise InputError(f"{name}: no file at {path!r} (expected an image file)")
    header_size(path, f"{name}: ")
    try:
        img = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error:           # OpenCV's own size limit, for formats Pillow cannot parse
        img = None
    if img is None or img.size == 0:
        raise InputError(f"{name}: cannot read {path!r} as an image (unsupported or corrupt file)")
    if img.dtype == np.uint8:
        arr = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        arr = img.astype(np.float32) / 65535.0
    elif img.dtype.kind == "f":
        arr = img.astype(np.float32)
        if not np.isfinite(arr).all():
            raise InputError(f"{name}: {path!r} contains NaN or infinite values")
        arr = np.clip(arr, 0.0, 1.0)
    else:
        raise InputError(f"{name}: {path!r} has unsupported pixel type {img.dtype}")
    rgb = np.ascontiguousarray(arr[:, :, ::-1].transpose(2, 0, 1))
    return torch.from_numpy(rgb)


def write_npy(path: str, array: np.ndarray, overwrite: bool) -> None:
    """np.save under a fresh temporary name beside OUT, renamed into place once complete (the shared
    no-clobber rule: an existing OUT is replaced only with --overwrite)."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomic(path, buffer.getvalue(), overwrite=overwrite)


def run(args) -> int:
    import torch

    from ..flow.estimate import estimate_pair_flow
    from ..flow.estimators import make_estimator

    if args.method != "raft" and args.weights:
        raise InputError("--weights: only used with --method raft")
    img1 = read_image(args.img1, "IMG1")
    img2 = read_image(args.img2, "IMG2")
    if img1.shape != img2.shape:
        raise InputError(f"IMG2: is {img2.shape[1]}x{img2.shape[2]} (HxW) but IMG1 is "
                         f"{img1.shape[1]}x{img1.shape[2]}; both images must have the same size")
    out_path = check_new_file(args.out, "OUT", args.overwrite, inputs=(args.img1, args.img2))   # before any work
    estimator = make_estimator(args.method, preset=args.preset, weights=args.weights,
                               iters=args.iters, input_range=args.input_range, device=args.device)
    with torch.no_grad():
        flow = estimate_pair_flow(img1, img2, estimator)
    flow_array = np.ascontiguousarray(flow.permute(1, 2, 0).numpy().astype(np.float32))
    write_npy(out_path, flow_array, args.overwrite)
    mag = np.sqrt((flow_array ** 2).sum(-1))
    print(f"wrote {args.out}: float32 {list(flow_array.shape)} ({estimator.name}), mean |flow| "
          f"{mag.mean():.3f} px, max {mag.max():.3f} px", file=sys.stderr)
    return 0

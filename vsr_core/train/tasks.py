"""Every training task of the pack by name: the one list `vsr train --task` shows and accepts.

Each task's module is imported only when that task is built, so listing the
tasks costs nothing, and the list does not depend on which modules happen to
have been imported (vsr_core/train/__init__.py imports this file, so
trainer.TASKS holds them all). A task from outside the package still joins
with trainer.register_task.

`diffusion` tasks train with DiffusionTrainConfig's defaults (the tiny
diffusion stack: fewer frames, smaller crops, bigger batches) and can be
shipped with --ship; `out` is each task's default run folder.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

from ..errors import InputError
from .trainer import TASKS, TrainConfig, UpscalerTask, register_task


def _refiner(cfg):
    from .refiner_task import RefinerTask
    return RefinerTask(cfg)


def _relay_fusion(cfg):
    from .relay_fusion_task import RelayFusionTask
    return RelayFusionTask(cfg)


def _level_estimator(cfg):
    from .level_task import LevelEstimatorTask
    return LevelEstimatorTask(cfg)


def _autoencoder(cfg):
    from .autoencoder import AutoencoderTask
    return AutoencoderTask(cfg)


def _latent_diffusion(cfg):
    from .latent_diffusion import build_task
    return build_task(cfg)


def _temporal_decoder(cfg):
    from .temporal_decoder import build_task
    return build_task(cfg)


@dataclass(frozen=True)
class TaskEntry:
    factory: Callable            # factory(config) -> task (see trainer.py)
    summary: str
    out: str                     # default run folder
    diffusion: bool = False


TASK_TABLE: dict[str, TaskEntry] = {
    "upscaler": TaskEntry(UpscalerTask, "the flow-guided video upscaler", "runs/upscaler_x4"),
    "refiner": TaskEntry(_refiner, "the refiner blending the upscaled and decoded frames", "runs/refiner"),
    "level_estimator": TaskEntry(_level_estimator, "the upscaler's degradation-level estimator alone (the rest "
                                 "frozen; --init-weights of an upscaler with a degradation input)",
                                 "runs/level_estimator"),
    "relay_fusion": TaskEntry(_relay_fusion, "the relay's learned fusion of carried keyframe detail (needs "
                              "--fusion-data from prepare-relay-fusion)", "runs/relay_fusion"),
    "autoencoder": TaskEntry(_autoencoder, "the tiny AutoencoderKL (ldm layout) on HR crops", "runs/tiny_vae",
                             diffusion=True),
    "latent_diffusion": TaskEntry(_latent_diffusion, "the tiny SFT UNet on latents of HR clips, conditioned on "
                                  "the latent of the upscaled LR clip (needs --vae)", "runs/tiny_unet",
                                  diffusion=True),
    "temporal_decoder": TaskEntry(_temporal_decoder, "CFW fusion + temporal layers of a video VAE built from "
                                  "--vae, base frozen", "runs/tiny_video_vae", diffusion=True),
}

for _name, _entry in TASK_TABLE.items():
    register_task(_name, _entry.factory)


def config_class(task: str) -> type:
    if task not in TASK_TABLE:
        raise InputError(f"task={task!r}; expected one of {', '.join(TASK_TABLE)}")
    if TASK_TABLE[task].diffusion:
        from .latent_diffusion import DiffusionTrainConfig
        return DiffusionTrainConfig
    return TrainConfig


def task_config(task: str, values: dict) -> TrainConfig:
    """The task's config: `values` over its own defaults (and its default run folder)."""
    cls = config_class(task)
    names = {f.name for f in fields(cls)}
    foreign = sorted(set(values) - names)
    if foreign:
        others = [n for n in TASK_TABLE if {f.name for f in fields(config_class(n))} >= set(foreign)]
        raise InputError(f"task {task!r} takes no {', '.join(foreign)}; "
                         f"{'that is' if len(foreign) == 1 else 'those are'} for {', '.join(others)}")
    return cls(**{"out": TASK_TABLE[task].out, **values, "task": task})


def describe_tasks(separator: str = "; ") -> str:
    return separator.join(f"{name}: {entry.summary}" for name, entry in TASK_TABLE.items())


__all__ = ["TASKS", "TASK_TABLE", "TaskEntry", "config_class", "task_config", "describe_tasks"]

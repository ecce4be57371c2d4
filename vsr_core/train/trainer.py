"""One trainer for every trainable part of the pack.

A *task* says what to build, which parameters train, how to make a batch, the
loss, and how to evaluate; ``train()`` does the rest: AdamW with warm-up and
cosine decay, gradient clipping, a JSON-lines log, resumable checkpoints
(``state.pt`` with model + optimizer + data RNG, read back with
``torch.load(weights_only=True)``) every few minutes, and the deliverable:
``model.safetensors`` + ``model.json`` (the model card: architecture config,
data, degradation, steps, loss, metrics).

Every task of the pack is listed in tasks.py (``upscaler``, the video
upscaler, is defined here). The backbone adapters (SFA/TFA in the UNet and VAE decoder, the temporal decoder) plug in
through ``register_task``: write a task whose ``build_model`` loads the frozen
base (e.g. SD 2.1 UNet from the user's checkpoint), calls
``freeze_except(model, ("sfa", "tfa"))`` and whose ``loss`` is the epsilon
loss of the noised latent; everything else (optimizer, schedule, checkpoints,
card) is shared. Only parameters that require grad are saved in the card's
safetensors when ``task.save_trainable_only`` is True, so an adapter file
stays small and loads on top of the user's base weights.
"""
from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from safetensors.torch import save as save_safetensors

from ..checkpoints.shipped import write_card
from ..errors import InputError
from ..machine import cpu_name
from ..progress import Reporter, get_reporter
from ..flow.dis import PRESETS as DIS_PRESETS
from ..safe_files import claim_folder, read_json, write_atomic
from ..settings import check_settings, setting
from .datasets import TRAIN_FLOW_PRESET
from .degradations import DEGRADATIONS
from .losses import PIXEL_LOSSES, charbonnier, temporal_difference, warping_consistency
from .overrides import config_with_overrides

TASKS: dict[str, Callable] = {}     # filled by tasks.py (imported with the package), then register_task


def register_task(name: str, factory: Callable) -> None:
    """Make ``factory(config: TrainConfig) -> task`` available to ``train`` (tasks.py lists the pack's own)."""
    TASKS[name] = factory


def freeze_except(model: torch.nn.Module, trainable: tuple[str, ...]) -> list[str]:
    """Freeze every parameter whose name contains none of ``trainable``; returns the trainable names."""
    names = []
    for n, p in model.named_parameters():
        p.requires_grad_(any(key in n for key in trainable))
        if p.requires_grad:
            names.append(n)
    if not names:
        raise InputError(f"no parameter name contains any of {trainable}; nothing would train")
    return names


@dataclass
class TrainConfig:
    """A training run's settings, declared once: `vsr train` (and `vsr train-diffusion`) make their options
    from these fields (vsr_core.settings)."""
    task: str = setting("upscaler", "the task to train (train/tasks.py lists them; or one added with "
                                    "register_task)")
    out: str = setting("runs/upscaler_x4", "run folder: log, state.pt, model.safetensors + model.json")
    scale: int = setting(4, "upscaling factor", choices=(2, 4))
    steps: int = setting(5000, "optimiser steps", min=1)
    batch: int = setting(4, "clips per step", min=1)
    frames: int = setting(5, "frames per training clip", min=1)
    lr_size: int = setting(48, "LR crop side in pixels (HR crop = lr_size * scale)", min=4)
    lr: float = setting(5e-4, "peak learning rate", min=0.0)
    min_lr: float = setting(1e-5, "learning rate at the end of the cosine decay", min=0.0)
    warmup: int = setting(100, "steps of linear learning-rate warm-up", min=0)
    weight_decay: float = setting(0.0, "AdamW weight decay", min=0.0)
    grad_clip: float = setting(0.5, "gradient norm clip", min=0.0)
    degradation: str = setting("bi", "real: mixed strengths (clean, one codec pass, noise+JPEG, blur, second "
                                     "order)", choices=tuple(DEGRADATIONS))
    degradation_shares: dict | None = setting(
        None, 'with --degradation real: mixture weights as JSON, e.g. \'{"clean": 0.2, "codec": 0.5, '
              '"noise_jpeg": 0.15, "blur": 0.05, "second_order": 0.1}\' (normalised)')
    video_folder: str | None = setting(None, "also train on clips from the videos in this folder")
    real_videos: str | None = setting(None, "folder made by `prepare-real-videos`: real moving clips from "
                                            "ComfyUI's media packages")
    video_fraction: float = setting(0.5, "share of training clips taken from videos (the rest: photos by a "
                                         "virtual camera)", min=0.0, max=1.0)
    flow_preset: str = setting(TRAIN_FLOW_PRESET, "DIS preset of the propagation's flow in training (inference "
                                                  "uses fast; the shipped weights trained with medium, and "
                                                  "training with fast gained nothing)",
                               choices=tuple(sorted(DIS_PRESETS)))
    init_weights: str | None = setting(None, "warm start from these upscaler weights (new modules keep their "
                                             "init)")
    init_drop: list | None = setting(None, "comma-separated key prefixes of --init-weights to leave out (blocks "
                                           "the new --model no longer has), e.g. attn.1.")
    photos: list | None = setting(None, "comma-separated photos, e.g. skimage:astronaut,sklearn:china.jpg "
                                        "(default: the shipped list)")
    photo_scales: list | None = setting(None, "comma-separated resize factors drawn per photo clip (default "
                                              "1.0,0.8,0.6,0.5; above 1: a soft, out-of-focus-like source)")
    scene_grain: float = setting(0.0, "share of photo clips filmed with grain added to the photo itself (texture "
                                      "that moves with the picture: content to keep, not noise)", min=0.0, max=1.0)
    scene_blur: float = setting(0.0, "share of clips whose scene itself is softened before the degradation "
                                     "(out of focus: content, not damage; the level task leaves their blur "
                                     "reading untrained)", min=0.0, max=1.0)
    seed: int = setting(0, "random seed", min=0)
    threads: int = setting(1, "torch CPU threads", min=1)
    checkpoint_minutes: float = setting(4.0, "minutes between saves of the run state", min=0.0)
    eval_every: int = setting(250, "steps between evaluations (0: none)", min=0)
    keep_evaluated: bool = setting(False, "also keep the weights of every evaluation as "
                                          "evaluated/step_N.safetensors + .json, to choose a checkpoint by its "
                                          "validation metrics")
    log_every: int = setting(20, "steps between log lines", min=1)
    # loss weights
    pixel_loss: str = setting("charbonnier", "loss of the upscaled frames against the ground truth (rmse: "
                                             "MSE's gradient, what PSNR measures)", choices=tuple(sorted(PIXEL_LOSSES)))
    w_temporal: float = setting(0.2, "weight of the temporal-difference loss", min=0.0)
    w_warp: float = setting(0.1, "weight of the flow-masked warping loss", min=0.0)
    w_clean: float = setting(1.0, "weight of the cleaning-stage loss (vs the clean BI LR frames)", min=0.0)
    per_frame_prob: float = setting(0.15, "share of steps trained frame by frame (no propagation)", min=0.0,
                                    max=1.0)
    w_level: float = setting(1.0, "weight of the degradation-level estimator's loss (MSE against the drawn "
                                  "level)", min=0.0)
    estimated_level_prob: float = setting(0.25, "share of steps conditioned on the estimator's reading instead "
                                                "of the drawn level", min=0.0, max=1.0)
    model: dict = setting(help='architecture overrides as JSON, e.g. \'{"channels": 32}\'', default_factory=dict)
    upscaler_weights: str | None = setting(None, "refiner task: the frozen upscaler .safetensors to use")
    fusion_data: str | None = setting(None, "relay_fusion task: the folder `prepare-relay-fusion` wrote")
    w_hf: float = setting(0.5, "relay_fusion task: weight of the local high-frequency energy loss", min=0.0)


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * p))


# ------------------------------------------------------------------ tasks
class UpscalerTask:
    """The video upscaler: Charbonnier (or rmse) + temporal-difference + flow-masked warping losses."""

    architecture = "VideoUpscaler"
    save_trainable_only = False

    def __init__(self, cfg: TrainConfig):
        from .datasets import ClipDataset
        self.cfg = cfg
        self.data = ClipDataset(scale=cfg.scale, frames=cfg.frames, lr_size=cfg.lr_size,
                                degradation=cfg.degradation, degradation_shares=cfg.degradation_shares,
                                video_folder=cfg.video_folder,
                                real_videos=cfg.real_videos, video_fraction=cfg.video_fraction,
                                flow_preset=cfg.flow_preset, seed=cfg.seed,
                                **({"photos": tuple(cfg.photos)} if cfg.photos else {}),
                                **({"photo_scales": tuple(float(s) for s in cfg.photo_scales)}
                                   if cfg.photo_scales else {}), scene_grain=cfg.scene_grain,
                                scene_blur=cfg.scene_blur)
        self.rng = np.random.default_rng(cfg.seed + 1)

    def build_model(self) -> torch.nn.Module:
        from ..models.upscaler import UpscalerConfig, VideoUpscaler
        model = VideoUpscaler(config_with_overrides(UpscalerConfig, self.cfg.model, scale=self.cfg.scale))
        if self.cfg.init_weights:
            warm_start(model, self.cfg.init_weights, self.cfg.init_drop or ())
        return model

    def model_config(self, model) -> dict:
        return model.config.to_dict()

    def batch(self):
        return self.data.sample(self.cfg.batch)

    def loss(self, model, b) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        temporal = self.rng.random() >= cfg.per_frame_prob
        level, l_level = self._level(model, b)
        out, cleaned = model(b.lr, b.flow_forward, b.flow_backward, temporal=temporal, return_clean=True,
                             level=level)
        l_pix = PIXEL_LOSSES[cfg.pixel_loss](out, b.hr)
        total, logs = l_pix, {"pix": l_pix.item()}
        if l_level is not None:
            total = total + cfg.w_level * l_level
            logs["level"] = l_level.item()
        if model.cleaner is not None and cfg.w_clean:
            from .degradations import bi_downsample, quantize
            clean = quantize(bi_downsample(b.hr.flatten(0, 1), cfg.scale)).reshape(cleaned.shape)
            l_clean = charbonnier(cleaned, clean)
            total = total + cfg.w_clean * l_clean
            logs["clean"] = l_clean.item()
        if cfg.w_temporal:
            l_td = temporal_difference(out, b.hr)
            total = total + cfg.w_temporal * l_td
            logs["td"] = l_td.item()
        if cfg.w_warp and b.lr.shape[1] > 1:
            hb, ht = b.hr.shape[0], b.hr.shape[1]
            s = cfg.scale
            ff = torch.nn.functional.interpolate(b.flow_forward.flatten(0, 1), scale_factor=s, mode="bilinear",
                                                 align_corners=False) * s
            fb = torch.nn.functional.interpolate(b.flow_backward.flatten(0, 1), scale_factor=s, mode="bilinear",
                                                 align_corners=False) * s
            from ..flow.occlusion import occlusion_masks
            occ_f, _ = occlusion_masks(ff, fb)
            valid = (1 - occ_f).reshape(hb, ht - 1, 1, *ff.shape[-2:])
            l_w = warping_consistency(out, b.hr, ff.reshape(hb, ht - 1, 2, *ff.shape[-2:]), valid)
            total = total + cfg.w_warp * l_w
            logs["warp"] = l_w.item()
        logs["mode"] = "temporal" if temporal else "per-frame"
        return total, logs

    def _level(self, model, b) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(the level the network is given, the estimator's loss): the drawn level, slightly jittered, or on
        some steps the estimator's own (detached) reading, so the network also learns from what ``auto`` gives."""
        if model.level_estimator is None or b.level is None:
            return None, None
        estimate = model.estimate_level(b.lr, b.flow_forward)
        loss = torch.nn.functional.mse_loss(estimate, b.level)
        if self.rng.random() < self.cfg.estimated_level_prob:
            return estimate.detach(), loss
        jitter = torch.from_numpy(self.rng.normal(0, 0.03, b.level.shape)).float()
        return (b.level + jitter).clamp(0, 1), loss

    def evaluate(self, model) -> dict:
        res = evaluate_upscaler(model, frames=5, size=(256, 384))
        if self.cfg.real_videos:
            from .real_eval import evaluate_real_videos
            res.update(evaluate_real_videos(model, self.cfg.real_videos))
        return res

    def data_card(self) -> dict:
        return self.data.describe()

    def get_state(self) -> dict:
        return {"data_rng": self.data.get_state(), "task_rng": self.rng.bit_generator.state}

    def set_state(self, s: dict) -> None:
        self.data.set_state(s["data_rng"])
        self.rng.bit_generator.state = s["task_rng"]


# modules a warm start may add to old weights (each starts as the identity, so the old network is unchanged)
ADDABLE_MODULES = ("cleaner.", "level_estimator.", "level_modulation.")


def warm_start(model: torch.nn.Module, weights_path: str, drop=()) -> list[str]:
    """Load matching weights; only parameters of modules the file lacks may stay at their init.

    ``drop``: key prefixes of the file to leave out, named explicitly (a block the new architecture no longer
    has, e.g. ``attn.1.``), so a file that does not fit still fails loudly."""
    from ..checkpoints.io import read_checkpoint
    from ..errors import CheckpointError
    try:
        sd, _ = read_checkpoint(weights_path)
    except CheckpointError as err:
        raise InputError(f"init_weights: {err}") from None
    for prefix in drop:
        if not any(k.startswith(prefix) for k in sd):
            raise InputError(f"init_drop prefix {prefix!r} matches no key of '{weights_path}'; "
                             f"expected a prefix of its keys, e.g. 'attn.1.'")
    sd = {k: v for k, v in sd.items() if not k.startswith(tuple(drop))}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or any(not k.startswith(ADDABLE_MODULES) for k in missing):
        raise InputError(f"init_weights '{weights_path}' does not fit the model: missing {missing[:8]}, "
                         f"unexpected {unexpected[:8]}; expected only {', '.join(ADDABLE_MODULES)} to be new "
                         f"(name blocks the model no longer has with --init-drop, e.g. attn.1.)")
    return missing


def evaluate_upscaler(model, frames: int = 5, size=(256, 384), names=None) -> dict:
    """Held-out PSNR-Y of the model (temporal) and of bicubic, BI degradation."""
    from ..data.clips import HELDOUT_PHOTOS, heldout_clips
    from ..metrics import psnr_y
    from ..models.upscaler import upscale_clip
    from ..ops.resize import bicubic_upscale
    from .degradations import degrade

    was = model.training
    model.eval()
    res = {}
    ours, bic = [], []
    for name, clip in heldout_clips(frames, size, names or HELDOUT_PHOTOS).items():
        hr = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255.0
        lr = degrade(hr, "bi", model.scale)
        o = psnr_y(upscale_clip(model, lr), hr)
        bb = psnr_y(bicubic_upscale(lr, model.scale), hr)
        ours.append(o), bic.append(bb)
        res[f"psnr_y/{name}"] = round(o, 3)
        res[f"bicubic_psnr_y/{name}"] = round(bb, 3)
    res["psnr_y"] = round(float(np.mean(ours)), 3)
    res["bicubic_psnr_y"] = round(float(np.mean(bic)), 3)
    res["gain_db"] = round(res["psnr_y"] - res["bicubic_psnr_y"], 3)
    model.train(was)
    return res


# ------------------------------------------------------------------ files
RUN_FOLDER = "vsr_core train"


def _earlier_run(folder: str) -> bool:
    """A run folder written before run folders carried a marker: the trainer's config.json naming it."""
    config = read_json(os.path.join(folder, "config.json"))
    return (isinstance(config, dict) and {"task", "out", "steps"} <= set(config)
            and any(os.path.exists(os.path.join(folder, n)) for n in ("state.pt", "model.safetensors")))


def export_model(model, task, cfg: TrainConfig, step: int, out_dir: str, metrics: dict, loss: float | None,
                 name: str = "model") -> str:
    """Write ``<name>.safetensors`` + ``<name>.json`` (the model card). Returns the weights path."""
    os.makedirs(out_dir, exist_ok=True)
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if task.save_trainable_only:
        keep = {n for n, p in model.named_parameters() if p.requires_grad}
        sd = {k: v for k, v in sd.items() if k in keep}
    wpath = os.path.join(out_dir, f"{name}.safetensors")
    write_atomic(wpath, save_safetensors(sd, metadata={"architecture": task.architecture}))
    card = {
        "architecture": task.architecture,
        "config": task.model_config(model),
        "parameters": int(sum(v.numel() for v in sd.values())),
        "task": cfg.task,
        "degradation": cfg.degradation,
        "data": task.data_card(),
        "steps": int(step),
        "batch": cfg.batch,
        "loss": None if loss is None else round(float(loss), 6),
        "loss_weights": task.loss_weights() if hasattr(task, "loss_weights") else
        {cfg.pixel_loss: 1.0, "temporal_difference": cfg.w_temporal, "warping": cfg.w_warp},
        "per_frame_prob": cfg.per_frame_prob,
        "optimizer": f"AdamW lr {cfg.lr} cosine to {cfg.min_lr} over {cfg.steps} steps, warmup {cfg.warmup}",
        "metrics": metrics,
        "trained_on": f"{cpu_name()}, torch {torch.__version__}, {cfg.threads} thread(s)",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_card(wpath, card)                        # <name>.json beside the weights
    return wpath


def _evaluate(model, task, cfg: TrainConfig, step: int, loss: float | None, logf, log) -> dict:
    """The task's validation metrics at ``step``, logged; with ``keep_evaluated`` also the weights."""
    metrics = {"step": step, **task.evaluate(model)}
    logf.write(json.dumps({"eval": metrics}) + "\n")
    logf.flush()
    log("eval " + json.dumps(metrics))
    if cfg.keep_evaluated:      # checkpoints to choose from afterwards by their validation metrics
        export_model(model, task, cfg, step, os.path.join(cfg.out, "evaluated"), metrics, loss,
                     name=f"step_{step:07d}")
    return metrics


def _resume(state_path: str, model, opt, task) -> tuple[int, dict]:
    """Load a run's state.pt into model, optimizer, task and RNG; one InputError if it is not one this
    run wrote (corrupt, truncated, or from another model), which is left in place for the user."""
    try:
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step, metrics = int(st["step"]), json.loads(st["metrics"])
        task.set_state(json.loads(st["task_state"]))
        torch.set_rng_state(st["torch_rng"])
    except Exception as err:        # whatever a damaged pickle raises: the message matters, not the type
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise InputError(f"training state '{state_path}' cannot be resumed ({type(err).__name__}: {reason}); "
                         f"expected the state.pt a train run with the same settings wrote (move it away to "
                         f"start over)") from None
    return step, metrics


def train(cfg: TrainConfig, reporter: Reporter | None = None, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) training; returns the final model card's metrics."""
    if cfg.task not in TASKS:
        raise InputError(f"task={cfg.task!r}; expected one of {', '.join(sorted(TASKS))}")
    check_settings(cfg)                 # each setting within its declaration, once, before any work
    torch.set_num_threads(max(1, int(cfg.threads)))
    torch.manual_seed(cfg.seed)
    rep = get_reporter(reporter)
    # a run folder is new, empty or an earlier run's: never a folder of the user's (their config.json)
    claim_folder(cfg.out, RUN_FOLDER, "training run folder (--out)", legacy=_earlier_run)
    task = TASKS[cfg.task](cfg)
    model = task.build_model()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    state_path = os.path.join(cfg.out, "state.pt")
    step, metrics, last_loss = 0, {}, None
    if os.path.exists(state_path):
        step, metrics = _resume(state_path, model, opt, task)
        log(f"resumed from {state_path} at step {step}")
    write_atomic(os.path.join(cfg.out, "config.json"), json.dumps(asdict(cfg), indent=2))
    logf = open(os.path.join(cfg.out, "log.jsonl"), "a")

    def save_state():
        buf = io.BytesIO()         # serialised first: a full disk is then the shared writer's one-line error
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "metrics": json.dumps(metrics), "task_state": json.dumps(task.get_state(), default=int),
                    "torch_rng": torch.get_rng_state()}, buf)
        write_atomic(state_path, buf.getvalue())
        export_model(model, task, cfg, step, cfg.out, metrics, last_loss)

    if step == 0 and cfg.eval_every and cfg.init_weights:
        # the warm start's baseline, on the same clips as every later evaluation
        metrics = _evaluate(model, task, cfg, step, last_loss, logf, log)
    model.train()
    rep.start(cfg.steps, f"train {cfg.task}")
    rep.update(step)
    last_ckpt, t0, acc, n_acc = time.monotonic(), time.monotonic(), 0.0, 0
    try:
        while step < cfg.steps:
            rep.check_interrupt()
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            b = task.batch()
            loss, logs = task.loss(model, b)
            if not torch.isfinite(loss):
                raise RuntimeError(f"loss became {float(loss)} at step {step}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            acc += loss.item()
            n_acc += 1
            rep.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                last_loss = acc / n_acc
                rec = {"step": step, "loss": round(last_loss, 6), "lr": g["lr"],
                       "sec_per_step": round((time.monotonic() - t0) / n_acc, 3), **logs}
                acc, n_acc, t0 = 0.0, 0, time.monotonic()
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                log(json.dumps(rec))
            if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                metrics = _evaluate(model, task, cfg, step, last_loss, logf, log)
            if time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60 or step == cfg.steps:
                save_state()
                last_ckpt = time.monotonic()
    finally:
        logf.close()
    return metrics

"""Training task of the relay's learned fusion (models/relay_fusion.py) on cached samples
(train/relay_fusion_data.py, made by `prepare-relay-fusion`).

A batch is random frames of random samples, random crops, flips and transposes. Loss: Charbonnier of the
relayed frame to the target, plus a term on the local high-frequency energy (8x8 windows), so the fusion
is not paid to fade detail it is unsure of: the issue asks the relay to keep the detail model's energy.
With ``w_temporal`` > 0 a batch holds pairs of consecutive frames, and the error against the target that
changes along the true motion (generated samples, whose motion is known) is penalised too: flicker.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..models.relay_fusion import RelayFusion, RelayFusionConfig
from ..flow.warp import backward_warp, inside_mask
from ..relay.transfer import high_pass
from .losses import charbonnier
from .overrides import config_with_overrides
from .relay_fusion_data import SAMPLE_NAME, split_inputs

RESCAN_EVERY = 50          # batches between looks for samples written since (data made while training runs)
KEEP_LOADED = 400          # samples held in memory (about 9 MB each at 48 px LR)
ENERGY_WINDOW = 8


def local_energy(x: torch.Tensor, scale: int) -> torch.Tensor:
    """[N,1,H/8,W/8] root mean square of the detail finer than 1/``scale`` resolution, per 8x8 window."""
    return F.avg_pool2d(high_pass(x, scale).pow(2).mean(1, keepdim=True), ENERGY_WINDOW).add(1e-8).sqrt()


def temporal_error(error: torch.Tensor, flow_next: torch.Tensor) -> torch.Tensor:
    """How much the error against the target changes from frame t to t+1 along the true motion: error
    [2B,3,H,W] (frames t, then frames t+1), flow_next [B,2,H,W] (zero: no known motion, left out). An
    error that holds still is a fainter or stronger texture; one that changes is flicker."""
    now, later = error.chunk(2)
    known = (flow_next.abs().sum((1, 2, 3)) > 0).float().reshape(-1, 1, 1, 1)
    mask = inside_mask(flow_next) * known
    diff = (now - backward_warp(later, flow_next)).pow(2).add(1e-6).sqrt() * mask
    return diff.sum() / (3 * mask.sum()).clamp_min(1.0)


def _augment(stack: torch.Tensor, flow: torch.Tensor, rng) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips and transpose of frames [F,C,H,W] and of a flow [2,H,W] (its components follow)."""
    if rng.random() < 0.5:
        stack, flow = stack.flip(-1), flow.flip(-1) * torch.tensor([-1.0, 1.0]).reshape(2, 1, 1)
    if rng.random() < 0.5:
        stack, flow = stack.flip(-2), flow.flip(-2) * torch.tensor([1.0, -1.0]).reshape(2, 1, 1)
    if rng.random() < 0.5:
        stack, flow = stack.transpose(-1, -2), flow.transpose(-1, -2).flip(0)
    return stack, flow


def sample_files(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.startswith("sample_") and n.endswith(".pt"))


class RelayFusionTask:
    architecture = "RelayFusion"
    save_trainable_only = False

    def __init__(self, cfg):
        if not cfg.fusion_data:
            raise InputError("relay_fusion training needs --fusion-data: the folder `prepare-relay-fusion` wrote")
        self.cfg = cfg
        self.train_dir, self.val_dir = (os.path.join(cfg.fusion_data, s) for s in ("train", "val"))
        self.files = sample_files(self.train_dir)
        if not self.files:
            raise InputError(f"'{self.train_dir}' holds no {SAMPLE_NAME.format(0)}-style samples; make them with "
                             f"`python -m vsr_core prepare-relay-fusion {cfg.fusion_data} --real-videos DIR`")
        self.rng = np.random.default_rng(cfg.seed + 11)
        self.loaded: dict[str, dict] = {}
        self.batches = 0

    def build_model(self) -> RelayFusion:
        model = RelayFusion(config_with_overrides(RelayFusionConfig, self.cfg.model))
        if self.cfg.init_weights:
            from ..checkpoints.io import read_checkpoint
            model.load_state_dict(read_checkpoint(self.cfg.init_weights)[0])
        return model

    def model_config(self, model) -> dict:
        return model.config.to_dict()

    def _load(self, path: str) -> dict:
        if path not in self.loaded:
            if len(self.loaded) >= KEEP_LOADED:
                self.loaded.pop(next(iter(self.loaded)))
            self.loaded[path] = torch.load(path, map_location="cpu", weights_only=True)
        return self.loaded[path]

    def _crop(self, sample: dict, pair: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(frames [F,17,s,s]: inputs and target of frame t (and t+1 when ``pair``), flow t -> t+1
        [2,s,s] (zero where the sample has none), nearness [F,2]), cropped, flipped and transposed alike."""
        frames = sample["inputs"].shape[0]
        t = int(self.rng.integers(frames - 1 if pair else frames))
        ts = [t, t + 1] if pair else [t]
        side = self.cfg.lr_size * self.cfg.scale
        h, w = sample["inputs"].shape[-2:]
        y, x = (int(self.rng.integers(0, n - side + 1)) // 4 * 4 for n in (h, w))
        stack = torch.cat([sample["inputs"][ts], sample["target"][ts]], 1).float()[..., y:y + side, x:x + side]
        flows = sample.get("flows_next")
        flow = flows[t].float()[:, y:y + side, x:x + side] if pair and flows is not None else \
            torch.zeros(2, side, side)
        stack, flow = _augment(stack, flow, self.rng)
        return stack, flow, sample["nearness"][ts]

    def batch(self) -> dict:
        """Random frames of random samples; with the temporal loss, pairs of consecutive frames (frame t in
        the first half of the batch, t+1 in the second)."""
        self.batches += 1
        if self.batches % RESCAN_EVERY == 0:
            self.files = sample_files(self.train_dir)
        pair = self.cfg.w_temporal > 0
        picks = [self._crop(self._load(self.files[int(self.rng.integers(len(self.files)))]), pair)
                 for _ in range(self.cfg.batch)]
        stacks, flows, nearness = (torch.stack(v) for v in zip(*picks))
        stacks, nearness = stacks.transpose(0, 1).flatten(0, 1), nearness.transpose(0, 1).flatten(0, 1)
        return {"inputs": split_inputs(stacks[:, :-3]), "nearness": nearness, "target": stacks[:, -3:],
                "flow_next": flows if pair else None}

    def loss(self, model, b) -> tuple[torch.Tensor, dict]:
        faithful = b["inputs"]["faithful"]
        out = faithful + model(**b["inputs"], nearness=b["nearness"])
        l_pix = charbonnier(out, b["target"])
        l_hf = (local_energy(out, self.cfg.scale) - local_energy(b["target"], self.cfg.scale)).abs().mean()
        total, logs = l_pix + self.cfg.w_hf * l_hf, {"pix": l_pix.item(), "hf": l_hf.item()}
        if b["flow_next"] is not None:
            l_t = temporal_error(out - b["target"], b["flow_next"])
            total, logs["temporal"] = total + self.cfg.w_temporal * l_t, l_t.item()
        return total, logs

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        from .relay_fusion_eval import evaluate_fusion
        files = sample_files(self.val_dir) or self.files[-8:]
        return evaluate_fusion(model, [torch.load(f, weights_only=True) for f in files], self.cfg.scale,
                               "val" if sample_files(self.val_dir) else "train_tail")

    def loss_weights(self) -> dict:
        return {"charbonnier": 1.0, "local_hf_energy": self.cfg.w_hf, "temporal_error": self.cfg.w_temporal}

    def data_card(self) -> dict:
        return {"folder": self.cfg.fusion_data, "train_samples": len(self.files),
                "val_samples": len(sample_files(self.val_dir)), "crop_lr": self.cfg.lr_size}

    def get_state(self) -> dict:
        return {"task_rng": self.rng.bit_generator.state, "batches": self.batches}

    def set_state(self, s: dict) -> None:
        self.rng.bit_generator.state = s["task_rng"]
        self.batches = int(s.get("batches", 0))

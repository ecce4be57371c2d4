"""Training task of the relay's learned fusion (models/relay_fusion.py) on cached samples
(train/relay_fusion_data.py, made by `prepare-relay-fusion`).

A batch is random frames of random samples, random crops, flips and transposes. Loss: Charbonnier of the
relayed frame to the target, plus a term on the local high-frequency energy (8x8 windows), so the fusion
is not paid to fade detail it is unsure of: the issue asks the relay to keep the detail model's energy.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..models.relay_fusion import RelayFusion, RelayFusionConfig
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

    def _crop(self, sample: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t = int(self.rng.integers(sample["inputs"].shape[0]))
        side = self.cfg.lr_size * self.cfg.scale
        h, w = sample["inputs"].shape[-2:]
        y, x = (int(self.rng.integers(0, n - side + 1)) // 4 * 4 for n in (h, w))
        both = torch.cat([sample["inputs"][t], sample["target"][t]])[:, y:y + side, x:x + side]
        if self.rng.random() < 0.5:
            both = both.flip(-1)
        if self.rng.random() < 0.5:
            both = both.flip(-2)
        if self.rng.random() < 0.5:
            both = both.transpose(-1, -2)
        return both[:-3], both[-3:], sample["nearness"][t]

    def batch(self) -> dict:
        self.batches += 1
        if self.batches % RESCAN_EVERY == 0:
            self.files = sample_files(self.train_dir)
        picks = [self._crop(self._load(self.files[int(self.rng.integers(len(self.files)))]))
                 for _ in range(self.cfg.batch)]
        inputs, target, nearness = (torch.stack(v) for v in zip(*picks))
        return {"inputs": split_inputs(inputs), "nearness": nearness, "target": target.float()}

    def loss(self, model, b) -> tuple[torch.Tensor, dict]:
        faithful = b["inputs"]["faithful"]
        out = faithful + model(**b["inputs"], nearness=b["nearness"])
        l_pix = charbonnier(out, b["target"])
        l_hf = (local_energy(out, self.cfg.scale) - local_energy(b["target"], self.cfg.scale)).abs().mean()
        return l_pix + self.cfg.w_hf * l_hf, {"pix": l_pix.item(), "hf": l_hf.item()}

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        from .relay_fusion_eval import evaluate_fusion
        files = sample_files(self.val_dir) or self.files[-8:]
        return evaluate_fusion(model, [torch.load(f, weights_only=True) for f in files], self.cfg.scale,
                               "val" if sample_files(self.val_dir) else "train_tail")

    def loss_weights(self) -> dict:
        return {"charbonnier": 1.0, "local_hf_energy": self.cfg.w_hf}

    def data_card(self) -> dict:
        return {"folder": self.cfg.fusion_data, "train_samples": len(self.files),
                "val_samples": len(sample_files(self.val_dir)), "crop_lr": self.cfg.lr_size}

    def get_state(self) -> dict:
        return {"task_rng": self.rng.bit_generator.state, "batches": self.batches}

    def set_state(self, s: dict) -> None:
        self.rng.bit_generator.state = s["task_rng"]
        self.batches = int(s.get("batches", 0))

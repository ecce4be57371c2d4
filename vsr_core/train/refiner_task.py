"""Refiner training task: learn X_H = w·X_u + (1−w)·X_d + ResBlock([X_u, X_d]).

X_u comes from the frozen upscaler (its card's weights) on BI LR clips. X_d
should be the diffusion + VAE output, which this CPU cannot produce; it is
simulated by ``vae_proxy``: the HR frame through a lossy path with the
failure modes of an SD VAE/diffusion reconstruction: a global colour shift
(gain/offset per channel), lost and re-drawn fine texture (JPEG at low
quality), slight blur and noise. X_d therefore has *detail* X_u lacks but
*fidelity errors* X_u does not have, which is what the refiner has to arbitrate.
The card says so; retrain with real (X_u, X_d) pairs for a real diffusion stage.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .losses import charbonnier


def vae_proxy(hr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """[N,3,H,W] 0..1 -> a lossy 'decoded' version (one random draw per call).

    Sharp but not faithful, like a diffusion + VAE output: colour gain/offset,
    a smooth random sub-pixel displacement (up to ~0.6 px), texture
    'hallucination' (high-pass noise scaled by the local gradient), optional
    slight blur, JPEG q30-70.
    """
    import cv2
    from ..flow.warp import backward_warp
    n, _, h, w = hr.shape
    g = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
    gain = torch.from_numpy(rng.uniform(0.92, 1.08, (n, 3, 1, 1))).float()
    offset = torch.from_numpy(rng.uniform(-0.04, 0.04, (n, 3, 1, 1))).float()
    coarse = torch.randn(n, 2, max(2, h // 16), max(2, w // 16), generator=g) * float(rng.uniform(0.1, 0.6))
    x = backward_warp(hr, F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False),
                      padding_mode="border")
    gy = F.pad(hr[..., 1:, :] - hr[..., :-1, :], (0, 0, 0, 1)).abs().mean(1, keepdim=True)
    gx = F.pad(hr[..., :, 1:] - hr[..., :, :-1], (0, 1, 0, 0)).abs().mean(1, keepdim=True)
    noise = torch.randn(n, 1, h, w, generator=g)
    k = torch.tensor([1.0, 2.0, 1.0])
    k1 = (torch.outer(k, k) / 16)[None, None]
    hp = noise - F.conv2d(F.pad(noise, (1, 1, 1, 1), mode="replicate"), k1)
    x = x + float(rng.uniform(0.5, 1.5)) * hp * (gx + gy)
    x = x * gain + offset
    if rng.random() < 0.3:
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k1.repeat(3, 1, 1, 1), groups=3)
    q = int(rng.integers(30, 71))
    out = []
    for f in x.clamp(0, 1):
        u8 = (f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        _, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        out.append(torch.from_numpy(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)))
    return torch.stack(out).permute(0, 3, 1, 2).float() / 255


class RefinerTask:
    architecture = "Refiner"
    save_trainable_only = False

    def __init__(self, cfg):
        from ..checkpoints.shipped import default_upscaler_path, load_upscaler
        from .datasets import ClipDataset
        self.cfg = cfg
        path = cfg.upscaler_weights or default_upscaler_path(cfg.scale)
        if not path:
            raise InputError("refiner training needs upscaler weights: pass --upscaler-weights PATH.safetensors")
        self.upscaler_path = path
        self.upscaler = load_upscaler(path)
        for p in self.upscaler.parameters():
            p.requires_grad_(False)
        self.data = ClipDataset(scale=cfg.scale, frames=cfg.frames, lr_size=cfg.lr_size, degradation="bi",
                                video_folder=cfg.video_folder, seed=cfg.seed + 7,
                                **({"photos": tuple(cfg.photos)} if cfg.photos else {}))
        self.rng = np.random.default_rng(cfg.seed + 8)

    def build_model(self):
        from ..models.refiner import Refiner, RefinerConfig
        from .overrides import config_with_overrides
        return Refiner(config_with_overrides(RefinerConfig, self.cfg.model))

    def model_config(self, model) -> dict:
        return model.config.to_dict()

    @torch.no_grad()
    def _pair(self, b):
        x_u = self.upscaler(b.lr, b.flow_forward, b.flow_backward).clamp(0, 1).flatten(0, 1)
        hr = b.hr.flatten(0, 1)
        return x_u, vae_proxy(hr, self.rng), hr

    def batch(self):
        return self._pair(self.data.sample(self.cfg.batch))

    def loss(self, model, batch):
        x_u, x_d, hr = batch
        l = charbonnier(model(x_u, x_d), hr)
        return l, {"pix": l.item()}

    def evaluate(self, model) -> dict:
        from ..data.clips import heldout_clips
        from ..metrics import psnr_y
        from ..models.upscaler import upscale_clip
        from .degradations import degrade
        rng = np.random.default_rng(123)
        was = model.training
        model.eval()
        r = {"refined": [], "blend": [], "x_u": [], "x_d": []}
        with torch.no_grad():
            for clip in heldout_clips(3, (192, 256)).values():
                hr = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
                x_u = upscale_clip(self.upscaler, degrade(hr, "bi", self.cfg.scale))
                x_d = vae_proxy(hr, rng)
                w = model.config.w
                r["refined"].append(psnr_y(model(x_u, x_d).clamp(0, 1), hr))
                r["blend"].append(psnr_y((w * x_u + (1 - w) * x_d).clamp(0, 1), hr))
                r["x_u"].append(psnr_y(x_u, hr))
                r["x_d"].append(psnr_y(x_d, hr))
        model.train(was)
        return {f"psnr_y/{k}": round(float(np.mean(v)), 3) for k, v in r.items()}

    def data_card(self) -> dict:
        d = self.data.describe()
        d["x_u"] = f"frozen upscaler {self.upscaler_path} on BI LR clips"
        d["x_d"] = ("SIMULATED decoder output (vae_proxy): HR with a smooth random sub-pixel displacement "
                    "(<= ~0.6 px), gradient-scaled high-pass noise (hallucinated texture), per-channel colour "
                    "gain 0.92-1.08 and offset +-0.04, 30% [1,2,1] blur, JPEG q30-70. "
                    "Not a real diffusion/VAE output.")
        return d

    def get_state(self) -> dict:
        return {"data_rng": self.data.get_state(), "task_rng": self.rng.bit_generator.state}

    def set_state(self, s: dict) -> None:
        self.data.set_state(s["data_rng"])
        self.rng.bit_generator.state = s["task_rng"]

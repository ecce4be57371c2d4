"""Task ``latent_diffusion``: the tiny SFT UNet of the shipped diffusion graph.

Same family as the backbone (vsr_core.models.unet, ldm layout): SFT (SPADE)
in every ResBlock fed by a time-aware structure encoder (StableSR), MGLD's
temporal middle block and SATeCo's SFA/TFA after every output block; all of
it narrow (``TINY_UNET`` / ``TINY_STRUCT``) and trained from scratch.

Training pairs (BI degradation, as the upscaler's):
  x0  = latent_scale * VAE.encode(HR clip)
  c   = latent_scale * VAE.encode(bicubic x4 upscale of the BI-downscaled clip)
with the frozen tiny VAE (``--vae``). The loss is the v-prediction MSE
(``PREDICTION``; v is steadier than eps at the t = 999 start MGLD uses) at
a timestep shared by the frames of a clip, noise independent per frame, clips
of ``frames`` frames so the temporal middle block and TFA see motion. The
context of the cross-attention is a learned "empty prompt" [1, CONTEXT_LEN,
context_dim] stored with the weights (there is no text encoder).

latent_scale = 1 / std of the HR latents over training clips, measured once
at the start (SD's 0.18215 plays the same role for the SD VAE).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from ..diffusion.schedules import scaled_linear_betas
from ..models.sft import EncoderUNetModelWT, StructCondUNet, StructEncoderConfig
from ..models.unet import UNetConfig, UNetModel
from ..settings import setting
from .trainer import TrainConfig

PREDICTION = "v"
CONTEXT_LEN = 4
TINY_UNET = dict(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(4,),
                 num_head_channels=32, context_dim=32, use_linear_in_transformer=True, prediction=PREDICTION,
                 sft=True, sft_channels=32, spade_hidden=32, temporal_middle=True, sfa_tfa=True,
                 sfa_tfa_cond_channels=16, sfa_hidden=32, tfa_window=8, tfa_frames=6)
TINY_STRUCT = dict(model_channels=32, out_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                   attention_resolutions=(4,), num_heads=1)


@dataclass
class DiffusionTrainConfig(TrainConfig):
    """TrainConfig plus what the diffusion tasks need."""

    task: str = "autoencoder"
    out: str = "runs/tiny_vae"
    vae: str | None = setting(None, "latent_diffusion / temporal_decoder: the trained tiny VAE (a run's "
                                    "model.safetensors or a shipped tiny_vae.safetensors)")
    steps: int = 3000
    batch: int = 8
    frames: int = 1
    lr_size: int = 24
    lr: float = 5e-4
    grad_clip: float = 1.0
    eval_every: int = 250


class TinyLatentDiffusion(nn.Module):
    """StructCondUNet + the learned empty-prompt context + the latent scale (a buffer)."""

    def __init__(self, unet_cfg: UNetConfig, struct_cfg: StructEncoderConfig, context_len: int = CONTEXT_LEN):
        super().__init__()
        self.model = StructCondUNet(UNetModel(unet_cfg), EncoderUNetModelWT(struct_cfg))
        self.context = nn.Parameter(torch.randn(1, context_len, unet_cfg.context_dim) * 0.02)
        self.register_buffer("latent_scale", torch.tensor(1.0))

    @property
    def config(self):
        return self.model.unet.config

    def forward(self, x, t, lr_latent, num_frames):
        ctx = self.context.expand(x.shape[0], -1, -1)
        return self.model(x, t, ctx, lr_latent=lr_latent, num_frames=num_frames)


def build_tiny_unet(overrides: dict | None = None) -> TinyLatentDiffusion:
    """The tiny model with TINY_UNET / TINY_STRUCT updated by `overrides` (UNetConfig fields, plus
    "struct_encoder": {StructEncoderConfig fields} and "context_len"). The structure encoder follows
    the UNet's levels unless told otherwise (its features are looked up by width)."""
    over = dict(overrides or {})
    struct_over = dict(over.pop("struct_encoder", {}))
    context_len = int(over.pop("context_len", CONTEXT_LEN))
    ucfg = dict(TINY_UNET)
    ucfg.update(over)
    struct = dict(TINY_STRUCT, channel_mult=tuple(ucfg["channel_mult"]),
                  attention_resolutions=tuple(ucfg["attention_resolutions"]))
    struct.update(struct_over)
    struct["out_channels"] = ucfg["sft_channels"]
    return TinyLatentDiffusion(UNetConfig(**ucfg), StructEncoderConfig(**struct), context_len)


def load_frozen_vae(path: str | None):
    """The trained tiny VAE (any file load_model reads, or a trainer run's model.safetensors), frozen."""
    from ..errors import InputError
    if not path:
        raise InputError("--vae: the latent_diffusion and temporal_decoder tasks need the trained tiny VAE "
                         "(run --task autoencoder first)")
    from ..checkpoints import load_model
    vae = load_model(path, kind="vae")
    return vae.float().eval().requires_grad_(False)


def lr_pair(hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HR frames [T,3,H,W] -> (LR by BI degradation, its bicubic x`scale` upscale), both in 0..1."""
    from ..ops.resize import bicubic_upscale
    from .degradations import degrade
    lr = degrade(hr, "bi", scale)
    return lr, bicubic_upscale(lr, scale).clamp(0, 1)


@torch.no_grad()
def measure_latent_std(vae, data, n: int = 16) -> float:
    zs = [vae.encode(data.clip() * 2 - 1) for _ in range(n)]
    return float(torch.cat([z.flatten() for z in zs]).std())


class LatentDiffusionTask:
    architecture = "TinyLatentDiffusion"
    save_trainable_only = False

    def __init__(self, cfg: DiffusionTrainConfig):
        from .autoencoder import PhotoClips
        self.cfg = cfg
        self.vae = load_frozen_vae(getattr(cfg, "vae", None))
        f = self.vae.downsample_factor
        self.data = PhotoClips(cfg.photos, cfg.frames, cfg.lr_size * cfg.scale, cfg.seed)
        if (cfg.lr_size * cfg.scale) % (4 * f):
            raise ValueError(f"HR crop {cfg.lr_size * cfg.scale} must be a multiple of {4 * f}")
        self.rng = np.random.default_rng(cfg.seed + 7)
        self.gen = torch.Generator().manual_seed(cfg.seed + 11)
        ac = torch.cumprod(1 - scaled_linear_betas().double(), 0).float()
        self.alphas_cumprod = ac
        self.latent_scale = None

    def build_model(self) -> TinyLatentDiffusion:
        model = build_tiny_unet(self.cfg.model)
        std = measure_latent_std(self.vae, self.data)
        model.latent_scale.fill_(1.0 / std)
        return model

    def model_config(self, model) -> dict:
        return {"unet": model.model.unet.config.to_dict(), "struct_encoder": model.model.struct_encoder.config.to_dict(),
                "context_len": int(model.context.shape[1]), "latent_scale": float(model.latent_scale)}

    @torch.no_grad()
    def batch(self):
        xs, cs = [], []
        for _ in range(self.cfg.batch):
            hr = self.data.clip()
            _, up = lr_pair(hr, self.cfg.scale)
            xs.append(self.vae.encode(hr * 2 - 1))
            cs.append(self.vae.encode(up * 2 - 1))
        return torch.cat(xs), torch.cat(cs)

    def loss(self, model, b):
        x0, c = b
        s = float(model.latent_scale)
        x0, c = x0 * s, c * s
        nb, t_frames = self.cfg.batch, self.cfg.frames
        t = torch.randint(0, len(self.alphas_cumprod), (nb,), generator=self.gen).repeat_interleave(t_frames)
        ac = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        eps = torch.randn(x0.shape, generator=self.gen)
        xt = ac.sqrt() * x0 + (1 - ac).sqrt() * eps
        target = ac.sqrt() * eps - (1 - ac).sqrt() * x0 if PREDICTION == "v" else eps
        out = model(xt, t, c, t_frames)
        loss = (out - target).pow(2).mean()
        return loss, {"mse": round(loss.item(), 5)}

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        """Held-out x0-prediction quality at a few noise levels: latent MSE of x0_hat vs the LR-latent baseline."""
        from ..data.clips import heldout_clips
        from .autoencoder import to_tensor
        was = model.training
        model.eval()
        s = float(model.latent_scale)
        g = torch.Generator().manual_seed(0)
        res, base = {}, []
        clips = heldout_clips(self.cfg.frames, (64, 64))
        for ti in (999, 500, 100):
            errs = []
            for clip in clips.values():
                hr = to_tensor(clip)
                _, up = lr_pair(hr, self.cfg.scale)
                x0 = self.vae.encode(hr * 2 - 1) * s
                c = self.vae.encode(up * 2 - 1) * s
                ac = float(self.alphas_cumprod[ti])
                eps = torch.randn(x0.shape, generator=g)
                xt = ac ** 0.5 * x0 + (1 - ac) ** 0.5 * eps
                out = model(xt, torch.full((x0.shape[0],), ti), c, x0.shape[0])
                x0h = ac ** 0.5 * xt - (1 - ac) ** 0.5 * out if PREDICTION == "v" else \
                    (xt - (1 - ac) ** 0.5 * out) / ac ** 0.5
                errs.append(float((x0h - x0).pow(2).mean()))
                if ti == 999:
                    base.append(float((c - x0).pow(2).mean()))
            res[f"x0_mse_t{ti}"] = round(float(np.mean(errs)), 5)
        res["lr_latent_mse"] = round(float(np.mean(base)), 5)
        model.train(was)
        return res

    def data_card(self) -> dict:
        return {**self.data.describe(), "degradation": "bi (MATLAB bicubic x1/4), condition = VAE latent of the "
                "bicubic x4 upscale", "vae": self.cfg.vae, "loss": f"{PREDICTION}-prediction MSE, SD linear "
                "betas 0.00085..0.012, T=1000, one t per clip"}

    def get_state(self) -> dict:
        return {"data": self.data.rng.bit_generator.state, "rng": self.rng.bit_generator.state,
                "gen": self.gen.get_state().tolist()}

    def set_state(self, s: dict) -> None:
        self.data.rng.bit_generator.state = s["data"]
        self.rng.bit_generator.state = s["rng"]
        self.gen.set_state(torch.tensor(s["gen"], dtype=torch.uint8))


def build_task(cfg):
    """The task (tasks.py) from any TrainConfig."""
    if not isinstance(cfg, DiffusionTrainConfig):
        cfg = DiffusionTrainConfig(**{k: v for k, v in vars(cfg).items()})
    return LatentDiffusionTask(cfg)


__all__ = ["DiffusionTrainConfig", "TinyLatentDiffusion", "build_tiny_unet", "build_task", "LatentDiffusionTask"]

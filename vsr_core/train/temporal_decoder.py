"""Task ``temporal_decoder``: MGLD's temporal CFW decoder on top of the tiny VAE.

``video_vae_from_base(tiny_vae, fusion="rdb", temporal=True)`` gives the MGLD
video-VAE layout (``decoder.fusion_layer_l.*`` RDB fusion, ``decoder.*
temporal_mixing.*``) around the frozen tiny VAE; only the fusion and temporal
layers train (``freeze_except(model, ("fusion_layer", "temporal"))``), as in MGLD.
``--model '{"train_decoder": true}'`` also fine-tunes the rest of the decoder
(never the encoder, so the latent space the UNet was trained on is unchanged):
the tiny VAE's decoder alone loses part of each frame's mean colour, which the
upscaled frames' features carry and a frozen decoder cannot take.

Training triple per clip (BI degradation):
  z    latent of the HR clip, perturbed to stand in for diffusion's sampling
       error: z = a * z_HR + (1 - a) * z_up + n, a ~ U(A_MIN, 1), n ~ N(0, s^2),
       s ~ U(0, NOISE_MAX) * std(z_HR)
  feats encoder features of the bicubic-upscaled LR clip (CFW), weight w = 1 (MGLD)
  target the HR clip
Loss: L1 + W_DIFF * L1 of frame differences (MGLD's L_diff). MGLD's LPIPS,
SWC and GAN terms are left out (no pretrained LPIPS/flow nets may be downloaded).
"""
from __future__ import annotations

import numpy as np
import torch

from ..models.video_vae import video_vae_from_base
from .latent_diffusion import DiffusionTrainConfig, load_frozen_vae, lr_pair
from .trainer import freeze_except

A_MIN = 0.6
NOISE_MAX = 0.15
W_DIFF = 0.5
TRAINABLE = ("fusion_layer", "temporal")


def build_video_vae(base, fusion: str = "rdb", num_fuse_block: int = 1, num_grow_ch: int = 16):
    return video_vae_from_base(base, temporal=True, sfa_tfa=False, fusion=fusion,
                               num_fuse_block=num_fuse_block, num_grow_ch=num_grow_ch)


class TemporalDecoderTask:
    architecture = "VideoAutoencoderKL"
    save_trainable_only = False        # ship the whole video VAE (encoder included): one file for the graph

    def __init__(self, cfg: DiffusionTrainConfig):
        from .autoencoder import PhotoClips
        self.cfg = cfg
        self.base = load_frozen_vae(getattr(cfg, "vae", None))
        self.data = PhotoClips(cfg.photos, cfg.frames, cfg.lr_size * cfg.scale, cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed + 13)

    def build_model(self):
        opts = {"num_fuse_block": 1, "num_grow_ch": 16}
        opts.update(self.cfg.model or {})
        self.trainable = TRAINABLE + (("decoder.",) if opts.pop("train_decoder", False) else ())
        model = build_video_vae(self.base, **opts)
        freeze_except(model, self.trainable)
        return model

    def model_config(self, model) -> dict:
        c = model.config
        d = model.decoder
        return {"trainable": list(getattr(self, "trainable", TRAINABLE)), "vae": {"ch": c.ch, "ch_mult": list(c.ch_mult), "num_res_blocks": c.num_res_blocks,
                        "z_channels": c.z_channels, "embed_dim": c.embed_dim},
                "fusion": d.fusion, "num_fuse_block": d.num_fuse_block, "num_grow_ch": d.num_grow_ch,
                "temporal": True, "default_w": model.default_w, "fusion_levels": list(d.fusion_levels)}

    @torch.no_grad()
    def batch(self):
        hrs, ups = [], []
        for _ in range(self.cfg.batch):
            hr = self.data.clip()
            hrs.append(hr)
            ups.append(lr_pair(hr, self.cfg.scale)[1])
        hr, up = torch.cat(hrs), torch.cat(ups)
        z_hr = self.base.encode(hr * 2 - 1)
        z_up, feats = self.base.encode_with_features(up * 2 - 1)
        n = z_hr.shape[0]
        t = self.cfg.frames
        a = (A_MIN + (1 - A_MIN) * torch.rand(n // t, generator=self.gen)).repeat_interleave(t).view(-1, 1, 1, 1)
        s = (NOISE_MAX * torch.rand(n // t, generator=self.gen)).repeat_interleave(t).view(-1, 1, 1, 1)
        z = a * z_hr + (1 - a) * z_up + s * float(z_hr.std()) * torch.randn(z_hr.shape, generator=self.gen)
        return z, [f.detach() for f in feats], hr

    def loss(self, model, b):
        z, feats, hr = b
        t = self.cfg.frames
        out = model.decode(z, feats, num_frames=t)
        tgt = hr * 2 - 1
        l1 = (out - tgt).abs().mean()
        o5, t5 = out.view(-1, t, *out.shape[1:]), tgt.view(-1, t, *tgt.shape[1:])
        ld = ((o5[:, 1:] - o5[:, :-1]) - (t5[:, 1:] - t5[:, :-1])).abs().mean() if t > 1 else out.new_zeros(())
        return l1 + W_DIFF * ld, {"l1": round(l1.item(), 5), "diff": round(ld.item(), 5)}

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        """Held-out PSNR-Y of decoding the HR latent (+ LR features) vs the plain tiny VAE, and of the
        upscaled-LR latent (what the decoder alone adds to bicubic)."""
        from ..data.clips import heldout_clips
        from ..metrics import psnr_y
        from .autoencoder import to_tensor
        was = model.training
        model.eval()
        r = {"video_psnr_y": [], "plain_psnr_y": [], "lr_latent_video_psnr_y": [], "bicubic_psnr_y": []}
        for clip in heldout_clips(5, (128, 192)).values():
            hr = to_tensor(clip)
            _, up = lr_pair(hr, self.cfg.scale)
            z_hr = self.base.encode(hr * 2 - 1)
            z_up, feats = self.base.encode_with_features(up * 2 - 1)
            dec = lambda x: ((x + 1) / 2).clamp(0, 1)  # noqa: E731
            r["video_psnr_y"].append(psnr_y(dec(model.decode(z_hr, feats, num_frames=5)), hr))
            r["plain_psnr_y"].append(psnr_y(dec(self.base.decode(z_hr)), hr))
            r["lr_latent_video_psnr_y"].append(psnr_y(dec(model.decode(z_up, feats, num_frames=5)), hr))
            r["bicubic_psnr_y"].append(psnr_y(up, hr))
        model.train(was)
        return {k: round(float(np.mean(v)), 3) for k, v in r.items()}

    def data_card(self) -> dict:
        return {**self.data.describe(), "vae": self.cfg.vae,
                "input": f"latent a*z_HR+(1-a)*z_up+noise, a~U({A_MIN},1), noise std <= {NOISE_MAX}*std(z_HR); "
                         "CFW features of the bicubic x4 upscale of the BI-downscaled clip",
                "loss": f"L1 + {W_DIFF} * L1 of frame differences",
                "trainable": list(getattr(self, "trainable", TRAINABLE))}

    def get_state(self) -> dict:
        return {"data": self.data.rng.bit_generator.state, "gen": self.gen.get_state().tolist()}

    def set_state(self, s: dict) -> None:
        self.data.rng.bit_generator.state = s["data"]
        self.gen.set_state(torch.tensor(s["gen"], dtype=torch.uint8))


def build_task(cfg):
    """The task (tasks.py) from any TrainConfig."""
    if not isinstance(cfg, DiffusionTrainConfig):
        cfg = DiffusionTrainConfig(**{k: v for k, v in vars(cfg).items()})
    return TemporalDecoderTask(cfg)

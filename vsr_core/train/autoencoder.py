"""Task ``autoencoder``: a small ldm AutoencoderKL trained from scratch on HR crops.

The shipped tiny VAE (``vsr_core/weights/tiny_vae.safetensors``) comes from
this task: the ldm layout (``encoder.down.*``, ``decoder.up.*``, ``quant_conv``,
``post_quant_conv``), so every loader and the CFW / temporal decoders built on
it treat it exactly like the SD VAE, only narrower. Loss: L1 on the
reconstruction of a posterior *sample* (so the decoder tolerates the noise the
diffusion stage leaves) plus a small KL term (``KL_WEIGHT``, ldm uses 1e-6); the posterior log-variance
starts at ``LOGVAR_INIT`` so a short CPU run is not spent learning to silence
the sampling noise.

Data: single frames of virtual-camera clips over ``TRAIN_PHOTOS`` (the
held-out photos are never used), HR crops of ``lr_size * scale`` pixels,
random flips/transposes. Architecture: ``cfg.model`` holds VAEConfig fields.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.clips import HELDOUT_PHOTOS, TRAIN_PHOTOS, heldout_clips, load_photo, random_clip
from ..models.vae import AutoencoderKL, VAEConfig
from .trainer import TrainConfig

KL_WEIGHT = 1e-6
LOGVAR_INIT = -6.0
# The narrow default: factor 4 (three levels), z 4, widths 64-64-128. Why:
# - factor 4, not SD's 8: after 150 steps of the same run, held-out reconstruction PSNR-Y was 18.8 dB at
#   factor 4 vs 16.0 dB at factor 8 (ch 32), and the diffusion stage can only be as good as the VAE;
# - 64 channels at full resolution, not 32: ldm's GroupNorm has 32 groups, so 32 channels make the
#   decoder's last norm a per-channel instance norm that erases each frame's mean colour (a 32-channel
#   run had per-channel colour offsets up to 0.25 on held-out clips, 27 dB once offset-corrected).
TINY_VAE = {"ch": 64, "ch_mult": (1, 1, 2), "num_res_blocks": 1, "z_channels": 4, "embed_dim": 4}


def vae_config(overrides: dict | None) -> VAEConfig:
    d = dict(TINY_VAE)
    d.update(overrides or {})
    return VAEConfig(**d)


def augment(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips / transpose / time reversal of a uint8 clip [T,H,W,3]."""
    if rng.random() < 0.5:
        clip = clip[:, :, ::-1]
    if rng.random() < 0.5:
        clip = clip[:, ::-1]
    if rng.random() < 0.5:
        clip = clip.transpose(0, 2, 1, 3)
    if rng.random() < 0.5:
        clip = clip[::-1]
    return clip.copy()


def to_tensor(clip: np.ndarray) -> torch.Tensor:
    """uint8 [T,H,W,3] -> float [T,3,H,W] in 0..1."""
    return torch.from_numpy(np.array(clip, copy=True)).permute(0, 3, 1, 2).float() / 255.0


class PhotoClips:
    """Random HR clips [T,3,S,S] over the training photos (never the held-out ones)."""

    def __init__(self, photos, frames: int, size: int, seed: int):
        self.photos = tuple(photos or TRAIN_PHOTOS)
        overlap = set(self.photos) & set(HELDOUT_PHOTOS)
        if overlap:
            raise ValueError(f"training photos include held-out ones: {sorted(overlap)}")
        for p in self.photos:
            load_photo(p)
        self.frames, self.size = frames, size
        self.rng = np.random.default_rng(seed)

    def clip(self) -> torch.Tensor:
        name = self.photos[self.rng.integers(len(self.photos))]
        return to_tensor(augment(random_clip(name, self.frames, (self.size, self.size), self.rng), self.rng))

    def describe(self) -> dict:
        return {"photos": list(self.photos), "heldout_never_used": list(HELDOUT_PHOTOS),
                "frames": self.frames, "hr_crop": self.size, "source": "virtual-camera clips (pan/zoom/roll)"}


@torch.no_grad()
def vae_reconstruction_psnr(vae, frames: int = 3, size=(128, 192)) -> dict:
    """Held-out reconstruction PSNR-Y / SSIM-Y (posterior mean) and the latent std."""
    from ..metrics import psnr_y, ssim_y
    was = vae.training
    vae.eval()
    ps, ss, stds = [], [], []
    res = {}
    for name, clip in heldout_clips(frames, size).items():
        x = to_tensor(clip)
        z = vae.encode(x * 2 - 1)
        y = ((vae.decode(z) + 1) / 2).clamp(0, 1)
        p, s = psnr_y(y, x), ssim_y(y, x)
        ps.append(p), ss.append(s), stds.append(float(z.std()))
        res[f"recon_psnr_y/{name}"] = round(p, 3)
    res.update(recon_psnr_y=round(float(np.mean(ps)), 3), recon_ssim_y=round(float(np.mean(ss)), 4),
               latent_std=round(float(np.mean(stds)), 4))
    vae.train(was)
    return res


class AutoencoderTask:
    architecture = "AutoencoderKL"
    save_trainable_only = False

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.data = PhotoClips(cfg.photos, 1, cfg.lr_size * cfg.scale, cfg.seed)

    def build_model(self):
        vae = AutoencoderKL(vae_config(self.cfg.model))
        with torch.no_grad():   # start with a narrow posterior: std e^-3, so early decodes are not pure noise
            vae.quant_conv.bias[vae.config.embed_dim:].fill_(LOGVAR_INIT)
        return vae

    def model_config(self, model) -> dict:
        c = model.config
        return {"ch": c.ch, "ch_mult": list(c.ch_mult), "num_res_blocks": c.num_res_blocks,
                "z_channels": c.z_channels, "embed_dim": c.embed_dim, "attn_levels": list(c.attn_levels)}

    def batch(self):
        return torch.cat([self.data.clip() for _ in range(self.cfg.batch)])

    def loss(self, model, x):
        x = x * 2 - 1
        mean, logvar = model.encode_moments(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = model.decode(z)
        l1 = (rec - x).abs().mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean()
        return l1 + KL_WEIGHT * kl, {"l1": round(l1.item(), 5), "kl": round(kl.item(), 2)}

    def evaluate(self, model) -> dict:
        return vae_reconstruction_psnr(model)

    def data_card(self) -> dict:
        return {**self.data.describe(), "loss": f"L1 on a posterior sample + {KL_WEIGHT} KL"}

    def get_state(self) -> dict:
        return {"rng": self.data.rng.bit_generator.state}

    def set_state(self, s: dict) -> None:
        self.data.rng.bit_generator.state = s["rng"]

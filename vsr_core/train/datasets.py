"""Training batches: (LR clip, HR clip, LR flow) made on the fly.

Sources:
- ``photos``: virtual-camera clips over photographs shipped by PyPI packages
  (``vsr_core.data.clips.TRAIN_PHOTOS``), random pan/zoom/roll per clip.
- ``video_folder``: any folder of videos (or image-sequence folders) the user
  points at; random windows of consecutive frames, random crops.

Every clip is degraded with the chosen degradation (BI/BD/realbasicvsr) and
quantized to 8 bits. Flow for the propagation is estimated with DIS on the LR
clip, exactly as at inference, so the network learns to live with DIS's errors.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.clips import PHOTO_SCALES, TRAIN_PHOTOS, load_photo, random_clip
from ..errors import InputError
from ..flow.dis import DISFlow
from .degradations import DEGRADATIONS, degrade_labelled, gaussian_blur

# DIS preset of the propagation's flow in training: the shipped weights learned on "medium"; training on the
# "fast" preset inference uses gained nothing on the validation clips (the model card's not_shipped)
TRAIN_FLOW_PRESET = "medium"
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".gif")
# Gaussian sigma (HR pixels) of a softened scene: out of focus, or soft at its source
SCENE_BLUR_SIGMA = (1.0, 4.0)


@dataclass
class ClipBatch:
    lr: torch.Tensor            # [B,T,3,h,w]
    hr: torch.Tensor            # [B,T,3,H,W]
    flow_forward: torch.Tensor  # [B,T-1,2,h,w]
    flow_backward: torch.Tensor
    level: torch.Tensor | None = None   # [B,3] how degraded each clip is (noise, compression, blur; 0..1)


def lr_flows(lr: torch.Tensor, estimator) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward/backward flow [T-1,2,h,w] of an LR clip [T,3,h,w]."""
    if lr.shape[0] < 2:
        z = lr.new_zeros(0, 2, *lr.shape[-2:])
        return z, z
    a, b = lr[:-1], lr[1:]
    return estimator(a, b), estimator(b, a)


@dataclass
class ClipDataset:
    scale: int = 4
    frames: int = 5
    lr_size: int = 48
    degradation: str = "bi"
    degradation_shares: dict | None = None   # "real" only: mixture weights (RealWorldMix.SHARES by default)
    photos: tuple = TRAIN_PHOTOS
    photo_scales: tuple = PHOTO_SCALES   # each photo clip draws one (above 1: a soft source)
    scene_grain: float = 0.0             # share of photo clips with grain in the photo itself (content)
    scene_blur: float = 0.0              # share of clips whose scene itself is soft (content, not damage)
    video_folder: str | None = None
    real_videos: str | None = None    # prepared real-video folder (vsr_core.data.real_videos)
    video_fraction: float = 0.5       # share of clips from videos when a source is given
    flow_preset: str = TRAIN_FLOW_PRESET
    seed: int = 0
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self):
        if self.degradation not in DEGRADATIONS:
            raise InputError(f"degradation={self.degradation!r}; expected one of {', '.join(DEGRADATIONS)}")
        if self.degradation_shares is not None:
            if self.degradation != "real":
                raise InputError(f"degradation shares apply to degradation 'real', not {self.degradation!r}")
            from .degradations import check_shares
            self.degradation_shares = check_shares(self.degradation_shares)
        if self.scale not in (2, 4):
            raise InputError(f"scale={self.scale!r}; expected 2 or 4")
        if self.frames < 1 or self.lr_size < 8:
            raise InputError(f"frames={self.frames}, lr_size={self.lr_size}; expected frames >= 1, lr_size >= 8")
        for name in ("scene_grain", "scene_blur"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name}={getattr(self, name)!r}; expected a share from 0 to 1")
        if not self.photo_scales or min(self.photo_scales) <= 0:
            raise InputError(f"photo_scales={self.photo_scales!r}; expected positive factors, e.g. 1.0,0.5,2.0")
        for p in self.photos:
            load_photo(p)   # fail now, with the photo's name, if a package is missing
        self.videos = []
        if self.video_folder:
            if not os.path.isdir(self.video_folder):
                raise InputError(f"video_folder '{self.video_folder}' is not a folder")
            for root, dirs, files in os.walk(self.video_folder):
                self.videos += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(VIDEO_EXTENSIONS)]
            if not self.videos:
                raise InputError(f"video_folder '{self.video_folder}' has no videos ({', '.join(VIDEO_EXTENSIONS)})")
        self.real = None
        if self.real_videos:
            from ..data.real_videos import RealVideoClips
            self.real = RealVideoClips(self.real_videos, "train")
        self.rng = np.random.default_rng(self.seed)
        self.flow = DISFlow(self.flow_preset)

    def describe(self) -> dict:
        real = None
        if self.real is not None:
            from ..data.real_videos import load_manifest, split_ids
            m = load_manifest(self.real_videos)
            real = {"packages": m["packages"], "train_clips": self.real.describe(),
                    "heldout_clips": split_ids(m, "heldout"), "rules": m["rules"],
                    "share_of_clips": self.video_fraction}
            validation = split_ids(m, "val")
            if validation:
                real["validation_clips"] = validation
        return {"photos": list(self.photos), "photo_scales": list(self.photo_scales),
                **({"scene_grain": self.scene_grain} if self.scene_grain else {}),
                **({"scene_blur": self.scene_blur, "scene_blur_sigma": list(SCENE_BLUR_SIGMA)}
                   if self.scene_blur else {}),
                "video_folder": self.video_folder, "real_videos": real, "frames": self.frames,
                "lr_crop": self.lr_size, "scale": self.scale, "degradation": self.degradation,
                **({"degradation_shares": self.degradation_shares} if self.degradation_shares else {}),
                "flow": f"dis:{self.flow_preset} on LR"}

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    # -- sources -----------------------------------------------------------
    def scene(self) -> tuple[np.ndarray, bool]:
        """An HR clip uint8 [T,H,W,3] and whether its scene was softened (a ``scene_blur`` share of clips, by a
        Gaussian of sigma drawn from SCENE_BLUR_SIGMA): a soft scene downsampled cleanly is not a blurred input,
        however alike the two look."""
        clip = self._hr_clip()
        if self.scene_blur <= 0 or self.rng.random() >= self.scene_blur:   # no draw at 0: old runs reproduce
            return clip, False
        sigma = float(self.rng.uniform(*SCENE_BLUR_SIGMA))
        x = torch.from_numpy(np.array(clip)).permute(0, 3, 1, 2).float()
        x = gaussian_blur(x, sigma, 2 * int(3 * sigma) + 1)
        return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy(), True

    def _hr_clip(self) -> np.ndarray:
        hs = self.lr_size * self.scale
        if self.real is not None and self.rng.random() < self.video_fraction:
            clip = self.real.window(self.rng, self.frames, hs)
            if clip is not None:
                return clip
        if self.videos and self.rng.random() < self.video_fraction:
            clip = self._video_clip(hs)
            if clip is not None:
                return clip
        name = self.photos[self.rng.integers(len(self.photos))]
        grain = float(self.rng.uniform(3.0, 20.0)) if self.rng.random() < self.scene_grain else 0.0
        return random_clip(name, self.frames, (hs, hs), self.rng, scales=self.photo_scales, grain=grain)

    def _video_clip(self, hs: int) -> np.ndarray | None:
        from ..video import LoadOptions, open_video
        path = self.videos[self.rng.integers(len(self.videos))]
        reader = open_video(path)
        n = reader.info.frame_count_hint or self.frames
        skip = int(self.rng.integers(0, max(1, n - self.frames)))
        reader = open_video(path, LoadOptions(skip_first_frames=skip, frame_load_cap=self.frames))
        frames = np.concatenate(list(reader.windows(self.frames)))
        if len(frames) < self.frames or min(frames.shape[1:3]) < hs:
            return None
        y = int(self.rng.integers(0, frames.shape[1] - hs + 1))
        x = int(self.rng.integers(0, frames.shape[2] - hs + 1))
        return frames[:, y:y + hs, x:x + hs]

    def degraded(self, clip: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """uint8 HR clip [T,H,W,3] -> (HR [T,3,H,W] float, its LR by this dataset's degradation, the level)."""
        hr = torch.from_numpy(np.array(clip)).permute(0, 3, 1, 2).float() / 255.0
        lr, level = degrade_labelled(hr, self.degradation, self.scale, rng_seed=int(self.rng.integers(2 ** 31)),
                                     shares=self.degradation_shares)
        return hr, lr, level

    def sample(self, batch: int) -> ClipBatch:
        lrs, hrs, ffs, fbs, levels = [], [], [], [], []
        for _ in range(batch):
            clip, _ = self.scene()
            if self.rng.random() < 0.5:
                clip = clip[:, :, ::-1]
            if self.rng.random() < 0.5:
                clip = clip[:, ::-1]
            if self.rng.random() < 0.5:
                clip = clip.transpose(0, 2, 1, 3)
            if self.rng.random() < 0.5:
                clip = clip[::-1]
            hr, lr, level = self.degraded(clip)
            ff, fb = lr_flows(lr, self.flow)
            lrs.append(lr), hrs.append(hr), ffs.append(ff), fbs.append(fb), levels.append(level)
        return ClipBatch(torch.stack(lrs), torch.stack(hrs), torch.stack(ffs), torch.stack(fbs), torch.stack(levels))

"""The upscaler's level estimator alone: the rest of the network frozen, the estimator fitted to the drawn
degradation's level (MSE) on many more clips than the joint training gives it, at its own learning rate.

Joint training (UpscalerTask) left the estimator nearly blind at 2000 steps and 8e-5 (it read the same level
for noise sigma 0 and 12), while the network had learned to use the true level; this task trains only what
``clean auto`` reads, so the rest of the weights stay exactly as shipped.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from .trainer import UpscalerTask, freeze_except

# held-out check on the validation clips: (metric name, known degradation, its amount)
CHECKS = (("bi", "noise", 0), ("noise5", "noise", 5), ("noise10", "noise", 10), ("h26424", "h264", 24),
          ("h26432", "h264", 32))
# with --scene-blur also: a soft scene (Gaussian sigma 2 at HR), downsampled cleanly
SOFT_CHECKS = (("soft2", "soft", 2),)
# with a grid-reading estimator also: h264 cropped 3 pixels off its grid
GRID_CHECKS = (("h26432off", "h264off", 32),)
# an estimator that reads the codec's block grid also sees this share of clips cropped off the grid (by 1-7
# pixels each way): frames cropped or resized after coding have no grid at pixel 0, and must still be read
OFF_GRID_SHARE = 0.3


@torch.no_grad()
def read_known_levels(model, clips: dict, kind: str, amount: int, scale: int = 4) -> tuple[np.ndarray, float]:
    """The estimator's reading of HR clips made LR with a known degradation: bicubic, then Gaussian noise of
    sigma ``amount``/255 (kind "noise", seeded by the clip's place) or one x264 pass at CRF ``amount`` (kind
    "h264"; "h264off": then cropped 3 pixels off the codec's grid); or kind "soft": the scene softened by a
    Gaussian of sigma ``amount`` (HR pixels), then bicubic, read as the larger of noise and compression (how hard
    a clean input would be cleaned). (The reading per clip, the true level.)"""
    from .codec import codec_roundtrip
    from .degradations import bi_downsample, gaussian_blur, noise_level, quantize, x264_level
    truth = {"noise": noise_level, "h264": x264_level, "h264off": x264_level, "soft": lambda _: 0.0}[kind](amount)
    reads = []
    for i, hr in enumerate(clips.values()):
        if kind == "soft":
            hr = gaussian_blur(hr, amount, 2 * int(3 * amount) + 1)
        lr = quantize(bi_downsample(hr, scale))
        if kind == "noise":
            lr = quantize(lr + torch.randn(lr.shape, generator=torch.Generator().manual_seed(i)) * amount / 255)
        elif kind.startswith("h264"):
            lr = quantize(codec_roundtrip(lr, "libx264", crf=amount, preset="medium"))
            lr = lr[..., 3:, 3:] if kind == "h264off" else lr
        level = model.estimate_level(lr[None])[0]
        reads.append(float(level[:2].max() if kind == "soft" else level[0 if kind == "noise" else 1]))
    return np.array(reads), min(truth, 1.0)


class LevelEstimatorTask(UpscalerTask):
    """Only ``level_estimator.*`` trains; batches are degraded clips and their levels (an estimator that reads
    motion estimates the clip's flow as at inference)."""

    def build_model(self) -> torch.nn.Module:
        model = super().build_model()
        if model.level_estimator is None:
            raise InputError("the level_estimator task needs an upscaler with a degradation input "
                             "(--model '{\"degradation_input\": true}' or --init-weights of such weights)")
        freeze_except(model, ("level_estimator.",))
        return model

    @property
    def reads_grid(self) -> bool:
        """Whether the trained estimator reads the codec's grid (the model's config, as build_model makes it)."""
        return bool((self.cfg.model or {}).get("level_grid"))

    def batch(self):
        lrs, levels, weights = [], [], []
        for _ in range(self.cfg.batch):
            clip, soft_scene = self.data.scene()
            _, lr, level = self.data.degraded(clip)
            lrs.append(self._off_grid(lr) if self.reads_grid else lr), levels.append(level)
            # a soft scene's blur reading is left untrained: it looks like blurred input (BD), and the
            # network's gain there depends on reading BD as blur
            weights.append(torch.tensor([1.0, 1.0, 0.0 if soft_scene else 1.0]))
        return torch.stack(lrs), torch.stack(levels), torch.stack(weights)

    def _off_grid(self, lr: torch.Tensor) -> torch.Tensor:
        """[T,3,h,w] -> [T,3,h-8,w-8]: on the grid (offset 0) or, for OFF_GRID_SHARE of clips, 1-7 pixels off it."""
        dy, dx = (int(v) for v in self.rng.integers(1, 8, 2)) if self.rng.random() < OFF_GRID_SHARE else (0, 0)
        return lr[..., dy:dy + lr.shape[-2] - 8, dx:dx + lr.shape[-1] - 8]

    def loss(self, model, b) -> tuple[torch.Tensor, dict]:
        lr, level, weight = b
        l_level = ((model.estimate_level(lr) - level) ** 2 * weight).sum() / weight.sum()
        return l_level, {"level": l_level.item()}

    def evaluate(self, model) -> dict:
        if not self.cfg.real_videos:
            return {}
        from .real_eval import real_hr_clips, validation_split
        clips = real_hr_clips(self.cfg.real_videos, 5, split=validation_split(self.cfg.real_videos))
        was = model.training
        model.eval()
        res = {}
        checks = CHECKS + (SOFT_CHECKS if self.cfg.scene_blur else ()) + (GRID_CHECKS if self.reads_grid else ())
        for name, kind, amount in checks:
            reads, truth = read_known_levels(model, clips, kind, amount, self.cfg.scale)
            res[f"level/{name}/abs_error"] = round(float(np.abs(reads - truth).mean()), 4)
        model.train(was)
        return res

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


@torch.no_grad()
def read_known_levels(model, clips: dict, kind: str, amount: int, scale: int = 4) -> tuple[np.ndarray, float]:
    """The estimator's reading of HR clips made LR with a known degradation: bicubic, then Gaussian noise of
    sigma ``amount``/255 (kind "noise", seeded by the clip's place) or one x264 pass at CRF ``amount`` (kind
    "h264"); (the reading on the degradation's axis per clip, the true level)."""
    from .codec import codec_roundtrip
    from .degradations import bi_downsample, noise_level, quantize, x264_level
    axis, truth = (0, noise_level(amount)) if kind == "noise" else (1, x264_level(amount))
    reads = []
    for i, hr in enumerate(clips.values()):
        lr = quantize(bi_downsample(hr, scale))
        if kind == "noise":
            lr = quantize(lr + torch.randn(lr.shape, generator=torch.Generator().manual_seed(i)) * amount / 255)
        else:
            lr = quantize(codec_roundtrip(lr, "libx264", crf=amount, preset="medium"))
        reads.append(float(model.estimate_level(lr[None])[0, axis]))
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

    def batch(self):
        lrs, levels = [], []
        for _ in range(self.cfg.batch):
            _, lr, level = self.data.degraded(self.data._hr_clip())
            lrs.append(lr), levels.append(level)
        return torch.stack(lrs), torch.stack(levels)

    def loss(self, model, b) -> tuple[torch.Tensor, dict]:
        lr, level = b
        l_level = torch.nn.functional.mse_loss(model.estimate_level(lr), level)
        return l_level, {"level": l_level.item()}

    def evaluate(self, model) -> dict:
        if not self.cfg.real_videos:
            return {}
        from .real_eval import real_hr_clips, validation_split
        clips = real_hr_clips(self.cfg.real_videos, 5, split=validation_split(self.cfg.real_videos))
        was = model.training
        model.eval()
        res = {}
        for name, kind, amount in CHECKS:
            reads, truth = read_known_levels(model, clips, kind, amount, self.cfg.scale)
            res[f"level/{name}/abs_error"] = round(float(np.abs(reads - truth).mean()), 4)
        model.train(was)
        return res

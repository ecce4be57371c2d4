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
from .degradations import degrade_labelled
from .trainer import UpscalerTask, freeze_except

# held-out check: known noise sigma and x264 CRF on validation clips (level units)
CHECKS = (("bi", 0, None), ("noise", 5, None), ("noise", 10, None), ("h264", None, 24), ("h264", None, 32))


class LevelEstimatorTask(UpscalerTask):
    """Only ``level_estimator.*`` trains; batches are degraded clips and their levels, no flow."""

    def build_model(self) -> torch.nn.Module:
        model = super().build_model()
        if model.level_estimator is None:
            raise InputError("the level_estimator task needs an upscaler with a degradation input "
                             "(--model '{\"degradation_input\": true}' or --init-weights of such weights)")
        freeze_except(model, ("level_estimator.",))
        return model

    def batch(self):
        lrs, levels = [], []
        data = self.data
        for _ in range(self.cfg.batch):
            clip = data._hr_clip()
            hr = torch.from_numpy(np.array(clip)).permute(0, 3, 1, 2).float() / 255.0
            lr, level = degrade_labelled(hr, data.degradation, data.scale, rng_seed=int(data.rng.integers(2 ** 31)),
                                         shares=data.degradation_shares)
            lrs.append(lr), levels.append(level)
        return torch.stack(lrs), torch.stack(levels)

    def loss(self, model, b) -> tuple[torch.Tensor, dict]:
        lr, level = b
        l_level = torch.nn.functional.mse_loss(model.estimate_level(lr), level)
        return l_level, {"level": l_level.item()}

    def evaluate(self, model) -> dict:
        if not self.cfg.real_videos:
            return {}
        from .codec import codec_roundtrip
        from .degradations import bi_downsample, noise_level, quantize, x264_level
        from .real_eval import real_hr_clips, validation_split
        clips = real_hr_clips(self.cfg.real_videos, 5, split=validation_split(self.cfg.real_videos))
        res = {}
        was = model.training
        model.eval()
        with torch.no_grad():
            for kind, sigma, crf in CHECKS:
                errors = []
                for i, hr in enumerate(clips.values()):
                    lr = quantize(bi_downsample(hr, self.cfg.scale))
                    if kind == "noise":
                        g = torch.Generator().manual_seed(i)
                        lr = quantize(lr + torch.randn(lr.shape, generator=g) * sigma / 255)
                    elif kind == "h264":
                        lr = quantize(codec_roundtrip(lr, "libx264", crf=crf, preset="medium"))
                    axis, truth = (0, noise_level(sigma)) if kind == "noise" else \
                        (1, x264_level(crf)) if kind == "h264" else (0, 0.0)
                    errors.append(abs(float(model.estimate_level(lr[None])[0, axis]) - truth))
                res[f"level/{kind}{sigma or crf or ''}/abs_error"] = round(float(np.mean(errors)), 4)
        model.train(was)
        return res

"""Training losses for video upscalers, all on [B,T,3,H,W] float clips.

- ``charbonnier``: sqrt((x - y)^2 + eps^2), mean (SATeCo's upscaler loss).
- ``rmse``: sqrt(mean((x - y)^2) + eps^2): the gradient of MSE, the error PSNR measures, at the scale of
  Charbonnier, so the other losses' weights keep their meaning (Charbonnier is close to L1, which
  aims at the median of what the input could be, MSE at the mean).
- ``temporal_difference``: Charbonnier between the output's and the target's
  frame differences, (y_t - y_{t-1}) vs (g_t - g_{t-1}): penalises flicker
  the target does not have, without needing flow.
- ``warping_consistency``: flow-masked. With the target's own warping
  residual as reference, |(y_t - W(y_{t+1})) - (g_t - W(g_{t+1}))| on pixels
  where the flow is reliable (forward-backward consistent and inside the
  frame). Subtracting the target's residual makes the loss blind to flow
  errors that the target shares, so it only punishes temporal inconsistency
  that the model adds.
"""
from __future__ import annotations

import torch

from ..flow.warp import backward_warp, inside_mask


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((x - y) ** 2 + eps * eps).mean()


def rmse(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt(((x - y) ** 2).mean() + eps * eps)


PIXEL_LOSSES = {"charbonnier": charbonnier, "rmse": rmse}


def temporal_difference(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    if output.shape[1] < 2:
        return output.new_zeros(())
    return charbonnier(output[:, 1:] - output[:, :-1], target[:, 1:] - target[:, :-1], eps)


def warping_consistency(output: torch.Tensor, target: torch.Tensor, flow_forward: torch.Tensor,
                        valid: torch.Tensor | None = None, eps: float = 1e-3) -> torch.Tensor:
    """``flow_forward``: [B,T-1,2,H,W] at the output's resolution (t -> t+1);
    ``valid``: optional [B,T-1,1,H,W] (1 = trust the flow)."""
    b, t, c, h, w = output.shape
    if t < 2:
        return output.new_zeros(())
    fl = flow_forward.reshape(b * (t - 1), 2, h, w)
    mask = inside_mask(fl)
    if valid is not None:
        mask = mask * valid.reshape(b * (t - 1), 1, h, w)
    def residual(x):
        cur = x[:, :-1].reshape(-1, c, h, w)
        nxt = x[:, 1:].reshape(-1, c, h, w)
        return cur - backward_warp(nxt, fl, padding_mode="border")
    diff = residual(output) - residual(target)
    err = torch.sqrt(diff ** 2 + eps * eps) * mask
    return err.sum() / (mask.sum() * c).clamp_min(1.0)

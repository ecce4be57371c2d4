"""SATeCo's video refiner: ``X_H = w·X_u + (1−w)·X_d + ResBlock(concat[X_u, X_d])``, w = 0.5.

X_u is the upscaler's output (faithful, soft), X_d the diffusion/VAE output
(detailed, less faithful). The ResBlock maps the 6-channel concatenation to a
3-channel correction; its last conv and its 1x1 skip start at zero, so an
untrained refiner is exactly the fixed blend w·X_u + (1−w)·X_d.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from ..numbers import check_finite_setting


@dataclass
class RefinerConfig:
    channels: int = 16
    w: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


class Refiner(nn.Module):
    def __init__(self, config: RefinerConfig | None = None, **kwargs):
        super().__init__()
        self.config = cfg = config or RefinerConfig(**kwargs)
        if not 0.0 <= cfg.w <= 1.0:
            raise InputError(f"refiner w={cfg.w}; expected a blend weight in 0..1")
        c = cfg.channels
        self.conv1 = nn.Conv2d(6, c, 3, 1, 1)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)
        self.conv3 = nn.Conv2d(c, 3, 3, 1, 1)
        self.skip = nn.Conv2d(6, 3, 1)
        for m in (self.conv3, self.skip):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x_u: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] each -> [N,3,H,W] (unclamped)."""
        x = torch.cat([x_u, x_d], 1)
        h = F.leaky_relu(self.conv1(x), 0.1)
        h = F.leaky_relu(self.conv2(h), 0.1)
        w = self.config.w
        return w * x_u + (1 - w) * x_d + self.conv3(h) + self.skip(x)


@torch.no_grad()
def refine(x_u: torch.Tensor, x_d: torch.Tensor, refiner: Refiner | None = None, w: float = 0.5,
           color_fix: str = "none", reference: torch.Tensor | None = None, chunk: int = 4) -> torch.Tensor:
    """Refine frames [T,3,H,W] (0..1): the learned refiner, or (refiner=None) the fixed blend with weight w.

    ``color_fix`` ('none', 'adain', 'wavelet') is applied afterwards against
    ``reference`` (default: X_u). Processes ``chunk`` frames at a time.
    """
    from ..ops.colorfix import color_fix as apply_fix
    check_finite_setting(w, "refine blend w")
    for name, x in (("x_u", x_u), ("x_d", x_d)):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            raise InputError(f"refine {name}: expected float frames [T,3,H,W], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"refine {name} contains NaN or infinite values")
    if x_u.shape != x_d.shape:
        raise InputError(f"refine: x_u {tuple(x_u.shape)} and x_d {tuple(x_d.shape)} must have the same shape "
                         f"(resize the upscaler output to the decoded size first)")
    if refiner is None:
        out = w * x_u + (1 - w) * x_d
    else:
        p = next(refiner.parameters())
        out = torch.cat([refiner(x_u[i:i + chunk].to(p), x_d[i:i + chunk].to(p)).to(x_u)
                         for i in range(0, x_u.shape[0], chunk)])
    out = out.clamp(0, 1)
    return apply_fix(out, x_u if reference is None else reference, color_fix)

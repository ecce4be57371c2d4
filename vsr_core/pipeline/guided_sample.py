"""Guided Sample: motion-guided, windowed, tiled diffusion over a video's latents.

StableSR/MGLD-VSR style: the start is the LR latent noised to the last
training step (not pure noise), the network sees the same LR latent as its
structure condition, and after each step motion guidance pulls neighbouring
frames into agreement through the flow. Long clips run in overlapping
temporal windows that are crossfaded; the frame before each window (from the
previous window, at the same step) anchors the guidance across the seam.
Large frames run in overlapping latent tiles with Gaussian aggregation. The
UNet's memory depends on the window and tile size only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..diffusion.model import DiffusionModel
from ..diffusion.motion_guidance import MotionGuidance, make_guide
from ..diffusion.noise import FrameNoise
from ..diffusion.prediction import to_x0_eps
from ..diffusion.samplers import SAMPLERS
from ..diffusion.schedules import ddpm_schedule, q_sample
from ..diffusion.tiles import tiled_denoise
from ..diffusion.windows import WindowBlender, plan_windows
from ..errors import InputError
from ..flow.field import FlowField
from ..progress import Reporter, get_reporter


@dataclass(frozen=True)
class SampleSettings:
    steps: int = 50
    sampler: str = "ddpm"
    eta: float = 0.0                 # DDIM only
    seed: int = 0
    window: int = 5                  # frames sampled together (MGLD-VSR: 5)
    window_overlap: int = 1
    tile: int = 64                   # latent pixels (StableSR: 64, overlap 32)
    tile_overlap: int = 32
    guidance: MotionGuidance = field(default_factory=MotionGuidance)

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise InputError(f"sampler={self.sampler!r}; expected one of {', '.join(SAMPLERS)}")
        if not 0.0 <= self.eta <= 1.0:
            raise InputError(f"eta={self.eta}; expected 0 (deterministic DDIM) to 1")


def guided_sample(lr_latents: torch.Tensor, model: DiffusionModel, settings: SampleSettings = SampleSettings(),
                  flow: FlowField | None = None, reporter: Reporter | None = None) -> torch.Tensor:
    """Sample HR latents [T,C,h,w] (scaled, like lr_latents) for a whole clip.

    lr_latents: VAE latents of the upscaled LR frames, multiplied by the
    latent scale. flow: the clip's VSR_FLOW at any resolution (rescaled to
    latent size here); None or guidance scale 0 samples without guidance.
    """
    if lr_latents.dim() != 4 or lr_latents.shape[0] < 1:
        raise InputError(f"latents have shape {tuple(lr_latents.shape)}; expected [frames, C, h, w]")
    if not torch.isfinite(lr_latents).all():
        raise InputError("latents contain NaN or infinite values")
    t_frames, c, h, w = lr_latents.shape
    if flow is not None and flow.num_frames != t_frames:
        raise InputError(f"flow covers {flow.num_frames} frames but there are {t_frames} latent frames; "
                         f"estimate the flow on the same clip")
    reporter = get_reporter(reporter)
    schedule = ddpm_schedule(settings.steps, model.betas)
    noise = FrameNoise(settings.seed, (c, h, w))
    guiding = flow is not None and settings.guidance.scale > 0 and t_frames > 1
    latent_flow = flow.resized(h, w) if guiding else None
    windows = plan_windows(t_frames, settings.window, settings.window_overlap)
    blender = WindowBlender(windows)
    out = torch.empty_like(lr_latents)
    sampler = SAMPLERS[settings.sampler]
    extra = {"eta": settings.eta} if settings.sampler == "ddim" else {}
    anchors: dict[int, torch.Tensor] = {}
    reporter.start(len(windows) * settings.steps, "guided sample")
    for k, (a, b) in enumerate(windows):
        frame_ids = range(a, b)
        z_lr = lr_latents[a:b]
        next_start = windows[k + 1][0] if k + 1 < len(windows) else None

        def denoise(x, i, z_lr=z_lr, n=b - a):
            reporter.check_interrupt()
            t = int(schedule.timesteps[i])
            ac = float(schedule.alphas_cumprod[i])

            def tile(xt, rows, cols):
                return to_x0_eps(model(xt, t, z_lr[..., rows, cols], n).float(), xt, ac, model.prediction)
            return tiled_denoise(tile, x, settings.tile, settings.tile_overlap)

        guide = None
        first = a - 1 if anchors else a  # the anchor frame joins the guided chain
        if guiding and b - first > 1:
            guide = make_guide(latent_flow.frames(first, b), schedule, settings.guidance, anchors or None)
        recorded: dict[int, torch.Tensor] = {}

        def callback(i, x, a=a, next_start=next_start, recorded=recorded):
            if next_start is not None:
                recorded[i] = x[next_start - 1 - a].detach().clone()
            reporter.update(1)

        start = q_sample(z_lr, int(schedule.timesteps[-1]), schedule.train_alphas_cumprod,
                         noise.frames(frame_ids, settings.steps))
        x = sampler(denoise, start, schedule, lambda i, ids=frame_ids: noise.frames(ids, i),
                    guide=guide, callback=callback, **extra)
        anchors = recorded if guiding else {}
        for f, latent in blender.add(k, x):
            out[f] = latent
    return out

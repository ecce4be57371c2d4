"""Guided Sample: motion-guided, windowed, tiled diffusion over a video's latents.

Every sampler of diffusion/samplers.py's SAMPLERS runs in one windowing/
tiling/guidance loop, inside one of two processes (its entry's `process`):

- "ddpm" (ddpm, ddim; StableSR/MGLD-VSR): the start is the LR latent noised to
  the last training step (not pure noise), the network sees the same LR latent
  as its structure condition and is read as its `prediction` says.
- "resshift" (resshift, blur_resshift; ResShift and SeeClear): few steps
  (default 15) from the prior x_T = y + kappa sqrt(eta_T) z around the LR
  latent y. The network is read as an x0-predictor, fed scale_input(x_t) and
  the LR latent y, with the ResShift step index t as its timestep.

A sampler's options (SampleSettings.options, e.g. {"eta": 0.5} for ddim) are
its keyword arguments; the registry says which shape the process's schedule.

After each step motion guidance pulls neighbouring frames into agreement
through the flow (see diffusion/motion_guidance.py; for ResShift the step
size uses ResShift's own posterior (log-)variance). Long clips run in
overlapping temporal windows that are crossfaded; the frame before each
window (from the previous window, at the same step) anchors the guidance
across the seam; a `Seam` carries that anchor from one call to the next, so a
long video can be sampled segment by segment (pipeline/restore_video.py) as if
in one call. Large frames run in overlapping latent tiles with Gaussian
aggregation. Noise depends on (seed, frame, step) only. The network's memory
depends on the window and tile size only, also with through-model guidance,
whose gradient is taken tile by tile when there are several tiles.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import torch

from ..diffusion import resshift as rs
from ..diffusion.model import DiffusionModel
from ..diffusion.motion_guidance import MotionGuidance, anchored_warping_loss, gradients, make_guide, step_size
from ..diffusion.noise import FrameNoise
from ..diffusion.prediction import to_x0_eps
from ..diffusion.sampler_options import parse_assignments
from ..diffusion.samplers import SAMPLERS, describe_samplers, find_sampler
from ..diffusion.schedules import ddpm_schedule, q_sample
from ..errors import InputError
from ..flow.field import FlowField
from ..ops.tiling import gaussian_weights, tile_boxes, tiled_denoise
from ..ops.windows import WindowBlender, plan_windows
from ..progress import Reporter, get_reporter
from ..settings import check_settings, group, setting


@dataclass(frozen=True)
class SampleSettings:
    steps: int | None = setting(None, "sampling steps, respaced from 1000 (default: the sampler's own, "
                                      "SAMPLERS)", min=1, max=1000)
    sampler: str = setting("ddpm", describe_samplers("; "), choices=SAMPLERS)     # the registry itself: live
    # the sampler's keyword options, e.g. {"eta": 0.5} for ddim; all of them are filled in and checked on creation
    options: Mapping = setting(help="a keyword option of the sampler (repeatable), e.g. --sampler ddim "
                                    "--sampler-option eta=0.5; each sampler's options and defaults are listed "
                                    "under --sampler", default_factory=dict, name="sampler_option", repeat=True,
                               parse=parse_assignments)
    seed: int = setting(0, "noise seed; noise depends only on (seed, frame, step), so windows, tiles and "
                           "segments do not change it", min=0, max=2 ** 64 - 1)
    window: int = setting(5, "frames sampled together (temporal layers see this many; MGLD-VSR: 5)", min=1,
                          max=64)
    window_overlap: int = setting(1, "frames shared by neighbouring windows, crossfaded", min=0, max=63,
                                  cli=False)
    tile_latent: int = setting(64, "tile size in latent cells (x8 pixels for SD's VAE); StableSR uses 64",
                               min=8, max=512, step=8, old_inputs=("tile",))
    tile_overlap_latent: int = setting(32, "latent tile overlap, Gaussian-weighted", min=0, max=256, step=8,
                                       old_inputs=("tile_overlap",), cli=False)
    guidance: MotionGuidance = group(MotionGuidance)

    def __post_init__(self):
        check_settings(self)
        entry = find_sampler(self.sampler)
        if self.steps is None:
            object.__setattr__(self, "steps", entry.steps)
        if not isinstance(self.options, Mapping):
            raise InputError(f"sampler options={self.options!r}; expected a mapping such as {{'eta': 0.5}}")
        object.__setattr__(self, "options", entry.resolve(self.sampler, self.steps, self.options))


# ----------------------------------------------------------------------------
# The processes samplers run in
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Process:
    """A sampling process as the window loop sees it: a schedule, where sampling starts, how the network
    is read, and its sampler (diffusion.samplers' one signature, with `options` such as DDIM's eta).

    schedule: has num_steps and posterior_(log_)variance per index (motion guidance step sizes).
    start(z_lr, noise) -> the sample at the noisiest index.
    network(call, x, i, lr, n) -> (x0, eps) at index i (eps unused by ResShift); differentiable if `call` is.
    """

    schedule: object
    start: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    network: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    sampler: Callable[..., torch.Tensor] | None = None   # set from the registry by _make_process
    options: dict = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return self.schedule.num_steps


def _ddpm_process(settings: SampleSettings, model) -> _Process:
    sch = ddpm_schedule(settings.steps, model.betas)

    def start(z, nz):
        return q_sample(z, int(sch.timesteps[-1]), sch.train_alphas_cumprod, nz)

    def network(call, x, i, lr, n):
        t, ac = int(sch.timesteps[i]), float(sch.alphas_cumprod[i])
        return to_x0_eps(call(x, t, lr, n).float(), x, ac, model.prediction)

    return _Process(sch, start, network)


def _resshift_process(settings: SampleSettings, model, **schedule_options) -> _Process:
    if getattr(model, "prediction", "x0") != "x0":
        others = [n for n, e in SAMPLERS.items() if e.process != "resshift"]
        raise InputError(f"sampler {settings.sampler!r} reads the network as an x0-predictor (ResShift/SeeClear "
                         f"models are), but this model predicts {model.prediction!r}; use {' or '.join(others)}")
    sch = rs.resshift_schedule(settings.steps, **schedule_options)

    def network(call, x, t, lr, n):
        out = call(rs.scale_input(x, t, sch), t, lr, n).float()
        return out, out

    return _Process(sch, lambda z, nz: rs.prior_sample(z, sch, nz), network)


PROCESSES = {"ddpm": _ddpm_process, "resshift": _resshift_process}


def _make_process(settings: SampleSettings, model) -> _Process:
    """The sampler's process with the sampler's own function and options in it."""
    entry = find_sampler(settings.sampler)
    schedule_options, sampler_options = entry.split(settings.options)
    process = PROCESSES[entry.process](settings, model, **schedule_options)
    return replace(process, sampler=entry.function, options=sampler_options)


# ----------------------------------------------------------------------------
# Through-model guidance: d L(x0(x_t)) / d x_t with bounded memory
# ----------------------------------------------------------------------------

def x0_and_loss_gradient(net: Callable[[torch.Tensor, slice, slice], tuple[torch.Tensor, torch.Tensor]],
                         x: torch.Tensor, tile: int, overlap: int,
                         loss: Callable[[torch.Tensor], torch.Tensor]):
    """(x0, eps, dL/dx) for the tiled denoiser of ops.tiling.tiled_denoise and a loss on its x0.

    With one tile, one differentiable forward. With several, the aggregated x0
    is sum_k w_k x0_k(x_k) / sum_k w_k, so dL/dx = sum_k J_k^T ((w_k / W) dL/dx0)
    restricted to tile k: the tiles are re-run one at a time with gradients
    (memory of one tile), the cost being a second forward per tile.
    """
    h, w = x.shape[-2:]
    if tile >= h and tile >= w:
        with gradients():
            leaf = x.detach().clone().requires_grad_(True)
            x0, eps = net(leaf, slice(0, h), slice(0, w))
            _check_differentiable(x0)
            (grad,) = torch.autograd.grad(loss(x0), leaf)
        return x0.detach(), eps.detach(), grad
    with torch.no_grad():
        x0, eps = tiled_denoise(net, x, tile, overlap)
    with gradients():
        x0_leaf = x0.detach().clone().requires_grad_(True)
        (g0,) = torch.autograd.grad(loss(x0_leaf), x0_leaf)
    boxes = tile_boxes(h, w, tile, overlap)
    weights = [gaussian_weights(r.stop - r.start, c.stop - c.start).to(x) for r, c in boxes]
    weight_sum = x.new_zeros((h, w))
    for (r, c), wk in zip(boxes, weights):
        weight_sum[r, c] += wk
    grad = torch.zeros_like(x)
    for (r, c), wk in zip(boxes, weights):
        with gradients():
            leaf = x[..., r, c].detach().clone().requires_grad_(True)
            x0k, _ = net(leaf, r, c)
            _check_differentiable(x0k)
            (gk,) = torch.autograd.grad(x0k, leaf, grad_outputs=wk / weight_sum[r, c] * g0[..., r, c])
        grad[..., r, c] += gk
    return x0, eps, grad


def _check_differentiable(x0: torch.Tensor) -> None:
    if not x0.requires_grad:
        raise InputError("motion guidance through_model=True: the model's output carries no gradient with "
                         "respect to its input (does it run under torch.no_grad?); use through_model=False")


class _ThroughModelGuide:
    """Per-window denoise + guide pair for MotionGuidance(through_model=True).

    denoise(x, i) computes x0 and, at guided steps, g = d L(x0(x_i)) / d x_i
    (L = the warping loss on the window's x0 predictions, anchored on the
    previous window's x0 prediction at the same step); guide(x, i) then applies
    x_{i-1} <- x_{i-1} - step_i * g, the DPS-style update.
    """

    def __init__(self, net_for, tile, overlap, flow, schedule, g: MotionGuidance, anchors, record):
        self.net_for, self.tile, self.overlap = net_for, tile, overlap
        self.flow, self.schedule, self.g, self.anchors, self.record = flow, schedule, g, anchors, record
        self.pending: tuple[int, torch.Tensor] | None = None

    def denoise(self, x, i):
        size = step_size(self.g, self.schedule, i) if self.flow is not None else 0.0
        net = self.net_for(i)
        if size > 0:
            anchor = self.anchors.get(i) if self.anchors else None
            if self.anchors and anchor is None:
                raise InputError(f"motion guidance: no anchor latent for step {i}")
            x0, eps, grad = x0_and_loss_gradient(
                net, x, self.tile, self.overlap,
                lambda z: anchored_warping_loss(z, self.flow, self.g.reference_offset, anchor))
            self.pending = (i, size * grad)
        else:
            x0, eps = tiled_denoise(net, x, self.tile, self.overlap)
        self.record(i, x0)
        return x0, eps

    def guide(self, x, i):
        if self.pending is not None and self.pending[0] == i:
            x = (x.float() - self.pending[1]).to(x.dtype)
        self.pending = None
        return x


# ----------------------------------------------------------------------------
# The window loop
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Seam:
    """Where a segment sits in its video, and the guidance state it takes from the segment before.

    `first_frame` is the segment's first frame in the video: noise is drawn
    per video frame, so segments see the noise one call over the video would.
    `anchors` ({step: latent [C,h,w]}) are the previous segment's latents (x0
    predictions with through-model guidance) of the frame just before this
    segment, and the flow passed with them covers that frame too (one frame
    more than the latents). `export_frame`: the frame (the one before the next
    segment) whose per-step latents `sample_segment` hands back for the next
    segment's Seam; None for the last segment.
    """

    anchors: dict[int, torch.Tensor] = field(default_factory=dict)
    export_frame: int | None = None
    first_frame: int = 0


def _check_sample_inputs(lr_latents: torch.Tensor, flow: FlowField | None, seam: Seam) -> None:
    if lr_latents.dim() != 4 or lr_latents.shape[0] < 1:
        raise InputError(f"latents have shape {tuple(lr_latents.shape)}; expected [frames, C, h, w]")
    if not torch.isfinite(lr_latents).all():
        raise InputError("latents contain NaN or infinite values")
    frames, lead = lr_latents.shape[0], 1 if seam.anchors else 0
    if flow is not None and flow.num_frames != frames + lead:
        extra = " and the frame before them (the seam anchor)" if lead else ""
        raise InputError(f"flow covers {flow.num_frames} frames but there are {frames} latent frames{extra}; "
                         f"estimate the flow on the same clip")
    if seam.export_frame is not None and not 0 <= seam.export_frame < frames:
        raise InputError(f"seam.export_frame={seam.export_frame}; expected a frame index below {frames}")


@dataclass
class _Window:
    """One temporal window's share of the sampling: its frames, their LR latents and the guidance inputs."""

    first: int                       # index in the segment
    stop: int
    anchor_frame: int | None         # frame whose per-step latents anchor what follows (None: no one needs them)
    flow: FlowField | None           # the window's flow (from the anchored frame before it, if any)


def _sample_window(win: _Window, z_lr: torch.Tensor, model, process: _Process, settings: SampleSettings,
                   noise: FrameNoise, frame_ids: range, anchors: dict, reporter: Reporter):
    """-> (the window's sampled latents, {step: latent of win.anchor_frame} for what follows)."""
    g, n = settings.guidance, win.stop - win.first
    recorded: dict[int, torch.Tensor] = {}

    def net_for(i):
        reporter.check_interrupt()
        return lambda xt, rows, cols: process.network(model, xt, i, z_lr[..., rows, cols], n)

    def record(i, x):
        if win.anchor_frame is not None:
            recorded[i] = x[win.anchor_frame - win.first].detach().clone()

    if win.flow is not None and g.through_model:
        # Anchors are the previous window's x0 predictions (the loss is on x0 here).
        tm = _ThroughModelGuide(net_for, settings.tile_latent, settings.tile_overlap_latent, win.flow,
                                process.schedule, g, anchors or None, record)
        denoise, guide = tm.denoise, tm.guide

        def callback(i, x):
            reporter.update(1)
    else:
        def denoise(x, i):
            return tiled_denoise(net_for(i), x, settings.tile_latent, settings.tile_overlap_latent)
        guide = make_guide(win.flow, process.schedule, g, anchors or None) if win.flow is not None else None

        def callback(i, x):
            record(i, x)
            reporter.update(1)

    start = process.start(z_lr, noise.frames(frame_ids, process.num_steps))
    x = process.sampler(denoise, start, process.schedule, lambda i: noise.frames(frame_ids, i), y=z_lr,
                        guide=guide, callback=callback, **process.options)
    return x, recorded


@torch.no_grad()  # gradients only where guidance asks for them (motion_guidance.gradients)
def sample_segment(lr_latents: torch.Tensor, model: DiffusionModel, settings: SampleSettings = SampleSettings(),
                   flow: FlowField | None = None, reporter: Reporter | None = None,
                   seam: Seam = Seam()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """`guided_sample` of one segment of a video: (latents, the per-step latents of `seam.export_frame`
    that anchor the next segment's Seam; {} when there is none or guidance is off)."""
    _check_sample_inputs(lr_latents, flow, seam)
    reporter = get_reporter(reporter)
    process = _make_process(settings, model)
    t_frames, c, h, w = lr_latents.shape
    lead = 1 if seam.anchors else 0                     # the flow starts at the previous segment's frame
    guiding = flow is not None and settings.guidance.scale > 0 and t_frames + lead > 1
    latent_flow = flow.resized(h, w) if guiding else None
    windows = plan_windows(t_frames, settings.window, settings.window_overlap)
    if seam.export_frame is not None and seam.export_frame < windows[-1][0]:
        raise InputError(f"seam.export_frame={seam.export_frame} is not in the last window {windows[-1]}; "
                         f"expected a frame within the last {settings.window} frames")
    blender, noise = WindowBlender(windows), FrameNoise(settings.seed, (c, h, w))
    out = torch.empty_like(lr_latents)
    anchors = dict(seam.anchors) if lead and guiding else {}
    reporter.start(len(windows) * process.num_steps, "guided sample")
    for k, (a, b) in enumerate(windows):
        # The frame whose per-step latents anchor the next window (or the next segment).
        following = windows[k + 1][0] - 1 if k + 1 < len(windows) else seam.export_frame
        first = a - 1 if anchors else a                 # the anchor frame joins the guided chain
        window_flow = latent_flow.frames(first + lead, b + lead) if guiding and b - first > 1 else None
        win = _Window(a, b, following if guiding else None, window_flow)
        frame_ids = range(seam.first_frame + a, seam.first_frame + b)
        x, anchors = _sample_window(win, lr_latents[a:b], model, process, settings, noise, frame_ids, anchors,
                                    reporter)
        for f, latent in blender.add(k, x):
            out[f] = latent
    return out, (anchors if seam.export_frame is not None else {})


def guided_sample(lr_latents: torch.Tensor, model: DiffusionModel, settings: SampleSettings = SampleSettings(),
                  flow: FlowField | None = None, reporter: Reporter | None = None,
                  seam: Seam = Seam()) -> torch.Tensor:
    """Sample HR latents [T,C,h,w] (scaled, like lr_latents) for a whole clip.

    lr_latents: VAE latents of the upscaled LR frames, multiplied by the
    latent scale. flow: the clip's VSR_FLOW at any resolution (rescaled to
    latent size here); None or guidance scale 0 samples without guidance.
    seam: where this clip sits in a longer video and the guidance anchor from
    the segment before (see `Seam`; `sample_segment` also returns the anchor
    for the next one).
    """
    return sample_segment(lr_latents, model, settings, flow, reporter, seam)[0]

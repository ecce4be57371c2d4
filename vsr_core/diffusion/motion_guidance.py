"""Motion guidance (MGLD-VSR): after each sampling step, a gradient step on the
flow-warped latent consistency loss between neighbouring frames.

The loss is computed on the latents the step produced; its gradient goes
through the warping only (never through the denoiser), so guidance costs a few
grid_samples per step. Asked for (MotionGuidance(through_model=True)), the
loss is instead taken on the network's x0 prediction and differentiated
through the network with respect to its input x_t (universal-guidance / DPS
style); the sampler pipeline (vsr_core.pipeline.guided_sample) runs that
variant, since it needs the network.

Conventions follow vsr_core.flow.FlowField: backward_warp(z[i+1], forward[i])
should match z[i] where occlusion_forward[i] is 0, and backward_warp(z[i],
backward[i]) should match z[i+1] where occlusion_backward[i] is 0.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..errors import InputError
from ..flow.field import FlowField
from ..flow.warp import MGLD_WARP, backward_warp
from ..settings import check_settings, setting
from .schedules import DDPMSchedule

RULES = ("log_variance", "variance")


@dataclass(frozen=True)
class MotionGuidance:
    """How to guide.

    scale: step multiplier (MGLD's scripts use 10; 0 turns guidance off).
    rule: 'log_variance' is the reference code's step, scale*|log sigma_t^2|
      (460 x scale at the last DDPM step, where ldm clips sigma^2 to 1e-20);
      'variance' is the paper's scale*sigma_t^2, which vanishes as sigma does.
    reference_offset: reproduce the reference code's loss exactly, including
      its one-frame flow index offset and the end terms that pull a latent
      towards zero; off by default (each frame is compared with its true
      neighbour through the flow between them).
    start, end: the fraction of the sampling run that is guided (0 is the first,
      noisiest step, 1 the last).
    through_model: take the loss on the network's x0 prediction x0(x_t) and its
      gradient through the network, d L(x0(x_t)) / d x_t, applied to the
      sampled x_{t-1} with the same step size (DPS-style). Costs one backward
      pass through the network per guided step; off by default.
    """

    scale: float = setting(10.0, "motion guidance strength (MGLD-VSR: 10; 0 turns it off)", min=0.0,
                           max=1000.0, step=0.1, name="guidance_scale", old_flags=("--guidance",))
    rule: str = setting("log_variance", "log_variance: MGLD-VSR code's step; variance: the paper's",
                        choices=RULES, name="guidance_rule", cli=False)
    reference_offset: bool = setting(False, "reproduce the MGLD-VSR code's one-frame flow offset exactly",
                                     name="mgld_flow_offset", old_inputs=("reference_offset",), cli=False)
    start: float = setting(0.0, "fraction of the run where guidance starts (0: first step)", min=0.0, max=1.0,
                           step=0.01, name="guidance_start", cli=False)
    end: float = setting(1.0, "fraction of the run where guidance ends (1: last step)", min=0.0, max=1.0,
                         step=0.01, name="guidance_end", cli=False)
    through_model: bool = setting(False, "take the warping loss on the model's clean prediction and "
                                         "backpropagate through the UNet (slower, about 2x); off follows "
                                         "MGLD-VSR", name="guide_through_network",
                                  old_inputs=("guidance_through_model",), cli=False)

    def __post_init__(self):
        check_settings(self)
        if self.scale < 0:
            raise InputError(f"guidance scale={self.scale}; expected >= 0 (0 disables guidance)")
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise InputError(f"guidance start={self.start}, end={self.end}; expected 0 <= start <= end <= 1")


def _masked_l1(a: torch.Tensor, b: torch.Tensor, occlusion: torch.Tensor) -> torch.Tensor:
    keep = 1.0 - occlusion
    return (keep * a - keep * b).abs().mean()


def warping_loss(z: torch.Tensor, flow: FlowField, reference_offset: bool = False) -> torch.Tensor:
    """Bidirectional masked L1 between each latent frame and its warped neighbours.

    z: [T,C,h,w] latents; flow: the same T frames at latent size (h,w).
    """
    t = z.shape[0]
    if flow.num_frames != t or flow.size != tuple(z.shape[-2:]):
        raise InputError(f"flow covers {flow.num_frames} frames at {flow.height}x{flow.width}, latents are "
                         f"{t} frames at {z.shape[-2]}x{z.shape[-1]}; expected the same (use FlowField.resized)")
    if t < 2:
        return z.new_zeros(())
    fwd, bwd = flow.forward.to(z), flow.backward.to(z)
    occ_f, occ_b = flow.occlusion_forward.to(z), flow.occlusion_backward.to(z)
    if not reference_offset:
        to_prev = backward_warp(z[1:], fwd, **MGLD_WARP)    # frame i+1 seen from frame i
        to_next = backward_warp(z[:-1], bwd, **MGLD_WARP)   # frame i seen from frame i+1
        loss = z.new_zeros(())
        for i in range(t - 1):
            loss = loss + _masked_l1(to_prev[i], z[i], occ_f[i]) + _masked_l1(to_next[i], z[i + 1], occ_b[i])
        return loss
    # MGLD compute_temporal_condition_v4, term for term (methods.md 2.2).
    loss = z.new_zeros(())
    for i in range(t - 1):
        p = backward_warp(z[i + 1:i + 2], fwd[i + 1:i + 2], **MGLD_WARP)[0] if i + 1 < t - 1 else torch.zeros_like(z[i])
        loss = loss + _masked_l1(p, z[i], occ_f[i])
    for i in range(1, t):
        q = backward_warp(z[i - 1:i], bwd[i - 2:i - 1], **MGLD_WARP)[0] if i >= 2 else torch.zeros_like(z[i])
        loss = loss + _masked_l1(q, z[i], occ_b[i - 1])
    return loss


def anchored_warping_loss(z: torch.Tensor, flow: FlowField, reference_offset: bool = False,
                          anchor: torch.Tensor | None = None) -> torch.Tensor:
    """warping_loss of z, with an optional fixed frame `anchor` [C,h,w] placed before z's first frame
    (`flow` then covers it too); differentiable in z."""
    full = z if anchor is None else torch.cat([anchor.detach().to(z)[None], z])
    return warping_loss(full, flow, reference_offset)


@contextmanager
def gradients():
    """Autograd on, even inside torch.inference_mode: ComfyUI runs every node in it, and
    there enable_grad alone still gives tensors that cannot require grad."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def normal_tensor(t: torch.Tensor) -> torch.Tensor:
    """A copy usable by autograd if `t` was made in inference mode (else `t` itself)."""
    return t.clone() if t.is_inference() else t


def guided(z: torch.Tensor, flow: FlowField, step_size: float, reference_offset: bool = False,
           anchor: torch.Tensor | None = None) -> torch.Tensor:
    """One descent step z - step_size * dL/dz on the warping loss.

    anchor: a fixed latent frame just before z (the previous window's, at the
    same step); `flow` then covers it too, and it pulls z's first frame
    towards continuity across the window seam without itself moving.
    """
    with gradients():
        leaf = z.detach().float().clone().requires_grad_(True)
        anchor = None if anchor is None else normal_tensor(anchor)
        loss = anchored_warping_loss(leaf, flow, reference_offset, anchor)
        (grad,) = torch.autograd.grad(loss, leaf)
    return (z.float() - step_size * grad).to(z.dtype)


def step_size(g: MotionGuidance, schedule: DDPMSchedule, i: int) -> float:
    """The step at schedule index i, or 0 when the step is outside [start, end].

    `schedule` is anything with num_steps, posterior_variance and
    posterior_log_variance per index: a DDPMSchedule, or a ResShiftSchedule
    (whose own posterior variance then sets the step). A log-variance above 0
    (possible for ResShift with a large kappa) gives step 0, never ascent.
    """
    progress = 1.0 - i / max(schedule.num_steps - 1, 1)  # 0 at the first (noisiest) step
    if not g.start <= progress <= g.end:
        return 0.0
    if g.rule == "log_variance":
        return g.scale * max(-float(schedule.posterior_log_variance[i]), 0.0)
    return g.scale * float(schedule.posterior_variance[i])


def make_guide(flow: FlowField, schedule: DDPMSchedule, g: MotionGuidance, anchors: dict | None = None):
    """A sampler `guide(x, i)` applying motion guidance to latents x [T,C,h,w].

    anchors: {step index: fixed latent of the frame before x} (see `guided`);
    when given, `flow` covers that frame as well.
    """
    def guide(x: torch.Tensor, i: int) -> torch.Tensor:
        size = step_size(g, schedule, i)
        anchor = anchors.get(i) if anchors else None
        if anchors and anchor is None:
            raise InputError(f"motion guidance: no anchor latent for step {i}")
        return guided(x, flow, size, g.reference_offset, anchor) if size > 0 else x
    return guide

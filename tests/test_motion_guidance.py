"""Motion guidance: the warping loss, the reference variant, and the step rules."""
from __future__ import annotations

import pytest
import torch

from vsr_core.diffusion.motion_guidance import MotionGuidance, guided, make_guide, step_size, warping_loss
from vsr_core.diffusion.schedules import ddpm_schedule
from vsr_core.errors import InputError
from vsr_core.flow import FlowField


def _translating(t=4, shift=1, c=4, h=16, w=20, seed=0):
    """Latents of a pattern moving `shift` px right per frame, with exact flows and no occlusion."""
    base = torch.randn(c, h, w + shift * t, generator=torch.Generator().manual_seed(seed))
    z = torch.stack([base[:, :, shift * (t - k): shift * (t - k) + w] for k in range(t)])
    fwd = torch.zeros(t - 1, 2, h, w)
    fwd[:, 0] = shift      # pixel p of frame i is at p + shift in frame i+1
    bwd = -fwd
    occ = torch.zeros(t - 1, 1, h, w)
    occ[..., -shift:] = 1  # pixels leaving the frame
    occ_b = torch.zeros(t - 1, 1, h, w)
    occ_b[..., :shift] = 1
    return z, FlowField(fwd, bwd, occ, occ_b, method="exact")


def test_consistent_latents_have_zero_loss_and_noise_does_not():
    z, flow = _translating()
    assert warping_loss(z, flow).item() == pytest.approx(0.0, abs=1e-6)
    noisy = z + 0.5 * torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    assert warping_loss(noisy, flow).item() > 0.1


def test_reference_variant_is_not_zero_on_consistent_latents():
    """The reference's end terms pull towards zero and its flows are one index off."""
    z, flow = _translating()
    assert warping_loss(z, flow, reference_offset=True).item() > 0.1


def test_a_guidance_step_lowers_the_loss():
    z, flow = _translating()
    noisy = z + 0.5 * torch.randn(z.shape, generator=torch.Generator().manual_seed(2))
    before = warping_loss(noisy, flow).item()
    after = warping_loss(guided(noisy, flow, step_size=2.0), flow).item()
    assert after < before


def test_step_rules_and_window_of_steps():
    s = ddpm_schedule(50)
    ref = MotionGuidance(scale=10.0)
    assert step_size(ref, s, 0) == pytest.approx(460.517, abs=1e-2)        # log(1e-20) clip at t=0
    assert step_size(ref, s, 49) == pytest.approx(-10 * float(s.posterior_log_variance[49]))
    paper = MotionGuidance(scale=10.0, rule="variance")
    assert step_size(paper, s, 0) == pytest.approx(0.0, abs=1e-12)
    late = MotionGuidance(start=0.5)
    assert step_size(late, s, 49) == 0.0 and step_size(late, s, 0) > 0
    z, flow = _translating()
    assert torch.equal(make_guide(flow, s, MotionGuidance(scale=0.0))(z, 10), z)


def test_bad_guidance_settings_and_mismatched_flow():
    with pytest.raises(InputError, match="rule"):
        MotionGuidance(rule="sigma")
    with pytest.raises(InputError, match="scale"):
        MotionGuidance(scale=-1)
    with pytest.raises(InputError, match="start"):
        MotionGuidance(start=0.8, end=0.2)
    z, flow = _translating()
    with pytest.raises(InputError, match="use FlowField.resized"):
        warping_loss(z[:, :, :8], flow)

"""ResShift additions: the loop from a given start, and motion-guidance step sizes on its schedule."""
from __future__ import annotations

import pytest
import torch

from vsr_core.diffusion import resshift as rs
from vsr_core.diffusion.motion_guidance import MotionGuidance, step_size


def test_sample_resshift_is_the_loop_from_its_prior_sample():
    s = rs.resshift_schedule(15)
    y = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = {i: torch.randn(y.shape, generator=torch.Generator().manual_seed(10 + i)) for i in range(16)}
    net = lambda x, t: torch.tanh(x) + 0.01 * t  # noqa: E731  (sees the scaled input)
    calls = []
    a = rs.sample_resshift(net, y, s, noise.get)
    b = rs.sample_resshift_from(lambda x, t: calls.append(t) or (net(rs.scale_input(x, t, s), t), None),
                                rs.prior_sample(y, s, noise[15]), s, noise.get)
    assert torch.equal(a, b) and calls == list(range(14, -1, -1))


def test_guidance_steps_use_resshifts_own_posterior_variance():
    s = rs.resshift_schedule(15)
    g = MotionGuidance(scale=10.0)
    for t in (1, 7, 14):
        assert step_size(g, s, t) == pytest.approx(-10.0 * float(s.posterior_log_variance[t]))
        assert step_size(MotionGuidance(scale=10.0, rule="variance"), s, t) == pytest.approx(
            10.0 * float(s.posterior_variance[t]))
    assert step_size(g, s, 0) == pytest.approx(step_size(g, s, 1))  # t=0's log-variance is clipped to t=1's
    assert step_size(MotionGuidance(scale=10.0, rule="variance"), s, 0) == 0.0
    big = rs.resshift_schedule(15, kappa=8.0)  # log-variance above 0 at the noisy end: no ascent
    assert float(big.posterior_log_variance[14]) > 0 and step_size(g, big, 14) == 0.0

"""SATeCo's refiner: X_H = w X_u + (1-w) X_d + ResBlock([X_u, X_d]), and the refine() entry point."""

import pytest
import torch

from vsr_core.errors import InputError
from vsr_core.models.refiner import Refiner, RefinerConfig, refine


def pair(t=3, h=20, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(t, 3, h, w, generator=g) * 0.8 + 0.1, torch.rand(t, 3, h, w, generator=g) * 0.8 + 0.1


def test_untrained_refiner_is_the_fixed_blend_and_formula_holds():
    x_u, x_d = pair()
    r = Refiner().eval()
    assert torch.allclose(refine(x_u, x_d, r), 0.5 * x_u + 0.5 * x_d, atol=1e-6)
    assert torch.allclose(refine(x_u, x_d, None, w=0.7), 0.7 * x_u + 0.3 * x_d, atol=1e-6)
    # with trained-looking weights, output - blend is exactly the ResBlock's correction
    torch.manual_seed(0)
    for p in r.parameters():
        p.data.normal_(0, 0.05)
    with torch.no_grad():
        corr = r.conv3(torch.nn.functional.leaky_relu(r.conv2(torch.nn.functional.leaky_relu(
            r.conv1(torch.cat([x_u, x_d], 1)), 0.1)), 0.1)) + r.skip(torch.cat([x_u, x_d], 1))
        assert torch.allclose(r(x_u, x_d), 0.5 * x_u + 0.5 * x_d + corr, atol=1e-6)
    # chunking does not change the result
    assert torch.allclose(refine(x_u, x_d, r, chunk=1), refine(x_u, x_d, r, chunk=3), atol=1e-6)


def test_refine_with_colour_fix_and_bad_input():
    x_u, x_d = pair()
    out = refine(x_u, x_d, None, color_fix="adain")
    assert torch.allclose(out.flatten(2).mean(2), x_u.flatten(2).mean(2), atol=1e-3)   # up to clamping
    with pytest.raises(InputError, match="same shape"):
        refine(x_u, x_d[:, :, :10])
    with pytest.raises(InputError, match="NaN"):
        refine(x_u * float("nan"), x_d)
    with pytest.raises(InputError, match="0..1"):
        Refiner(RefinerConfig(w=1.5))


def test_shipped_refiner_loads_if_present():
    from vsr_core.checkpoints.shipped import has_shipped, load_refiner
    if not has_shipped("refiner"):
        pytest.skip("no shipped refiner")
    r = load_refiner()
    assert r.card["steps"] > 0 and "SIMULATED" in r.card["data"]["x_d"]
    x_u, x_d = pair()
    assert refine(x_u, x_d, r).shape == x_u.shape

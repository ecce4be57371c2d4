"""Colour fix definitions (StableSR wavelet_color_fix.py): AdaIN and wavelet."""
import pytest
import torch

from vsr_core.ops.colorfix import adain_color_fix, color_fix, wavelet_color_fix, wavelet_decomposition
from vsr_core.errors import InputError


def smooth_clip(t=2, h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(t, 3, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0.2, 0.8)


def test_adain_matches_reference_mean_and_std_per_frame_and_channel():
    g = torch.Generator().manual_seed(1)
    out = torch.rand(3, 3, 32, 40, generator=g) * 0.5 + 0.1
    ref = torch.rand(3, 3, 32, 40, generator=g) * 0.3 + 0.4
    y = adain_color_fix(out, ref, clamp=False)
    fy, fr = y.flatten(2), ref.flatten(2)
    assert torch.allclose(fy.mean(2), fr.mean(2), atol=1e-5)
    # eps = 1e-5 on the variance, unbiased variance as torch.var / calc_mean_std
    fo = out.flatten(2)
    expect_std = fo.std(2) * (fr.var(2) + 1e-5).sqrt() / (fo.var(2) + 1e-5).sqrt()
    assert torch.allclose(fy.std(2), expect_std, atol=1e-5)
    assert torch.allclose(fy.std(2), fr.std(2), atol=1e-3)


def test_wavelet_identity_and_removes_a_colour_cast():
    x = smooth_clip()
    assert torch.allclose(wavelet_color_fix(x, x, clamp=False), x, atol=1e-6)
    cast = torch.tensor([0.08, -0.05, 0.03]).view(1, 3, 1, 1)
    # the output has a colour cast (a low frequency); the reference has none
    assert torch.allclose(wavelet_color_fix(x + cast, x, clamp=False), x, atol=1e-5)


def test_wavelet_keeps_high_frequencies_of_the_input_and_low_of_the_reference():
    ref = smooth_clip(seed=3)
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(64), indexing="ij")
    checker = 0.05 * ((yy + xx) % 2 * 2 - 1).float()        # Nyquist texture: all high frequency
    out = ref + 0.05 + checker                                # brighter (low) + texture (high)
    y = wavelet_color_fix(out, ref, clamp=False)
    inner = (..., slice(20, -20), slice(20, -20))            # the 5-level support is 2+4+8+16+32 wide
    high_y, low_y = wavelet_decomposition(y)
    high_o, _ = wavelet_decomposition(out)
    _, low_r = wavelet_decomposition(ref)
    assert torch.allclose(y[inner], (high_o + low_r)[inner], atol=1e-6)
    assert (y - ref - checker)[inner].abs().max() < 1e-4


def test_reference_is_resized_and_dispatch():
    out = smooth_clip(h=64, w=64)
    lr = torch.nn.functional.avg_pool2d(out, 4)
    assert wavelet_color_fix(out, lr).shape == out.shape
    assert color_fix(out, lr, "none") is out
    assert color_fix(out, lr, "adain").shape == out.shape
    assert adain_color_fix(out[0], lr[0]).shape == out[0].shape
    with pytest.raises(InputError, match="expected one of"):
        color_fix(out, lr, "histogram")
    with pytest.raises(InputError, match="frames"):
        adain_color_fix(out, lr[:1])

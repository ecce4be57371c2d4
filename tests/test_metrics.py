"""Metric conventions: BasicSR PSNR-Y/SSIM-Y (BT.601 limited range, 0..255, crop 0) and E_warp."""
import math

import numpy as np
import pytest
import torch

from vsr_core.errors import InputError
from vsr_core.metrics import psnr_y, rgb_to_y, ssim_y, warping_error


def gray(v, t=2, h=16, w=16):
    return np.full((t, h, w, 3), v, dtype=np.uint8)


def test_y_is_bt601_limited_range():
    assert float(rgb_to_y(torch.zeros(3, 1, 1))) == pytest.approx(16.0)
    assert float(rgb_to_y(torch.full((3, 1, 1), 255.0))) == pytest.approx(235.0)


def test_psnr_y_on_known_inputs():
    # gray 100 vs gray 110: delta Y = 10 * 219 / 255 everywhere
    expected = 20 * math.log10(255 / (10 * 219 / 255))
    assert psnr_y(gray(110), gray(100)) == pytest.approx(expected, abs=1e-6)
    # black vs white: delta Y = 219
    assert psnr_y(gray(255), gray(0)) == pytest.approx(20 * math.log10(255 / 219), abs=1e-6)
    assert psnr_y(gray(7), gray(7)) == math.inf


def test_psnr_y_float_and_uint8_agree_and_rounding():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
    assert psnr_y(ta, tb) == pytest.approx(psnr_y(a, b), abs=1e-9)
    # mean of per-frame PSNRs, not PSNR of the mean MSE
    per = [psnr_y(a[i:i + 1], b[i:i + 1]) for i in range(3)]
    assert psnr_y(a, b) == pytest.approx(float(np.mean(per)))


def test_crop_border_and_ssim():
    a = gray(100, h=32, w=32)
    b = a.copy()
    b[:, :2] = 0                                # damage only a 2-pixel border
    assert psnr_y(b, a, crop_border=2) == math.inf
    assert psnr_y(b, a) < 30
    assert ssim_y(a, a) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    noisy = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert ssim_y(noisy, a) < 0.9


def test_bad_inputs():
    with pytest.raises(InputError, match="same shape"):
        psnr_y(gray(1, h=8), gray(1, h=9))
    with pytest.raises(InputError, match="NaN"):
        psnr_y(torch.full((1, 3, 8, 8), float("nan")), torch.zeros(1, 3, 8, 8))


def test_warping_error_zero_for_exact_motion_and_positive_for_flicker():
    rng = np.random.default_rng(2)
    base = torch.from_numpy(rng.random((3, 40, 48))).float()
    # frame t+1 is frame t shifted right by 2 px: pixel p of frame t is at p + (2, 0) in t+1
    frames = torch.stack([torch.roll(base, 2 * t, dims=2) for t in range(4)])
    flow = torch.zeros(3, 2, 40, 48)
    flow[:, 0] = 2.0
    assert warping_error(frames, flow) < 1e-10     # wrapped column lands outside, masked
    flicker = frames + 0.1 * torch.from_numpy(rng.standard_normal(frames.shape)).float()
    assert warping_error(flicker.clamp(0, 1), flow) > 1e-3
    with pytest.raises(InputError, match="expected"):
        warping_error(frames, flow[:2])

"""Load Upscaler, Upscale, Refine and Color Fix through the V1 contract."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vsr_core.data import CameraPath, photo, virtual_camera_clip
from vsr_core.metrics import psnr_y
from conftest import load_node_pack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def classes():
    return load_node_pack(str(ROOT))


@pytest.fixture(scope="module")
def hr_and_lr():
    hr = torch.from_numpy(virtual_camera_clip(photo("coffee"), 4, (96, 128), CameraPath(pan=(2.0, 1.0)))).float() / 255
    lr = F.interpolate(hr.permute(0, 3, 1, 2), scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
    return hr, lr.permute(0, 2, 3, 1).contiguous()


def test_shipped_upscaler_beats_bicubic_through_the_nodes(classes, hr_and_lr):
    hr, lr = hr_and_lr
    (upscaler,) = classes["VSR_LoadUpscaler"]().load("default (shipped x4)")
    (out,) = classes["VSR_Upscale"]().upscale(lr, upscaler, 4, True, 12, 2, 512, 0.0)
    assert out.shape == hr.shape
    bicubic = F.interpolate(lr.permute(0, 3, 1, 2), scale_factor=4, mode="bicubic").clamp(0, 1).permute(0, 2, 3, 1)
    assert psnr_y(out.permute(0, 3, 1, 2), hr.permute(0, 3, 1, 2)) > \
        psnr_y(bicubic.permute(0, 3, 1, 2), hr.permute(0, 3, 1, 2)) + 0.5
    (x2,) = classes["VSR_Upscale"]().upscale(lr, upscaler, 2, False, 3, 1, 512, 0.0)
    assert x2.shape == (4, 48, 64, 3)


def test_a_core_upscale_model_is_run_per_frame_then_stabilised(classes, hr_and_lr, monkeypatch):
    """A stand-in for a spandrel descriptor from core Load Upscale Model (x4, nearest)."""
    _hr, lr = hr_and_lr

    class Descriptor:
        scale = 4
        model = torch.nn.Identity()

        def __call__(self, x):
            return F.interpolate(x, scale_factor=4, mode="nearest")

        def to(self, device):
            return self

    comfy = types.ModuleType("comfy")
    comfy.model_management = types.SimpleNamespace(get_torch_device=lambda: torch.device("cpu"))
    comfy.utils = types.SimpleNamespace(tiled_scale=lambda x, fn, **kw: fn(x))
    bridge = sys.modules[classes["VSR_Upscale"].__module__.rsplit(".", 1)[0] + ".comfy_bridge"]
    monkeypatch.setattr(bridge, "comfy", comfy, raising=False)
    (out,) = classes["VSR_Upscale"]().upscale(lr, Descriptor(), 2, True, 12, 2, 512, 0.0)
    assert out.shape == (4, 48, 64, 3) and 0 <= out.min() and out.max() <= 1


def test_refine_and_color_fix(classes, hr_and_lr):
    hr, _lr = hr_and_lr
    x_d = (hr * 0.8 + 0.1).clamp(0, 1)
    (blend,) = classes["VSR_Refine"]().refine(hr, x_d, "fixed blend (no weights)", 0.5, "none")
    torch.testing.assert_close(blend, (0.5 * hr + 0.5 * x_d).clamp(0, 1))
    (learned,) = classes["VSR_Refine"]().refine(hr, x_d, "default (shipped refiner)", 0.5, "wavelet")
    assert learned.shape == hr.shape
    (fixed,) = classes["VSR_ColorFix"]().fix(x_d, hr, "adain")
    assert (fixed.mean((0, 1, 2)) - hr.mean((0, 1, 2))).abs().max() < 1e-3
    with pytest.raises(ValueError, match="same shape"):
        classes["VSR_Refine"]().refine(hr, x_d[:, :64], "fixed blend (no weights)", 0.5, "none")
    with pytest.raises(ValueError, match="expected the same"):
        classes["VSR_ColorFix"]().fix(x_d, hr[:2], "adain")


def test_upscale_gives_up_with_a_clear_error_when_even_the_smallest_pieces_do_not_fit(classes, hr_and_lr,
                                                                                      capsys):
    from vsr_core.pipeline.memory_fallback import OutOfMemory
    _hr, lr = hr_and_lr
    (upscaler,) = classes["VSR_LoadUpscaler"]().load("default (shipped x4)")

    class NoMemory(torch.nn.Module):
        scale = upscaler.scale

        def __init__(self):
            super().__init__()
            self.inner = upscaler

        def forward(self, *args, **kwargs):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes")

    with pytest.raises(OutOfMemory, match="Upscale ran out of memory even at the smallest tiles and windows"):
        classes["VSR_Upscale"]().upscale(lr, NoMemory(), 4, True, 6, 2, 512, 0.0)
    log = capsys.readouterr()
    tried = [line for line in (log.out + log.err).splitlines() if "retrying" in line]
    # tile 512 -> 256 -> 128 -> 64, then window 6 -> 4 -> 2 with the overlap kept below half a window
    assert len(tried) == 5 and "window_overlap 2 -> 1" in tried[3] and "window 4 -> 2" in tried[4]

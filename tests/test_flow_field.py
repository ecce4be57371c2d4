"""Warping, occlusion, resizing, FlowField and the colour wheel (no estimator)."""
import pytest
import torch
import torch.nn.functional as F

from vsr_core.errors import InputError
from vsr_core.flow import (FlowField, backward_warp, flow_preview, flow_to_rgb, inside_mask,
                           occlusion_masks, resize_flow, resize_mask)

torch.set_num_threads(1)


def _photo(h=48, w=64):
    import skimage.data
    img = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1).float() / 255
    return img[:, 120:120 + h, 200:200 + w]


def test_warp_integer_translation_reconstructs_frame():
    import skimage.data
    img = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1).float() / 255
    f1 = img[:, 100:148, 100:164]           # frame i
    f2 = img[:, 98:146, 97:161]             # frame i+1: content moved by (+3, +2)
    flow = torch.zeros(1, 2, 48, 64)
    flow[:, 0], flow[:, 1] = 3.0, 2.0       # forward flow i -> i+1
    warped = backward_warp(f2[None], flow)[0]
    # pixels whose target is inside frame i+1 are reconstructed exactly
    assert torch.allclose(warped[:, :-2, :-3], f1[:, :-2, :-3], atol=1e-5)
    # outside the frame: zero padding (the MGLD convention) ...
    assert warped[:, -1, :].abs().max() == 0 and warped[:, :, -1].abs().max() == 0
    # ... or the edge value with border padding
    border = backward_warp(f2[None], flow, padding_mode="border")[0]
    assert torch.allclose(border[:, -1, -1], f2[:, -1, -1])
    valid = inside_mask(flow)[0, 0]
    assert valid[:-2, :-3].all() and not valid[-2:, :].any() and not valid[:, -3:].any()


@pytest.mark.parametrize("align_corners", [True, False])
def test_warp_subpixel_is_bilinear_in_both_conventions(align_corners):
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    ramp = (0.1 * xs + 0.2 * ys)[None, None]
    flow = torch.zeros(1, 2, 20, 30)
    flow[:, 0], flow[:, 1] = 0.5, -0.25
    out = backward_warp(ramp, flow, align_corners=align_corners)
    expect = ramp + 0.1 * 0.5 - 0.2 * 0.25
    assert torch.allclose(out[..., 1:-1, 1:-1], expect[..., 1:-1, 1:-1], atol=1e-5)


def test_warp_matches_mgld_flow_warp_formula():
    """MGLD flow_warp: grid = coords + flow, x -> 2x/(W-1)-1, grid_sample(align_corners=True, zeros)."""
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 4, 9, 13, generator=g)
    flow = 3 * torch.randn(2, 2, 9, 13, generator=g)
    ys, xs = torch.meshgrid(torch.arange(9.0), torch.arange(13.0), indexing="ij")
    gx = 2 * (xs + flow[:, 0]) / 12 - 1
    gy = 2 * (ys + flow[:, 1]) / 8 - 1
    ref = F.grid_sample(img, torch.stack([gx, gy], -1), align_corners=True, padding_mode="zeros")
    assert torch.allclose(backward_warp(img, flow), ref, atol=1e-6)


def test_warp_rejects_mismatched_flow():
    with pytest.raises(InputError, match="does not match"):
        backward_warp(torch.zeros(1, 3, 10, 10), torch.zeros(1, 2, 5, 5))


def _square_flows(convention):
    h = w = 32
    fwd = torch.zeros(1, 2, h, w)
    bwd = torch.zeros(1, 2, h, w)
    fwd[0, 0, 12:20, 10:18] = 4.0            # square in frame i at x 10..17 moves right by 4
    bwd[0, 0, 12:20, 14:22] = -4.0           # in frame i+1 it sits at x 14..21
    return occlusion_masks(fwd, bwd, convention=convention)


@pytest.mark.parametrize("convention", ["squared", "mgld"])
def test_occlusion_of_moving_square(convention):
    occ_f, occ_b = _square_flows(convention)
    expect_f = torch.zeros(32, 32)
    expect_f[12:20, 18:22] = 1               # background of frame i covered by the square
    expect_b = torch.zeros(32, 32)
    expect_b[12:20, 10:14] = 1               # background of frame i+1 uncovered by it
    assert occ_f.shape == (1, 1, 32, 32) and occ_b.shape == (1, 1, 32, 32)
    assert torch.equal(occ_f[0, 0], expect_f)
    assert torch.equal(occ_b[0, 0], expect_b)


def test_occlusion_threshold_is_squared_formula():
    # |f + b_w|^2 = 0.7^2 = 0.49 < 0.5 + 0.01*(...) -> consistent; 0.8^2 = 0.64 > ~0.5 -> occluded
    fwd = torch.zeros(2, 2, 8, 8)
    bwd = torch.zeros(2, 2, 8, 8)
    bwd[0, 0] = 0.7
    bwd[1, 0] = 0.8
    occ_f, _ = occlusion_masks(fwd, bwd)
    assert occ_f[0].sum() == 0 and occ_f[1].sum() == 64


def test_resize_flow_scales_magnitude():
    flow = torch.zeros(3, 2, 64, 96)
    flow[:, 0], flow[:, 1] = 4.0, 2.0
    small = resize_flow(flow, 8, 12)
    assert small.shape == (3, 2, 8, 12)
    assert torch.allclose(small[:, 0], torch.full((3, 8, 12), 0.5))
    assert torch.allclose(small[:, 1], torch.full((3, 8, 12), 0.25))
    big = resize_flow(flow, 128, 192)
    assert torch.allclose(big[:, 0], torch.full((3, 128, 192), 8.0))
    aniso = resize_flow(flow, 32, 24)      # x shrinks by 4, y by 2
    assert torch.allclose(aniso[:, 0], torch.ones(3, 32, 24)) and torch.allclose(aniso[:, 1], torch.ones(3, 32, 24))
    area = resize_flow(flow, 8, 12, mode="area")
    assert torch.allclose(area, small)


def test_resized_flow_still_warps_correctly():
    """A warp with the downscaled flow equals the downscaled warp (linear motion)."""
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(96.0), indexing="ij")
    ramp = (0.01 * xs + 0.03 * ys)[None, None]
    flow = torch.zeros(1, 2, 64, 96)
    flow[:, 0], flow[:, 1] = 8.0, -4.0
    small = resize_flow(flow, 16, 24)
    ramp_small = F.interpolate(ramp, size=(16, 24), mode="area")
    warped_small = backward_warp(ramp_small, small)
    expect = F.interpolate(ramp + 0.01 * 8 - 0.03 * 4, size=(16, 24), mode="area")
    assert torch.allclose(warped_small[..., 2:-4, 2:-4], expect[..., 2:-4, 2:-4], atol=1e-5)


def test_flowfield_resized_and_frames():
    t, h, w = 4, 40, 64
    fwd = torch.zeros(t - 1, 2, h, w)
    fwd[:, 0] = 8.0
    occ = torch.zeros(t - 1, 1, h, w)
    occ[:, :, :, :16] = 1
    field = FlowField(fwd, -fwd, occ, occ.clone(), method="test")
    assert field.size == (40, 64) and field.num_frames == 4
    lat = field.resized(5, 8)
    assert lat.size == (5, 8) and lat.method == "test"
    assert torch.allclose(lat.forward[:, 0], torch.ones(3, 5, 8))
    assert torch.allclose(lat.backward[:, 0], -torch.ones(3, 5, 8))
    assert set(lat.occlusion_forward.unique().tolist()) <= {0.0, 1.0}
    assert lat.occlusion_forward[0, 0, 0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    up = resize_mask(lat.occlusion_forward, 40, 64)
    assert set(up.unique().tolist()) == {0.0, 1.0} and up[0, 0, 0, :10].eq(1).all() and up[0, 0, 0, 30:].eq(0).all()
    sub = field.frames(1, 3)
    assert sub.num_frames == 2 and sub.forward.shape == (1, 2, h, w)
    with pytest.raises(InputError):
        field.frames(2, 3)
    with pytest.raises(InputError, match="backward"):
        FlowField(fwd, fwd[:2], occ, occ)
    with pytest.raises(InputError, match="positive"):
        field.resized(0, 8)


def test_colour_wheel_directions():
    flow = torch.zeros(2, 1, 4)
    flow[0, 0, 0] = 1     # right
    flow[1, 0, 1] = 1     # down
    flow[0, 0, 2] = -1    # left
    rgb = flow_to_rgb(flow, max_magnitude=1.0)[0]
    assert rgb.shape == (4, 3)
    assert torch.allclose(rgb[0], torch.tensor([1.0, 0.0, 0.0]))                 # right = red
    assert rgb[2, 0] == 0 and rgb[2, 2] == 1 and rgb[2, 1] > 0.7                # left = cyan (blue side)
    assert torch.allclose(rgb[3], torch.ones(3))                                 # still = white
    assert rgb[1, 2] < 0.2 and rgb[1, 1] > 0.7                                   # down = yellow-green
    assert torch.allclose(flow_to_rgb(0.5 * flow, 1.0)[0, 0], torch.tensor([1.0, 0.5, 0.5]))


def test_preview_shape_and_occlusion():
    fwd = torch.zeros(2, 2, 8, 10)
    fwd[:, 0] = 3.0
    occ = torch.zeros(2, 1, 8, 10)
    occ[:, :, 0, 0] = 1
    field = FlowField(fwd, -fwd, occ, occ)
    img = flow_preview(field, show_occlusion=True)
    assert img.shape == (3, 8, 10, 3) and img.dtype == torch.float32
    assert torch.equal(img[0, 0, 0], torch.zeros(3)) and torch.allclose(img[0, 1, 1], torch.tensor([1.0, 0, 0]))
    assert torch.equal(img[-1], torch.ones(8, 10, 3))
    assert flow_preview(field, direction="backward", match_frames=False).shape == (2, 8, 10, 3)

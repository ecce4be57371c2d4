"""Guided Sample on tiny random UNets: guidance, windows, tiles, determinism, bad input."""
from __future__ import annotations

import pytest
import torch

from vsr_core.diffusion.model import DiffusionModel
from vsr_core.diffusion.motion_guidance import MotionGuidance, warping_loss
from vsr_core.errors import InputError
from vsr_core.flow import FlowField
from vsr_core.models.unet import UNetConfig, UNetModel
from vsr_core.pipeline.guided_sample import SampleSettings, Seam, guided_sample, sample_segment


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_unet(temporal=False, seed=0):
    torch.manual_seed(seed)
    cfg = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(2,),
                     num_head_channels=16, context_dim=32, temporal_middle=temporal)
    unet = UNetModel(cfg).eval()
    for module in unet.modules():  # ldm zero-initialises output layers; a random net must say something
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.reset_parameters()
    if temporal:  # MGLD's blend weights start at 0 (identity); open them so frames interact
        for name, p in unet.named_parameters():
            if "temporal_alpha" in name:
                p.data.fill_(0.5)
    # x0-prediction keeps a random network's samples in a sane range.
    return DiffusionModel(unet, context=torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(1)),
                          prediction="x0")


def moving_latents(t=6, shift=1, h=16, w=16):
    """A pattern moving `shift` latent pixels per frame, and its exact flow (None for one frame)."""
    base = torch.randn(4, h, w + shift * t, generator=torch.Generator().manual_seed(5)) * 0.8
    z = torch.stack([base[:, :, shift * (t - k): shift * (t - k) + w] for k in range(t)])
    if t == 1:
        return z, None
    fwd = torch.zeros(t - 1, 2, h, w)
    fwd[:, 0] = shift
    occ_f, occ_b = torch.zeros(t - 1, 1, h, w), torch.zeros(t - 1, 1, h, w)
    occ_f[..., -shift:] = 1
    occ_b[..., :shift] = 1
    return z, FlowField(fwd, -fwd, occ_f, occ_b, method="exact")


FAST = dict(steps=6, tile_latent=64, tile_overlap_latent=8)


# Guidance scale 0.6 on these 16x16x4 latents takes the same per-element step as
# MGLD-VSR's scale 10 on 64x64x4 latents (the L1 gradient is divided by the element count).


def test_guidance_lowers_the_latent_warping_error_for_the_same_seed():
    z, flow = moving_latents()
    model = tiny_unet()
    off = guided_sample(z, model, SampleSettings(window=6, guidance=MotionGuidance(scale=0.0), **FAST), flow)
    on = guided_sample(z, model, SampleSettings(window=6, guidance=MotionGuidance(scale=0.6), **FAST), flow)
    assert warping_loss(on, flow).item() < 0.85 * warping_loss(off, flow).item()


def test_guidance_across_window_seams_uses_the_anchor():
    z, flow = moving_latents(t=8)
    model = tiny_unet()
    g = MotionGuidance(scale=0.6)
    out = guided_sample(z, model, SampleSettings(window=4, window_overlap=0, guidance=g, **FAST), flow)
    plain = guided_sample(z, model, SampleSettings(window=4, window_overlap=0,
                                                    guidance=MotionGuidance(scale=0.0), **FAST), flow)
    seam = flow.frames(3, 5)  # frames 3|4 straddle the two windows
    assert warping_loss(out[3:5], seam).item() < 0.85 * warping_loss(plain[3:5], seam).item()


def test_windows_reproduce_the_unwindowed_result_for_a_frame_independent_model():
    z, _flow = moving_latents(t=7)
    model = tiny_unet()
    whole = guided_sample(z, model, SampleSettings(window=7, **FAST))
    windowed = guided_sample(z, model, SampleSettings(window=3, window_overlap=1, **FAST))
    torch.testing.assert_close(windowed, whole, atol=1e-5, rtol=1e-5)


def test_temporal_model_runs_in_windows_and_frames_interact():
    z, flow = moving_latents(t=5)
    model = tiny_unet(temporal=True)
    whole = guided_sample(z, model, SampleSettings(window=5, **FAST), flow)
    windowed = guided_sample(z, model, SampleSettings(window=3, window_overlap=1, **FAST), flow)
    assert whole.shape == windowed.shape == z.shape
    assert not torch.allclose(whole, windowed)  # temporal layers see different neighbours


def test_one_tile_covering_the_latent_equals_the_untiled_run_and_small_tiles_stay_close():
    z, _flow = moving_latents(t=2, h=24, w=24)
    model = tiny_unet()
    whole = guided_sample(z, model, SampleSettings(window=2, steps=4, tile_latent=24, tile_overlap_latent=8))
    big = guided_sample(z, model, SampleSettings(window=2, steps=4, tile_latent=64, tile_overlap_latent=8))
    torch.testing.assert_close(big, whole)
    tiled = guided_sample(z, model, SampleSettings(window=2, steps=4, tile_latent=16, tile_overlap_latent=8))
    other_seed = guided_sample(z, model, SampleSettings(window=2, steps=4, tile_latent=24, tile_overlap_latent=8,
                                                        seed=1))
    # Tiles change the result (the UNet is not local) but far less than the noise draw does.
    assert (tiled - whole).abs().mean() < 0.5 * (other_seed - whole).abs().mean()


def test_seed_determinism():
    z, _flow = moving_latents(t=3)
    model = tiny_unet()
    a = guided_sample(z, model, SampleSettings(seed=7, **FAST))
    b = guided_sample(z, model, SampleSettings(seed=7, **FAST))
    c = guided_sample(z, model, SampleSettings(seed=8, **FAST))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ddim_sampler_and_single_frame():
    z, _flow = moving_latents(t=1)
    out = guided_sample(z, tiny_unet(), SampleSettings(sampler="ddim", **FAST))
    assert out.shape == z.shape and torch.isfinite(out).all()


def test_bad_inputs():
    z, flow = moving_latents(t=4)
    model = tiny_unet()
    with pytest.raises(InputError, match="flow covers 4 frames but there are 3"):
        guided_sample(z[:3], model, SampleSettings(**FAST), flow)
    bad = z.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        guided_sample(bad, model, SampleSettings(**FAST))
    with pytest.raises(InputError, match="sampler"):
        SampleSettings(sampler="euler")


def test_a_sigma_space_denoiser_reproduces_the_same_model_in_ddpm_space():
    """ComfyUI MODELs denoise in k-diffusion space; the adapter must give the same x0."""
    from vsr_core.diffusion.model import SigmaDenoiser
    from vsr_core.diffusion.prediction import to_x0_eps
    from vsr_core.diffusion.schedules import scaled_linear_betas
    eps_model = tiny_unet()
    eps_model.prediction = "eps"
    ac = torch.cumprod(1 - scaled_linear_betas(), 0)

    def k_denoise(x_k, sigma, context):  # what comfy's apply_model does for an eps model
        ac_t = 1 / (1 + sigma[0].item() ** 2)
        t = int((ac - ac_t).abs().argmin())
        eps = eps_model.unet(x_k * ac_t ** 0.5, torch.full((x_k.shape[0],), t), context)
        return x_k - sigma.view(-1, 1, 1, 1) * eps

    adapter = SigmaDenoiser(k_denoise, ac.float(), context=eps_model.context)
    torch.testing.assert_close(adapter.betas, scaled_linear_betas(), atol=1e-6, rtol=1e-4)  # from float32 ac
    x = torch.randn(2, 4, 8, 8)
    for t in (999, 500, 20):
        direct, _ = to_x0_eps(eps_model(x, t, None, 2), x, float(ac[t]), "eps")
        torch.testing.assert_close(adapter(x, t, None, 2), direct, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------
# ResShift (and SeeClear's blurring variant) in the video pipeline
# ---------------------------------------------------------------------------

from vsr_core.diffusion import resshift as rs  # noqa: E402
from vsr_core.diffusion.noise import FrameNoise  # noqa: E402
from vsr_core.pipeline.guided_sample import x0_and_loss_gradient  # noqa: E402

RS = dict(sampler="resshift", steps=4, tile_latent=64, tile_overlap_latent=8)


class _Residual(torch.nn.Module):
    """x0 = input + 0.3 * random UNet: a random network that behaves like a denoiser near t=0
    (its Jacobian is close to the identity), which through-model guidance relies on."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, timesteps, context=None, **kw):
        return x + 0.3 * self.unet(x, timesteps, context, **kw)


def residual_model():
    m = tiny_unet()
    return DiffusionModel(_Residual(m.unet), context=m.context, prediction="x0")


def test_resshift_settings_defaults_and_validation():
    assert SampleSettings().steps == 50 and SampleSettings(sampler="ddim").steps == 50
    assert SampleSettings(sampler="resshift").steps == 15
    assert SampleSettings(sampler="resshift", steps=4).steps == 4
    with pytest.raises(InputError, match="kappa"):
        SampleSettings(sampler="resshift", options={"kappa": 0.0})
    with pytest.raises(InputError, match="sampler 'ddpm' has no option sigma_max; it takes no options"):
        SampleSettings(options={"sigma_max": 2.0})
    eps_model = tiny_unet()
    eps_model.prediction = "eps"
    z, _flow = moving_latents(t=2)
    with pytest.raises(InputError, match="x0-predictor"):
        guided_sample(z, eps_model, SampleSettings(**RS))


def test_resshift_pipeline_is_the_reference_chain_for_one_window_and_tile():
    """Network fed scale_input(x_t), timestep t, the LR latent as condition; the prior at y; FrameNoise."""
    z, _flow = moving_latents(t=3)
    model = tiny_unet()
    out = guided_sample(z, model, SampleSettings(window=3, seed=4, **RS))
    s = rs.resshift_schedule(4)
    noise = FrameNoise(4, tuple(z.shape[1:]))
    ref = rs.sample_resshift(lambda x, t: model(x, t, z, 3).float(), z, s, lambda i: noise.frames(range(3), i))
    torch.testing.assert_close(out, ref)


def test_resshift_seed_determinism_windows_and_tiles():
    z, _flow = moving_latents(t=7, h=24, w=24)
    model = tiny_unet()
    a = guided_sample(z, model, SampleSettings(window=7, seed=3, **RS))
    assert torch.equal(a, guided_sample(z, model, SampleSettings(window=7, seed=3, **RS)))
    other = guided_sample(z, model, SampleSettings(window=7, seed=4, **RS))
    assert not torch.equal(a, other)
    # frame-independent network: windows change nothing; one tile covering the latent is the untiled run
    windowed = guided_sample(z, model, SampleSettings(window=3, window_overlap=1, seed=3, **RS))
    torch.testing.assert_close(windowed, a, atol=1e-5, rtol=1e-5)
    one_tile = guided_sample(z, model, SampleSettings(window=7, seed=3, **{**RS, "tile_latent": 24}))
    torch.testing.assert_close(one_tile, a)
    tiled = guided_sample(z, model, SampleSettings(window=7, seed=3, **{**RS, "tile_latent": 16}))
    # With 4 steps the (non-local) random UNet decides more than the noise does: tiles move the
    # result about 0.56x as much as a new seed here (docs/guided_sample.md has the measured numbers).
    assert (tiled - a).abs().mean() < 0.8 * (other - a).abs().mean()


@pytest.mark.parametrize("blur", [None, {}, {"chain": "paper"}])
def test_guidance_lowers_the_warping_error_for_resshift(blur):
    z, flow = moving_latents()
    model = tiny_unet()
    kw = dict(window=6, **RS) if blur is None else dict(window=6, **{**RS, "sampler": "blur_resshift"}, options=blur)
    off = guided_sample(z, model, SampleSettings(guidance=MotionGuidance(scale=0.0), **kw), flow)
    on = guided_sample(z, model, SampleSettings(guidance=MotionGuidance(scale=2.0), **kw), flow)
    assert warping_loss(on, flow).item() < 0.9 * warping_loss(off, flow).item()


def test_zero_blur_pipeline_is_plain_resshift_and_blur_changes_it():
    z, _flow = moving_latents(t=3)
    model = tiny_unet()
    plain = guided_sample(z, model, SampleSettings(window=3, **RS))
    blur_rs = {**RS, "sampler": "blur_resshift"}
    flat = guided_sample(z, model, SampleSettings(window=3, options={"sigma_max": 0.0}, **blur_rs))
    torch.testing.assert_close(flat, plain, atol=1e-5, rtol=1e-5)
    blurred = guided_sample(z, model, SampleSettings(window=3, **blur_rs))
    assert not torch.allclose(blurred, plain, atol=1e-3)


# ---------------------------------------------------------------------------
# Guidance through the model (the 'unless asked' option)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [dict(FAST, scale=0.6), dict(RS, scale=5.0)], ids=["ddpm", "resshift"])
def test_guidance_through_the_model_changes_the_result_and_lowers_the_warping_error(settings):
    z, flow = moving_latents()
    model = residual_model()
    settings = dict(settings)
    scale = settings.pop("scale")
    off = guided_sample(z, model, SampleSettings(window=6, guidance=MotionGuidance(scale=0.0), **settings), flow)
    latent = guided_sample(z, model, SampleSettings(window=6, guidance=MotionGuidance(scale=scale), **settings), flow)
    through = guided_sample(z, model, SampleSettings(window=6, guidance=MotionGuidance(scale=scale, through_model=True),
                                                     **settings), flow)
    assert not torch.allclose(through, off, atol=1e-3) and not torch.allclose(through, latent, atol=1e-4)
    assert warping_loss(through, flow).item() < 0.9 * warping_loss(off, flow).item()


def test_through_model_gradient_over_tiles_is_exact():
    """Tile-by-tile vector-Jacobian products equal autograd through the whole Gaussian-weighted canvas."""
    from vsr_core.ops.tiling import tiled_denoise
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    target = torch.randn(2, 4, 20, 20)

    def net(x, rows, cols):
        out = torch.tanh(conv(x)) + x
        return out, out

    def loss(x0):
        return ((x0 - target) ** 2).sum()

    x = torch.randn(2, 4, 20, 20)
    x0, _eps, grad = x0_and_loss_gradient(net, x, tile=12, overlap=6, loss=loss)
    leaf = x.clone().requires_grad_(True)
    full, _ = tiled_denoise(net, leaf, 12, 6)
    (expected,) = torch.autograd.grad(loss(full), leaf)
    torch.testing.assert_close(x0, full.detach())
    torch.testing.assert_close(grad, expected, atol=1e-5, rtol=1e-5)


def test_through_model_guidance_runs_over_windows_and_tiles_with_anchors():
    z, flow = moving_latents(t=6, h=24, w=24)
    flow = FlowField(flow.forward[..., :24, :24].clone(), flow.backward[..., :24, :24].clone(),
                     flow.occlusion_forward[..., :24, :24].clone(), flow.occlusion_backward[..., :24, :24].clone(),
                     method="exact")
    model = residual_model()
    kw = dict(window=3, window_overlap=0, steps=4, tile_latent=16, tile_overlap_latent=8)
    off = guided_sample(z, model, SampleSettings(guidance=MotionGuidance(scale=0.0), **kw), flow)
    on = guided_sample(z, model, SampleSettings(guidance=MotionGuidance(scale=0.6, through_model=True), **kw), flow)
    assert torch.isfinite(on).all() and not torch.allclose(on, off, atol=1e-3)
    seam = flow.frames(2, 4)  # frames 2|3 straddle the two windows
    assert warping_loss(on[2:4], seam).item() < warping_loss(off[2:4], seam).item()


@pytest.mark.parametrize("through_model", [False, True])
def test_guidance_works_inside_inference_mode(through_model):
    """ComfyUI executes every node under torch.inference_mode(); guidance must still get gradients."""
    z, flow = moving_latents(t=3)
    model = tiny_unet()
    settings = SampleSettings(window=3, guidance=MotionGuidance(scale=0.6, through_model=through_model), **FAST)
    expected = guided_sample(z, model, settings, flow)
    with torch.inference_mode():
        got = guided_sample(z.clone(), model, settings, flow.to())
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("through_model", [False, True])
def test_segments_joined_by_a_seam_reproduce_one_pass(through_model):
    """Two calls carrying the Seam (anchors, first frame) give exactly the latents of one call over the clip:
    segment boundaries at window boundaries, the shared frame averaged like the window crossfade."""
    model = tiny_unet(temporal=True)
    z, flow = moving_latents(t=9)
    settings = SampleSettings(window=3, window_overlap=1,
                              guidance=MotionGuidance(scale=0.6, through_model=through_model), **FAST)
    whole = guided_sample(z, model, settings, flow)
    first, anchors = sample_segment(z[:5], model, settings, flow.frames(0, 5), seam=Seam(export_frame=3))
    assert sorted(anchors) == list(range(FAST["steps"]))
    second, last = sample_segment(z[4:], model, settings, flow.frames(3, 9), seam=Seam(anchors, first_frame=4))
    joined = torch.cat([first[:4], (first[4:] + second[:1]) / 2, second[1:]])
    assert torch.equal(joined, whole)
    assert last == {}
    # Without the seam the second segment is sampled differently (unanchored, other noise).
    alone = guided_sample(z[4:], model, settings, flow.frames(4, 9))
    assert not torch.allclose(alone[1:], whole[5:])


def test_seam_bad_inputs():
    model = tiny_unet()
    z, flow = moving_latents(t=5)
    settings = SampleSettings(window=3, window_overlap=1, guidance=MotionGuidance(scale=0.6), **FAST)
    with pytest.raises(InputError, match="export_frame=9"):
        guided_sample(z, model, settings, flow, seam=Seam(export_frame=9))
    with pytest.raises(InputError, match="not in the last window"):
        guided_sample(z, model, settings, flow, seam=Seam(export_frame=0))
    anchors = {i: z[0] for i in range(FAST["steps"])}
    with pytest.raises(InputError, match="the frame before them"):
        guided_sample(z, model, settings, flow, seam=Seam(anchors=anchors))

"""Tiled VAE encode/decode with overlap blending (vsr_core.ops.tiling)."""
from __future__ import annotations


import pytest
import torch
import torch.nn as nn

from conftest import seeded_state_dict
from vsr_core.errors import InputError
from vsr_core.models.cfw import CFWAutoencoderKL
from vsr_core.ops.tiling import ramp, tile_starts, tiled_map
from vsr_core.pipeline.vae_tiles import tiled_decode, tiled_encode
from vsr_core.models.vae import AutoencoderKL, VAEConfig
from vsr_core.models.video_vae import VideoAutoencoderKL
from vsr_core.progress import Reporter


def tiny_vae(cls=AutoencoderKL, ch_mult=(1, 2, 2), seed=0, **kw):
    m = cls(VAEConfig(ch=32, ch_mult=ch_mult, num_res_blocks=1), **kw)
    m.load_state_dict(seeded_state_dict({k: v.shape for k, v in m.state_dict().items()}, seed))
    return m.eval()


def smooth_image(b=1, h=64, w=64):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    img = torch.stack([torch.sin(3 * xx + yy), torch.cos(2 * yy), xx * yy])
    return torch.stack([img * (0.5 + 0.5 * i / max(1, b - 1)) for i in range(b)])


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def test_tile_starts_cover_and_align():
    assert tile_starts(64, 64, 8) == [0]
    assert tile_starts(64, 32, 16, 8) == [0, 16, 32]
    s = tile_starts(100, 32, 8)
    assert s[0] == 0 and s[-1] + 32 == 100 and all(b - a <= 24 for a, b in zip(s, s[1:]))
    assert all(v % 8 == 0 for v in tile_starts(96, 40, 12, 8))


@pytest.mark.parametrize("blend", ["cosine", "linear"])
def test_ramps_are_a_partition_of_unity(blend):
    r = ramp(7, blend, dtype=torch.float64)
    assert torch.allclose(r + r.flip(0), torch.ones(7, dtype=torch.float64))
    assert (r > 0).all() and (r < 1).all() and (r.diff() > 0).all()


def test_whole_image_tile_is_bit_identical():
    vae = tiny_vae()
    x = smooth_image(2, 32, 32)
    assert torch.equal(tiled_encode(vae, x, tile_size=32, overlap=8), vae.encode(x))
    z = vae.encode(x)
    assert torch.equal(tiled_decode(vae, z, tile_size=8, overlap=2), vae.decode(z))


@pytest.mark.parametrize("blend", ["cosine", "linear"])
def test_blending_is_exact_for_local_functions(blend):
    """With a purely local network whose receptive field fits in the overlap,
    tiled == untiled up to float rounding: the tiling and blending are right."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 4, 3, stride=2, padding=1))
    x = torch.randn(2, 3, 48, 40)
    full = net(x)
    # zero padding at a tile edge spoils 1 output pixel; the default margin
    # (a quarter of the 4-pixel output overlap) gives exactly that pixel weight 0
    tiled = tiled_map(net, [x], tile=16, overlap=8, out_scale=0.5, align=2, blend=blend)
    torch.testing.assert_close(tiled, full, atol=1e-5, rtol=0)
    # without the margin the spoiled pixels leak in
    leaky = tiled_map(net, [x], tile=16, overlap=8, out_scale=0.5, align=2, blend=blend, margin=0.0)
    assert (leaky - full).abs().max() > 1e-3
    # pointwise: exact everywhere
    pw = tiled_map(lambda t: t * 2 + 1, [x], tile=16, overlap=6, out_scale=1, blend=blend)
    torch.testing.assert_close(pw, x * 2 + 1, atol=1e-6, rtol=0)


def test_vae_tiled_vs_untiled_difference_is_measured():
    """Tiles differ from the whole frame where GroupNorm statistics, the
    mid-block attention and edge context differ. Measured on the tiny random
    VAE with a smooth 64x64 image (cosine blend), as of writing:
      encode, 48px tiles / 16 overlap: mean |d| ~0.23 (mean |z| ~0.43)
      decode, 12-latent tiles / 4 overlap: mean |d| ~0.23 (mean |x| ~0.43)
    A random network is far more sensitive to these statistics than a
    trained VAE, so these are upper bounds of the effect, not typical values;
    the bounds below catch regressions (a broken blend gives errors ~1)."""
    vae = tiny_vae()
    x = smooth_image(1, 64, 64)
    z = vae.encode(x)
    enc = (tiled_encode(vae, x, 48, 16) - z).abs()
    img = vae.decode(z)
    dec = (tiled_decode(vae, z, 12, 4) - img).abs()
    print(f"tiled encode mean|d|={enc.mean():.4f} max={enc.max():.4f} (|z| {z.abs().mean():.4f}); "
          f"tiled decode mean|d|={dec.mean():.4f} max={dec.max():.4f} (|x| {img.abs().mean():.4f})")
    assert enc.mean() < 0.6 * z.abs().mean()
    assert dec.mean() < 0.7 * img.abs().mean()
    assert torch.isfinite(enc).all() and torch.isfinite(dec).all()
    # larger tiles -> closer to the untiled result
    dec_big = (tiled_decode(vae, z, 14, 6) - img).abs().mean()
    assert dec_big < dec.mean()


def test_tiled_cfw_decode_with_lr_image_and_features():
    vae = tiny_vae(CFWAutoencoderKL, ch_mult=(1, 2, 2, 2), seed=1)
    lr = smooth_image(1, 64, 64)
    z, feats = vae.encode_with_features(lr)
    full = vae.decode(z, feats, w=0.5)
    whole = tiled_decode(vae, z, 8, 2, enc_features=feats, w=0.5)
    assert torch.equal(whole, full)
    a = tiled_decode(vae, z, 6, 2, enc_features=feats, w=0.5)
    b = tiled_decode(vae, z, 6, 2, upscaled_image=lr, w=0.5)
    assert a.shape == b.shape == full.shape
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    with pytest.raises(InputError, match="either"):
        tiled_decode(vae, z, 6, 2, upscaled_image=lr, enc_features=feats)


def test_tiled_video_decode_keeps_clips_together():
    vae = tiny_vae(VideoAutoencoderKL, ch_mult=(1, 2, 2), seed=2, fusion=None, sfa_tfa=True)
    z = torch.randn(3, 4, 12, 12)
    out = tiled_decode(vae, z, 8, 4, num_frames=3, lr_latent=z)
    assert out.shape == (3, 3, 48, 48)
    assert torch.equal(tiled_decode(vae, z, 12, 4, num_frames=3, lr_latent=z),
                       vae.decode(z, num_frames=3, lr_latent=z))


def test_tiling_reports_progress_and_validates():
    class Count(Reporter):
        def __init__(self):
            self.total, self.done = 0, 0

        def start(self, total, desc=""):
            self.total = total

        def update(self, n=1):
            self.done += n

    vae = tiny_vae()
    rep = Count()
    tiled_encode(vae, smooth_image(1, 64, 64), 32, 8, reporter=rep, batch_size=1)
    assert rep.total == rep.done == 9
    with pytest.raises(InputError, match="overlap"):
        tiled_encode(vae, smooth_image(1, 64, 64), 32, 32)
    with pytest.raises(InputError, match="divisible"):
        tiled_encode(vae, smooth_image(1, 62, 64), 32, 8)
    with pytest.raises(InputError, match="blend"):
        tiled_encode(vae, smooth_image(1, 64, 64), 32, 8, blend="gauss")

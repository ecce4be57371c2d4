"""Clip-level VAE encode/decode: padding and cropping, temporal windows, CFW features, errors."""
from __future__ import annotations

import pytest
import torch

from vsr_core.models.vae import AutoencoderKL, VAEConfig
from vsr_core.models.video_vae import video_vae_from_base
from vsr_core.pipeline.vae_codec import decode_latents, encode_frames, is_temporal, uses_lr_features


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1)).eval()


@pytest.fixture(scope="module")
def frames():
    return torch.rand(5, 3, 30, 44, generator=torch.Generator().manual_seed(1))


def test_encode_pads_and_decode_crops_back(vae, frames):
    latents = encode_frames(vae, frames, batch=2)
    assert latents.shape == (5, 4, 4, 6)           # 30x44 padded to 32x48
    out = decode_latents(vae, latents, size=(30, 44))
    assert out.shape == frames.shape and 0 <= out.min() and out.max() <= 1
    full = decode_latents(vae, latents)
    assert full.shape == (5, 3, 32, 48)
    torch.testing.assert_close(out, full[..., :30, :44])


def test_batches_do_not_change_a_per_frame_encoder(vae, frames):
    torch.testing.assert_close(encode_frames(vae, frames, batch=1), encode_frames(vae, frames, batch=5))


def test_an_untrained_temporal_decoder_equals_the_plain_one_for_any_window(vae, frames):
    video = video_vae_from_base(vae, temporal=True, sfa_tfa=False).eval()
    assert is_temporal(video) and not is_temporal(vae)
    latents = encode_frames(vae, frames)
    plain = decode_latents(vae, latents)
    for window, overlap in ((5, 0), (3, 1), (2, 1)):
        torch.testing.assert_close(decode_latents(video, latents, window=window, window_overlap=overlap), plain)


def test_a_trained_temporal_decoder_mixes_frames_and_keeps_the_count(vae, frames):
    video = video_vae_from_base(vae, temporal=True, sfa_tfa=False).eval()
    for name, p in video.named_parameters():
        if "temporal_alpha" in name:
            p.data.fill_(0.5)
    latents = encode_frames(vae, frames)
    out = decode_latents(video, latents, window=3, window_overlap=1)
    assert out.shape == (5, 3, 32, 48)
    assert not torch.allclose(out, decode_latents(vae, latents))


def test_cfw_decoder_uses_the_upscaled_frames(vae, frames):
    video = video_vae_from_base(vae, temporal=True, sfa_tfa=False, fusion="rdb").eval()
    assert uses_lr_features(video)
    latents = encode_frames(vae, frames)
    with_lr = decode_latents(video, latents, upscaled=frames, w=1.0)
    assert with_lr.shape == frames.shape  # cropped to the frames' size
    without = decode_latents(video, latents, size=(30, 44))
    assert not torch.allclose(with_lr, without)
    torch.testing.assert_close(decode_latents(video, latents, upscaled=frames, w=0.0), without)


def test_bad_inputs(vae, frames):
    latents = encode_frames(vae, frames)
    with pytest.raises(ValueError, match="4 frames for 5 latent frames"):
        decode_latents(vae, latents, upscaled=frames[:4])
    with pytest.raises(ValueError, match="the frames the latent was encoded from"):
        decode_latents(vae, latents, upscaled=torch.rand(5, 3, 64, 64))
    bad = latents.clone()
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        decode_latents(vae, bad)
    with pytest.raises(ValueError, match=r"expected \[T,3,H,W\] RGB"):
        encode_frames(vae, frames[:, :2])

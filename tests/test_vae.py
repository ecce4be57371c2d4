"""VAE family: ldm AutoencoderKL, StableSR CFW, MGLD temporal CFW decoder.

Golden outputs in tests/fixtures/vae were produced by the reference code
(StableSR @398ee93, MGLD-VSR @9aa7731) run outside the project with the same
seeded weights that `seeded_state_dict` builds here; see the README there.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import seeded_state_dict
from vsr_core.errors import CheckpointError, InputError
from vsr_core.models.cfw import CFWAutoencoderKL
from vsr_core.checkpoints.vae_format import (build_vae_from_state_dict, clean_vae_state_dict, detect_vae_format,
                                             infer_vae_config, load_vae_state_dict)
from vsr_core.models.state_dict import check_state_dict
from vsr_core.models.vae import SCALE_FACTOR, AutoencoderKL, VAEConfig, param_count
from vsr_core.models.video_vae import VideoAutoencoderKL, video_vae_from_base

FIX = Path(__file__).parent / "fixtures" / "vae"
TINY3 = VAEConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1)
TINY4 = VAEConfig(ch=32, ch_mult=(1, 2, 2, 2), num_res_blocks=1)
ATOL = 5e-5  # observed max |diff| vs the reference: ~5e-6 (SDPA vs bmm attention)


def seeded(module: torch.nn.Module, seed: int) -> dict:
    return seeded_state_dict({k: v.shape for k, v in module.state_dict().items()}, seed)


def layout(name: str) -> dict:
    return json.loads((FIX / f"layout_{name}.json").read_text())


def meta_sd(keys: dict) -> dict:
    return {k: torch.empty(v, device="meta") for k, v in keys.items()}


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


# --------------------------------------------------------------------------- goldens

def test_autoencoder_kl_matches_reference():
    g = load_file(FIX / "autoencoder_kl_tiny.safetensors")
    sd = seeded(AutoencoderKL(TINY3), 0)
    vae = load_vae_state_dict(sd)
    assert type(vae) is AutoencoderKL and vae.config == TINY3
    mean = vae.encode(g["x"])
    assert mean.shape == (1, 4, 8, 8)
    torch.testing.assert_close(mean, g["mean"], atol=ATOL, rtol=0)
    torch.testing.assert_close(vae.encode_moments(g["x"])[1], g["logvar"], atol=ATOL, rtol=0)
    out = vae.decode(g["z"])
    assert out.shape == (1, 3, 32, 32)
    torch.testing.assert_close(out, g["decoded"], atol=ATOL, rtol=0)


def test_stablesr_cfw_matches_reference():
    g = load_file(FIX / "stablesr_cfw_tiny.safetensors")
    sd = seeded(CFWAutoencoderKL(TINY4), 1)
    assert detect_vae_format(sd) == "stablesr_cfw"
    vae = load_vae_state_dict(sd)
    assert type(vae) is CFWAutoencoderKL and vae.default_w == 0.5
    mean, feats = vae.encode_with_features(g["x"])
    torch.testing.assert_close(mean, g["mean"], atol=ATOL, rtol=0)
    assert [tuple(f.shape) for f in feats] == [(1, 64, 16, 16), (1, 64, 8, 8)]
    for i, f in enumerate(feats):
        torch.testing.assert_close(f, g[f"feat_{i}"], atol=ATOL, rtol=0)
    torch.testing.assert_close(vae.decode(g["z"], feats), g["decoded_w05"], atol=ATOL, rtol=0)
    torch.testing.assert_close(vae.decode(g["z"], feats, w=1.0), g["decoded_w1"], atol=ATOL, rtol=0)
    # w = 0 and no features both give the plain decoder, bit for bit
    plain = vae.decode(g["z"])
    assert torch.equal(vae.decode(g["z"], feats, w=0.0), plain)
    ref_plain = AutoencoderKL(TINY4)
    ref_plain.load_state_dict({k: v for k, v in sd.items() if "fusion_layer" not in k})
    assert torch.equal(ref_plain.decode(g["z"]), plain)


def test_mgld_video_cfw_matches_reference():
    g = load_file(FIX / "mgld_video_cfw_tiny.safetensors")
    sd = seeded(VideoAutoencoderKL(TINY4), 2)
    assert detect_vae_format(sd) == "mgld_video_cfw"
    vae = load_vae_state_dict(sd)
    assert type(vae) is VideoAutoencoderKL and vae.default_w == 1.0 and vae.decoder.fusion == "rdb"
    mean, feats = vae.encode_with_features(g["x"])
    torch.testing.assert_close(mean, g["mean"], atol=ATOL, rtol=0)
    out = vae.decode(g["z"], feats, num_frames=3)
    assert out.shape == (3, 3, 32, 32)
    torch.testing.assert_close(out, g["decoded_w1"], atol=ATOL, rtol=0)
    # frames really interact: decoding each frame alone differs
    alone = torch.cat([vae.decode(g["z"][i:i + 1], [f[i:i + 1] for f in feats], num_frames=1)
                       for i in range(3)])
    assert (alone - out).abs().max() > 1e-3
    # two clips in one batch == each clip alone
    z2 = torch.cat([g["z"], g["z"].flip(0)])
    f2 = [torch.cat([f, f.flip(0)]) for f in feats]
    both = vae.decode(z2, f2, num_frames=3)
    torch.testing.assert_close(both[:3], out, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- layouts

@pytest.mark.parametrize("name,fmt,cls", [("ae", "autoencoder_kl", AutoencoderKL),
                                          ("cfw", "stablesr_cfw", CFWAutoencoderKL),
                                          ("mgld", "mgld_video_cfw", VideoAutoencoderKL)])
@pytest.mark.parametrize("size", ["tiny", "full"])
def test_reference_layouts_build_and_load(name, fmt, cls, size):
    """Key sets and shapes dumped from the reference modules build the right
    class with no missing/unexpected/mismatched keys; parameter counts agree."""
    lay = layout(f"{name}_{size}")
    sd = meta_sd(lay["keys"])
    assert detect_vae_format(sd.keys()) == fmt
    vae = build_vae_from_state_dict(sd)
    assert type(vae) is cls
    assert all(p.is_meta for p in vae.parameters())
    check_state_dict(vae, sd)
    assert param_count(vae) == lay["params"]
    vae.load_state_dict(sd, strict=True, assign=True)


def test_full_size_sd_vae_param_count():
    """SD 2.x VAE (ch 128, ch_mult 1,2,4,4, 2 res blocks, z 4): 83,653,863
    parameters, also counted on the reference AutoencoderKL (layout_ae_full)."""
    with torch.device("meta"):
        vae = AutoencoderKL(VAEConfig())
    assert param_count(vae) == 83_653_863 == layout("ae_full")["params"]
    assert vae.downsample_factor == 8
    assert infer_vae_config(meta_sd(layout("ae_full")["keys"])) == VAEConfig()


def test_ldm_checkpoint_prefix_and_loss_keys():
    """A whole LDM checkpoint (first_stage_model.* beside other models) and a
    CFW training checkpoint (loss.* keys) load through clean_vae_state_dict."""
    sd = seeded(AutoencoderKL(TINY3), 0)
    ldm = {f"first_stage_model.{k}": v for k, v in sd.items()}
    ldm["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(1)
    ldm["cond_stage_model.model.positional_embedding"] = torch.zeros(1)
    assert detect_vae_format(ldm) == "autoencoder_kl"
    vae = load_vae_state_dict(ldm)
    assert torch.equal(vae.encoder.conv_in.weight, sd["encoder.conv_in.weight"])
    cfw = seeded(CFWAutoencoderKL(TINY4), 1)
    cfw["loss.discriminator.main.0.weight"] = torch.zeros(2, 3, 4, 4)
    cfw["loss.logvar"] = torch.zeros(())
    assert "loss.logvar" not in clean_vae_state_dict(cfw)
    assert type(load_vae_state_dict(cfw)) is CFWAutoencoderKL


def test_detect_rejects_non_vae():
    assert detect_vae_format(["input_blocks.0.0.weight", "out.2.weight"]) is None
    assert detect_vae_format([]) is None
    with pytest.raises(CheckpointError, match="not an ldm AutoencoderKL"):
        build_vae_from_state_dict({"input_blocks.0.0.weight": torch.zeros(1)})


# --------------------------------------------------------------------------- bad checkpoints

def test_truncated_state_dict_names_missing_keys():
    sd = seeded(AutoencoderKL(TINY3), 0)
    gone = [k for k in sd if k.startswith("decoder.up.0.")]
    for k in gone:
        del sd[k]
    with pytest.raises(CheckpointError) as e:
        load_vae_state_dict(sd)
    msg = str(e.value)
    assert "missing keys" in msg and "decoder.up.0.block.0.conv1.weight" in msg


def test_wrong_state_dict_names_unexpected_and_mismatched():
    sd = seeded(AutoencoderKL(TINY3), 0)
    sd["decoder.extra.weight"] = torch.zeros(3)
    sd["quant_conv.weight"] = torch.zeros(8, 8, 3, 3)
    with pytest.raises(CheckpointError) as e:
        load_vae_state_dict(sd)
    msg = str(e.value)
    assert "unexpected keys (1):\n    decoder.extra.weight" in msg
    assert "quant_conv.weight: file [8, 8, 3, 3], expected [8, 8, 1, 1]" in msg


def test_inconsistent_widths_is_checkpoint_error():
    sd = seeded(AutoencoderKL(TINY3), 0)
    sd["encoder.down.1.block.0.conv1.weight"] = torch.zeros(48, 32, 3, 3)
    with pytest.raises(CheckpointError):
        load_vae_state_dict(sd)


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("make", [lambda: AutoencoderKL(TINY3), lambda: CFWAutoencoderKL(TINY4),
                                  lambda: VideoAutoencoderKL(TINY4),
                                  lambda: VideoAutoencoderKL(TINY3, fusion=None, sfa_tfa=True)])
def test_state_dict_round_trip(make, tmp_path):
    from safetensors.torch import load_file as lf, save_file
    torch.manual_seed(0)
    a = make()
    sd = {k: v.contiguous() for k, v in seeded(a, 5).items()}
    a.load_state_dict(sd)
    save_file(sd, tmp_path / "vae.safetensors")
    b = load_vae_state_dict(lf(tmp_path / "vae.safetensors"))
    assert type(b) is type(a)
    assert b.state_dict().keys() == a.state_dict().keys()
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    z = torch.randn(2, 4, 4, 4)
    assert torch.equal(a.decode(z), b.decode(z))


# --------------------------------------------------------------------------- identity at init

def test_temporal_and_sfa_tfa_start_as_identity():
    base = AutoencoderKL(TINY3)
    base.load_state_dict(seeded(base, 7))
    video = video_vae_from_base(base, temporal=True, sfa_tfa=True)
    assert video.decoder.temporal and video.decoder.sfa_tfa and video.decoder.fusion is None
    assert any(k.endswith("tfa.proj_cross.weight") for k in video.state_dict())
    z = torch.randn(4, 4, 8, 8)
    lr = torch.randn(4, 4, 8, 8)
    expect = base.decode(z)
    assert torch.equal(video.decode(z, num_frames=2, lr_latent=lr), expect)
    assert torch.equal(video.decode(z, num_frames=4), expect)
    # a trained temporal layer changes the result
    with torch.no_grad():
        video.decoder.up[0].temporal_mixing[0].temporal_alpha.fill_(0.5)
    assert not torch.equal(video.decode(z, num_frames=2, lr_latent=lr), expect)


def test_identity_on_cfw_base_keeps_fusion():
    base = CFWAutoencoderKL(TINY4)
    base.load_state_dict(seeded(base, 8))
    video = video_vae_from_base(base)
    assert video.decoder.fusion == "rrdb" and video.default_w == 0.5
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z, feats = base.encode_with_features(x)
    assert torch.equal(video.decode(z, feats, num_frames=2, lr_latent=z), base.decode(z, feats))


def test_sfa_tfa_keys_are_detected_and_reload():
    v = VideoAutoencoderKL(TINY3, fusion=None, temporal=False, sfa_tfa=True)
    sd = seeded(v, 9)
    assert detect_vae_format(sd) == "mgld_video_cfw"
    b = load_vae_state_dict(sd)
    assert b.decoder.sfa_tfa and not b.decoder.temporal and b.decoder.fusion is None
    z = torch.randn(2, 4, 8, 8)
    assert not torch.equal(b.decode(z, lr_latent=z), b.decode(z))  # trained SFA/TFA act


# --------------------------------------------------------------------------- API details

def test_scale_factor_is_documented_not_applied():
    assert SCALE_FACTOR == 0.18215 == AutoencoderKL.scale_factor
    vae = AutoencoderKL(TINY3)
    vae.load_state_dict(seeded(vae, 0))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    h = vae.encoder(x)
    assert torch.equal(vae.encode(x), vae.quant_conv(h)[:, :4])


def test_bad_inputs_name_the_input():
    vae = AutoencoderKL(TINY3)
    with pytest.raises(InputError, match="image"):
        vae.encode(torch.zeros(1, 4, 16, 16))
    with pytest.raises(InputError, match="latent"):
        vae.decode(torch.zeros(1, 3, 4, 4))
    cfw = CFWAutoencoderKL(TINY4)
    with pytest.raises(InputError, match="enc_features"):
        cfw.decode(torch.zeros(1, 4, 4, 4), [torch.zeros(1, 64, 8, 8), torch.zeros(1, 64, 8, 8)])
    v = VideoAutoencoderKL(TINY4)
    with pytest.raises(InputError, match="num_frames"):
        v.decode(torch.zeros(3, 4, 4, 4), num_frames=2)
    with pytest.raises(InputError, match="VAEConfig.ch"):
        VAEConfig(ch=24)

"""UNet, SFT, temporal and SATeCo layers: identity at init, layouts, config
inference, the MGLD remap, and the full-size SD 2.1 key/shape/parameter check."""
import os
import re
import sys

import pytest
import torch

from vsr_core.checkpoints import build_unet, infer_struct_encoder_config, infer_unet_config
from vsr_core.errors import InputError
from vsr_core.models.sfa_tfa import SFA, TFA
from vsr_core.models.sft import EncoderUNetModelWT, StructCondUNet, StructEncoderConfig
from vsr_core.models.temporal import SpatialTemporalConv, TemporalAttention
from vsr_core.models.unet import (UNetConfig, UNetModel, count_parameters,
                                  mgld_to_sd_state_dict, sd_to_mgld_state_dict)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures", "unet"))
import golden_common as gc  # noqa: E402

TINY = dict(gc.OURS_SD2)
SD21_PARAMS = 865_910_724


def _inputs(n=4, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 4, size, size, generator=g), torch.tensor([999.0, 500.0, 20.0, 1.0][:n]),
            torch.randn(n, 5, 32, generator=g), torch.randn(n, 4, size, size, generator=g))


def _base_from(model, prefix=""):
    """Random non-zero weights for every ldm key (new layers keep their init)."""
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if not re.search(r"sateco_|temporal_", k):
                t.copy_(gc.golden_tensor(prefix + k, t.shape))


# -- identity at initialisation ----------------------------------------------

@torch.no_grad()
@pytest.mark.parametrize("t,h,w", [(6, 16, 16), (5, 9, 12), (2, 4, 4)])
def test_sfa_tfa_temporal_layers_are_exact_identity(t, h, w):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2 * t, 64, h, w, generator=g) * 3
    cond = torch.randn(2 * t, 8, h, w, generator=g)
    assert torch.equal(SFA(64, 8)(x, cond, t), x)
    assert torch.equal(TFA(64, 8, window=8, frames=6)(x, cond, t), x)
    assert torch.equal(SpatialTemporalConv(64)(x, t), x)
    assert torch.equal(TemporalAttention(64, 1, 64)(x, t), x)


def test_new_layers_are_trainable_from_identity():
    torch.manual_seed(0)
    x = torch.randn(6, 32, 8, 8)
    cond = torch.randn(6, 4, 8, 8)
    for layer in (SFA(32, 4), TFA(32, 4, window=4, frames=3)):
        layer(x, cond, 6).square().sum().backward()
        out_params = [p for n, p in layer.named_parameters() if n.startswith(("to_scale", "to_shift", "proj_"))]
        assert out_params and all(p.grad is not None and p.grad.abs().sum() > 0 for p in out_params)
    for layer in (SpatialTemporalConv(32), TemporalAttention(32, 2, 16)):
        layer(x, 3).square().sum().backward()
        assert layer.temporal_alpha.grad.abs().item() > 0


@torch.no_grad()
def test_tfa_mixes_only_within_tubelets():
    torch.manual_seed(0)
    tfa = TFA(32, 4, window=4, frames=2)
    for p in tfa.parameters():
        p.normal_(0, 0.2)
    x, g = torch.randn(4, 32, 8, 8), torch.randn(4, 4, 8, 8)
    base = tfa(x, g, 4)
    x2 = x.clone()
    x2[3, :, 0:4, 0:4] += 1.0              # frame 3 lies in tubelet frames {2,3}, window (0,0)
    out = tfa(x2, g, 4)
    changed = (out - base).abs().amax(dim=1) > 0
    assert changed[2:, 0:4, 0:4].all()
    assert not changed[:2].any() and not changed[2:, 4:].any() and not changed[2:, :, 4:].any()


@torch.no_grad()
def test_unet_with_untrained_sfa_tfa_reproduces_base_bit_for_bit():
    base = UNetModel(UNetConfig(**TINY)).eval()
    ours = UNetModel(UNetConfig(**TINY, sfa_tfa=True, sfa_tfa_cond_channels=16, tfa_window=4,
                                tfa_frames=2)).eval()
    _base_from(base)
    _base_from(ours)
    x, t, ctx, lr = _inputs()
    ref = base(x, t, ctx)
    assert ref.abs().max() > 0.1
    assert torch.equal(ours(x, t, ctx, lr_latent=lr, num_frames=4), ref)
    assert torch.equal(ours(x, t, ctx), ref)           # no LR latent: SATeCo bypassed
    # keys of the new layers never collide with ldm keys
    extra = set(ours.state_dict()) - set(base.state_dict())
    assert extra and all(k.startswith(("sateco_blocks.", "sateco_cond.")) for k in extra)
    assert len(ours.sateco_blocks) == len(ours.output_blocks)


@torch.no_grad()
def test_mgld_unet_from_sd_weights_reproduces_sd_bit_for_bit():
    sd_unet = UNetModel(UNetConfig(**gc.OURS_SFT)).eval()
    _base_from(sd_unet)
    mgld = build_unet(sd_unet.state_dict(), temporal_middle=True, num_head_channels=16)
    assert mgld.config.temporal_middle
    assert mgld.middle_block[1].temporal_alpha.item() == 0.0
    enc = EncoderUNetModelWT(StructEncoderConfig(**gc.OURS_ENC)).eval()
    x, t, ctx, lr = _inputs(3)
    sc = enc(lr, t)
    ref = sd_unet(x, t, ctx, struct_cond=sc)
    assert torch.equal(mgld(x, t, ctx, struct_cond=sc, num_frames=3), ref)


# -- layouts and remapping -----------------------------------------------------

def test_mgld_middle_block_layout_and_remap():
    with torch.device("meta"):
        sd_keys = UNetModel(UNetConfig(**gc.OURS_SFT)).state_dict()
        mg = UNetModel(UNetConfig(**gc.OURS_MGLD)).state_dict()
    mid = sorted({k.split(".")[1] for k in mg if k.startswith("middle_block.")})
    assert mid == ["0", "1", "2", "3", "4", "5"]
    assert set(k for k in mg if re.match(r"middle_block\.[135]\.", k)) == {
        f"middle_block.{i}.{n}" for i in (1, 5) for n in ("temporal_conv.weight", "temporal_conv.bias",
                                                          "temporal_alpha")} | {
        f"middle_block.3.{n}" for n in ("temporal_attn.to_q.weight", "temporal_attn.to_k.weight",
                                        "temporal_attn.to_v.weight", "temporal_attn.to_out.0.weight",
                                        "temporal_attn.to_out.0.bias", "norm.weight", "norm.bias",
                                        "temporal_alpha")}
    remapped = sd_to_mgld_state_dict({"model.diffusion_model." + k: v for k, v in sd_keys.items()})
    want = {"model.diffusion_model." + k for k in mg if not re.match(r"middle_block\.[135]\.", k)}
    assert set(remapped) == want
    back = mgld_to_sd_state_dict(mg)
    assert set(back) == set(sd_keys)
    assert all(back[k].shape == sd_keys[k].shape for k in back)


@pytest.mark.parametrize("cfg", [
    TINY,
    dict(TINY, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(2,), transformer_depth=2),
    dict(TINY, use_linear_in_transformer=False, context_dim=48, out_channels=8, in_channels=9),
    gc.OURS_SFT,
    dict(gc.OURS_MGLD, spade_hidden=32),
    dict(TINY, sfa_tfa=True, sfa_tfa_cond_channels=16, sfa_hidden=24),
])
def test_config_inferred_from_state_dict(cfg):
    cfg = UNetConfig(**cfg)
    with torch.device("meta"):
        sd = UNetModel(cfg).state_dict()
    got = infer_unet_config(sd, num_head_channels=cfg.num_head_channels)
    assert got == cfg


def test_struct_encoder_config_inferred():
    cfg = StructEncoderConfig(**gc.OURS_ENC)
    with torch.device("meta"):
        sd = EncoderUNetModelWT(cfg).state_dict()
    assert infer_struct_encoder_config(sd) == cfg


@torch.no_grad()
def test_state_dict_round_trip_same_outputs():
    a = UNetModel(UNetConfig(**gc.OURS_MGLD, sfa_tfa=True, sfa_tfa_cond_channels=16, tfa_window=4)).eval()
    for p in a.parameters():
        p.normal_(0, 0.05)
    b = UNetModel(UNetConfig(**gc.OURS_MGLD, sfa_tfa=True, sfa_tfa_cond_channels=16, tfa_window=4)).eval()
    b.load_state_dict(a.state_dict(), strict=True)
    enc = EncoderUNetModelWT(StructEncoderConfig(**gc.OURS_ENC)).eval()
    x, t, ctx, lr = _inputs(4)
    ya = StructCondUNet(a, enc)(x, t, ctx, lr_latent=lr, num_frames=2)
    yb = StructCondUNet(b, enc)(x, t, ctx, lr_latent=lr, num_frames=2)
    assert torch.equal(ya, yb)


# -- forward contract ------------------------------------------------------------

@torch.no_grad()
def test_forward_shapes_scalar_timestep_broadcast_context_and_odd_sizes():
    unet = UNetModel(UNetConfig(**TINY)).eval()
    _base_from(unet)
    x = torch.randn(2, 4, 10, 14)                       # not a multiple of 2**levels... except 2
    ctx = torch.randn(1, 5, 32)
    out = unet(x, 500, ctx)
    assert out.shape == x.shape
    assert torch.equal(out, unet(x, torch.tensor([500, 500]), ctx.expand(2, 5, 32)))
    odd = unet(torch.randn(1, 4, 9, 7), 10, ctx)        # odd sizes follow the skip features
    assert odd.shape == (1, 4, 9, 7)


@torch.no_grad()
def test_bf16_and_fp16_run_and_track_fp32():
    unet = UNetModel(UNetConfig(**TINY)).eval()
    _base_from(unet)
    x, t, ctx, _ = _inputs(2)
    ref = unet(x, t, ctx)
    for dt, tol in ((torch.bfloat16, 0.15), (torch.float16, 0.02)):
        low = UNetModel(UNetConfig(**TINY)).eval()
        low.load_state_dict(unet.state_dict())
        out = low.to(dt)(x, t, ctx)
        assert out.dtype == x.dtype and torch.isfinite(out).all()
        assert (out - ref).abs().max() < tol * ref.abs().max()


def test_bad_inputs_name_the_input():
    unet = UNetModel(UNetConfig(**gc.OURS_SFT)).eval()
    x, t, ctx, lr = _inputs(2)
    with pytest.raises(InputError, match="struct_cond"):
        unet(x, t, ctx)
    with pytest.raises(InputError, match="context"):
        unet(x, t, None, struct_cond={})
    with pytest.raises(InputError, match="timesteps"):
        unet(x, torch.tensor([1.0, 2.0, 3.0]), ctx, struct_cond={})
    with pytest.raises(InputError, match="x: expected a latent"):
        unet(torch.randn(2, 3, 8, 8), t, ctx, struct_cond={})
    with pytest.raises(InputError, match="struct_cond: expected a structure feature of width 8"):
        unet(x, t, ctx, struct_cond={"4": torch.randn(2, 32, 4, 4)})
    mg = UNetModel(UNetConfig(**gc.OURS_MGLD)).eval()
    with pytest.raises(InputError, match="num_frames"):
        StructCondUNet(mg, EncoderUNetModelWT(StructEncoderConfig(**gc.OURS_ENC)))(
            torch.randn(3, 4, 8, 8), 1, ctx, lr_latent=torch.randn(3, 4, 8, 8), num_frames=2)
    with pytest.raises(InputError, match="lr_latents"):
        unet(x, t, ctx, struct_cond={}, lr_latents=lr)
    with pytest.raises(InputError, match="prediction"):
        UNetConfig(prediction="x0")
    with pytest.raises(InputError, match="LR condition"):
        SFA(32, 4)(torch.randn(2, 32, 8, 8), torch.randn(2, 4, 4, 4))


# -- full size -------------------------------------------------------------------

def _documented_sd21_layout():
    """Key prefixes per block from methods.md section 5 (SD 2.1-base, 320 channels)."""
    res = {"in_layers.0.weight", "in_layers.0.bias", "in_layers.2.weight", "in_layers.2.bias",
           "emb_layers.1.weight", "emb_layers.1.bias", "out_layers.0.weight", "out_layers.0.bias",
           "out_layers.3.weight", "out_layers.3.bias"}
    skip = {"skip_connection.weight", "skip_connection.bias"}
    tr = {"norm.weight", "norm.bias", "proj_in.weight", "proj_in.bias", "proj_out.weight", "proj_out.bias"}
    for a in ("attn1", "attn2"):
        tr |= {f"transformer_blocks.0.{a}.to_{q}.weight" for q in "qkv"}
        tr |= {f"transformer_blocks.0.{a}.to_out.0.weight", f"transformer_blocks.0.{a}.to_out.0.bias"}
    tr |= {"transformer_blocks.0.ff.net.0.proj.weight", "transformer_blocks.0.ff.net.0.proj.bias",
           "transformer_blocks.0.ff.net.2.weight", "transformer_blocks.0.ff.net.2.bias"}
    tr |= {f"transformer_blocks.0.norm{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
    keys = {"time_embed.0.weight", "time_embed.0.bias", "time_embed.2.weight", "time_embed.2.bias",
            "out.0.weight", "out.0.bias", "out.2.weight", "out.2.bias",
            "input_blocks.0.0.weight", "input_blocks.0.0.bias"}
    chans = {1: 320, 2: 320, 4: 640, 5: 640, 7: 1280, 8: 1280, 10: 1280, 11: 1280}
    for i in (1, 2, 4, 5, 7, 8, 10, 11):
        keys |= {f"input_blocks.{i}.0.{k}" for k in res}
        if i in (4, 7):
            keys |= {f"input_blocks.{i}.0.{k}" for k in skip}
        if i in (1, 2, 4, 5, 7, 8):
            keys |= {f"input_blocks.{i}.1.{k}" for k in tr}
    for i in (3, 6, 9):
        keys |= {f"input_blocks.{i}.0.op.weight", f"input_blocks.{i}.0.op.bias"}
    keys |= {f"middle_block.{i}.{k}" for i in (0, 2) for k in res}
    keys |= {f"middle_block.1.{k}" for k in tr}
    for i in range(12):
        keys |= {f"output_blocks.{i}.0.{k}" for k in res | skip}   # all change width (concat)
        if i >= 3:
            keys |= {f"output_blocks.{i}.1.{k}" for k in tr}
    keys |= {"output_blocks.2.1.conv.weight", "output_blocks.2.1.conv.bias"}
    keys |= {f"output_blocks.{i}.2.conv.{p}" for i in (5, 8) for p in ("weight", "bias")}
    return keys, chans


def _documented_sd21_shape(key):
    """Expected shape of every SD 2.1-base UNet key, from methods.md section 5 and
    ldm's rules (ResBlock: in_layers conv cin->c, emb Linear 1280->c, ...)."""
    res_in = {1: 320, 2: 320, 4: 320, 5: 640, 7: 640, 8: 1280, 10: 1280, 11: 1280}
    res_out = {1: 320, 2: 320, 4: 640, 5: 640, 7: 1280, 8: 1280, 10: 1280, 11: 1280}
    out_in = [2560, 2560, 2560, 2560, 2560, 1920, 1920, 1280, 960, 960, 640, 640]
    out_c = [1280] * 6 + [640] * 3 + [320] * 3
    fixed = {"time_embed.0.weight": (1280, 320), "time_embed.0.bias": (1280,),
             "time_embed.2.weight": (1280, 1280), "time_embed.2.bias": (1280,),
             "input_blocks.0.0.weight": (320, 4, 3, 3), "input_blocks.0.0.bias": (320,),
             "out.0.weight": (320,), "out.0.bias": (320,), "out.2.weight": (4, 320, 3, 3), "out.2.bias": (4,)}
    if key in fixed:
        return fixed[key]
    m = re.match(r"(input_blocks|output_blocks|middle_block)\.(\d+)\.?(\d*)\.(.*)", key)
    group, i, j, rest = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    if group == "middle_block":
        cin = c = 1280
        kind = "res" if i in (0, 2) else "tr"
        rest = f"{j}.{rest}" if j else rest
    elif group == "input_blocks":
        if i in (3, 6, 9):
            c = {3: 320, 6: 640, 9: 1280}[i]
            return (c, c, 3, 3) if rest.endswith("weight") else (c,)
        cin, c = res_in[i], res_out[i]
        kind = "res" if j == "0" else "tr"
    else:
        cin, c = out_in[i], out_c[i]
        kind = "res" if j == "0" else ("up" if rest.startswith("conv.") else "tr")
    w = rest.endswith("weight")
    if kind == "up":
        return (c, c, 3, 3) if w else (c,)
    if kind == "res":
        table = {"in_layers.0": (cin,), "in_layers.2": (c, cin, 3, 3) if w else (c,),
                 "emb_layers.1": (c, 1280) if w else (c,), "out_layers.0": (c,),
                 "out_layers.3": (c, c, 3, 3) if w else (c,),
                 "skip_connection": (c, cin, 1, 1) if w else (c,)}
        return table[rest.rsplit(".", 1)[0]]
    name = rest.rsplit(".", 1)[0].replace("transformer_blocks.0.", "")
    if name in ("attn2.to_k", "attn2.to_v"):
        return (c, 1024)
    if name == "ff.net.0.proj":
        return (8 * c, c) if w else (8 * c,)
    if name == "ff.net.2":
        return (c, 4 * c) if w else (c,)
    if name in ("norm", "norm1", "norm2", "norm3"):
        return (c,)
    return (c, c) if w else (c,)        # proj_in, proj_out, to_q/k/v, to_out.0


def test_sd21_full_size_keys_shapes_and_parameter_count():
    with torch.device("meta"):
        unet = UNetModel(UNetConfig.sd21_base())
    assert count_parameters(unet) == SD21_PARAMS
    sd = unet.state_dict()
    keys, chans = _documented_sd21_layout()
    assert set(sd) == keys
    wrong = {k: (tuple(v.shape), _documented_sd21_shape(k)) for k, v in sd.items()
             if tuple(v.shape) != _documented_sd21_shape(k)}
    assert not wrong
    # shapes: stem, time embedding, transformers (Linear proj_in, context 1024), head
    assert sd["input_blocks.0.0.weight"].shape == (320, 4, 3, 3)
    assert sd["time_embed.0.weight"].shape == (1280, 320)
    assert sd["out.2.weight"].shape == (4, 320, 3, 3)
    for i, c in chans.items():
        assert sd[f"input_blocks.{i}.0.out_layers.3.weight"].shape == (c, c, 3, 3)
        assert sd[f"input_blocks.{i}.0.emb_layers.1.weight"].shape == (c, 1280)
        if f"input_blocks.{i}.1.proj_in.weight" in sd:
            p = f"input_blocks.{i}.1."
            assert sd[p + "proj_in.weight"].shape == (c, c)
            assert sd[p + "transformer_blocks.0.attn2.to_k.weight"].shape == (c, 1024)
            assert sd[p + "transformer_blocks.0.attn2.to_q.weight"].shape == (c, c)
            assert sd[p + "transformer_blocks.0.ff.net.0.proj.weight"].shape == (8 * c, c)
            assert sd[p + "transformer_blocks.0.ff.net.2.weight"].shape == (c, 4 * c)
    assert sd["middle_block.1.proj_in.weight"].shape == (1280, 1280)
    for i, cin, cout in ((0, 2560, 1280), (3, 2560, 1280), (5, 1920, 1280), (6, 1920, 640),
                         (8, 960, 640), (9, 960, 320), (11, 640, 320)):
        assert sd[f"output_blocks.{i}.0.in_layers.2.weight"].shape == (cout, cin, 3, 3)
        assert sd[f"output_blocks.{i}.0.skip_connection.weight"].shape == (cout, cin, 1, 1)
    # heads: 64 channels each (5, 10, 20 heads), as SD 2.x's num_head_channels 64
    assert [b[1].transformer_blocks[0].attn1.heads for b in unet.input_blocks if len(b) > 1 and
            hasattr(b[1], "transformer_blocks")] == [5, 5, 10, 10, 20, 20]
    assert infer_unet_config(sd) == UNetConfig.sd21_base()


def test_stablesr_and_mgld_full_size_layout():
    with torch.device("meta"):
        sr = UNetModel(UNetConfig.stablesr())
        mg = UNetModel(UNetConfig.mgld())
        enc = EncoderUNetModelWT()
    ssd, msd = sr.state_dict(), mg.state_dict()
    res_blocks = {k.rsplit(".out_layers.3.weight", 1)[0] for k in ssd if k.endswith("out_layers.3.weight")}
    assert len(res_blocks) == 22                    # 8 in, 2 middle, 12 out: all with SPADE
    for rb in res_blocks:
        c = ssd[rb + ".out_layers.3.weight"].shape[0]
        assert ssd[rb + ".spade.mlp_shared.0.weight"].shape == (128, 256, 3, 3)
        assert ssd[rb + ".spade.mlp_gamma.weight"].shape == (c, 128, 3, 3)
        assert ssd[rb + ".spade.param_free_norm.weight"].shape == (c,)
    sft_params = sum(v.numel() for k, v in ssd.items() if ".spade." in k)
    # StableSR paper: "encoder plus SFT ~ 105M parameters"
    assert 100e6 < sft_params + count_parameters(enc) < 110e6
    assert msd["middle_block.1.temporal_conv.weight"].shape == (1280, 1280, 3, 1, 1)
    assert msd["middle_block.3.temporal_attn.to_q.weight"].shape == (1280, 1280)
    assert msd["middle_block.3.norm.weight"].shape == (1280,)
    assert msd["middle_block.5.temporal_alpha"].shape == (1,)
    assert mg.middle_block[3].temporal_attn.heads == 20
    assert set(mgld_to_sd_state_dict(msd)) == set(ssd)
    assert sorted(k for k in enc.state_dict() if k.startswith("fea_tran.") and k.endswith("out_layers.3.weight")) \
        == [f"fea_tran.{i}.out_layers.3.weight" for i in range(4)]
    assert infer_unet_config(msd) == UNetConfig.mgld()
    assert infer_struct_encoder_config(enc.state_dict()) == StructEncoderConfig()

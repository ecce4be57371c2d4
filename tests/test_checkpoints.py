"""The loader: safe reading, format detection, building at any width, loading
state dicts laid out as each real checkpoint (SD 2.1, StableSR, MGLD-VSR, the
pack's own), clear errors for wrong or truncated files, dtype casts, inspect."""
import argparse
import io
import json
import os
import sys
from contextlib import redirect_stdout

import pytest
import torch
from safetensors.torch import save_file

from vsr_core import load_model
from vsr_core.checkpoints import (build_unet, load_checkpoint_contents, read_checkpoint, save_model,
                                  split_components)
from vsr_core.errors import CheckpointError, InputError
from vsr_core.models.sft import EncoderUNetModelWT, StructCondUNet, StructEncoderConfig
from vsr_core.models.unet import UNetConfig, UNetModel

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures", "unet"))
import golden_common as gc  # noqa: E402

UNET_P, ENC_P, VAE_P, TEXT_P = ("model.diffusion_model.", "structcond_stage_model.",
                                "first_stage_model.", "cond_stage_model.")
SCHEDULE = {"betas": torch.linspace(1e-4, 2e-2, 10), "alphas_cumprod": torch.ones(10),
            "model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(3)}


def _filled(module, prefix=""):
    gc.fill_golden(module, prefix)
    return module.eval()


def _unet(cfg=gc.OURS_SD2):
    return _filled(UNetModel(UNetConfig(**cfg)), UNET_P)


def _enc():
    return _filled(EncoderUNetModelWT(StructEncoderConfig(**gc.OURS_ENC)), ENC_P)


def _prefixed(prefix, module):
    return {prefix + k: v.clone() for k, v in module.state_dict().items()}


def _inputs(n=2):
    g = torch.Generator().manual_seed(3)
    return (torch.randn(n, 4, 8, 8, generator=g), torch.tensor([999.0, 5.0, 300.0][:n]),
            torch.randn(n, 5, 32, generator=g), torch.randn(n, 4, 8, 8, generator=g))


def _ckpt(path, sd):
    torch.save({"state_dict": sd, "global_step": 7, "epoch": 1}, path)
    return str(path)


# -- each real layout ------------------------------------------------------------

@torch.no_grad()
def test_sd21_layout_ckpt_loads_unet(tmp_path):
    ref = _unet()
    sd = _prefixed(UNET_P, ref)
    sd.update({VAE_P + "encoder.conv_in.weight": torch.zeros(32, 3, 3, 3),
               TEXT_P + "model.token_embedding.weight": torch.zeros(10, 32)})
    sd.update(SCHEDULE)
    path = _ckpt(tmp_path / "v2-1_512-ema-pruned.ckpt", sd)
    c = load_checkpoint_contents(path)
    assert c.format == "sd" and {"unet", "vae", "text"} <= set(c.components)
    assert set(c.ignored) == set(SCHEDULE)
    unet = load_model(path, kind="unet", overrides={"num_head_channels": 16})
    assert type(unet) is UNetModel and unet.config == ref.config
    x, t, ctx, _ = _inputs()
    assert torch.equal(unet(x, t, ctx), ref(x, t, ctx))


@torch.no_grad()
def test_stablesr_layout_returns_unet_with_struct_encoder(tmp_path):
    unet, enc = _unet(gc.OURS_SFT), _enc()
    sd = {**_prefixed(UNET_P, unet), **_prefixed(ENC_P, enc), **SCHEDULE}
    path = _ckpt(tmp_path / "stablesr_000117.ckpt", sd)
    assert load_checkpoint_contents(path).format == "stablesr"
    model = load_model(path, kind="unet", overrides={"num_head_channels": 16})
    assert isinstance(model, StructCondUNet)
    assert model.config.sft and model.config.sft_channels == 32
    x, t, ctx, lr = _inputs()
    ref = unet(x, t, ctx, struct_cond=enc(lr, torch.full((2,), 999.0)))
    assert torch.equal(model(x, t, ctx, lr_latent=lr, struct_timesteps=torch.full((2,), 999.0)), ref)
    # the structure encoder alone
    alone = load_model(path, kind="struct_encoder")
    assert isinstance(alone, EncoderUNetModelWT) and alone.config == enc.config


@torch.no_grad()
def test_mgld_layout_with_flownet_and_module_prefix(tmp_path):
    unet, enc = _unet(gc.OURS_MGLD), _enc()
    sd = {**_prefixed(UNET_P, unet), **_prefixed(ENC_P, enc)}
    sd["flownet_model.fnet.conv1.weight"] = torch.zeros(8, 3, 7, 7)
    sd = {"module." + k: v for k, v in sd.items()}            # saved from DataParallel
    path = str(tmp_path / "mgldvsr_unet.safetensors")
    save_file(sd, path)
    c = load_checkpoint_contents(path)
    assert c.format == "mgld" and "flownet" in c.components
    model = load_model(path, kind="unet", overrides={"num_head_channels": 16})
    assert model.config.temporal_middle
    x, t, ctx, lr = _inputs(2)
    ref = unet(x, t, ctx, struct_cond=enc(lr, t), num_frames=2)
    assert torch.equal(model(x, t, ctx, lr_latent=lr, num_frames=2), ref)


def test_bare_unet_and_struct_encoder_files(tmp_path):
    save_file({k: v.contiguous() for k, v in _unet().state_dict().items()}, str(tmp_path / "u.safetensors"))
    torch.save(_enc().state_dict(), tmp_path / "e.pth")
    assert isinstance(load_model(tmp_path / "u.safetensors"), UNetModel)
    assert isinstance(load_model(tmp_path / "e.pth"), EncoderUNetModelWT)


@torch.no_grad()
def test_own_format_round_trip_keeps_config_and_weights(tmp_path):
    cfg = dict(gc.OURS_MGLD, sfa_tfa=True, sfa_tfa_cond_channels=16, tfa_window=4, tfa_frames=2,
               prediction="v")
    unet = UNetModel(UNetConfig(**cfg)).eval()
    for p in unet.parameters():
        p.normal_(0, 0.05)
    model = StructCondUNet(unet, _enc())
    path = tmp_path / "ours.safetensors"
    save_model(model, path, metadata={"trained_on": "tests"})
    c = load_checkpoint_contents(path)
    assert c.format == "vsr_core"
    assert all(k.startswith((UNET_P, ENC_P)) for k in read_checkpoint(path)[0])
    back = load_model(path, kind="unet")
    assert isinstance(back, StructCondUNet) and back.config == unet.config
    assert back.config.prediction == "v" and back.config.tfa_window == 4
    x, t, ctx, lr = _inputs(2)
    assert torch.equal(back(x, t, ctx, lr_latent=lr, num_frames=2),
                       model(x, t, ctx, lr_latent=lr, num_frames=2))
    assert not any(f.startswith("ours.safetensors.tmp") for f in os.listdir(tmp_path))


@torch.no_grad()
def test_add_new_layers_to_sd_weights_start_as_identity(tmp_path):
    ref = _unet(gc.OURS_SFT)
    enc = _enc()
    path = _ckpt(tmp_path / "stablesr.ckpt", {**_prefixed(UNET_P, ref), **_prefixed(ENC_P, enc)})
    model = load_model(path, kind="unet", overrides={"num_head_channels": 16, "temporal_middle": True,
                                                     "sfa_tfa": True, "sfa_tfa_cond_channels": 16})
    assert model.config.temporal_middle and model.config.sfa_tfa
    assert not any(p.is_meta for p in model.parameters())
    x, t, ctx, lr = _inputs(2)
    want = ref(x, t, ctx, struct_cond=enc(lr, t))
    assert torch.equal(model(x, t, ctx, lr_latent=lr, num_frames=2), want)


# -- memory and dtype ----------------------------------------------------------------

def test_build_assigns_file_tensors_without_copy():
    sd = {k: v.clone() for k, v in _unet().state_dict().items()}
    unet = build_unet(sd, num_head_channels=16)
    for k, p in unet.state_dict().items():
        assert p.data_ptr() == sd[k].data_ptr(), k


@pytest.mark.parametrize("dtype,want", [("fp16", torch.float16), (torch.bfloat16, torch.bfloat16),
                                        ("fp32", torch.float32)])
def test_dtype_cast_on_request(tmp_path, dtype, want):
    path = tmp_path / "u.safetensors"
    save_model(_unet(), path)
    unet = load_model(path, kind="unet", dtype=dtype)
    assert {p.dtype for p in unet.parameters()} == {want}
    x, t, ctx, _ = _inputs()
    with torch.no_grad():
        out = unet(x, t, ctx)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


# -- bad files ------------------------------------------------------------------------

def test_truncated_safetensors_is_a_clear_error(tmp_path):
    path = tmp_path / "u.safetensors"
    save_model(_unet(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(path)


def test_truncated_ckpt_is_a_clear_error(tmp_path):
    path = _ckpt(tmp_path / "m.ckpt", _prefixed(UNET_P, _unet()))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) * 2 // 3])
    with pytest.raises(CheckpointError, match="truncated|corrupted"):
        load_model(path)


def test_missing_unexpected_and_mismatched_keys_are_listed(tmp_path):
    sd = _prefixed(UNET_P, _unet())
    del sd[UNET_P + "output_blocks.3.1.proj_out.weight"]
    del sd[UNET_P + "middle_block.2.emb_layers.1.bias"]
    sd[UNET_P + "input_blocks.1.0.in_layers.2.weight"] = torch.zeros(32, 32, 1, 1)
    sd[UNET_P + "output_blocks.0.2.conv.weight"] = torch.zeros(3)
    path = tmp_path / "bad.safetensors"
    save_file(sd, str(path))
    with pytest.raises(CheckpointError) as e:
        load_model(path, kind="unet")
    msg = str(e.value)
    assert "missing keys (2)" in msg and "output_blocks.3.1.proj_out.weight" in msg
    assert "middle_block.2.emb_layers.1.bias" in msg
    assert "unexpected keys (1)" in msg and "output_blocks.0.2.conv.weight" in msg
    assert "shape mismatches (1)" in msg and "input_blocks.1.0.in_layers.2.weight: file [32, 32, 1, 1]" in msg
    assert str(path) in msg


def test_wrong_kind_and_wrong_file(tmp_path):
    path = tmp_path / "u.safetensors"
    save_model(_unet(), path)
    with pytest.raises(CheckpointError, match="holds no vae"):
        load_model(path, kind="vae")
    save_file({"foo.weight": torch.zeros(2), "bar": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(CheckpointError, match="no known model"):
        load_model(tmp_path / "x.safetensors")
    save_file({"down_blocks.0.resnets.0.conv1.weight": torch.zeros(1)}, str(tmp_path / "d.safetensors"))
    with pytest.raises(CheckpointError, match="diffusers"):
        load_model(tmp_path / "d.safetensors")
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "nope.ckpt")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_model(tmp_path / "empty.ckpt")
    with pytest.raises(InputError, match="kind"):
        load_model(path, kind="lora")
    with pytest.raises(InputError, match="dtype"):
        load_model(path, dtype="int8")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_needs_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "hook": _Evil()}, path)
    with pytest.raises(CheckpointError, match="refusing.*system"):
        load_model(path)


def test_lightning_checkpoint_metadata_is_dropped_not_executed(tmp_path, monkeypatch):
    """Unpruned ldm checkpoints pickle Lightning's ModelCheckpoint next to the weights."""
    import types
    mod = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __init__(self):
            self.best_model_path = "epoch=117.ckpt"

        def __setstate__(self, state):          # would run under a plain torch.load
            raise AssertionError("pickled metadata code ran")
    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = mod.__name__, "ModelCheckpoint"
    mod.ModelCheckpoint = ModelCheckpoint
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    ref = _unet()
    path = tmp_path / "stablesr_000117.ckpt"
    torch.save({"state_dict": _prefixed(UNET_P, ref), "callbacks": {ModelCheckpoint: {"best": 1.0}},
                "cb": ModelCheckpoint()}, path)
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", mod.__name__):
        monkeypatch.delitem(sys.modules, name)
    unet = load_model(path, overrides={"num_head_channels": 16})
    assert unet.config == ref.config


def test_split_components_handles_lightning_wrappers_and_comfy_prefix():
    sd = {**_prefixed(UNET_P, _unet()), "model_ema.diffusion_modelinput_blocks00weight": torch.zeros(1)}
    c = split_components(sd)
    assert c.format == "sd" and c.ignored == ["model_ema.diffusion_modelinput_blocks00weight"]
    comfy = split_components(_prefixed("diffusion_model.", _unet()))   # ComfyUI model.state_dict()
    assert comfy.format == "sd" and set(comfy.components["unet"]) == set(_unet().state_dict())


# -- VAE / text delegation (the other half of the issue) ---------------------------------

def test_vae_kind_delegates_to_vae_module(tmp_path):
    from vsr_core.models import vae as vae_mod
    with torch.device("meta"):
        probe = vae_mod.AutoencoderKL(vae_mod.VAEConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1))
    sd = {VAE_P + k: gc.golden_tensor(k, v.shape) for k, v in probe.state_dict().items()}
    sd.update(_prefixed(UNET_P, _unet()))
    sd["first_stage_model.loss.logvar"] = torch.zeros(())
    path = _ckpt(tmp_path / "sd.ckpt", sd)
    vae = load_model(path, kind="vae", dtype="bf16")
    assert {p.dtype for p in vae.parameters()} == {torch.bfloat16}
    assert not any(p.is_meta for p in vae.parameters())
    rc, out = _inspect(path)
    assert rc == 0 and "[vae]" in out and "autoencoder_kl" in out


def test_text_kind_delegates_to_text_encoder_module(tmp_path):
    from vsr_core.models import text_encoder as te
    with torch.device("meta"):
        probe = te.OpenCLIPTextEncoder(te.TextEncoderConfig(vocab_size=50, context_length=8, width=64,
                                                            heads=1, layers=2, mlp_width=128,
                                                            embed_dim=None, logit_scale=False))
    sd = {TEXT_P + "model." + k: gc.golden_tensor(k, v.shape) for k, v in probe.state_dict().items()}
    sd.update(_prefixed(UNET_P, _unet()))
    text = load_model(_ckpt(tmp_path / "sd.ckpt", sd), kind="text")
    assert isinstance(text, te.OpenCLIPTextEncoder) and text.config == probe.config
    assert not any(p.is_meta for p in text.parameters())


def test_load_components_reads_a_full_ldm_file_once(tmp_path):
    from vsr_core.checkpoints import load_components
    from vsr_core.models import text_encoder as te
    from vsr_core.models import vae as vae_mod
    with torch.device("meta"):
        vae_probe = vae_mod.AutoencoderKL(vae_mod.VAEConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1))
        text_probe = te.OpenCLIPTextEncoder(te.TextEncoderConfig(vocab_size=50, context_length=8, width=64,
                                                                 heads=1, layers=2, mlp_width=128,
                                                                 embed_dim=None, logit_scale=False))
    sd = {VAE_P + k: gc.golden_tensor(k, v.shape) for k, v in vae_probe.state_dict().items()}
    sd.update({TEXT_P + "model." + k: gc.golden_tensor(k, v.shape) for k, v in text_probe.state_dict().items()})
    sd.update(_prefixed(UNET_P, _unet(gc.OURS_SFT)))
    sd.update(_prefixed(ENC_P, _enc()))
    parts = load_components(_ckpt(tmp_path / "full.ckpt", sd), kinds=("unet", "vae", "text"))
    assert set(parts) == {"unet", "vae", "text"}
    assert isinstance(parts["unet"], StructCondUNet)
    assert isinstance(parts["vae"], vae_mod.AutoencoderKL)
    assert isinstance(parts["text"], te.OpenCLIPTextEncoder)
    only_vae = {k: v for k, v in sd.items() if k.startswith(VAE_P)}
    assert set(load_components(_ckpt(tmp_path / "vae.ckpt", only_vae))) == {"vae"}


# -- inspect ----------------------------------------------------------------------------------

def _inspect(path, *extra):
    from vsr_core.commands import inspect as cmd
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["inspect", str(path), *extra])
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = args.func(args)
    return rc, buf.getvalue()


def test_inspect_prints_format_components_configs(tmp_path):
    unet, enc = _unet(gc.OURS_MGLD), _enc()
    path = _ckpt(tmp_path / "mgld.ckpt", {**_prefixed(UNET_P, unet), **_prefixed(ENC_P, enc), **SCHEDULE})
    rc, out = _inspect(path)
    assert rc == 0
    assert "format:  mgld" in out and "MGLD-VSR" in out
    assert f"{sum(p.numel() for p in unet.parameters()):,} parameters" in out
    assert "temporal_middle=True" in out and "layout:  OK" in out and "float32" in out
    rc, out = _inspect(path, "--json")
    info = json.loads(out)
    assert info["components"]["struct_encoder"]["config"]["out_channels"] == 32


def test_inspect_reports_a_mismatch(tmp_path):
    sd = _prefixed(UNET_P, _unet())
    del sd[UNET_P + "out.0.bias"]
    path = tmp_path / "bad.safetensors"
    save_file(sd, str(path))
    rc, out = _inspect(path)
    assert rc == 1 and "MISMATCH" in out and "out.0.bias" in out

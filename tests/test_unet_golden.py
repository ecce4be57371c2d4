"""Our UNet, SFT UNet, structure encoder and MGLD middle block against outputs
of the reference ldm code (Stability-AI/stablediffusion, StableSR, MGLD-VSR)
for the same deterministic weights. See tests/fixtures/unet/README.md."""
import os
import sys

import pytest
import torch
from safetensors.torch import load_file

from vsr_core.models.sft import EncoderUNetModelWT, StructCondUNet, StructEncoderConfig
from vsr_core.models.unet import UNetConfig, UNetModel

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "unet")
sys.path.insert(0, FIX)
import golden_common as gc  # noqa: E402

ATOL = 2e-5


def _load(name):
    return load_file(os.path.join(FIX, f"golden_{name}.safetensors"))


@pytest.fixture(scope="module")
def inputs():
    d = _load("sd2")
    return {k[len("input."):]: v for k, v in d.items() if k.startswith("input.")}, d


def _close(a, b, what):
    err = (a - b).abs().max().item()
    scale = b.abs().max().item()
    assert err <= ATOL * max(1.0, scale), f"{what}: max abs error {err:.3g} (output scale {scale:.3g})"


@torch.no_grad()
@pytest.mark.parametrize("tag,cfg", [("sd2", gc.OURS_SD2), ("sd1", gc.OURS_SD1)])
def test_plain_unet_matches_reference(inputs, tag, cfg):
    inp, gold = inputs
    unet = UNetModel(UNetConfig(**cfg)).eval()
    gc.fill_golden(unet)
    out = unet(inp["x"], inp["timesteps"], inp["context"])
    _close(out, gold[f"{tag}.eps"], f"{tag} UNet")


@torch.no_grad()
def test_sft_unet_and_struct_encoder_match_reference(inputs):
    inp, _ = inputs
    gold = _load("ssr")
    unet = UNetModel(UNetConfig(**gc.OURS_SFT)).eval()
    enc = EncoderUNetModelWT(StructEncoderConfig(**gc.OURS_ENC)).eval()
    gc.fill_golden(unet, "model.diffusion_model.")
    gc.fill_golden(enc, "structcond_stage_model.")
    sc = enc(inp["lr"], inp["struct_timesteps"])
    assert sorted(sc) == sorted(k.split(".")[-1] for k in gold if k.startswith("sft.struct."))
    for k, v in sc.items():
        _close(v, gold[f"sft.struct.{k}"], f"structure feature {k}")
    both = StructCondUNet(unet, enc).eval()
    out = both(inp["x"], inp["timesteps"], inp["context"], lr_latent=inp["lr"],
               struct_timesteps=inp["struct_timesteps"])
    _close(out, gold["sft.eps"], "SFT UNet")


@torch.no_grad()
def test_mgld_temporal_unet_matches_reference():
    gold = _load("mgld")
    unet = UNetModel(UNetConfig(**gc.OURS_MGLD)).eval()
    enc = EncoderUNetModelWT(StructEncoderConfig(**gc.OURS_ENC)).eval()
    gc.fill_golden(unet, "model.diffusion_model.")
    gc.fill_golden(enc, "structcond_stage_model.")
    both = StructCondUNet(unet, enc).eval()
    out = both(gold["mgld.x"], gold["mgld.timesteps"], gold["mgld.context"],
               lr_latent=gold["mgld.lr"], num_frames=gc.MGLD_FRAMES)
    _close(out, gold["mgld.eps"], "MGLD UNet")

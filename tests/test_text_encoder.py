"""OpenCLIP text tower (SD 2.x cond_stage_model) and the empty-prompt embedding.

The golden (tests/fixtures/vae/openclip_text_tiny.safetensors) was made by
ldm's FrozenOpenCLIPEmbedder (StableSR @398ee93, layer='penultimate') over an
open_clip_torch==2.0.2 CLIP with a tiny text tower (width 128, 2 heads, 3
layers, vocab 49408, context 77) holding `seeded_state_dict(..., seed=3)`;
tokens come from open_clip.tokenize. See tests/fixtures/vae/README.md.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vsr_core.errors import CheckpointError, InputError
from vsr_core.models.text_encoder import (EOT_TOKEN, PAD_TOKEN, SOT_TOKEN, OpenCLIPTextEncoder,
                                          TextEncoderConfig, build_text_encoder_from_state_dict,
                                          empty_prompt_tokens, load_text_encoder_state_dict,
                                          null_prompt_embedding)

FIX = Path(__file__).parent / "fixtures" / "vae"
TINY = TextEncoderConfig(width=128, heads=2, layers=3, mlp_width=512, embed_dim=64)


def seeded_state_dict(shapes: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(shapes):
        shape = tuple(shapes[k])
        r = torch.randn(shape, generator=g, dtype=torch.float64)
        if k == "logit_scale":
            t = torch.full(shape, math.log(1 / 0.07), dtype=torch.float64)
        elif k in ("token_embedding.weight", "positional_embedding"):
            t = 0.5 * r
        elif len(shape) >= 2:
            t = r / math.sqrt(shape[-1])
        elif k.endswith(".weight"):
            t = 1.0 + 0.1 * r
        else:
            t = 0.1 * r
        out[k] = t.to(torch.float32)
    return out


def tiny_sd(seed=3):
    with torch.device("meta"):
        m = OpenCLIPTextEncoder(TINY)
    return seeded_state_dict({k: v.shape for k, v in m.state_dict().items()}, seed)


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def test_empty_prompt_tokens_match_open_clip():
    g = load_file(FIX / "openclip_text_tiny.safetensors")
    t = empty_prompt_tokens()
    assert t.shape == (1, 77) and t.dtype == torch.long
    assert (SOT_TOKEN, EOT_TOKEN, PAD_TOKEN) == (49406, 49407, 0)
    assert torch.equal(t, g["empty_tokens"])


def test_matches_frozen_openclip_embedder():
    g = load_file(FIX / "openclip_text_tiny.safetensors")
    te = load_text_encoder_state_dict(tiny_sd())
    assert te.config == TINY
    null = null_prompt_embedding(te)
    assert null.shape == (1, 77, 128)
    torch.testing.assert_close(null, g["empty_penultimate"], atol=1e-5, rtol=0)
    torch.testing.assert_close(te(g["empty_tokens"], layer="last"), g["empty_last"], atol=1e-5, rtol=0)
    torch.testing.assert_close(te(g["tokens2"]), g["tokens2_penultimate"], atol=1e-5, rtol=0)
    # the golden is sensitive to the weights
    other = load_text_encoder_state_dict(tiny_sd(seed=4))
    assert (null_prompt_embedding(other) - g["empty_penultimate"]).abs().max() > 1e-2


def test_causal_mask():
    te = load_text_encoder_state_dict(tiny_sd())
    t = empty_prompt_tokens()
    t2 = t.clone()
    t2[0, 40:] = 123
    a, b = te(t), te(t2)
    assert torch.equal(a[:, :40], b[:, :40])
    assert not torch.equal(a[:, 40:], b[:, 40:])


def test_sd2_layout_full_size_on_meta():
    """Keys and shapes dumped from open_clip 2.0.2's ViT-H-14 CLIP minus the
    vision tower (what SD 2.x stores under cond_stage_model.model.)."""
    lay = json.loads((FIX / "layout_openclip_text_full.json").read_text())
    sd = {f"cond_stage_model.model.{k}": torch.empty(v, device="meta") for k, v in lay["keys"].items()}
    sd["first_stage_model.encoder.conv_in.weight"] = torch.empty(1, device="meta")
    te = build_text_encoder_from_state_dict(sd)
    assert te.config == TextEncoderConfig()  # ViT-H-14: width 1024, 16 heads, 24 layers
    assert sum(p.numel() for p in te.parameters()) == lay["params"] == 354_032_641
    te = load_text_encoder_state_dict(sd)
    assert te.positional_embedding.is_meta


def test_optional_projection_and_logit_scale():
    sd = {k: v for k, v in tiny_sd().items() if k not in ("text_projection", "logit_scale")}
    sd["attn_mask"] = torch.zeros(77, 77)  # stored by some open_clip versions; ignored
    te = load_text_encoder_state_dict(sd)
    assert te.config.embed_dim is None and not te.config.logit_scale
    g = load_file(FIX / "openclip_text_tiny.safetensors")
    torch.testing.assert_close(null_prompt_embedding(te), g["empty_penultimate"], atol=1e-5, rtol=0)


def test_round_trip_and_bad_checkpoints():
    sd = tiny_sd()
    te = load_text_encoder_state_dict(sd)
    for k, v in te.state_dict().items():
        assert torch.equal(v, sd[k])
    bad = dict(sd)
    del bad["transformer.resblocks.1.mlp.c_fc.weight"]
    bad["transformer.resblocks.0.ln_1.weight"] = torch.ones(64)
    with pytest.raises(CheckpointError) as e:
        load_text_encoder_state_dict(bad)
    msg = str(e.value)
    assert "transformer.resblocks.1.mlp.c_fc.weight" in msg and "missing keys (1)" in msg
    assert "transformer.resblocks.0.ln_1.weight: file [64]" in msg
    with pytest.raises(CheckpointError, match="token_embedding"):
        build_text_encoder_from_state_dict({"foo": torch.zeros(1)})


def test_bad_tokens():
    te = load_text_encoder_state_dict(tiny_sd())
    with pytest.raises(InputError, match="tokens"):
        te(torch.zeros(1, 78, dtype=torch.long))
    with pytest.raises(InputError, match="tokens"):
        te(torch.zeros(1, 77))
    with pytest.raises(InputError, match="tokens"):
        te(torch.full((1, 77), 49408))

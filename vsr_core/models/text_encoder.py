"""OpenCLIP text tower (ViT-H-14) as Stable Diffusion 2.x uses it, and the
empty-prompt conditioning StableSR / MGLD-VSR sample with.

Keys are those of an SD 2.x checkpoint under `cond_stage_model.model.` (ldm's
FrozenOpenCLIPEmbedder deletes the vision tower, so only the text tower is
there):

    token_embedding.weight           [vocab, width]        (49408 x 1024)
    positional_embedding             [context, width]      (77 x 1024)
    transformer.resblocks.{i}.ln_1.{weight,bias}
    transformer.resblocks.{i}.attn.in_proj_weight / in_proj_bias   [3w, w] / [3w]
    transformer.resblocks.{i}.attn.out_proj.{weight,bias}
    transformer.resblocks.{i}.ln_2.{weight,bias}
    transformer.resblocks.{i}.mlp.c_fc.{weight,bias}       [4w, w]
    transformer.resblocks.{i}.mlp.c_proj.{weight,bias}     [w, 4w]
    ln_final.{weight,bias}
    text_projection                  [width, embed_dim]    (optional here, unused by SD)
    logit_scale                      []                    (optional here, unused by SD)

Computation (ldm `FrozenOpenCLIPEmbedder.encode_with_transformer`, open_clip
2.0.x `ResidualAttentionBlock`): x = token_embedding(tokens) +
positional_embedding; pre-LN residual blocks x += attn(ln_1(x)) with a causal
mask, x += mlp(ln_2(x)) with exact GELU; SD 2.x uses layer='penultimate', i.e.
runs all but the last resblock, then applies ln_final. The text projection is
not applied. LayerNorm eps is 1e-5.

The empty prompt: open_clip's tokenizer gives [SOT=49406, EOT=49407] followed
by zeros (open_clip pads with token 0, not with EOT as OpenAI's CLIP/HF do) to
length 77, so it needs no vocabulary file; `null_prompt_embedding` runs it.

Heads are not visible in the weights' shapes; open_clip uses heads =
width // 64 (16 for ViT-H-14), which `infer_text_encoder_config` assumes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, InputError

__all__ = ["TextEncoderConfig", "OpenCLIPTextEncoder", "infer_text_encoder_config",
           "build_text_encoder_from_state_dict", "load_text_encoder_state_dict", "clean_text_encoder_state_dict",
           "empty_prompt_tokens", "null_prompt_embedding", "SOT_TOKEN", "EOT_TOKEN", "PAD_TOKEN",
           "TEXT_ENCODER_IGNORED_KEYS"]

SOT_TOKEN = 49406
EOT_TOKEN = 49407
PAD_TOKEN = 0

#: Keys some open_clip versions may store that are not weights (the causal
#: mask is rebuilt here). Drop them before loading.
TEXT_ENCODER_IGNORED_KEYS = ("attn_mask",)

_PREFIX = "cond_stage_model.model."


@dataclass(frozen=True)
class TextEncoderConfig:
    """Defaults: OpenCLIP ViT-H-14 text tower (SD 2.x)."""
    vocab_size: int = 49408
    context_length: int = 77
    width: int = 1024
    heads: int = 16
    layers: int = 24
    mlp_width: int = 4096
    embed_dim: int | None = 1024      # text_projection output; None: no projection
    logit_scale: bool = True
    layer: str = "penultimate"        # 'penultimate' (SD 2.x) or 'last'

    def __post_init__(self):
        if self.layer not in ("penultimate", "last"):
            raise InputError(f"text encoder layer: expected 'penultimate' or 'last', got {self.layer!r}")
        if self.width % self.heads:
            raise InputError(f"text encoder heads: width {self.width} is not divisible by {self.heads}")
        if self.layer == "penultimate" and self.layers < 2:
            raise InputError("text encoder layers: 'penultimate' needs at least 2 resblocks")


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_width: int):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width, eps=1e-5)
        self.attn = _MultiheadAttention(width)
        self.ln_2 = nn.LayerNorm(width, eps=1e-5)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, mlp_width))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(mlp_width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), self.heads)
        return x + self.mlp(self.ln_2(x))


class _MultiheadAttention(nn.Module):
    """nn.MultiheadAttention's parameter layout (in_proj_weight/bias, out_proj),
    batch-first, causal; computed with scaled_dot_product_attention."""

    def __init__(self, width: int):
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)
        if not self.in_proj_weight.is_meta:
            nn.init.xavier_uniform_(self.in_proj_weight)
            nn.init.zeros_(self.in_proj_bias)

    def forward(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, n, heads, c // heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, c))


class _Transformer(nn.Module):
    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(cfg.width, cfg.heads, cfg.mlp_width) for _ in range(cfg.layers))


class OpenCLIPTextEncoder(nn.Module):
    """forward(tokens [B, L<=context] long) -> hidden states [B, L, width]
    (the penultimate layer after ln_final for SD 2.x)."""

    def __init__(self, config: TextEncoderConfig | None = None):
        super().__init__()
        self.config = cfg = config or TextEncoderConfig()
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width))
        self.transformer = _Transformer(cfg)
        self.ln_final = nn.LayerNorm(cfg.width, eps=1e-5)
        if cfg.embed_dim is not None:
            self.text_projection = nn.Parameter(torch.empty(cfg.width, cfg.embed_dim))
        if cfg.logit_scale:
            self.logit_scale = nn.Parameter(torch.empty(()))
        if not self.positional_embedding.is_meta:
            nn.init.normal_(self.positional_embedding, std=0.01)
            if cfg.embed_dim is not None:
                nn.init.normal_(self.text_projection, std=cfg.width ** -0.5)
            if cfg.logit_scale:
                nn.init.constant_(self.logit_scale, 2.6592600345611572)  # log(1/0.07)

    def forward(self, tokens: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        cfg = self.config
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.dtype not in (
                torch.int64, torch.int32):
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise InputError(f"tokens: expected an integer tensor [B, L], got {shape}")
        if tokens.shape[1] > cfg.context_length:
            raise InputError(f"tokens: at most {cfg.context_length} per prompt, got {tokens.shape[1]}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= cfg.vocab_size):
            raise InputError(f"tokens: ids must be in [0, {cfg.vocab_size}), got "
                             f"{int(tokens.min())}..{int(tokens.max())}")
        layer = layer or cfg.layer
        n = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:n]
        blocks = self.transformer.resblocks
        stop = len(blocks) - (1 if layer == "penultimate" else 0)
        for block in list(blocks)[:stop]:
            x = block(x)
        return self.ln_final(x)


def empty_prompt_tokens(context_length: int = 77) -> torch.Tensor:
    """open_clip.tokenize(['']): [[49406, 49407, 0, 0, ...]] of length context_length."""
    t = torch.full((1, context_length), PAD_TOKEN, dtype=torch.long)
    t[0, 0], t[0, 1] = SOT_TOKEN, EOT_TOKEN
    return t


@torch.no_grad()
def null_prompt_embedding(text_encoder: OpenCLIPTextEncoder) -> torch.Tensor:
    """The empty-prompt conditioning [1, 77, width] ([1,77,1024] for SD 2.x):
    what ldm's FrozenOpenCLIPEmbedder returns for [''] (penultimate layer)."""
    p = next(text_encoder.parameters())
    tokens = empty_prompt_tokens(text_encoder.config.context_length).to(p.device)
    return text_encoder(tokens)


def clean_text_encoder_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip a `cond_stage_model.model.` prefix (keeping only those keys) and
    drop non-weight entries (`TEXT_ENCODER_IGNORED_KEYS`)."""
    if any(k.startswith(_PREFIX) for k in sd):
        sd = {k[len(_PREFIX):]: v for k, v in sd.items() if k.startswith(_PREFIX)}
    return {k: v for k, v in sd.items() if k not in TEXT_ENCODER_IGNORED_KEYS}


def infer_text_encoder_config(sd: Mapping[str, torch.Tensor], heads: int | None = None,
                              layer: str = "penultimate") -> TextEncoderConfig:
    """Config from shapes (any width); heads default width // 64 (open_clip)."""
    def shape(k):
        return tuple(sd[k].shape) if k in sd else None

    s = shape("token_embedding.weight")
    p = shape("positional_embedding")
    if s is None and p is None:
        raise CheckpointError("text encoder state dict: missing 'token_embedding.weight' and "
                              "'positional_embedding'; expected OpenCLIP text keys "
                              "(cond_stage_model.model.* of an SD 2.x checkpoint)")
    width = s[1] if s is not None else p[1]
    vocab = s[0] if s is not None else 49408
    context = p[0] if p is not None else 77
    idx = {int(m.group(1)) for k in sd if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))}
    if not idx:
        raise CheckpointError("text encoder state dict: no 'transformer.resblocks.{i}.*' keys")
    layers = max(idx) + 1
    mlp = None
    for i in sorted(idx):
        m = shape(f"transformer.resblocks.{i}.mlp.c_fc.weight")
        if m is not None:
            mlp = m[0]
            break
    mlp = mlp or 4 * width
    tp = shape("text_projection")
    heads = heads or max(1, width // 64)
    try:
        return TextEncoderConfig(vocab_size=vocab, context_length=context, width=width, heads=heads,
                                 layers=layers, mlp_width=mlp, embed_dim=tp[1] if tp else None,
                                 logit_scale="logit_scale" in sd, layer=layer)
    except InputError as e:
        raise CheckpointError(f"text encoder state dict: inferred an invalid config ({e})") from None


def build_text_encoder_from_state_dict(sd: Mapping[str, torch.Tensor], device="meta",
                                       heads: int | None = None, layer: str = "penultimate") -> nn.Module:
    """Build (NOT load) the OpenCLIP text tower matching `sd` (keys stripped
    of `cond_stage_model.model.`; a prefixed dict is accepted) on `device`
    (default 'meta'). Load with `load_state_dict(clean_text_encoder_state_dict(sd),
    assign=True)`, or use `load_text_encoder_state_dict`."""
    sd = clean_text_encoder_state_dict(sd)
    cfg = infer_text_encoder_config(sd, heads=heads, layer=layer)
    with torch.device(device):
        return OpenCLIPTextEncoder(cfg)


def load_text_encoder_state_dict(sd: Mapping[str, torch.Tensor], heads: int | None = None,
                                 layer: str = "penultimate",
                                 what: str = "text encoder checkpoint") -> OpenCLIPTextEncoder:
    """Build on meta, check keys/shapes (CheckpointError listing missing,
    unexpected and mismatched keys) and load with assign=True (no copy)."""
    from .state_dict import check_state_dict
    sd = clean_text_encoder_state_dict(sd)
    module = build_text_encoder_from_state_dict(sd, "meta", heads=heads, layer=layer)
    check_state_dict(module, sd, what=what)
    module.load_state_dict(sd, strict=True, assign=True)
    return module.eval().requires_grad_(False)

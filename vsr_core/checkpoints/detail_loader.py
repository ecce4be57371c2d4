"""Detail models: the per-frame image upscalers whose invented texture the relay carries through a video.

``load_detail_model(detail)`` takes a shipped name ('realesrgan-x4plus') or the path of any Real-ESRGAN
style checkpoint (.safetensors, or .pth/.pt read with weights_only=True; BasicSR's ``params_ema`` /
``params`` wrappers are unwrapped by io.read_checkpoint). The architecture is told from the keys:
``conv_first`` + ``body.N.rdbK`` is an RRDBNet (x4plus, x4plus-anime, x2plus), ``body.N`` convolutions
with PReLU slopes between them is an SRVGGNetCompact (animevideov3, general-x4v3); blocks, features and
scale are read from the shapes. A file that fits neither gets one line naming its missing and unexpected keys.
"""
from __future__ import annotations

import math
import os
import re

import torch
import torch.nn as nn

from ..errors import CheckpointError, InputError
from ..file_identity import file_identity
from ..models.rrdbnet import UNSHUFFLE, RRDBNet, RRDBNetConfig
from ..models.srvgg import SRVGGConfig, SRVGGNetCompact
from .io import read_checkpoint
from .shipped import read_card, shipped_path

# --detail names of the shipped detail models -> their kind in shipped.SHIPPED
SHIPPED_DETAIL = {"realesrgan-x4plus": "detail_realesrgan_x4plus"}
DEFAULT_DETAIL = "realesrgan-x4plus"
ARCHITECTURES = ("RRDBNet", "SRVGGNetCompact")
_EXPECTED = ("a Real-ESRGAN RRDBNet (conv_first, body.N.rdb1..3.conv1..5, conv_body, conv_up1, conv_up2, "
             "conv_hr, conv_last) or SRVGGNetCompact (body.N convolutions and PReLUs) state dict")
_SHOWN = 5          # keys listed per kind in an error, which stays on one line


def _keys(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"[{', '.join(items[:_SHOWN])}]{more}"


def detect_architecture(sd: dict, what: str = "checkpoint") -> str:
    """'RRDBNet' or 'SRVGGNetCompact', from the keys alone."""
    if "conv_first.weight" in sd or any(re.match(r"body\.\d+\.rdb\d\.", k) for k in sd):
        return "RRDBNet"
    if "body.0.weight" in sd and sd["body.0.weight"].dim() == 4:
        return "SRVGGNetCompact"
    raise CheckpointError(f"{what}: holds neither detail architecture (its keys start {_keys(sorted(sd))}); "
                          f"expected {_EXPECTED}")


def _need(sd: dict, keys: list[str], arch: str, what: str) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise CheckpointError(f"{what}: looks like a {arch} but lacks the keys its shape is read from: missing "
                              f"keys {_keys(missing)}; unexpected keys {_keys(sorted(set(sd) - set(keys)))}")


def infer_rrdbnet_config(sd: dict, what: str = "checkpoint") -> RRDBNetConfig:
    _need(sd, ["conv_first.weight", "body.0.rdb1.conv1.weight"], "RRDBNet", what)
    folded = sd["conv_first.weight"].shape[1]
    scale = next((s for s, f in UNSHUFFLE.items() if 3 * f * f == folded), None)
    if scale is None:
        raise CheckpointError(f"{what}: conv_first takes {folded} input channels; expected 3 (x4), 12 (x2) "
                              f"or 48 (x1) for an RRDBNet")
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"body\.(\d+)\.rdb", k))}
    return RRDBNetConfig(num_block=max(blocks) + 1, num_feat=sd["conv_first.weight"].shape[0],
                         num_grow_ch=sd["body.0.rdb1.conv1.weight"].shape[0], scale=scale)


def infer_srvgg_config(sd: dict, what: str = "checkpoint") -> SRVGGConfig:
    _need(sd, ["body.0.weight"], "SRVGGNetCompact", what)
    convs = sorted(int(m.group(1)) for k, v in sd.items() if (m := re.fullmatch(r"body\.(\d+)\.weight", k))
                   and v.dim() == 4)
    out = sd[f"body.{convs[-1]}.weight"].shape[0]
    scale = math.isqrt(out // 3)
    if len(convs) < 2 or 3 * scale * scale != out:
        raise CheckpointError(f"{what}: the last convolution body.{convs[-1]} gives {out} channels; expected "
                              f"3*scale^2 (12, 27 or 48) for an SRVGGNetCompact")
    return SRVGGConfig(num_feat=sd["body.0.weight"].shape[0], num_conv=len(convs) - 2, scale=scale)


def check_keys(module: nn.Module, sd: dict, what: str) -> None:
    """One-line CheckpointError unless ``sd`` has exactly the module's keys and shapes."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(k for k in expected if k not in sd)
    unexpected = sorted(k for k in sd if k not in expected)
    wrong = sorted(f"{k} {list(sd[k].shape)} not {list(expected[k])}" for k in expected
                   if k in sd and tuple(sd[k].shape) != expected[k])
    if missing or unexpected or wrong:
        shapes = f"; shape mismatches {_keys(wrong)}" if wrong else ""
        raise CheckpointError(f"{what}: does not match a {type(module).__name__} "
                              f"{module.config.to_dict()}: missing keys {_keys(missing)}; unexpected keys "
                              f"{_keys(unexpected)}{shapes}")


def build_detail_model(sd: dict, what: str = "checkpoint", dtype: torch.dtype = torch.float32) -> nn.Module:
    """The RRDBNet or SRVGGNetCompact that ``sd`` holds, loaded key for key, in eval mode."""
    if sd and all(k.startswith("module.") for k in sd):      # saved from a DataParallel wrapper
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if detect_architecture(sd, what) == "RRDBNet":
        model = RRDBNet(infer_rrdbnet_config(sd, what))
    else:
        model = SRVGGNetCompact(infer_srvgg_config(sd, what))
    check_keys(model, sd, what)
    model.load_state_dict({k: v.to(dtype) for k, v in sd.items()})
    return model.to(dtype).eval().requires_grad_(False)


def detail_weights_path(detail: str) -> str:
    """The file behind a --detail value: a shipped name, or a checkpoint path."""
    if detail in SHIPPED_DETAIL:
        return shipped_path(SHIPPED_DETAIL[detail])
    if not os.path.isfile(detail):
        raise InputError(f"--detail {detail!r}: no such file and not a shipped detail model; expected "
                         f"{' or '.join(SHIPPED_DETAIL)} or the path of a Real-ESRGAN style checkpoint")
    return detail


def load_detail_model(detail: str = DEFAULT_DETAIL, device: str | torch.device = "cpu") -> nn.Module:
    """A detail model in eval mode (float32) from a shipped name or a checkpoint path.

    The module carries ``.scale``, ``.detail_name`` (what was asked for), ``.weights_path`` and ``.card``
    (the shipped model card, else None); ``detail_identity`` keys a resume cache by it."""
    path = detail_weights_path(detail)
    sd, _ = read_checkpoint(path)
    model = build_detail_model(sd, f"detail model '{path}'")
    card = None
    if detail in SHIPPED_DETAIL:
        card = read_card(path)
        found = {"architecture": type(model).__name__, "config": model.config.to_dict()}
        if {k: card.get(k) for k in found} != found:
            raise CheckpointError(f"'{path}' holds a {found}, but its model card says "
                                  f"{ {k: card.get(k) for k in found} }; expected the card written with it")
    model.detail_name, model.weights_path, model.card = detail, os.path.abspath(path), card
    return model.to(device)


def detail_identity(model: nn.Module) -> dict:
    """What a resume cache keys a detail model by: its name, architecture and file content."""
    return {"detail": model.detail_name, "architecture": type(model).__name__,
            "config": model.config.to_dict(), "file": file_identity(model.weights_path)}


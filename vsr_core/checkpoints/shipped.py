"""The shipped weights, one registry: which file serves each default, its JSON model card, and the
loaders of the shipped kinds that are built from their card (the upscaler, the refiner).

Files live in vsr_core/weights/ (``name.safetensors`` + ``name.json``). The diffusion
bundles' layout is in bundle.py; user checkpoints load through loader.py.
"""
from __future__ import annotations

import hashlib
import json
import os

import torch

from ..errors import CheckpointError, InputError

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
# Every shipped file, by the kind a loader asks for. Each has a JSON model card beside it.
SHIPPED = {
    "upscaler_x4": "upscaler_x4.safetensors",          # the default fast path (x2 resamples its output)
    "upscaler_x4_clean": "upscaler_x4_clean.safetensors",  # the previous default: clean photos, BI only
    "refiner": "refiner.safetensors",
    "diffusion": "tiny_unet.safetensors",
    "video_vae": "tiny_video_vae.safetensors",
    "vae": "tiny_vae.safetensors",
    # the per-frame detail model (--detail realesrgan-x4plus), converted from Real-ESRGAN's ncnn release
    "detail_realesrgan_x4plus": "detail_realesrgan_x4plus.safetensors",
    "relay_fusion": "relay_fusion.safetensors",       # the relay's learned fusion (models/relay_fusion.py)
}


def has_shipped(kind: str) -> bool:
    return kind in SHIPPED and os.path.isfile(os.path.join(WEIGHTS_DIR, SHIPPED[kind]))


def shipped_path(kind: str) -> str:
    """Path of a shipped file (a key of SHIPPED); raises if it is missing."""
    if kind not in SHIPPED:
        raise InputError(f"shipped model kind={kind!r}; expected one of {', '.join(SHIPPED)}")
    if not has_shipped(kind):
        raise InputError(f"the shipped default '{SHIPPED[kind]}' is missing from {WEIGHTS_DIR}; reinstall the "
                         f"pack or train it (`python -m vsr_core train` / `train-diffusion`, see README)")
    return os.path.join(WEIGHTS_DIR, SHIPPED[kind])


def default_upscaler_path(scale: int = 4) -> str | None:
    """Path of the shipped upscaler usable for ``scale`` (x2 uses the x4 weights), or None."""
    return shipped_path("upscaler_x4") if has_shipped("upscaler_x4") else None


def clean_upscaler_path() -> str | None:
    """The previous default (clean photos, BI only), kept selectable; None if not installed."""
    return shipped_path("upscaler_x4_clean") if has_shipped("upscaler_x4_clean") else None


def has_default_upscaler(scale: int = 4) -> bool:
    return default_upscaler_path(scale) is not None


def _load_state(model: torch.nn.Module, weights_path: str) -> None:
    from safetensors.torch import load_file
    try:
        sd = load_file(weights_path)
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"'{weights_path}' is not a readable safetensors file: {err}") from err
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as err:   # shapes differ from what the card's config builds
        detail = "; ".join(line.strip() for line in str(err).splitlines()[1:4])
        raise CheckpointError(f"'{weights_path}' does not fit the architecture its card describes ({detail}); "
                              f"expected weights saved together with that card") from None
    if missing or unexpected:
        raise CheckpointError(f"'{weights_path}' does not match {type(model).__name__}: "
                              f"missing keys {sorted(missing)[:10]}, unexpected keys {sorted(unexpected)[:10]}")


def load_upscaler(weights_path: str, device: str | torch.device = "cpu"):
    """A VideoUpscaler in eval mode from ``path.safetensors`` + ``path.json``."""
    from ..models.upscaler import UpscalerConfig, VideoUpscaler
    if not os.path.exists(weights_path):
        raise InputError(f"upscaler weights '{weights_path}' do not exist")
    card = read_card(weights_path)
    if card.get("architecture") != "VideoUpscaler":
        raise CheckpointError(f"'{weights_path}' is a {card.get('architecture')!r}, expected a VideoUpscaler")
    try:
        model = VideoUpscaler(UpscalerConfig.from_dict(card.get("config", {})))
    except TypeError as err:
        raise CheckpointError(f"model card of '{weights_path}' has an invalid config ({err})") from None
    _load_state(model, weights_path)
    model.card = card
    model.weights_path = os.path.abspath(weights_path)   # what a resumable job keys its cache by
    return model.to(device).eval()


def load_default_upscaler(scale: int = 4, device: str | torch.device = "cpu"):
    """The shipped upscaler for ``scale`` (2 or 4). Its ``.scale`` may be 4 for scale=2:
    ``upscale_frames`` then runs x4 and resamples to x2 with antialiasing."""
    if scale not in (2, 4):
        raise InputError(f"scale={scale!r}; expected 2 or 4")
    path = default_upscaler_path(scale)
    if path is None:
        raise InputError(f"no shipped x{scale} upscaler weights in {WEIGHTS_DIR}; train them with "
                         f"`python -m vsr_core train --scale {scale}` or use method 'bicubic'")
    return load_upscaler(path, device)


def load_given_or_default_upscaler(weights_path: str | None, scale: int = 4):
    """The upscaler of a given weights file, else the shipped one for ``scale``."""
    return load_upscaler(weights_path) if weights_path else load_default_upscaler(scale)


def load_refiner(weights_path: str | None = None, device: str | torch.device = "cpu"):
    """The refiner from a weights file with a card (default: the shipped one)."""
    from ..models.refiner import Refiner, RefinerConfig
    path = weights_path or os.path.join(WEIGHTS_DIR, SHIPPED["refiner"])
    if not os.path.exists(path):
        raise InputError(f"refiner weights '{path}' do not exist; use refine(..., refiner=None) for the plain blend")
    card = read_card(path)
    if card.get("architecture") != "Refiner":
        raise CheckpointError(f"'{path}' is a {card.get('architecture')!r}, expected a Refiner")
    model = Refiner(RefinerConfig(**card["config"]))
    _load_state(model, path)
    model.card = card
    return model.to(device).eval()


def load_relay_fusion(weights_path: str | None = None, device: str | torch.device = "cpu"):
    """The relay's learned fusion from a weights file with a card (default: the shipped one)."""
    from ..models.relay_fusion import RelayFusion, RelayFusionConfig
    path = weights_path or os.path.join(WEIGHTS_DIR, SHIPPED["relay_fusion"])
    if not os.path.exists(path):
        raise InputError(f"relay fusion weights '{path}' do not exist; use the hand-designed relay (fusion "
                         f"'hand') or train them (`python -m vsr_core train --task relay_fusion`)")
    card = read_card(path)
    if card.get("architecture") != "RelayFusion":
        raise CheckpointError(f"'{path}' is a {card.get('architecture')!r}, expected a RelayFusion")
    try:
        model = RelayFusion(RelayFusionConfig.from_dict(card.get("config", {})))
    except (TypeError, InputError) as err:
        raise CheckpointError(f"model card of '{path}' has an invalid config ({err})") from None
    _load_state(model, path)
    model.card = card
    model.weights_path = os.path.abspath(path)
    return model.to(device).eval()


# -- model cards -----------------------------------------------------------------

def file_digest(path: str) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"file": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": h.hexdigest()}


def card_path(weights_path: str) -> str:
    return os.path.splitext(weights_path)[0] + ".json"


def read_card(weights_path: str) -> dict:
    path = card_path(weights_path)
    if not os.path.isfile(path):
        raise CheckpointError(f"model card '{path}' is missing; expected a JSON card next to '{weights_path}'")
    try:
        with open(path) as f:
            card = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"model card '{path}' is unreadable ({err}); expected the JSON card written "
                              f"with the weights") from None
    if not isinstance(card, dict) or not isinstance(card.get("config", {}), dict):
        raise CheckpointError(f"model card '{path}' is not a card; expected a JSON object with "
                              f"'architecture' and 'config'")
    return card


def write_card(weights_path: str, card: dict) -> str:
    p = card_path(weights_path)
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, p)
    return p

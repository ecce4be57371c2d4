"""Shipped default weights, trained on this project's own CPU run (see the .json model cards).

``load_default_upscaler(scale)`` builds the upscaler from the card's config
and loads its safetensors; ``load_upscaler(path)`` does the same for any
weights file with a card next to it (``name.safetensors`` + ``name.json``).
"""
from __future__ import annotations

import json
import os

import torch

from ..errors import CheckpointError, InputError

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_UPSCALERS = {4: "upscaler_x4"}
# The previous default, trained on clean photos only: sharper on clean BI input, worse on real footage.
CLEAN_UPSCALER = "upscaler_x4_clean"
DEFAULT_REFINER = "refiner"


def default_upscaler_path(scale: int = 4) -> str | None:
    """Path of the shipped upscaler usable for ``scale`` (x2 uses the x4 weights), or None."""
    name = DEFAULT_UPSCALERS.get(scale) or DEFAULT_UPSCALERS.get(4)
    path = os.path.join(HERE, name + ".safetensors")
    return path if os.path.exists(path) else None


def clean_upscaler_path() -> str | None:
    """The previous default (clean photos, BI only), kept selectable; None if not installed."""
    path = os.path.join(HERE, CLEAN_UPSCALER + ".safetensors")
    return path if os.path.exists(path) else None


def has_default_upscaler(scale: int = 4) -> bool:
    return default_upscaler_path(scale) is not None


def read_card(weights_path: str) -> dict:
    card_path = os.path.splitext(weights_path)[0] + ".json"
    if not os.path.exists(card_path):
        raise CheckpointError(f"model card '{card_path}' is missing; expected a JSON card next to '{weights_path}'")
    try:
        with open(card_path) as f:
            card = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"model card '{card_path}' is unreadable ({err}); expected the JSON card written "
                              f"with the weights") from None
    if not isinstance(card, dict) or not isinstance(card.get("config", {}), dict):
        raise CheckpointError(f"model card '{card_path}' is not a card; expected a JSON object with "
                              f"'architecture' and 'config'")
    return card


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
        raise InputError(f"no shipped x{scale} upscaler weights in {HERE}; train them with "
                         f"`python -m vsr_core train --scale {scale}` or use method 'bicubic'")
    return load_upscaler(path, device)


def load_refiner(weights_path: str | None = None, device: str | torch.device = "cpu"):
    """The refiner from a weights file with a card (default: the shipped one)."""
    from ..models.refiner import Refiner, RefinerConfig
    path = weights_path or os.path.join(HERE, DEFAULT_REFINER + ".safetensors")
    if not os.path.exists(path):
        raise InputError(f"refiner weights '{path}' do not exist; use refine(..., refiner=None) for the plain blend")
    card = read_card(path)
    if card.get("architecture") != "Refiner":
        raise CheckpointError(f"'{path}' is a {card.get('architecture')!r}, expected a Refiner")
    model = Refiner(RefinerConfig(**card["config"]))
    _load_state(model, path)
    model.card = card
    return model.to(device).eval()

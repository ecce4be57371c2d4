"""The cleaning knob: how hard the upscaler cleans its input, as a user setting.

``clean`` is "auto" (the network reads how noisy, compressed and blurred the clip is from its first
``LEVEL_FRAMES`` frames) or a number 0..1 that replaces the noise and compression readings: 0 keeps everything
in the input as detail (film grain, skin, foliage), 1 cleans as hard as the network can. Blur is always read
from the clip: it says how soft the input is, not how much of it to keep. One level per clip, so frames,
tiles and windows are all treated alike.
"""
from __future__ import annotations

import math
from typing import Iterable, Iterator

import torch

from ..errors import InputError

AUTO = "auto"
LEVEL_FRAMES = 16


def parse_clean(value) -> str | float:
    """"auto" or a number 0..1 (also given as text, as the command line and node widgets give it)."""
    number = value
    if isinstance(value, str):
        if value.strip().lower() == AUTO:
            return AUTO
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) \
            or not 0.0 <= number <= 1.0:
        raise InputError(f"clean={value!r}; expected 'auto' or a number from 0 (keep all detail) to 1 (clean hardest)")
    return float(number)


def has_degradation_input(model) -> bool:
    return getattr(model, "level_estimator", None) is not None


def reads_motion(model) -> bool:
    """Whether the model's level estimator reads the flow between frames (models.degradation_level)."""
    return bool(getattr(getattr(model, "level_estimator", None), "motion", False))


@torch.no_grad()
def clip_level(model, clean, frames: torch.Tensor, flow_forward: torch.Tensor | None = None) -> torch.Tensor | None:
    """The level [3] (noise, compression, blur) the whole clip is upscaled with, from its first frames
    [T,3,H,W] (and, for an estimator that reads motion, their forward flows [T-1,2,H,W], else estimated);
    None for weights without a degradation input, which only take clean='auto'."""
    clean = parse_clean(clean)
    if not has_degradation_input(model):
        if clean != AUTO:
            raise InputError(f"clean={clean}: these upscaler weights have no cleaning input; use clean='auto' "
                             f"or the shipped weights")
        return None
    p = next(model.parameters())
    # contiguous: frames that come channels-last (a ComfyUI IMAGE) read to the same last bit as a video's
    flows = None if flow_forward is None else \
        flow_forward[None, :LEVEL_FRAMES - 1].to(p.device, torch.float32).contiguous()
    level = model.estimate_level(frames[None, :LEVEL_FRAMES].to(p.device, torch.float32).contiguous(), flows)[0].cpu()
    if clean != AUTO:
        level[:2] = clean
    return level


def describe_level(level: torch.Tensor, clean) -> str:
    """One log line: where the level came from and its three readings."""
    clean = parse_clean(clean)
    how = "read from the clip" if clean == AUTO else f"clean={clean:g}, blur read from the clip"
    noise, compression, blur = (float(v) for v in level)
    return f"degradation level ({how}): noise {noise:.2f}, compression {compression:.2f}, blur {blur:.2f}"


def read_level(chunks: Iterable[torch.Tensor], model, clean, found: dict, reporter=None,
               pair_flows=None) -> Iterator[torch.Tensor]:
    """Pass a stream of LR chunks through, holding back the first ones until ``LEVEL_FRAMES`` frames (or the
    stream's end) have come: they set ``found["level"]`` (clip_level, logged), the same however the stream is
    cut into chunks. ``pair_flows`` (flow.pairs.PairFlows, frames counted from the stream's first): where the
    estimator reads motion, its flows come from there, so the first windows find them computed."""
    held: list[torch.Tensor] = []

    def settle():
        frames = torch.cat(held)[:LEVEL_FRAMES]
        flows = pair_flows.window(0, frames)[0] if pair_flows is not None and reads_motion(model) else None
        found["level"] = clip_level(model, clean, frames, flows)
        if found["level"] is not None and reporter is not None:
            reporter.log(describe_level(found["level"], clean))

    for chunk in chunks:
        if "level" in found:
            yield chunk
            continue
        held.append(chunk)
        if sum(len(c) for c in held) >= LEVEL_FRAMES:
            settle()
            yield from held
    if "level" not in found and held:
        settle()
        yield from held

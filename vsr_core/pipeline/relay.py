"""Detail relay over clips: the faithful upscaler, keyframes from any image model, the relay between them.

- ``pick_keyframes(lr, every)``: which frames a detail model should see (every N, scene cuts, first, last).
- ``relay_frames(lr, keyframes, indices, ...)``: in memory (the Relay Detail node): the learned upscaler over
  the clip, then each frame takes the detail of its nearest keyframes.
- ``relay_segments(chunks, model, detail, ...)``: streamed (the file job): segments of ``every * m + 1``
  frames that start and end on keyframes, so each holds the keyframes it needs; neighbours share their
  boundary keyframe, which is made once and handed on as segment state (and cached with it on resume).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..flow.dis import DISFlow
from ..flow.pairs import PairFlows
from ..models.upscaler import FLOW_PRESET, MIN_SIDE
from ..ops.frames import check_frames
from ..progress import Reporter, get_reporter
from ..relay import relay_clip, scene_starts, select_keyframes
from .cleaning import read_level
from .segments import run_segments
from .upscale import upscale_frames, upscale_window, window_tiles
from .upscale_settings import DEFAULT_KEYFRAME_EVERY, RELAY_FUSIONS, UpscaleSettings

FROM_SETTINGS = "settings"  # fusion= default: load the one settings.relay_fusion names
MIN_SEGMENT_FRAMES = 12     # the faithful upscaler's default window: at least this much temporal context


def check_every(every) -> int:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise InputError(f"keyframe_every={every!r}; expected an integer >= 1 (frames from one keyframe to the next)")
    return every


def load_fusion(choice: str = "learned"):
    """The relay's fusion: ``"learned"`` the shipped network (checkpoints.shipped.load_relay_fusion),
    ``"hand"`` None (the hand-designed mix), or the path of a RelayFusion ``.safetensors`` with its card."""
    from ..checkpoints.shipped import load_relay_fusion
    if choice == "hand":
        return None
    if choice == "learned" or (isinstance(choice, str) and choice.endswith(".safetensors")):
        return load_relay_fusion(None if choice == "learned" else choice)
    raise InputError(f"relay_fusion={choice!r}; expected one of {', '.join(RELAY_FUSIONS)} or a RelayFusion "
                     f".safetensors file")


def pick_keyframes(lr: torch.Tensor, every: int = DEFAULT_KEYFRAME_EVERY, detect_cuts: bool = True) -> list[int]:
    """Keyframe indices of a clip [T,3,h,w]: every ``every``-th frame of each scene, its first and last."""
    check_frames(lr, "frames")
    cuts = scene_starts(lr) if detect_cuts else []
    return select_keyframes(lr.shape[0], check_every(every), cuts)


def pick_keyframes_stream(chunks: Iterable[torch.Tensor], every: int = DEFAULT_KEYFRAME_EVERY,
                          detect_cuts: bool = True) -> tuple[list[int], torch.Tensor]:
    """``pick_keyframes`` over a stream of LR chunks [n,3,h,w]: (indices, the LR keyframes [K,3,h,w]).
    Only the keyframes and one frame of look-back are held, whatever the length."""
    check_every(every)
    indices, frames, cuts = [], [], []
    previous, count = None, 0
    for chunk in chunks:
        check_frames(chunk, "frames")
        if detect_cuts:
            with_lead = torch.cat([previous[None], chunk]) if previous is not None else chunk
            offset = count - (previous is not None)
            for c in scene_starts(with_lead, first_index=offset):
                cuts.append(c)
                if c - 1 not in indices:                 # the last frame of the scene that ended
                    indices.append(c - 1)
                    frames.append(previous if c - 1 == count - 1 else chunk[c - 1 - count])
        for i, frame in enumerate(chunk):
            if ((count + i) % every == 0 or (count + i) in cuts) and (count + i) not in indices:
                indices.append(count + i)
                frames.append(frame)
        previous, count = chunk[-1], count + len(chunk)
    if count == 0:
        raise InputError("the video has no frames; expected at least one")
    if count - 1 not in indices:
        indices.append(count - 1)
        frames.append(previous)
    order = sorted(range(len(indices)), key=indices.__getitem__)
    return [indices[i] for i in order], torch.stack([frames[i] for i in order])


def fit_keyframes(keyframes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """HR keyframes [K,3,h,w] from any image model, resized to the output size; the aspect ratio must match."""
    check_frames(keyframes, "keyframes")
    h, w = keyframes.shape[-2:]
    if abs(h / w - height / width) > 0.02:
        raise InputError(f"keyframes are {w}x{h}; expected the upscaled frames' shape {width}x{height} or the "
                         f"same aspect ratio (a keyframe source that crops or pads cannot be relayed)")
    if (h, w) == (height, width):
        return keyframes
    return F.interpolate(keyframes, size=(height, width), mode="bicubic", align_corners=False,
                         antialias=h > height).clamp_(0, 1)


def parse_indices(text, num_frames: int, count: int) -> list[int]:
    """Keyframe indices from a list or a string like "0, 8, 16": ``count`` distinct frames of the clip."""
    try:
        indices = [int(v) for v in (text.replace(",", " ").split() if isinstance(text, str) else text)]
    except (TypeError, ValueError):
        raise InputError(f"keyframe_indices={text!r}; expected frame numbers like '0, 8, 16'") from None
    if len(indices) != count:
        raise InputError(f"keyframe_indices lists {len(indices)} frames but {count} keyframe images came; "
                         f"expected one index per keyframe, in the keyframes' order")
    bad = [i for i in indices if not 0 <= i < num_frames]
    if bad or len(set(indices)) != len(indices):
        raise InputError(f"keyframe_indices={indices}; expected distinct frame numbers from 0 to {num_frames - 1}")
    return indices


def relay_frames(lr: torch.Tensor, keyframes: torch.Tensor, indices, model,
                 settings: UpscaleSettings = UpscaleSettings(), detect_cuts: bool = True,
                 reporter: Reporter | None = None, fusion=FROM_SETTINGS) -> torch.Tensor:
    """LR clip [T,3,h,w] + HR keyframes [K,3,H',W'] at frames ``indices`` -> [T,3,h*scale,w*scale]: the
    learned upscaler with ``settings`` (scale, window, tile, clean), then ``settings.detail_strength`` of the
    keyframes' detail, mixed as ``settings.relay_fusion`` says (``fusion``: an already loaded RelayFusion,
    or None for the hand-designed mix, instead)."""
    check_frames(lr, "frames", MIN_SIDE)
    indices = parse_indices(indices, lr.shape[0], keyframes.shape[0] if isinstance(keyframes, torch.Tensor) else -1)
    rep = get_reporter(reporter)
    faithful = upscale_frames(lr, model, settings, reporter=rep)
    if settings.detail_strength == 0.0:
        return faithful
    fitted = fit_keyframes(keyframes, *faithful.shape[-2:])
    cuts = scene_starts(lr) if detect_cuts else []
    fusion = load_fusion(settings.relay_fusion) if fusion == FROM_SETTINGS else fusion
    rep.start(lr.shape[0], "relay detail")
    return relay_clip(faithful, dict(zip(indices, fitted)), settings.scale, float(settings.detail_strength), cuts,
                      reporter=rep, fusion=fusion)


def relay_segment_frames(every: int) -> int:
    """Frames per streamed segment: whole keyframe intervals, at least MIN_SEGMENT_FRAMES + 1."""
    return every * max(1, math.ceil(MIN_SEGMENT_FRAMES / every)) + 1


def segment_keyframes(num_frames: int, first_frame: int, every: int, cuts: list[int]) -> list[int]:
    """Keyframes of a streamed segment (local indices) that starts on the every-N grid: the grid's frames,
    the segment's last frame, and each scene's first and last (``cuts``: local scene starts). The
    same frames ``pick_keyframes`` picks over the whole clip, as long as segments start on the grid."""
    grid = {k - first_frame for k in range(first_frame, first_frame + num_frames) if k % every == 0}
    return sorted(grid | set(select_keyframes(num_frames, num_frames, cuts)))


def relay_segments(chunks: Iterable[torch.Tensor], model, keyframe: Callable[[int, torch.Tensor], torch.Tensor],
                   settings: UpscaleSettings = UpscaleSettings(), detect_cuts: bool = True,
                   reporter: Reporter | None = None, resume=None, fusion=FROM_SETTINGS) -> Iterator:
    """Stream of LR chunks -> SegmentResults of relayed HR frames, resumable (pipeline.segments).

    ``keyframe(index, lr [1,3,h,w]) -> HR [1,3,H',W']``: the keyframe source (a detail model such as
    Real-ESRGAN, or a folder of keyframes made elsewhere), asked once for each keyframe. Segments overlap
    by their boundary keyframe, cross-faded with itself. Of ``settings``: scale, keyframe_every,
    detail_strength, tile_px, precision and clean (the faithful upscale's cleaning, pipeline.cleaning: its
    level read once, from the first chunk) and relay_fusion (``fusion``: an already loaded RelayFusion, or
    None for the hand-designed mix, instead)."""
    every, scale, strength = settings.keyframe_every, settings.scale, float(settings.detail_strength)
    fusion = load_fusion(settings.relay_fusion) if fusion == FROM_SETTINGS else fusion
    pair_flows = PairFlows(DISFlow(FLOW_PRESET), keep=2 * relay_segment_frames(every))
    clip: dict = {}

    def process(lr, lead, state, export, first_frame):
        tiles = window_tiles(settings.upscaler_tile_px, settings.tile_overlap_px, lr)
        faithful = upscale_window(lr, first_frame, model, pair_flows, True, tiles, settings.precision, scale,
                                  level=clip["level"])
        cuts = []
        if detect_cuts:       # the lead frame (the one before the segment) shows a cut at its first frame
            cuts = [c - 1 for c in scene_starts(torch.cat([lead[None], lr])) if c > 1] if lead is not None \
                else scene_starts(lr)
        made = {}
        for k in segment_keyframes(len(lr), first_frame, every, cuts):
            given = state.get("boundary_key") if k == 0 else None
            made[k] = given if given is not None else \
                fit_keyframes(keyframe(first_frame + k, lr[k:k + 1]), *faithful.shape[-2:])[0]
        out = relay_clip(faithful, made, scale, strength, cuts, fusion=fusion)
        return out, {"boundary_key": made[len(lr) - 1]}

    rep = get_reporter(reporter)
    yield from run_segments(read_level(chunks, model, settings.clean, clip, rep), process,
                            relay_segment_frames(every), 1, rep, resume)

"""`upscale --detail`: the faithful video upscaler plus keyframe detail relayed by motion, file to file,
streamed and resumable like every job (jobs.file_job).

The keyframe source is a detail model run on the keyframes' LR frames (the command line), or a folder of
keyframes made elsewhere, named by frame number (the streaming node: any ComfyUI image model made them).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from ..file_identity import file_identity
from ..models.upscaler import FLOW_PRESET
from ..ops.frames import float_to_uint8, tchw_to_thwc, thwc_to_tchw, uint8_to_float
from ..pipeline.memory_fallback import OutOfMemory
from ..pipeline.memory_plan import CLI_FLAGS, FreeMemory, plan_upscale
from ..pipeline.relay import load_fusion, relay_segment_frames, relay_segments
from ..pipeline.upscale_settings import UpscaleSettings, check_model_scale
from ..progress import Reporter, get_reporter
from ..relay import RELAY_FLOW_PRESET, GateSettings
from .file_job import CacheSettings, OutputSettings, run_file_job
from .job_settings import CHUNK_FRAMES, JobSettings

KEYFRAME_NAME = "frame_{:06d}.png"
RELAY_FRAMES_EXTRA = 1.5   # the relay's output, keyframe details and flows, per segment frame (float32 RGB HR)


@dataclass(frozen=True)
class KeyframeSource:
    """Where keyframes come from: ``make(index, lr [1,3,h,w]) -> HR [1,3,H,W]`` and what keys the cache."""
    make: Callable[[int, torch.Tensor], torch.Tensor]
    identity: dict


def detail_model_keyframes(model, precision: str = "auto") -> KeyframeSource:
    """Keyframes made by a detail model (checkpoints.detail_loader) from each keyframe's LR frame."""
    from ..checkpoints.detail_loader import detail_identity
    from ..pipeline.detail import detail_upscale

    def make(index, lr):
        return detail_upscale(lr, model, precision=precision)
    return KeyframeSource(make, {"detail_model": detail_identity(model)})


def folder_keyframes(folder: str) -> KeyframeSource:
    """Keyframes read from ``folder``/frame_NNNNNN.png (NNNNNN: the frame number in the selected frames)."""
    import cv2
    if not os.path.isdir(folder):
        raise InputError(f"keyframes folder '{folder}' does not exist; expected a folder of "
                         f"{KEYFRAME_NAME.format(8)}-style images named by frame number")

    def make(index, lr):
        path = os.path.join(folder, KEYFRAME_NAME.format(index))
        image = cv2.imread(path, cv2.IMREAD_COLOR) if os.path.isfile(path) else None
        if image is None:
            raise InputError(f"keyframe {index} is missing or unreadable: '{path}'; expected every keyframe "
                             f"Pick Keyframes listed, made detailed, saved under its frame number")
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return uint8_to_float(rgb).permute(2, 0, 1)[None]
    files = sorted(n for n in os.listdir(folder) if n.startswith("frame_") and n.endswith(".png"))
    return KeyframeSource(make, {"folder": os.path.abspath(folder),
                                 "files": [[n, file_identity(os.path.join(folder, n))] for n in files]})


def save_keyframes(folder: str, keyframes: torch.Tensor, indices: list[int]) -> str:
    """Write HR keyframes [K,3,H,W] as ``folder``/frame_NNNNNN.png for ``folder_keyframes``; returns the folder.
    A folder already holding the same names is reused (the same keyframes were saved before)."""
    import cv2
    os.makedirs(folder, exist_ok=True)
    for index, frame in zip(indices, keyframes):
        path = os.path.join(folder, KEYFRAME_NAME.format(index))
        if not os.path.exists(path):
            rgb = float_to_uint8(frame.permute(1, 2, 0), f"keyframe {index}")
            tmp = path + ".partial.png"
            cv2.imwrite(tmp, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            os.replace(tmp, path)
    return folder


def relay_file(src: str, dst: str, model, keyframes: KeyframeSource, settings: UpscaleSettings = UpscaleSettings(),
               job: JobSettings = JobSettings(), detect_cuts: bool = True, reporter: Reporter | None = None) -> int:
    """Upscale ``src`` with ``model`` (a VideoUpscaler) and relay ``keyframes``' detail into ``dst``;
    returns the frame count. Memory holds one segment of ``keyframe_every * m + 1`` frames (pipeline.relay).
    Of ``settings``: scale, keyframe_every, detail_strength, relay_fusion, tile_px, precision and clean
    (pipeline.cleaning)."""
    scale, every, tile = settings.scale, settings.keyframe_every, settings.upscaler_tile_px
    segment = relay_segment_frames(every)
    check_model_scale(scale, model.scale)
    if getattr(model, "weights_path", None) is None:
        raise InputError("the upscaler has no weights file to key the resume cache by; expected one loaded "
                         "with vsr_core.checkpoints.shipped.load_upscaler")
    key = {"command": "upscale", "method": "relay", "scale": scale, "every": every,
           "strength": float(settings.detail_strength), "detect_cuts": detect_cuts, "tile": tile,
           "flow": f"dis:{FLOW_PRESET}",
           "relay": {"flow": f"dis:{RELAY_FLOW_PRESET} chained", "gate": GateSettings().__dict__},
           "weights": file_identity(model.weights_path), "keyframes": keyframes.identity}
    if settings.clean != "auto":      # "auto" stays out of the key, so caches of earlier versions still resume
        key["clean"] = settings.clean
    fusion = load_fusion(settings.relay_fusion)
    if fusion is not None:            # likewise: the hand-designed relay keys its cache as before
        key["relay"]["fusion"] = file_identity(fusion.weights_path)
    cache = CacheSettings(key=key, folder=job.cache_dir, keep=job.keep_cache,
                          chunk_frames=job.chunk_frames or CHUNK_FRAMES)
    reporter = get_reporter(reporter)
    chosen = {"tile": tile}

    def prepare(reader, cache):      # the upscaler's memory plan for a whole segment, plus the relay's own frames
        h, w = reader.height, reader.width
        extra = RELAY_FRAMES_EXTRA * segment * 12 * h * w * scale * scale
        plan = plan_upscale(h, w, scale, segment, 1, tile, FreeMemory.of(next(model.parameters()).device),
                            extra_ram=extra)
        if plan.window < segment:
            raise OutOfMemory(f"{w}x{h} at x{scale} with a keyframe every {every} frames needs segments of "
                              f"{segment} frames, which do not fit the free memory; use a smaller "
                              f"--keyframe-every, --scale 2, or free memory")
        reporter.log(plan.describe(tile, segment, CLI_FLAGS))
        chosen["tile"] = cache.key["tile"] = plan.tile

    def work(reader, resume, consumer_state):
        lr_chunks = (thwc_to_tchw(uint8_to_float(batch)) for batch in reader.windows(segment))
        planned = dataclasses.replace(settings, tile_px=chosen["tile"])
        for result in relay_segments(lr_chunks, model, keyframes.make, planned, detect_cuts, reporter=reporter,
                                     resume=resume, fusion=fusion):
            frames: np.ndarray = float_to_uint8(tchw_to_thwc(result.frames), "relayed frames", result.first_frame)
            yield result, frames, {}

    return run_file_job(src, OutputSettings(dst, job.format, job.crf, job.overwrite), work, job.load, cache,
                        reporter, f"upscale x{scale} with detail relayed from every {every}th frame",
                        prepare=prepare)

"""Streaming nodes: a core VIDEO in, a core VIDEO out, never the whole clip in RAM.

The clip goes from file to file through the same resumable job as
`python -m vsr_core upscale`: memory stays one window whatever the length,
Cancel stops within a window, and queueing the same job again resumes from
its cache (kept in ComfyUI's temp folder, keyed by the input's content, the
settings and the weights).
"""
from __future__ import annotations

import hashlib
import json
import os

from contextlib import ExitStack

from vsr_core.api import (InputError, JobSettings, LoadOptions, RestoreModels, RestoreSettings, UpscaleSettings,
                          file_identity, load_refiner, open_video, restore_file, source_identity, upscale_file,
                          with_values)

from .comfy_bridge import free_memory, make_reporter, on_compute_device, temp_directory, video_from_file
from .convert import core_video_path, frames_to_image
from .nodes_upscale import CATEGORY, CLEAN_INPUT, NODE_FLAGS, UPSCALE, UPSCALE_INPUTS
from .setting_inputs import renamed_inputs, setting_input, setting_inputs

FORMATS = {"h264-mp4": ("h264", ".mp4"), "ffv1-mkv (lossless)": ("ffv1", ".mkv")}
RESTORE_INPUTS = ("steps", "sampler", "seed", "guidance_scale", "segment", "segment_overlap")
OUTPUT_INPUTS = {
    "format": (list(FORMATS), {"default": "h264-mp4", "tooltip": "h264 (plays everywhere) or FFV1 (lossless RGB)."}),
    "crf": setting_input(JobSettings(), "crf"),
    "preview_frames": ("INT", {"default": 4, "min": 0, "max": 64, "tooltip":
                               "Frames of the result returned as IMAGE to look at in the graph."}),
}


def _source(video) -> str:
    path = core_video_path(video)
    if path is None:
        raise InputError("video is held in memory, not in a file; expected a VIDEO from core Load Video "
                         "(streaming needs a file to read window by window)")
    return path


def _destination(kind: str, job: dict, format: str) -> tuple[str, str]:
    """(format, path in ComfyUI's temp folder named by the job: the same job queued again finds its own
    finished file, or its cache beside it)."""
    if format not in FORMATS:
        raise InputError(f"format={format!r}; expected one of {list(FORMATS)}")
    fmt, ext = FORMATS[format]
    name = hashlib.sha256(json.dumps({**job, "fmt": fmt}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = os.path.join(temp_directory(), "vsr_streaming")
    os.makedirs(folder, exist_ok=True)
    return fmt, os.path.join(folder, f"{kind}_{name}{ext}")


def _result(path: str, preview_frames: int) -> tuple:
    preview = None
    if preview_frames:
        preview = frames_to_image(open_video(path, LoadOptions(frame_load_cap=preview_frames)).read_all())
    return (video_from_file(path), preview, path)


def _identity(obj, what: str) -> dict:
    """A loaded model's file identity (set by the pack's loaders), for the resume cache's key."""
    source = getattr(obj, "source", None) or {"path": getattr(obj, "weights_path", None)}
    if not source.get("path"):
        raise InputError(f"{what} was not loaded from a file by the pack's loaders; expected it from "
                         f"Load Diffusion Model / Load VAE / Load Upscaler (VSR) so the job can be resumed")
    return {**source, "file": file_identity(source["path"])}


class VSR_UpscaleVideoStreaming:
    """The pack's video upscaler from a VIDEO to a VIDEO, streamed window by window through files."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "A video from a file (core Load Video, or any node that "
                                    "gives a file-backed VIDEO)."}),
                "upscaler": ("VSR_UPSCALER", {"tooltip": "From Load Upscaler (VSR)."}),
                **setting_inputs(UPSCALE, *UPSCALE_INPUTS),
                **OUTPUT_INPUTS,
            },
            "optional": {"clean": CLEAN_INPUT},
        }

    # inputs renamed for readability (old name -> new); the runner maps prompts saved with the old names
    RENAMED_INPUTS = renamed_inputs(UPSCALE, *UPSCALE_INPUTS)
    RETURN_TYPES = ("VIDEO", "IMAGE", "STRING")
    RETURN_NAMES = ("video", "preview", "path")
    OUTPUT_TOOLTIPS = ("The upscaled video, backed by its file (wire it to core Save Video).",
                       "The first frames of the result.", "Where the upscaled file is.")
    FUNCTION = "upscale"
    CATEGORY = CATEGORY
    DESCRIPTION = "Upscale a long video with bounded memory, resumable after Cancel; keeps fps and audio."

    def upscale(self, video, upscaler, scale, window, window_overlap, tile_px, stabilize, format, crf,
                preview_frames, clean="auto"):
        source = _source(video)
        settings = UpscaleSettings(scale=scale, window=window, window_overlap=window_overlap, tile_px=tile_px,
                                   stabilize=float(stabilize), clean=clean)
        job = {"input": source_identity(source), "weights": _identity(upscaler, "upscaler"),
               "settings": repr(settings), "crf": crf}
        fmt, dst = _destination("upscaled", job, format)
        if not os.path.exists(dst):            # the same job finished before: its file is the answer
            with on_compute_device(upscaler):
                upscale_file(source, dst, settings, JobSettings(format=fmt, crf=crf), model=upscaler,
                             reporter=make_reporter(), memory=free_memory(next(upscaler.parameters()).device),
                             flags=NODE_FLAGS)
        return _result(dst, preview_frames)


RESTORE = RestoreSettings()


class VSR_RestoreVideoStreaming:
    """The whole diffusion graph (flow, upscale, encode, Guided Sample, temporal decode, refine) from a VIDEO
    to a VIDEO, in segments through files, like `python -m vsr_core restore`."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "A video from a file (core Load Video)."}),
                "model": ("VSR_DIFFUSION", {"tooltip": "From Load Diffusion Model (VSR)."}),
                "vae": ("VSR_VAE", {"tooltip": "From Load VAE (VSR) or the diffusion loader's own VAE."}),
                "upscaler": ("VSR_UPSCALER", {"tooltip": "From Load Upscaler (VSR): the first stage."}),
                **{name: setting_input(RESTORE, name) for name in RESTORE_INPUTS[:3]},
                "guidance": setting_input(RESTORE, "guidance_scale"),
                **{name: setting_input(RESTORE, name) for name in RESTORE_INPUTS[4:]},
                **OUTPUT_INPUTS,
            },
        }

    RETURN_TYPES = ("VIDEO", "IMAGE", "STRING")
    RETURN_NAMES = ("video", "preview", "path")
    OUTPUT_TOOLTIPS = ("The restored video, backed by its file (wire it to core Save Video).",
                       "The first frames of the result.", "Where the restored file is.")
    FUNCTION = "restore"
    CATEGORY = CATEGORY
    DESCRIPTION = "Run the full diffusion restoration over a long video segment by segment, resumable after " \
                  "Cancel; keeps fps and audio."

    def restore(self, video, model, vae, upscaler, steps, sampler, seed, guidance, segment, segment_overlap,
                format, crf, preview_frames):
        source = _source(video)
        settings = with_values(RESTORE, dict(zip(RESTORE_INPUTS, (steps, sampler, seed, guidance, segment,
                                                                   segment_overlap))))
        files = {"diffusion": _identity(model, "model"), "vae": _identity(vae, "vae"),
                 "upscaler": _identity(upscaler, "upscaler")}
        job = {"input": source_identity(source), "models": files, "settings": repr(settings), "crf": crf}
        fmt, dst = _destination("restored", job, format)
        if not os.path.exists(dst):
            models = RestoreModels(upscaler, model, vae, load_refiner(), files)
            with ExitStack() as stack:
                for module in (upscaler, model.unet, vae, models.refiner):
                    stack.enter_context(on_compute_device(module, offload_after=False))
                restore_file(source, dst, settings, JobSettings(format=fmt, crf=crf), models,
                             reporter=make_reporter())
        return _result(dst, preview_frames)


NODE_CLASS_MAPPINGS = {"VSR_UpscaleVideoStreaming": VSR_UpscaleVideoStreaming,
                       "VSR_RestoreVideoStreaming": VSR_RestoreVideoStreaming}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_UpscaleVideoStreaming": "Upscale Video (VSR, streaming)",
                              "VSR_RestoreVideoStreaming": "Restore Video (VSR, streaming, diffusion)"}

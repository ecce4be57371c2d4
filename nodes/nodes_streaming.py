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

from vsr_core.diffusion.motion_guidance import MotionGuidance
from vsr_core.diffusion.samplers import SAMPLERS, describe_samplers
from vsr_core.errors import InputError
from vsr_core.file_identity import file_identity, source_identity
from vsr_core.jobs.restore import restore_file
from vsr_core.jobs.upscale import upscale_file
from vsr_core.pipeline.cleaning import parse_clean
from vsr_core.pipeline.guided_sample import SampleSettings
from vsr_core.pipeline.restore_video import RestoreModels, RestoreSettings
from vsr_core.video import LoadOptions, open_video
from vsr_core.checkpoints.shipped import load_refiner

from .comfy_bridge import free_memory, make_reporter, on_compute_device, temp_directory, video_from_file
from .convert import core_video_path, frames_to_image
from .nodes_upscale import CATEGORY, CLEAN_INPUT, NODE_FLAGS

FORMATS = {"h264-mp4": ("h264", ".mp4"), "ffv1-mkv (lossless)": ("ffv1", ".mkv")}
OUTPUT_INPUTS = {
    "format": (list(FORMATS), {"default": "h264-mp4", "tooltip": "h264 (plays everywhere) or FFV1 (lossless RGB)."}),
    "crf": ("INT", {"default": 18, "min": 0, "max": 51, "tooltip": "h264 quality (0 lossless)."}),
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
                "scale": ([4, 2], {"default": 4, "tooltip": "x4, or x2 (the x4 network, resampled)."}),
                "window": ("INT", {"default": 12, "min": 1, "max": 128, "tooltip":
                                   "Frames processed together; memory grows with it."}),
                "window_overlap": ("INT", {"default": 2, "min": 0, "max": 32, "tooltip":
                                           "Frames shared by consecutive windows and cross-faded."}),
                "tile_px": ("INT", {"default": 512, "min": 0, "max": 4096, "tooltip":
                                       "Spatial tile size in input pixels (0: whole frames)."}),
                "stabilize": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                                        "Extra flow-guided temporal stabilisation (0: off)."}),
                **OUTPUT_INPUTS,
            },
            "optional": {"clean": CLEAN_INPUT},
        }

    # inputs renamed for readability (old name -> new); the runner maps prompts saved with the old names
    RENAMED_INPUTS = {"tile_lr_px": "tile_px"}
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
        settings = dict(scale=scale, window=window, overlap=window_overlap, tile_lr_px=tile_px,
                        stabilize=float(stabilize), crf=crf, clean=parse_clean(clean))
        job = {"input": source_identity(source), "weights": _identity(upscaler, "upscaler"), **settings}
        fmt, dst = _destination("upscaled", job, format)
        if not os.path.exists(dst):            # the same job finished before: its file is the answer
            with on_compute_device(upscaler):
                upscale_file(source, dst, model=upscaler, fmt=fmt, reporter=make_reporter(),
                             memory=free_memory(next(upscaler.parameters()).device), flags=NODE_FLAGS,
                             **settings)
        return _result(dst, preview_frames)


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
                "steps": ("INT", {"default": 20, "min": 1, "max": 1000, "tooltip": "Sampling steps."}),
                "sampler": (list(SAMPLERS), {"default": "ddpm", "tooltip": describe_samplers()}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2 ** 63 - 1, "tooltip":
                         "Noise seed; noise is drawn per video frame, so segments continue one another."}),
                "guidance": ("FLOAT", {"default": 10.0, "min": 0.0, "max": 1000.0, "step": 0.5, "tooltip":
                             "Motion guidance strength (MGLD-VSR; 0 turns it off)."}),
                "segment": ("INT", {"default": 16, "min": 2, "max": 256, "tooltip":
                            "Frames per segment: the memory bound; a cancel loses at most one segment."}),
                "segment_overlap": ("INT", {"default": 2, "min": 0, "max": 16, "tooltip":
                                    "Frames shared by consecutive segments and cross-faded."}),
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
        settings = RestoreSettings(segment=segment, segment_overlap=segment_overlap,
                                   sample=SampleSettings(steps=steps, sampler=sampler, seed=seed,
                                                         guidance=MotionGuidance(guidance)))
        files = {"diffusion": _identity(model, "model"), "vae": _identity(vae, "vae"),
                 "upscaler": _identity(upscaler, "upscaler")}
        job = {"input": source_identity(source), "models": files, "settings": repr(settings), "crf": crf}
        fmt, dst = _destination("restored", job, format)
        if not os.path.exists(dst):
            models = RestoreModels(upscaler, model, vae, load_refiner(), files)
            with ExitStack() as stack:
                for module in (upscaler, model.unet, vae, models.refiner):
                    stack.enter_context(on_compute_device(module, offload_after=False))
                restore_file(source, dst, settings, models, fmt=fmt, crf=crf, reporter=make_reporter())
        return _result(dst, preview_frames)


NODE_CLASS_MAPPINGS = {"VSR_UpscaleVideoStreaming": VSR_UpscaleVideoStreaming,
                       "VSR_RestoreVideoStreaming": VSR_RestoreVideoStreaming}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_UpscaleVideoStreaming": "Upscale Video (VSR, streaming)",
                              "VSR_RestoreVideoStreaming": "Restore Video (VSR, streaming, diffusion)"}

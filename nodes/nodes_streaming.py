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

from vsr_core.errors import InputError
from vsr_core.jobs.identity import source_identity
from vsr_core.jobs.upscale import upscale_file
from vsr_core.video import LoadOptions, open_video

from .comfy_bridge import make_reporter, on_compute_device, temp_directory, video_from_file
from .convert import core_video_path, frames_to_image
from .nodes_upscale import CATEGORY

FORMATS = {"h264-mp4": ("h264", ".mp4"), "ffv1-mkv (lossless)": ("ffv1", ".mkv")}


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
                "tile_lr_px": ("INT", {"default": 512, "min": 0, "max": 4096, "tooltip":
                                       "Spatial tile size in input pixels (0: whole frames)."}),
                "stabilize": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                                        "Extra flow-guided temporal stabilisation (0: off)."}),
                "format": (list(FORMATS), {"default": "h264-mp4", "tooltip":
                                           "h264 (plays everywhere) or FFV1 (lossless RGB)."}),
                "crf": ("INT", {"default": 18, "min": 0, "max": 51, "tooltip": "h264 quality (0 lossless)."}),
                "preview_frames": ("INT", {"default": 4, "min": 0, "max": 64, "tooltip":
                                           "Frames of the result returned as IMAGE to look at in the graph."}),
            },
        }

    RETURN_TYPES = ("VIDEO", "IMAGE", "STRING")
    RETURN_NAMES = ("video", "preview", "path")
    OUTPUT_TOOLTIPS = ("The upscaled video, backed by its file (wire it to core Save Video).",
                       "The first frames of the result.", "Where the upscaled file is.")
    FUNCTION = "upscale"
    CATEGORY = CATEGORY
    DESCRIPTION = "Upscale a long video with bounded memory, resumable after Cancel; keeps fps and audio."

    def upscale(self, video, upscaler, scale, window, window_overlap, tile_lr_px, stabilize, format, crf,
                preview_frames):
        source = core_video_path(video)
        if source is None:
            raise InputError("video is held in memory, not in a file; expected a VIDEO from core Load Video "
                             "(streaming needs a file to read window by window)")
        if format not in FORMATS:
            raise InputError(f"format={format!r}; expected one of {list(FORMATS)}")
        fmt, ext = FORMATS[format]
        settings = dict(scale=scale, window=window, overlap=window_overlap, tile=tile_lr_px,
                        stabilize=float(stabilize), fmt=fmt, crf=crf)
        job = {"input": source_identity(source), "weights": getattr(upscaler, "weights_path", None), **settings}
        name = hashlib.sha256(json.dumps(job, sort_keys=True, default=str).encode()).hexdigest()[:16]
        folder = os.path.join(temp_directory(), "vsr_streaming")
        os.makedirs(folder, exist_ok=True)
        dst = os.path.join(folder, f"upscaled_{name}{ext}")
        if not os.path.exists(dst):            # the same job finished before: its file is the answer
            with on_compute_device(upscaler):
                upscale_file(source, dst, model=upscaler, reporter=make_reporter(), **settings)
        preview = None
        if preview_frames:
            frames = open_video(dst, LoadOptions(frame_load_cap=preview_frames)).read_all()
            preview = frames_to_image(frames)
        return (video_from_file(dst), preview, dst)


NODE_CLASS_MAPPINGS = {"VSR_UpscaleVideoStreaming": VSR_UpscaleVideoStreaming}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_UpscaleVideoStreaming": "Upscale Video (VSR, streaming)"}

"""Load Video and Save Video: the ends of every graph."""
from __future__ import annotations

import os

import torch

from vsr_core.api import (InputError, LoadOptions, OutputError, VideoWriter, check_finite, check_image_batch,
                          check_output_prefix, next_numbered_path, open_video, resolve, select_indices, to_fraction)

from .comfy_bridge import input_directory, input_videos, make_reporter, output_directory, resolve_input_path
from .convert import audio_from_comfy, audio_to_comfy, core_video_path, frames_to_image, image_windows

CATEGORY = "video super-resolution/video"

NO_VIDEOS = "(no video in the input folder: upload one)"
SAVE_FORMATS = {  # widget choice -> (vsr_core format, extension)
    "h264-mp4": ("h264", ".mp4"),
    "h264-mkv": ("h264", ".mkv"),
    "ffv1-mkv (lossless)": ("ffv1", ".mkv"),
    "png-sequence": ("png", ""),
}


class VSR_LoadVideo:
    """Decode a video file, animated GIF/WebP or folder of frames into IMAGE frames,
    with its exact fps and its audio."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": (input_videos() or [NO_VIDEOS], {"video_upload": True, "tooltip":
                          "A video (mp4, mkv, webm, avi, mov...), animated GIF/WebP or folder of numbered frames "
                          "from ComfyUI's input folder; upload adds one. An absolute path also works (API "
                          "prompts, `python -m nodes --set`). Ignored when a VIDEO is connected."}),
                "frame_load_cap": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "tooltip":
                                           "Load at most this many frames (0 loads them all)."}),
                "skip_first_frames": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip":
                                              "Drop this many frames from the start (after force_rate)."}),
                "select_every_nth": ("INT", {"default": 1, "min": 1, "max": 1000, "tooltip":
                                             "Keep one frame in every N; the fps output is divided by N so "
                                             "playback speed is unchanged."}),
                "force_rate": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 240.0, "step": 0.001, "tooltip":
                                         "Re-time the video to this fps by repeating or dropping frames "
                                         "(0 keeps the source rate)."}),
            },
            "optional": {
                "video_in": ("VIDEO", {"tooltip": "A core ComfyUI VIDEO (e.g. from Load Video); used instead "
                                       "of the path when connected."}),
                "folder_fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 240.0, "step": 0.001, "tooltip":
                                         "Frame rate of an image folder, which has none of its own."}),
            },
        }

    RETURN_TYPES = ("IMAGE", "FLOAT", "AUDIO", "INT")
    RETURN_NAMES = ("frames", "fps", "audio", "frame_count")
    OUTPUT_TOOLTIPS = ("Frames as IMAGE [frames,H,W,3].", "Frames per second of the loaded frames.",
                       "The audio under the loaded frames (None if the source has none).",
                       "Number of frames loaded.")
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Load a video, GIF/WebP or image folder, keeping its exact frame rate and audio."

    @classmethod
    def VALIDATE_INPUTS(cls, video):
        # Naming `video` here makes ComfyUI skip its "value not in list" check: absolute paths and files
        # added after the list was built stay valid; load() says which folders it searched.
        return True if isinstance(video, str) else f"video={video!r}; expected a file name or path"

    @classmethod
    def IS_CHANGED(cls, video="", **kwargs):
        try:
            path = resolve_input_path(video) if video else ""
            stat = os.stat(path)
            return f"{path}:{stat.st_mtime_ns}:{stat.st_size}"
        except (OSError, InputError):
            return video     # load() reports the missing file

    def load(self, video, frame_load_cap, skip_first_frames, select_every_nth, force_rate,
             video_in=None, folder_fps=24.0):
        options = LoadOptions(frame_load_cap=frame_load_cap, skip_first_frames=skip_first_frames,
                              select_every_nth=select_every_nth, force_rate=force_rate or None,
                              folder_fps=folder_fps)
        path = core_video_path(video_in) if video_in is not None else None
        if video_in is not None and path is None:
            return _from_core_components(video_in, options)
        if path is None:
            if video == NO_VIDEOS:
                raise InputError(f"no video chosen: ComfyUI's input folder '{input_directory()}' holds none; "
                                 f"upload one with the node's button or copy one there")
            if not video.strip():
                raise InputError("video is empty; expected the path of a video file or a folder of frames")
            path = resolve_input_path(video)
        reader = open_video(path, options)
        reporter = make_reporter()
        reporter.start(reader.expected_frames or 0, "load video")
        windows = []
        for window in reader.windows(16):
            reporter.check_interrupt()
            windows.append(window)
            reporter.update(len(window))
        frames = torch.cat([frames_to_image(w) for w in windows])
        for warning in reader.warnings:
            reporter.log(warning)
        if reader.variable_rate:
            reporter.log(f"note: '{path}' has a variable frame rate; IMAGE frames carry one fps "
                         f"({float(reader.fps):.3f}), so frame times become constant")
        return (frames, float(reader.fps), audio_to_comfy(reader.audio()), reader.frame_count)


def _from_core_components(video_in, options: LoadOptions):
    """A core VIDEO held in memory: apply the same selection to its decoded frames."""
    if not callable(getattr(video_in, "get_components", None)):
        raise InputError(f"video_in is a {type(video_in).__name__}; expected a ComfyUI VIDEO (from Load Video "
                         f"or Create Video)")
    components = video_in.get_components()
    images = check_image_batch(components.images, "video_in")
    indices, start, fps = select_indices(images.shape[0], to_fraction(components.frame_rate, "video_in fps"),
                                         options)
    if not indices:
        raise InputError(f"skip_first_frames={options.skip_first_frames} skips every frame of video_in "
                         f"({images.shape[0]} frames); expected fewer")
    audio = audio_from_comfy(components.audio, "video_in audio")
    if audio is not None:
        audio = audio.segment(start, float(len(indices) / fps))
    return (images[indices], float(fps), audio_to_comfy(audio), len(indices))


class VSR_SaveVideo:
    """Encode IMAGE frames (with fps and audio) to h264, lossless FFV1 or PNG frames."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The frames to save."}),
                "fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 240.0, "step": 0.001, "tooltip":
                                  "Frames per second; wire Load Video's fps here to keep the source timing."}),
                "filename_prefix": ("STRING", {"default": "vsr/video", "tooltip":
                                               "Name inside ComfyUI's output folder; a number is appended, "
                                               "existing files are never overwritten."}),
                "format": (list(SAVE_FORMATS), {"default": "h264-mp4", "tooltip":
                                                "h264 (yuv420p, plays everywhere), FFV1 (lossless RGB), or "
                                                "a folder of PNG frames."}),
                "crf": ("INT", {"default": 18, "min": 0, "max": 51, "tooltip":
                                "h264 quality: 0 is lossless, 18 visually lossless, 23 the x264 default."}),
            },
            "optional": {
                "audio": ("AUDIO", {"tooltip": "Audio to mux with the frames (kept beside PNG frames as "
                                    "audio.mka)."}),
            },
        }

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Full path of the saved file or folder.",)
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY
    DESCRIPTION = "Save frames as a video (or PNG frames) with the given fps and audio, written atomically."

    @classmethod
    def VALIDATE_INPUTS(cls, filename_prefix=None, format=None, fps=None):
        """Checked by ComfyUI (and the headless runner) before the graph runs, so a bad path fails at once."""
        try:
            if filename_prefix is not None:
                check_output_prefix(output_directory(), filename_prefix)
            if format is not None and format not in SAVE_FORMATS:
                raise InputError(f"format={format!r}; expected one of {list(SAVE_FORMATS)}")
            if fps is not None:
                to_fraction(fps, "fps")
        except (InputError, OutputError) as err:
            return str(err)
        return True

    def save(self, frames, fps, filename_prefix, format, crf, audio=None):
        frames = check_image_batch(frames, "frames")
        check_finite(frames, "Save Video (VSR) frames")
        if format not in SAVE_FORMATS:
            raise InputError(f"format={format!r}; expected one of {list(SAVE_FORMATS)}")
        fmt, ext = SAVE_FORMATS[format]
        root = resolve(output_directory())        # the subfolder shown is relative to the real folder
        path = next_numbered_path(root, filename_prefix, ext)
        reporter = make_reporter()
        reporter.start(frames.shape[0], "save video")
        with VideoWriter(path, to_fraction(fps, "fps"), fmt=fmt, crf=crf,
                         audio=audio_from_comfy(audio), reporter=reporter) as writer:
            for window in image_windows(frames, what="Save Video (VSR) frames"):
                reporter.check_interrupt()
                writer.write(window)
                reporter.update(len(window))
        folder, name = os.path.split(path)
        subfolder = os.path.relpath(folder, root)
        entry = {"filename": name, "subfolder": "" if subfolder == "." else subfolder, "type": "output",
                 "format": "video/" + (ext[1:] or "png"), "frame_rate": float(fps)}
        return {"ui": {"images": [entry], "animated": (True,)}, "result": (path,)}


NODE_CLASS_MAPPINGS = {"VSR_LoadVideo": VSR_LoadVideo, "VSR_SaveVideo": VSR_SaveVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_LoadVideo": "Load Video (VSR)", "VSR_SaveVideo": "Save Video (VSR)"}

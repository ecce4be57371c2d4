"""Detail relay: pick keyframes, let any image model (core upscale models, a KSampler graph, ...) make them
detailed, and carry that detail through the clip by motion."""
from __future__ import annotations

import hashlib
import os

import torch

from vsr_core import api
from vsr_core.api import (DEFAULT_DETAIL, DETAIL_TILE_LR_PX, InputError, JobSettings, UpscaleSettings,
                          check_image_batch, file_identity, folder_keyframes, load_detail_model, open_video,
                          parse_indices, pick_keyframes, pick_keyframes_stream, relay_file, save_keyframes,
                          shipped_path, source_identity, tchw_to_thwc, thwc_to_tchw, uint8_to_float)

from .comfy_bridge import make_reporter, missing_model, model_choices, on_compute_device, resolve_model
from .nodes_streaming import OUTPUT_INPUTS, _destination, _identity, _result, _source
from .nodes_upscale import CLEAN_INPUT, UPSCALE
from .setting_inputs import setting_input

CATEGORY = "video super-resolution/relay"
# Detail models are read from ComfyUI's own upscale_models folder (core Load Upscale Model lists it too).
DETAIL_FOLDERS = ("upscale_models",)
DETAIL_EXTENSIONS = (".safetensors", ".sft", ".pth", ".pt")
SHIPPED_DETAIL = "default (shipped Real-ESRGAN x4plus)"


class VSR_PickKeyframes:
    """Every N-th frame of each scene, plus its first and last: the frames a detail model should see."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "The low-resolution clip."}),
            "keyframe_every": setting_input(UPSCALE, "keyframe_every"),
            "detect_cuts": ("BOOLEAN", {"default": True, "tooltip":
                            "Also put keyframes at scene cuts (and the frame before), so detail never "
                            "crosses a cut."}),
        }}

    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("keyframes", "keyframe_indices")
    OUTPUT_TOOLTIPS = ("The picked frames, low resolution: feed them to any upscaler or diffusion graph.",
                       "Their frame numbers, e.g. '0, 8, 16', for Relay Detail.")
    FUNCTION = "pick"
    CATEGORY = CATEGORY
    DESCRIPTION = "Choose the keyframes of a clip for a detail model (every N frames, scene cuts, first, last)."

    def pick(self, frames, keyframe_every, detect_cuts):
        lr = thwc_to_tchw(check_image_batch(frames, "frames"))
        indices = pick_keyframes(lr, keyframe_every, detect_cuts)
        return (frames[indices].contiguous(), ", ".join(str(i) for i in indices))


class VSR_RelayDetail:
    """The faithful video upscaler plus keyframe detail carried by motion."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The low-resolution clip (the one the keyframes were picked from)."}),
                "keyframes": ("IMAGE", {"tooltip": "The keyframes made detailed by any image model, at the "
                              "output size or the same aspect ratio (resized to fit)."}),
                "keyframe_indices": ("STRING", {"default": "0", "tooltip":
                                     "Frame number of each keyframe, in order (Pick Keyframes' output)."}),
                "upscaler": ("VSR_UPSCALER", {"tooltip": "Load Upscaler (VSR): the faithful path the detail "
                             "is added to."}),
                "scale": setting_input(UPSCALE, "scale"),
                "strength": setting_input(UPSCALE, "detail_strength"),
                "detect_cuts": ("BOOLEAN", {"default": True, "tooltip":
                                "Never carry detail across a scene cut."}),
            },
            "optional": {
                "tile_px": setting_input(UPSCALE, "tile_px"),
                "free_memory_after": ("BOOLEAN", {"default": True, "tooltip":
                                      "Move the upscaler back to system RAM when done."}),
                "clean": CLEAN_INPUT,
                "fusion": setting_input(UPSCALE, "relay_fusion"),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("upscaled",)
    OUTPUT_TOOLTIPS = ("Upscaled frames with the keyframes' detail, same count as the input.",)
    FUNCTION = "relay"
    CATEGORY = CATEGORY
    DESCRIPTION = "Carry detail made on a few keyframes (by any image model) through the whole clip by " \
                  "motion, gated where motion cannot be trusted: detail that holds still."

    def relay(self, frames, keyframes, keyframe_indices, upscaler, scale, strength, detect_cuts,
              tile_px=UPSCALE.tile_px, free_memory_after=True, clean="auto", fusion=UPSCALE.relay_fusion):
        settings = UpscaleSettings(scale=scale, detail_strength=strength, tile_px=tile_px, clean=clean,
                                   relay_fusion=fusion)
        lr = thwc_to_tchw(check_image_batch(frames, "frames"))
        keys = thwc_to_tchw(check_image_batch(keyframes, "keyframes"))
        with on_compute_device(upscaler, free_memory_after):
            out = api.relay(lr, keys, keyframe_indices, upscaler, settings, detect_cuts, make_reporter())
        return (tchw_to_thwc(out).contiguous(),)


class VSR_DetailUpscale:
    """A Real-ESRGAN detail model on each image alone: the shipped x4plus, or an RRDBNet / SRVGGNetCompact file."""

    _loaded: tuple = (None, None)       # (file key, model): the last model, reused while its file is unchanged

    @classmethod
    def INPUT_TYPES(cls):
        files = [n for n in model_choices(DETAIL_FOLDERS, DETAIL_EXTENSIONS) if n != "none found"]
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Images to upscale, each on its own (e.g. Pick Keyframes' "
                          "keyframes): a detail model run on every frame of a video would flicker."}),
                "detail_model": ([SHIPPED_DETAIL] + files, {"default": SHIPPED_DETAIL, "tooltip":
                                 "The shipped Real-ESRGAN x4plus (BSD-3), or a Real-ESRGAN RRDBNet (x4plus, "
                                 "x4plus-anime, x2plus) or SRVGGNetCompact (animevideov3, general-x4v3) file "
                                 "from models/upscale_models. Other architectures: use core Upscale Image "
                                 "(using Model)."}),
                "scale": setting_input(UPSCALE, "scale", "At most the detail model's own."),
            },
            "optional": {
                "tile_px": setting_input(UPSCALE, "tile_px", default=DETAIL_TILE_LR_PX),
                "free_memory_after": ("BOOLEAN", {"default": True, "tooltip":
                                      "Move the detail model back to system RAM when done."}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, detail_model):
        return missing_model(detail_model, DETAIL_FOLDERS, "detail model", (SHIPPED_DETAIL,))

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("upscaled",)
    OUTPUT_TOOLTIPS = ("The images upscaled with invented texture (fur, skin, fabric), same count as the input.",)
    FUNCTION = "upscale"
    CATEGORY = CATEGORY
    DESCRIPTION = "Upscale images with a Real-ESRGAN detail model (shipped x4plus by default), e.g. the " \
                  "keyframes Relay Detail carries through a video."

    def upscale(self, image, detail_model, scale, tile_px=DETAIL_TILE_LR_PX, free_memory_after=True):
        lr = thwc_to_tchw(check_image_batch(image, "image"))
        model = self._model(detail_model)
        with on_compute_device(model, free_memory_after):
            out = api.detail_upscale(lr, model, scale, tile=tile_px, reporter=make_reporter())
        return (tchw_to_thwc(out).contiguous(),)

    @classmethod
    def _model(cls, name: str):
        path = None if name == SHIPPED_DETAIL else resolve_model(name, DETAIL_FOLDERS, "detail model")
        key = None if path is None else file_identity(path)         # a file replaced in place is read anew
        if cls._loaded[1] is None or cls._loaded[0] != (name, key):
            cls._loaded = (None, None)      # drop the old model before reading the new one
            cls._loaded = ((name, key), load_detail_model(DEFAULT_DETAIL if path is None else path))
        return cls._loaded[1]


class VSR_PickKeyframesStreaming:
    """Pick Keyframes over a file-backed VIDEO, read window by window: only the keyframes are kept."""

    @classmethod
    def INPUT_TYPES(cls):
        spec = VSR_PickKeyframes.INPUT_TYPES()["required"]
        return {"required": {"video": ("VIDEO", {"tooltip": "A video from a file (core Load Video)."}),
                             "keyframe_every": spec["keyframe_every"], "detect_cuts": spec["detect_cuts"]}}

    RETURN_TYPES = VSR_PickKeyframes.RETURN_TYPES
    RETURN_NAMES = VSR_PickKeyframes.RETURN_NAMES
    OUTPUT_TOOLTIPS = VSR_PickKeyframes.OUTPUT_TOOLTIPS
    FUNCTION = "pick"
    CATEGORY = CATEGORY
    DESCRIPTION = "Choose the keyframes of a long video for a detail model, without loading the whole video."

    def pick(self, video, keyframe_every, detect_cuts):
        reader = open_video(_source(video))
        chunks = (thwc_to_tchw(uint8_to_float(batch)) for batch in reader.windows(16))
        indices, frames = pick_keyframes_stream(chunks, keyframe_every, detect_cuts)
        return (tchw_to_thwc(frames).contiguous(), ", ".join(str(i) for i in indices))


class VSR_RelayDetailStreaming:
    """Relay Detail from a VIDEO to a VIDEO, streamed in keyframe-aligned segments, resumable after Cancel."""

    @classmethod
    def INPUT_TYPES(cls):
        spec = VSR_RelayDetail.INPUT_TYPES()
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "The low-resolution video, from a file (core Load Video)."}),
                "upscaler": spec["required"]["upscaler"],
                "keyframe_every": VSR_PickKeyframes.INPUT_TYPES()["required"]["keyframe_every"],
                "scale": spec["required"]["scale"],
                "strength": spec["required"]["strength"],
                "detect_cuts": spec["required"]["detect_cuts"],
                "tile_px": spec["optional"]["tile_px"],
                **OUTPUT_INPUTS,
            },
            "optional": {
                "keyframes": ("IMAGE", {"tooltip": "The detailed keyframes, in the order Pick Keyframes "
                              "(streaming) listed them (same keyframe_every and detect_cuts)."}),
                "keyframe_indices": ("STRING", {"default": "", "tooltip":
                                     "Their frame numbers (Pick Keyframes' output)."}),
                "keyframes_folder": ("STRING", {"default": "", "tooltip":
                                     "Instead of keyframes: a folder of frame_NNNNNN.png images named by frame "
                                     "number (made in another run), read one at a time."}),
                "clean": CLEAN_INPUT,
                "fusion": spec["optional"]["fusion"],
            },
        }

    RETURN_TYPES = ("VIDEO", "IMAGE", "STRING")
    RETURN_NAMES = ("video", "preview", "path")
    OUTPUT_TOOLTIPS = ("The upscaled video with relayed detail, backed by its file.",
                       "The first frames of the result.", "Where the file is.")
    FUNCTION = "relay"
    CATEGORY = CATEGORY
    DESCRIPTION = "Relay keyframe detail through a long video with bounded memory; keeps fps and audio."

    def relay(self, video, upscaler, keyframe_every, scale, strength, detect_cuts, tile_px, format, crf,
              preview_frames, keyframes=None, keyframe_indices="", keyframes_folder="", clean="auto",
              fusion=UPSCALE.relay_fusion):
        source = _source(video)
        folder = self._keyframes_folder(source, keyframes, keyframe_indices, keyframes_folder)
        keys = folder_keyframes(folder)
        settings = UpscaleSettings(scale=scale, keyframe_every=keyframe_every, detail_strength=float(strength),
                                   tile_px=tile_px, clean=clean, relay_fusion=fusion)
        job = {"input": source_identity(source), "weights": _identity(upscaler, "upscaler"),
               "keyframes": keys.identity, "settings": repr(settings), "detect_cuts": detect_cuts, "crf": crf,
               "fusion": file_identity(shipped_path("relay_fusion")) if fusion == "learned" else None}
        fmt, dst = _destination("relayed", job, format)
        if not os.path.exists(dst):
            with on_compute_device(upscaler):
                relay_file(source, dst, upscaler, keys, settings, JobSettings(format=fmt, crf=crf), detect_cuts,
                           make_reporter())
        return _result(dst, preview_frames)

    @staticmethod
    def _keyframes_folder(source, keyframes, keyframe_indices, keyframes_folder) -> str:
        if keyframes is None:
            if not keyframes_folder:
                raise InputError("no keyframes; expected the keyframes IMAGE (with keyframe_indices) or a "
                                 "keyframes_folder")
            return keyframes_folder
        images = thwc_to_tchw(check_image_batch(keyframes, "keyframes"))
        count = open_video(source).info.frame_count_hint or 10 ** 9
        indices = parse_indices(keyframe_indices, count, images.shape[0])
        digest = hashlib.sha256(images.mul(255).round().to(torch.uint8).numpy().tobytes()).hexdigest()
        _, folder = _destination("keyframes", {"input": source_identity(source), "indices": indices,
                                               "pixels": digest}, "h264-mp4")
        return save_keyframes(os.path.splitext(folder)[0], images, indices)


NODE_CLASS_MAPPINGS = {"VSR_PickKeyframes": VSR_PickKeyframes, "VSR_DetailUpscale": VSR_DetailUpscale,
                       "VSR_RelayDetail": VSR_RelayDetail,
                       "VSR_PickKeyframesStreaming": VSR_PickKeyframesStreaming,
                       "VSR_RelayDetailStreaming": VSR_RelayDetailStreaming}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_PickKeyframes": "Pick Keyframes (VSR)", "VSR_DetailUpscale": "Detail Upscale (VSR)",
                              "VSR_RelayDetail": "Relay Detail (VSR)",
                              "VSR_PickKeyframesStreaming": "Pick Keyframes (VSR, streaming)",
                              "VSR_RelayDetailStreaming": "Relay Detail (VSR, streaming)"}

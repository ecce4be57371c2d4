"""Upscale, Refine and Color Fix: the fast path's stages (and the ends of the diffusion path)."""
from __future__ import annotations

from vsr_core import api
from vsr_core.api import (COLOR_FIX_METHODS, InputError, RefineSettings, UpscaleSettings, check_image_batch,
                          clean_upscaler_path, default_upscaler_path, load_refiner, load_upscaler, tchw_to_thwc,
                          thwc_to_tchw)

from .comfy_bridge import (core_upscale_frames, free_memory, is_core_upscale_model, make_reporter,
                           missing_model, model_choices, on_compute_device, register_model_folder, resolve_model)
from .setting_inputs import renamed_inputs, setting_input, setting_inputs

CATEGORY = "video super-resolution/upscale"
FOLDER = "vsr_upscaler"
EXTENSIONS = (".safetensors",)
SHIPPED = "default (shipped x4)"
SHIPPED_CLEAN = "shipped x4, clean photos only (previous default)"
FIXED_BLEND = "fixed blend (no weights)"
SHIPPED_REFINER = "default (shipped refiner)"
NODE_FLAGS = ("tile_px", "window", "scale")     # the Upscale nodes' names for what the memory plan lowers
UPSCALE = UpscaleSettings(tile_px=api.TILE_PX)   # the nodes' defaults: the upscaler's tile
UPSCALE_INPUTS = ("scale", "window", "window_overlap", "tile_px", "stabilize")   # the order saved workflows hold
# the cleaning knob as a list an artist picks from; optional on every node that runs the upscaler, so
# workflows saved before it keep running
CLEAN_INPUT = setting_input(UPSCALE, "clean", choices=["auto"] + [f"{i / 10:.1f}" for i in range(11)])

register_model_folder(FOLDER, set(EXTENSIONS))


class VSR_LoadUpscaler:
    """The pack's video upscaler: the shipped x4 weights or a file trained with `python -m vsr_core train`."""

    @classmethod
    def INPUT_TYPES(cls):
        files = [n for n in model_choices((FOLDER,), EXTENSIONS) if n != "none found"]
        shipped = [SHIPPED] + ([SHIPPED_CLEAN] if clean_upscaler_path() else [])
        return {"required": {"model_name": (shipped + files, {"tooltip":
                "The shipped x4 upscaler (trained for real footage: codec artefacts, noise, moving subjects), "
                "the previous one trained on clean photos only, or a .safetensors (with its .json card) from "
                "models/vsr_upscaler."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        return missing_model(model_name, (FOLDER,), "upscaler", (SHIPPED, SHIPPED_CLEAN))

    RETURN_TYPES = ("VSR_UPSCALER",)
    RETURN_NAMES = ("upscaler",)
    OUTPUT_TOOLTIPS = ("The flow-guided video upscaler.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Load the pack's temporally consistent video upscaler."

    def load(self, model_name):
        if model_name in (SHIPPED, SHIPPED_CLEAN):
            path = default_upscaler_path(4) if model_name == SHIPPED else clean_upscaler_path()
            if path is None:
                raise InputError("the shipped upscaler weights are missing from vsr_core/weights; reinstall the pack")
        else:
            path = resolve_model(model_name, (FOLDER,), "upscaler")
        return (load_upscaler(path),)


class VSR_Upscale:
    """x4/x2 video upscaling: the pack's flow-guided upscaler, or any per-frame UPSCALE_MODEL stabilised by flow."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "Low-resolution frames."}),
                "upscaler": ("VSR_UPSCALER,UPSCALE_MODEL", {"tooltip":
                             "Load Upscaler (VSR), or any model from core Load Upscale Model (run per frame, "
                             "then stabilised with flow)."}),
                "scale": setting_input(UPSCALE, "scale"),
                "temporal": ("BOOLEAN", {"default": True, "tooltip":
                                         "Flow-guided propagation across frames (off: frame by frame)."}),
                **setting_inputs(UPSCALE, "window", "window_overlap", "tile_px"),
                "stabilize": setting_input(UPSCALE, "stabilize", "For an UPSCALE_MODEL, 0 means the default "
                                                                 "strength 0.6."),
            },
            "optional": {
                "free_memory_after": ("BOOLEAN", {"default": True, "tooltip":
                                  "Move this stage's model back to system RAM when it is done, so the next "
                                  "stage has the GPU memory (off: keep it loaded for the next run)."}),
                "clean": CLEAN_INPUT,
            },
        }

    # inputs renamed for readability (old name -> new); the runner maps prompts saved with the old names
    RENAMED_INPUTS = {**renamed_inputs(UPSCALE, *UPSCALE_INPUTS), "offload_after": "free_memory_after"}
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("upscaled",)
    OUTPUT_TOOLTIPS = ("Upscaled frames, same count as the input.",)
    FUNCTION = "upscale"
    CATEGORY = CATEGORY
    DESCRIPTION = "Upscale a clip with flow-guided propagation (VideoGigaGAN/SATeCo ideas), or stabilise a " \
                  "per-frame upscaler with flow."

    def upscale(self, frames, upscaler, scale, temporal, window, window_overlap, tile_px, stabilize,
                free_memory_after=True, clean="auto"):
        settings = UpscaleSettings(scale=scale, method=None if temporal else "learned-per-frame", window=window,
                                   window_overlap=window_overlap, tile_px=tile_px, stabilize=stabilize, clean=clean)
        frames = check_image_batch(frames, "frames")
        lr = thwc_to_tchw(frames)
        reporter = make_reporter()
        if is_core_upscale_model(upscaler):
            api.check_output_size(lr.shape[-2], lr.shape[-1], scale, NODE_FLAGS)
            per_frame = thwc_to_tchw(core_upscale_frames(upscaler, frames))
            out = api.stabilize_upscaled(per_frame, lr, scale, stabilize or 0.6, reporter)
        else:
            with on_compute_device(upscaler, free_memory_after):
                out = api.upscale(lr, upscaler, settings, free_memory(next(upscaler.parameters()).device),
                                  NODE_FLAGS, reporter)
        return (tchw_to_thwc(out).contiguous(),)


class VSR_Refine:
    """SATeCo's refiner: X_H = w X_u + (1 - w) X_d + ResBlock([X_u, X_d]), with an optional colour fix."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "upscaled": ("IMAGE", {"tooltip": "X_u: the upscaler's frames."}),
                "decoded": ("IMAGE", {"tooltip": "X_d: the diffusion path's decoded frames (same size)."}),
                "refiner": ([SHIPPED_REFINER, FIXED_BLEND], {"default": SHIPPED_REFINER, "tooltip":
                             "The shipped trained refiner, or the plain blend b X_u + (1-b) X_d."}),
                **setting_inputs(RefineSettings(), "blend", "color_fix"),
            },
        }

    # inputs renamed for readability (old name -> new); the runner maps prompts saved with the old names
    RENAMED_INPUTS = renamed_inputs(RefineSettings(), "blend", "color_fix")
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("Refined frames.",)
    FUNCTION = "refine"
    CATEGORY = CATEGORY
    DESCRIPTION = "Fuse the upscaler's and the diffusion path's frames (SATeCo's video refiner)."

    def refine(self, upscaled, decoded, refiner, blend, color_fix):
        x_u = thwc_to_tchw(check_image_batch(upscaled, "upscaled"))
        x_d = thwc_to_tchw(check_image_batch(decoded, "decoded"))
        model = load_refiner() if refiner == SHIPPED_REFINER else None
        out = api.refine(x_u, x_d, model, RefineSettings(blend=blend, color_fix=color_fix))
        return (tchw_to_thwc(out).contiguous(),)


class VSR_ColorFix:
    """StableSR's colour correction: match a result's colours to a reference."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "Frames whose colours drifted (e.g. diffusion output)."}),
            "reference": ("IMAGE", {"tooltip": "Frames with the right colours (e.g. the upscaled input), any size."}),
            "method": ([m for m in COLOR_FIX_METHODS if m != "none"], {"default": "wavelet", "tooltip":
                       "adain: per-channel mean/std; wavelet: keep the frames' detail, take the reference's "
                       "low frequencies."}),
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("Colour-corrected frames.",)
    FUNCTION = "fix"
    CATEGORY = CATEGORY
    DESCRIPTION = "AdaIN or wavelet colour fix (StableSR's definitions)."

    def fix(self, frames, reference, method):
        x = thwc_to_tchw(check_image_batch(frames, "frames"))
        ref = thwc_to_tchw(check_image_batch(reference, "reference"))
        return (tchw_to_thwc(api.color_fix(x, ref, method)).contiguous(),)


NODE_CLASS_MAPPINGS = {"VSR_LoadUpscaler": VSR_LoadUpscaler, "VSR_Upscale": VSR_Upscale,
                       "VSR_Refine": VSR_Refine, "VSR_ColorFix": VSR_ColorFix}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_LoadUpscaler": "Load Upscaler (VSR)", "VSR_Upscale": "Upscale (VSR)",
                              "VSR_Refine": "Refine (VSR)", "VSR_ColorFix": "Color Fix (VSR)"}

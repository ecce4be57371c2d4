"""Detail relay: pick keyframes, let any image model (core upscale models, a KSampler graph, ...) make them
detailed, and carry that detail through the clip by motion."""
from __future__ import annotations

from vsr_core.ops.frames import check_image_batch, tchw_to_thwc, thwc_to_tchw
from vsr_core.pipeline.memory_fallback import retry_on_oom, smaller_pieces
from vsr_core.pipeline.relay import DEFAULT_KEYFRAME_EVERY, pick_keyframes, relay_frames

from .comfy_bridge import make_reporter, on_compute_device

CATEGORY = "video super-resolution/relay"


class VSR_PickKeyframes:
    """Every N-th frame of each scene, plus its first and last: the frames a detail model should see."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "The low-resolution clip."}),
            "keyframe_every": ("INT", {"default": DEFAULT_KEYFRAME_EVERY, "min": 1, "max": 256, "tooltip":
                               "Frames from one keyframe to the next. Fewer keyframes: faster, but detail "
                               "is carried further (it fades where motion cannot be followed)."}),
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
                "scale": ([4, 2], {"default": 4, "tooltip": "Output scale."}),
                "strength": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                             "How much of the keyframes' detail is let in: 0 is the faithful upscale alone, "
                             "1 all the detail the motion can carry."}),
                "detect_cuts": ("BOOLEAN", {"default": True, "tooltip":
                                "Never carry detail across a scene cut."}),
            },
            "optional": {
                "tile_px": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 16, "tooltip":
                            "Spatial tile size of the faithful upscaler, in input (LR) pixels."}),
                "free_memory_after": ("BOOLEAN", {"default": True, "tooltip":
                                      "Move the upscaler back to system RAM when done."}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("upscaled",)
    OUTPUT_TOOLTIPS = ("Upscaled frames with the keyframes' detail, same count as the input.",)
    FUNCTION = "relay"
    CATEGORY = CATEGORY
    DESCRIPTION = "Carry detail made on a few keyframes (by any image model) through the whole clip by " \
                  "motion, gated where motion cannot be trusted: detail that holds still."

    def relay(self, frames, keyframes, keyframe_indices, upscaler, scale, strength, detect_cuts, tile_px=512,
              free_memory_after=True):
        lr = thwc_to_tchw(check_image_batch(frames, "frames"))
        keys = thwc_to_tchw(check_image_batch(keyframes, "keyframes"))
        reporter = make_reporter()

        def attempt(p):
            return relay_frames(lr, keys, keyframe_indices, upscaler, scale, strength, detect_cuts,
                                tile_lr_px=p["tile_lr_px"], reporter=reporter)

        with on_compute_device(upscaler, free_memory_after):
            out, _ = retry_on_oom(attempt, {"tile_lr_px": tile_px}, lambda p: smaller_pieces(p, min_tile=64),
                                  "Relay Detail", reporter)
        return (tchw_to_thwc(out).contiguous(),)


NODE_CLASS_MAPPINGS = {"VSR_PickKeyframes": VSR_PickKeyframes, "VSR_RelayDetail": VSR_RelayDetail}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_PickKeyframes": "Pick Keyframes (VSR)", "VSR_RelayDetail": "Relay Detail (VSR)"}

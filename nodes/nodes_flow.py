"""Estimate Flow: bidirectional optical flow and occlusion for a clip (VSR_FLOW)."""
from __future__ import annotations

from vsr_core.api import (DIS_DEFAULT_PRESET as DEFAULT_PRESET, DIS_PRESETS, OCCLUSION_CONVENTIONS, RAFT_INPUT_MODES,
                          check_image_batch, estimate_flow, flow_preview, thwc_to_tchw)

from .comfy_bridge import compute_device, make_reporter, model_choices, register_model_folder, resolve_model

CATEGORY = "video super-resolution/flow"
FLOW_FOLDER = "optical_flow"
FLOW_EXTENSIONS = (".pth", ".pt", ".safetensors")

register_model_folder(FLOW_FOLDER, set(FLOW_EXTENSIONS))


class VSR_EstimateFlow:
    """Forward and backward optical flow between consecutive frames, with occlusion masks."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The clip (usually the low-resolution input, as MGLD-VSR does)."}),
                "method": (["dis", "raft"], {"default": "dis", "tooltip":
                                             "dis: OpenCV DIS, needs no weights. raft: RAFT-large with the "
                                             "weights chosen below (raft-things.pth or torchvision raft_large)."}),
                "dis_preset": (sorted(DIS_PRESETS), {"default": DEFAULT_PRESET, "tooltip":
                                                     "DIS quality/speed preset."}),
                "raft_model": (model_choices((FLOW_FOLDER,), FLOW_EXTENSIONS), {"tooltip":
                               f"RAFT weights (raft-things.pth or torchvision raft_large) from ComfyUI's "
                               f"models/{FLOW_FOLDER} folder; only used when method is raft."}),
                "raft_iters": ("INT", {"default": 12, "min": 1, "max": 64, "tooltip":
                                       "RAFT refinement iterations (12 in RAFT, 10 in MGLD-VSR)."}),
                "raft_value_range": (list(RAFT_INPUT_MODES), {"default": "unit", "tooltip":
                               "unit: frames mapped to [-1,1] as RAFT was trained; mgld_raw: fed as 0..1 "
                               "like MGLD-VSR's code."}),
                "occlusion_check": (list(OCCLUSION_CONVENTIONS), {"default": "squared", "tooltip":
                              "Forward-backward check: squared magnitudes (Sundaram et al.) or MGLD-VSR's "
                              "unsquared variant."}),
                "max_side": ("INT", {"default": 0, "min": 0, "max": 8192, "tooltip":
                                     "Estimate at most at this size (longest side) and rescale; 0 keeps the "
                                     "frames' size."}),
            },
        }

    # inputs renamed for readability (old name -> new); the runner maps prompts saved with the old names
    RENAMED_INPUTS = {"raft_input": "raft_value_range", "occlusion": "occlusion_check"}
    RETURN_TYPES = ("VSR_FLOW", "IMAGE")
    RETURN_NAMES = ("flow", "preview")
    OUTPUT_TOOLTIPS = ("Flows, occlusion masks and their resolution, for Guided Sample and Temporal Decode.",
                       "Colour-wheel picture of the forward motion, one image per frame.")
    FUNCTION = "estimate"
    CATEGORY = CATEGORY
    DESCRIPTION = "Estimate bidirectional optical flow and occlusion for a clip, with a colour-wheel preview."

    def estimate(self, frames, method, dis_preset, raft_model, raft_iters, raft_value_range, occlusion_check,
                 max_side):
        frames = check_image_batch(frames, "frames")
        weights = resolve_model(raft_model, (FLOW_FOLDER,), "RAFT weights") if method == "raft" else None
        field = estimate_flow(thwc_to_tchw(frames), method, preset=dis_preset, weights=weights, iters=raft_iters,
                              input_range=raft_value_range, occlusion=occlusion_check, max_side=max_side or None,
                              device=compute_device(), reporter=make_reporter())
        return (field, flow_preview(field))


NODE_CLASS_MAPPINGS = {"VSR_EstimateFlow": VSR_EstimateFlow}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_EstimateFlow": "Estimate Flow (VSR)"}

"""Optical flow for temporally consistent VSR: estimation (OpenCV DIS without
weights, RAFT-large with user weights), occlusion, warping, resizing and a
colour-wheel preview. The ``FlowField`` is the VSR_FLOW payload.

Typical use (what the Estimate Flow node does)::

    from vsr_core.flow import estimate_flow, flow_preview
    field = estimate_flow(frames_t3hw, "dis", preset="medium", reporter=reporter)
    # or: estimate_flow(frames_t3hw, "raft", weights="raft-things.pth", iters=12)
    preview = flow_preview(field)                                  # [T,H,W,3]
    latent_flow = field.resized(h // 8, w // 8)

Lower level: ``make_estimator`` + ``estimate_clip_flow`` (reuse one estimator).
"""
from .dis import DEFAULT_PRESET, PRESETS as DIS_PRESETS, DISFlow
from .estimate import estimate_clip_flow, estimate_flow, estimate_pair_flow, validate_frames
from .estimators import METHODS, RAFT_INPUT_MODES, RaftFlow, load_raft_cached, make_estimator
from .field import FlowField, resize_flow, resize_mask
from .occlusion import CONVENTIONS as OCCLUSION_CONVENTIONS, occlusion_masks
from .raft import INPUT_RANGES, RAFT, build_raft
from .raft_checkpoint import (PRINCETON, TORCHVISION, deterministic_weights, detect_layout,
                              load_raft, read_state_dict, to_canonical, to_princeton_layout)
from .visualize import color_wheel, flow_preview, flow_to_rgb
from .warp import MGLD_WARP, backward_warp, inside_mask

__all__ = [
    "FlowField", "resize_flow", "resize_mask",
    "estimate_flow", "make_estimator", "estimate_clip_flow", "estimate_pair_flow", "validate_frames",
    "DISFlow", "DIS_PRESETS", "DEFAULT_PRESET", "RaftFlow", "METHODS", "RAFT_INPUT_MODES",
    "RAFT", "build_raft", "INPUT_RANGES", "load_raft", "load_raft_cached", "read_state_dict",
    "to_canonical", "to_princeton_layout", "detect_layout", "deterministic_weights",
    "PRINCETON", "TORCHVISION",
    "occlusion_masks", "OCCLUSION_CONVENTIONS", "backward_warp", "inside_mask", "MGLD_WARP",
    "flow_to_rgb", "flow_preview", "color_wheel",
]

"""The detail relay: high-resolution detail made on a few keyframes (by any image model, or the truth)
carried to every frame by motion, gated where the motion cannot be trusted, scaled by a strength."""
from .clip import RELAY_FLOW_PRESET, check_strength, relay_clip
from .keyframes import nearest_keyframes, scene_starts, select_keyframes
from .transfer import GateSettings, high_pass, keyframe_detail

__all__ = ["relay_clip", "check_strength", "RELAY_FLOW_PRESET", "select_keyframes", "scene_starts",
           "nearest_keyframes", "GateSettings", "high_pass", "keyframe_detail"]

"""The Estimate Flow node through the V1 contract."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vsr_core.data import CameraPath, photo, virtual_camera_clip
from vsr_core.flow import FlowField
from conftest import load_node_pack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def node():
    return load_node_pack(str(ROOT))["VSR_EstimateFlow"]()


def test_estimate_flow_recovers_the_camera_motion_and_previews_it(node):
    clip = virtual_camera_clip(photo("astronaut"), 4, (64, 96), CameraPath(pan=(3.0, 2.0)))
    frames = torch.from_numpy(clip).float() / 255
    flow, preview = node.estimate(frames, "dis", "medium", "none found", 12, "unit", "squared", 0)
    assert isinstance(flow, FlowField) and flow.num_frames == 4 and flow.size == (64, 96)
    # The camera pans +3,+2 px per frame, so content moves by -3,-2 px.
    inner = flow.forward[:, :, 8:-8, 8:-8]
    assert inner[:, 0].median().item() == pytest.approx(-3.0, abs=0.25)
    assert inner[:, 1].median().item() == pytest.approx(-2.0, abs=0.25)
    assert preview.shape == (4, 64, 96, 3) and 0 <= preview.min() and preview.max() <= 1


def test_raft_without_weights_says_where_to_put_them(node):
    frames = torch.rand(2, 64, 64, 3)
    with pytest.raises(ValueError, match="models/optical_flow"):
        node.estimate(frames, "raft", "medium", "none found", 12, "unit", "squared", 0)


def test_single_frame_is_refused(node):
    with pytest.raises(ValueError, match="2"):
        node.estimate(torch.rand(1, 64, 64, 3), "dis", "medium", "none found", 12, "unit", "squared", 0)

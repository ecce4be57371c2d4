"""RAFT: same numbers as the reference implementations, both checkpoint layouts,
and clear errors for checkpoints that are not RAFT-large.

The golden outputs in tests/fixtures/flow were produced by running the
reference code (princeton-vl/RAFT @2888e15 and torchvision 0.29.1) outside
this repository with ``deterministic_weights(0)``; see the README there.
"""
import json
import os

import numpy as np
import pytest
import torch

from vsr_core.errors import CheckpointError, InputError
from vsr_core.flow import (RAFT, RaftFlow, build_raft, deterministic_weights, estimate_clip_flow,
                           load_raft, make_estimator, to_canonical, to_princeton_layout)
from vsr_core.flow.raft import NUM_PARAMETERS
from vsr_core.flow.raft_checkpoint import canonical_shapes

torch.set_num_threads(1)
FIX = os.path.join(os.path.dirname(__file__), "fixtures", "flow")
TOL = 2e-4  # pixels; observed difference is 0.0 on CPU float32


def fixture(name):
    return np.load(os.path.join(FIX, name))


@pytest.fixture(scope="module")
def weights():
    return deterministic_weights(0)


@pytest.fixture(scope="module")
def frames_u8():
    """[2,3,128,160] float 0..255: an astronaut crop and the same shifted by (3, 2)."""
    return torch.from_numpy(fixture("frames_u8.npy")).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="module")
def princeton_file(tmp_path_factory, weights):
    """Our weights saved like raft-things.pth: DataParallel 'module.' keys, BN under two names."""
    path = tmp_path_factory.mktemp("raft") / "raft-things.pth"
    torch.save(to_princeton_layout(weights), path)
    return str(path)


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory, weights):
    from safetensors.torch import save_file
    path = tmp_path_factory.mktemp("raft") / "raft_large_C_T_V1.safetensors"
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path))
    return str(path)


def test_architecture_size_and_keys_match_torchvision():
    model = build_raft()
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMETERS == 5_257_536
    tv = {k: tuple(v) for k, v in json.load(open(os.path.join(FIX, "torchvision_keys.json"))).items()}
    assert canonical_shapes() == tv


def test_princeton_layout_matches_the_real_key_set(weights):
    """Keys/shapes of the reference model's state_dict (what raft-things.pth holds)."""
    ref = {k: tuple(v) for k, v in json.load(open(os.path.join(FIX, "princeton_keys.json"))).items()}
    ours = {k[len("module."):]: tuple(v.shape) for k, v in to_princeton_layout(weights).items()}
    assert ours == ref
    assert len(ref) == len(weights) + 10   # the 10 BatchNorm keys saved twice (norm3 = downsample.1)


def test_princeton_checkpoint_gives_reference_numbers(princeton_file, frames_u8):
    model = load_raft(princeton_file)
    assert model.layout == "princeton-vl" and not model.training
    with torch.no_grad():
        low, flows = model(frames_u8[:1], frames_u8[1:], iters=12, input_range="uint8",
                           return_all=True, return_lowres=True)
    assert len(flows) == 12 and low.shape == (1, 2, 16, 20)
    np.testing.assert_allclose(flows[-1][0].numpy(), fixture("princeton_flow_up.npy"), atol=TOL, rtol=0)
    np.testing.assert_allclose(low[0].numpy(), fixture("princeton_flow_low.npy"), atol=TOL / 8, rtol=0)


def test_torchvision_checkpoint_gives_reference_numbers(torchvision_file, frames_u8):
    model = load_raft(torchvision_file)
    assert model.layout == "torchvision"
    signed = frames_u8 / 255 * 2 - 1   # what torchvision's OpticalFlow preset produces
    with torch.no_grad():
        flow = model(signed[:1], signed[1:], iters=12, input_range="signed")
        unit = model(frames_u8[:1] / 255, frames_u8[1:] / 255, iters=12, input_range="unit")
    np.testing.assert_allclose(flow[0].numpy(), fixture("torchvision_flow.npy"), atol=TOL, rtol=0)
    np.testing.assert_allclose(unit[0].numpy(), fixture("torchvision_flow.npy"), atol=TOL, rtol=0)


def test_padding_to_multiple_of_8_matches_reference(princeton_file, frames_u8):
    crop = frames_u8[..., 2:126, 5:155]           # 124x150 -> replicate-padded to 128x152
    model = load_raft(princeton_file)
    with torch.no_grad():
        flow = model(crop[:1], crop[1:], iters=12, input_range="uint8")
    assert flow.shape == (1, 2, 124, 150)
    np.testing.assert_allclose(flow[0].numpy(), fixture("princeton_flow_pad124x150.npy"), atol=TOL, rtol=0)


def test_mgld_raw_input_and_estimator(princeton_file, frames_u8):
    """MGLD's RAFT_SR: 0..1 frames without normalisation, 10 iterations."""
    crop = frames_u8[..., 2:126, 5:155] / 255
    est = make_estimator("raft", weights=princeton_file, iters=10, input_range="mgld_raw")
    assert isinstance(est, RaftFlow) and "princeton-vl" in est.name
    flow = est(crop[:1], crop[1:])
    np.testing.assert_allclose(flow[0].numpy(), fixture("mgld_raw_flow_pad124x150_iters10.npy"),
                               atol=1e-3, rtol=0)  # reference fed (u+1)*127.5: rounding only


def test_raft_clip_estimation(torchvision_file, frames_u8):
    clip = torch.cat([frames_u8, frames_u8[:1]]) / 255          # 3 frames
    est = RaftFlow.from_file(torchvision_file, iters=3, batch_size=1)
    field = estimate_clip_flow(clip, est, window=2)
    assert field.forward.shape == (2, 2, 128, 160) and field.method.startswith("raft[")
    with torch.no_grad():
        direct = est.model(clip[1:2], clip[2:3], iters=3)
    assert torch.allclose(field.forward[1], direct[0], atol=1e-5)
    assert torch.allclose(field.backward[0], direct[0], atol=1e-5)   # pair (1->0) == pair (1->2)


# ---- checkpoints that are not RAFT-large ----------------------------------------------

def test_non_raft_checkpoint_lists_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "not_raft.pth"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 2)).state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_raft(str(path))
    msg = str(err.value)
    assert "not a RAFT-large" in msg
    assert "missing keys (169)" in msg and "context_encoder.conv.weight" in msg
    assert "unexpected keys (4): 0.bias, 0.weight, 1.bias, 1.weight" in msg


def test_damaged_raft_checkpoint_names_the_keys(tmp_path, weights):
    sd = to_princeton_layout(weights)
    del sd["module.update_block.gru.convq2.bias"]
    sd["module.update_block.extra.weight"] = torch.zeros(3)
    sd["module.fnet.conv2.weight"] = torch.zeros(128, 128, 1, 1)
    with pytest.raises(CheckpointError) as err:
        to_canonical(sd)
    msg = str(err.value)
    assert "princeton-vl layout" in msg
    assert "missing keys (1): module.update_block.gru.convq2.bias" in msg
    assert "unexpected keys (1): module.update_block.extra.weight" in msg
    assert "module.fnet.conv2.weight (128, 128, 1, 1) (expected (256, 128, 1, 1))" in msg


def test_other_checkpoint_problems(tmp_path, weights):
    with pytest.raises(InputError, match="no file"):
        load_raft(str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_raft(str(junk))
    small = {"module.fnet.layer1.0.conv3.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="RAFT-small"):
        load_raft(small)
    nan = dict(weights)
    nan["update_block.flow_head.conv2.bias"] = torch.tensor([float("nan"), 0.0])
    with pytest.raises(CheckpointError, match="flow_head.conv2.bias"):
        load_raft(nan)


class _Payload:
    """A pickled object: weights_only loading must refuse to run its code."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_is_never_executed(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": _Payload()}}, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_raft(str(path))


def test_mgld_style_prefixed_checkpoint_loads(tmp_path, weights):
    """A full MGLD checkpoint keeps RAFT under 'flownet_model.' among other modules."""
    sd = {"flownet_model." + k[len("module."):]: v for k, v in to_princeton_layout(weights).items()}
    sd["model.diffusion_model.out.0.weight"] = torch.zeros(4)
    path = tmp_path / "mgld.ckpt"
    torch.save({"state_dict": sd, "global_step": torch.tensor(5)}, path)
    model = load_raft(str(path))
    assert model.layout == "princeton-vl"
    assert torch.equal(model.state_dict()["context_encoder.layer2.0.downsample.1.running_var"],
                       weights["context_encoder.layer2.0.downsample.1.running_var"])


def test_raft_rejects_bad_arguments():
    model = RAFT().eval()
    with pytest.raises(ValueError, match="input_range"):
        model(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64), iters=1, input_range="0-1")
    with pytest.raises(InputError, match="iters"):
        RaftFlow(model, iters=0)
    with pytest.raises(InputError, match="input_range"):
        RaftFlow(model, input_range="uint8")
    with pytest.raises(InputError, match="at least 57x57"):
        RaftFlow(model, iters=1)(torch.rand(1, 3, 40, 200), torch.rand(1, 3, 40, 200))
    with torch.no_grad():  # 57 is padded to 64: the smallest size the pyramid allows
        assert model(torch.rand(1, 3, 57, 60), torch.rand(1, 3, 57, 60), iters=1).shape == (1, 2, 57, 60)

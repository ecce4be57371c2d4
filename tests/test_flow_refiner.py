"""The learned flow correction: identity when added, trainable alone, clean-flow targets in the batch."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from vsr_core.errors import InputError
from vsr_core.models.upscaler import VideoUpscaler

TINY = {"channels": 8, "heads": 2, "feat_blocks": 1, "prop_blocks": 1, "attn_blocks": 1, "occlusion_mask": True}


def _clip_and_flows(t=3, h=16, w=20):
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(1, t, 3, h, w, generator=g)
    ff = torch.randn(1, t - 1, 2, h, w, generator=g)
    return lr, ff, -ff


def test_adding_a_flow_refiner_to_trained_weights_changes_nothing_until_it_trains(tmp_path):
    from vsr_core.train.trainer import warm_start
    old = VideoUpscaler(**TINY).eval()
    path = str(tmp_path / "old.safetensors")
    save_file({k: v.contiguous() for k, v in old.state_dict().items()}, path)
    new = VideoUpscaler(flow_refiner=4, **TINY).eval()
    missing = warm_start(new, path)
    assert missing and all(k.startswith("flow_refiner.") for k in missing)
    lr, ff, fb = _clip_and_flows()
    with torch.no_grad():
        assert torch.equal(new(lr, ff, fb), old(lr, ff, fb))
        refined = new.flow_refiner.refine_clip(lr, ff, fb)
        assert torch.equal(refined[0], ff) and torch.equal(refined[1], fb)
        new.flow_refiner.tail.bias.fill_(0.5)
        moved = new.flow_refiner.refine_clip(lr, ff, fb)
        assert torch.allclose(moved[0], ff + 0.5) and torch.allclose(moved[1], fb + 0.5)
        assert not torch.equal(new(lr, ff, fb), old(lr, ff, fb))
        # per-frame mode has no flow to correct
        assert torch.equal(new(lr, temporal=False), old(lr, temporal=False))


def test_training_only_the_flow_refiner_leaves_every_other_weight_as_it_was(tmp_path):
    from vsr_core.train.trainer import TrainConfig, train
    init = str(tmp_path / "init.safetensors")
    save_file({k: v.contiguous() for k, v in VideoUpscaler(**TINY).state_dict().items()}, init)
    out = str(tmp_path / "run")
    model = {**TINY, "flow_refiner": 4}
    # per_frame_prob 1: no step uses the refiner, so nothing may change (and nothing fails)
    for per_frame, run in ((1.0, out + "_per_frame"), (0.0, out)):
        train(TrainConfig(out=run, steps=3, batch=1, frames=3, lr_size=16, eval_every=0, lr=1e-2, warmup=1,
                          init_weights=init, photos=["skimage:astronaut"], model=model, degradation="real",
                          trainable=["flow_refiner"], w_flow=0.1, per_frame_prob=per_frame), log=lambda s: None)
    before, idle, after = load_file(init), load_file(out + "_per_frame/model.safetensors"), \
        load_file(out + "/model.safetensors")
    assert all(torch.equal(after[k], v) and torch.equal(idle[k], v) for k, v in before.items())
    assert not torch.equal(after["flow_refiner.tail.weight"], torch.zeros_like(after["flow_refiner.tail.weight"]))
    assert torch.equal(idle["flow_refiner.tail.weight"], torch.zeros_like(idle["flow_refiner.tail.weight"]))
    logs = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
    assert any("flow" in r for r in logs)


def test_batches_carry_the_clean_clips_flows_only_when_asked():
    from vsr_core.train.datasets import ClipDataset
    plain = ClipDataset(frames=3, lr_size=16, degradation="real", photos=("skimage:astronaut",)).sample(2)
    assert plain.clean_flows is None
    b = ClipDataset(frames=3, lr_size=16, degradation="real", photos=("skimage:astronaut",),
                    clean_flows=True).sample(2)
    assert [tuple(f.shape) for f in b.clean_flows] == [tuple(b.flow_forward.shape)] * 2


def test_trainable_names_that_match_nothing_are_an_error(tmp_path):
    from vsr_core.train.trainer import TrainConfig, train
    with pytest.raises(InputError, match="flow_refinr"):
        train(TrainConfig(out=str(tmp_path), steps=1, batch=1, frames=2, lr_size=12, eval_every=0,
                          photos=["skimage:astronaut"], model=TINY, trainable=["flow_refinr"]), log=lambda s: None)

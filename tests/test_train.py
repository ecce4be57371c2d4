"""Training code: degradations (BI, BD, real-world), losses, data, and a 2-step run of the trainer."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from vsr_core.errors import InputError
from vsr_core.train.degradations import (RealBasicVSRDegradation, bd_downsample, bi_downsample, degrade,
                                         gaussian_kernel_1d, matlab_resize_matrix)
from vsr_core.train.losses import charbonnier, temporal_difference, warping_consistency


def pil_bicubic(img: np.ndarray, size) -> np.ndarray:
    """Independent reference: PIL's antialiased bicubic (a = -0.5) on float32 'F' images, per channel."""
    return np.stack([np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize(size, Image.BICUBIC))
                     for c in img])


def test_bi_equals_reference_antialiased_bicubic_including_borders():
    rng = np.random.default_rng(0)
    hr = rng.random((3, 64, 80))
    ours = bi_downsample(torch.from_numpy(hr)[None], 4)[0].numpy()
    assert ours.shape == (3, 16, 20)
    # MATLAB pads symmetrically; PIL renormalises at borders. Pad by 8 (a multiple of 4) symmetrically,
    # let PIL downscale, and drop the 2 LR pixels that came from the padding: identical everywhere.
    padded = np.pad(hr, ((0, 0), (8, 8), (8, 8)), mode="symmetric")
    ref = pil_bicubic(padded, (20 + 4, 16 + 4))[:, 2:-2, 2:-2]
    assert np.abs(ours - ref).max() < 1e-5
    # and the interior equals torch's antialiased bicubic
    t = torch.nn.functional.interpolate(torch.from_numpy(hr)[None].float(), size=(16, 20), mode="bicubic",
                                        antialias=True, align_corners=False)[0].numpy()
    assert np.abs(ours - t)[:, 3:-3, 3:-3].max() < 1e-5


def test_bi_matrix_rows_sum_to_one_and_constant_stays_constant():
    m = matlab_resize_matrix(40, 10, 0.25)
    assert torch.allclose(m.sum(1), torch.ones(10, dtype=m.dtype))
    flat = torch.full((2, 3, 40, 40), 0.37)
    assert torch.allclose(bi_downsample(flat, 4), torch.full((2, 3, 10, 10), 0.37), atol=1e-6)


def test_bd_kernel_and_sampling_phase():
    k = gaussian_kernel_1d(1.6)
    assert k.numel() == 12                         # ceil(3 * 1.6) * 2 + 2
    assert torch.allclose(k, k.flip(0)) and abs(float(k.sum()) - 1) < 1e-12
    # LR pixel j is centred between HR pixels 4j+1 and 4j+2 (0-based): sampling starts at 1-based index 2
    # with imfilter's even-kernel centre at element 6 (1-based).
    resp = []
    for d in range(4, 8):
        hr = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
        hr[..., 8, d] = 1.0                         # a vertical-position-fixed impulse at column d
        resp.append(float(bd_downsample(hr, 4)[0, 0, 2, 1]))
    r0, r1, r2, r3 = resp                           # columns 4..7 all feed LR column 1
    assert r1 == pytest.approx(r2) and r0 == pytest.approx(r3) and r1 > r0
    assert bd_downsample(torch.rand(2, 3, 32, 48), 4).shape == (2, 3, 8, 12)


def test_realbasicvsr_pipeline_shapes_range_and_seed():
    hr = torch.rand(3, 3, 64, 64)
    a = RealBasicVSRDegradation(4, seed=5)(hr)
    b = RealBasicVSRDegradation(4, seed=5)(hr)
    assert a.shape == (3, 3, 16, 16) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert torch.equal(a, (a * 255).round() / 255)   # quantized to 8 bits


def test_degrade_bad_input():
    with pytest.raises(InputError, match="degradation"):
        degrade(torch.rand(1, 3, 16, 16), "jpeg")
    with pytest.raises(InputError, match="T,3,H,W"):
        bi_downsample(torch.rand(3, 16, 16), 4)
    with pytest.raises(InputError, match="scale"):
        bi_downsample(torch.rand(1, 3, 16, 16), 5)


def test_losses():
    x = torch.rand(2, 3, 3, 16, 16)
    assert float(charbonnier(x, x)) == pytest.approx(1e-3)
    assert float(temporal_difference(x + 0.1, x)) == pytest.approx(1e-3, abs=1e-6)   # a constant offset is not flicker
    flicker = x + 0.1 * torch.randn(2, 3, 1, 1, 1).expand_as(x)
    assert float(temporal_difference(flicker, x)) > 0.01
    flow = torch.zeros(2, 2, 2, 16, 16)
    assert float(warping_consistency(x, x, flow)) == pytest.approx(1e-3, abs=1e-6)
    assert float(warping_consistency(flicker, x, flow)) > 0.01
    # rmse: the root of MSE (PSNR's error), so its gradient points where MSE's does
    from vsr_core.train.losses import rmse
    y = x + 0.05 * torch.randn_like(x)
    assert float(rmse(y, x)) == pytest.approx(float(((y - x) ** 2).mean().add(1e-6).sqrt()), rel=1e-6)
    y.requires_grad_(True)
    rmse(y, x).backward()
    direction = y.grad.clone()
    y.grad = None
    ((y - x) ** 2).mean().backward()
    assert torch.allclose(direction / direction.norm(), y.grad / y.grad.norm(), atol=1e-6)


def test_training_photos_are_shipped_and_heldout_disjoint():
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from vsr_core.data.clips import HELDOUT_PHOTOS, TRAIN_PHOTOS, load_photo, random_clip
    assert not set(TRAIN_PHOTOS) & set(HELDOUT_PHOTOS)
    for name in TRAIN_PHOTOS + HELDOUT_PHOTOS:
        img = load_photo(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 128
    clip = random_clip("skimage:astronaut", 4, (32, 40), np.random.default_rng(0))
    assert clip.shape == (4, 32, 40, 3)
    with pytest.raises(InputError, match="source"):
        load_photo("flickr:cat")


def test_trainer_two_steps_writes_loadable_weights_and_card_and_resumes(tmp_path):
    from vsr_core.train.trainer import TrainConfig, train
    from vsr_core.checkpoints.shipped import load_upscaler
    out = str(tmp_path / "run")
    cfg = TrainConfig(
        out=out, steps=2, batch=1, frames=3, lr_size=16, eval_every=0, log_every=1,
        photos=["skimage:astronaut", "skimage:chelsea"],
        model={"channels": 8, "heads": 2, "feat_blocks": 1, "prop_blocks": 1, "attn_blocks": 1})
    train(cfg, log=lambda s: None)
    card = json.load(open(os.path.join(out, "model.json")))
    assert card["steps"] == 2 and card["degradation"] == "bi" and card["architecture"] == "VideoUpscaler"
    assert "photos" in card["data"] and card["loss"] is not None
    model = load_upscaler(os.path.join(out, "model.safetensors"))
    assert model.config.channels == 8
    y = model(torch.rand(1, 2, 3, 8, 8), torch.zeros(1, 1, 2, 8, 8), torch.zeros(1, 1, 2, 8, 8))
    assert y.shape == (1, 2, 3, 32, 32)
    cfg.steps = 3
    logs = []
    train(cfg, log=logs.append)
    assert any("resumed" in s and "step 2" in s for s in logs)
    assert json.load(open(os.path.join(out, "model.json")))["steps"] == 3


def test_trainer_keeps_each_evaluated_checkpoint_from_the_warm_start_baseline_on(tmp_path, monkeypatch):
    """With keep_evaluated, every evaluation (step 0 of a warm start included) leaves weights + a card
    whose metrics are that evaluation's, so a checkpoint can be chosen by validation afterwards."""
    from safetensors.torch import load_file, save_file
    from vsr_core.models.upscaler import VideoUpscaler
    from vsr_core.train.trainer import TrainConfig, UpscalerTask, train
    tiny = {"channels": 8, "heads": 2, "feat_blocks": 1, "prop_blocks": 1, "attn_blocks": 1}
    init = str(tmp_path / "init.safetensors")
    save_file({k: v.contiguous() for k, v in VideoUpscaler(**tiny).state_dict().items()}, init)
    probe = "to_pixels.weight"
    monkeypatch.setattr(UpscalerTask, "evaluate",
                        lambda self, model: {"val/first_weight": float(model.state_dict()[probe].flatten()[0])})
    out = str(tmp_path / "run")
    train(TrainConfig(out=out, steps=4, batch=1, frames=3, lr_size=16, eval_every=2, log_every=1,
                      keep_evaluated=True, init_weights=init, photos=["skimage:astronaut"], model=tiny),
          log=lambda s: None)
    kept = sorted(os.listdir(os.path.join(out, "evaluated")))
    assert kept == [f"step_{n:07d}.{ext}" for n in (0, 2, 4) for ext in ("json", "safetensors")]
    evals = [json.loads(line)["eval"] for line in open(os.path.join(out, "log.jsonl")) if '"eval"' in line]
    assert [e["step"] for e in evals] == [0, 2, 4]
    for e in evals:
        card = json.load(open(os.path.join(out, "evaluated", f"step_{e['step']:07d}.json")))
        weights = load_file(os.path.join(out, "evaluated", f"step_{e['step']:07d}.safetensors"))
        assert card["steps"] == e["step"] and card["metrics"] == e
        assert float(weights[probe].flatten()[0]) == pytest.approx(e["val/first_weight"])
    assert evals[0]["val/first_weight"] != evals[2]["val/first_weight"]


def test_trainer_bad_config(tmp_path):
    from vsr_core.train.trainer import TrainConfig, train
    with pytest.raises(InputError, match="task"):
        train(TrainConfig(task="gan", out=str(tmp_path)))
    with pytest.raises(InputError, match="pixel_loss='l3'.*charbonnier, rmse"):
        train(TrainConfig(out=str(tmp_path), pixel_loss="l3"))


def test_warm_start_drops_only_named_blocks_and_keeps_the_rest(tmp_path):
    """A two-attention-block file warm-starts a one-block model with a deeper cleaner only when the
    dropped block is named; kept weights are copied, a typo in the prefix is an error."""
    from safetensors.torch import save_file
    from vsr_core.models.upscaler import VideoUpscaler
    from vsr_core.train.trainer import warm_start
    tiny = {"channels": 8, "heads": 2, "feat_blocks": 1, "prop_blocks": 1, "occlusion_mask": True}
    old = VideoUpscaler(attn_blocks=2, cleaner_blocks=1, **tiny)
    path = str(tmp_path / "old.safetensors")
    save_file({k: v.contiguous() for k, v in old.state_dict().items()}, path)
    new = VideoUpscaler(attn_blocks=1, cleaner_blocks=2, **tiny)
    with pytest.raises(InputError, match="attn.1"):
        warm_start(new, path)
    with pytest.raises(InputError, match="attn.7."):
        warm_start(new, path, drop=["attn.7."])
    missing = warm_start(new, path, drop=["attn.1."])
    assert missing and all(k.startswith("cleaner.body.1.") for k in missing)
    assert torch.equal(new.attn[0].qkv.weight, old.attn[0].qkv.weight)
    assert torch.equal(new.cleaner.body[0].conv1.weight, old.cleaner.body[0].conv1.weight)


def test_train_command_line(tmp_path, capsys):
    from vsr_core.cli import main
    out = tmp_path / "cli_run"
    rc = main(["train", "--out", str(out), "--steps", "1", "--batch", "1", "--frames", "2", "--lr-size", "12",
               "--eval-every", "0", "--photos", "skimage:astronaut", "--pixel-loss", "rmse",
               "--model", '{"channels": 8, "heads": 2, "feat_blocks": 1, "prop_blocks": 1, "attn_blocks": 1}'])
    assert rc == 0 and (out / "model.safetensors").exists() and (out / "model.json").exists()
    assert json.load(open(out / "config.json"))["pixel_loss"] == "rmse"
    assert json.load(open(out / "model.json"))["loss_weights"]["rmse"] == 1.0
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", str(tmp_path / "x"), "--task", "nope", "--steps", "1"])
    assert exit_.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_dataset_from_a_video_folder(tmp_path, clip):
    from conftest import write_media
    from vsr_core.train.datasets import ClipDataset
    (tmp_path / "vids").mkdir()
    write_media(tmp_path / "vids" / "a.mkv", clip[:8])            # 48x64 frames
    ds = ClipDataset(scale=4, frames=3, lr_size=8, video_folder=str(tmp_path / "vids"), video_fraction=1.0,
                     photos=("skimage:astronaut",), seed=1)
    b = ds.sample(2)
    assert b.lr.shape == (2, 3, 3, 8, 8) and b.hr.shape == (2, 3, 3, 32, 32)
    assert b.flow_forward.shape == (2, 2, 2, 8, 8)
    with pytest.raises(InputError, match="no videos"):
        (tmp_path / "empty").mkdir()
        ClipDataset(video_folder=str(tmp_path / "empty"), photos=("skimage:astronaut",))


def test_training_flow_preset_is_an_option_recorded_in_the_card():
    """The propagation's training flow defaults to the preset the shipped weights learned on; another preset
    reaches the dataset and its card, and a preset DIS does not have is named in the error."""
    from vsr_core.train.datasets import TRAIN_FLOW_PRESET, ClipDataset
    from vsr_core.train.trainer import TrainConfig, UpscalerTask
    photos = ("skimage:astronaut",)
    assert ClipDataset(photos=photos).flow.preset == TrainConfig().flow_preset == TRAIN_FLOW_PRESET
    task = UpscalerTask(TrainConfig(flow_preset="fast", photos=list(photos)))
    assert task.data.flow.preset == "fast" and task.data_card()["flow"] == "dis:fast on LR"
    with pytest.raises(InputError, match="'slow'"):
        ClipDataset(flow_preset="slow", photos=photos)


def test_photo_scales_above_one_make_soft_sources_and_reach_the_card():
    """A photo scale above 1 films a bicubic-enlarged photo (soft: less high frequency than the photo itself);
    the scales reach the dataset from the config and its card; a scale that is not positive is named."""
    import numpy as np
    from vsr_core.data.clips import load_photo, random_clip, scaled_photo
    from vsr_core.train.datasets import ClipDataset
    from vsr_core.train.trainer import TrainConfig, UpscalerTask
    photo = load_photo("skimage:astronaut")
    soft = scaled_photo("skimage:astronaut", 2.0)
    assert soft.shape[:2] == (2 * photo.shape[0], 2 * photo.shape[1])

    def roughness(clip):
        return np.abs(np.diff(clip.astype(np.float64), axis=2)).mean()
    sharp_clip = random_clip("skimage:astronaut", 2, (64, 64), np.random.default_rng(3), scales=(1.0,))
    soft_clip = random_clip("skimage:astronaut", 2, (64, 64), np.random.default_rng(3), scales=(3.0,))
    assert roughness(soft_clip) < 0.6 * roughness(sharp_clip)
    grainy = random_clip("skimage:astronaut", 2, (64, 64), np.random.default_rng(3), scales=(3.0,), grain=10.0)
    assert roughness(grainy) > 2 * roughness(soft_clip)          # grain in the photo: it moves with the picture
    task = UpscalerTask(TrainConfig(photos=["skimage:astronaut"], photo_scales=[1.0, 2.5]))
    assert task.data.photo_scales == (1.0, 2.5) and task.data_card()["photo_scales"] == [1.0, 2.5]
    with pytest.raises(InputError, match="photo_scales"):
        ClipDataset(photos=("skimage:astronaut",), photo_scales=(1.0, 0.0))


def test_scene_blur_softens_a_share_of_scenes_and_the_level_task_leaves_their_blur_reading_untrained():
    """--scene-blur softens the drawn scene itself (the same clip, less high frequency), draws nothing at 0 (older
    runs reproduce), reaches the card and is refused outside 0..1; the level task's loss then ignores a soft
    scene's blur reading but still fits its noise and compression."""
    import numpy as np
    import torch
    from vsr_core.train.datasets import ClipDataset
    from vsr_core.train.level_task import LevelEstimatorTask
    from vsr_core.train.trainer import TrainConfig
    photos = ("skimage:astronaut",)
    plain, soft = (ClipDataset(photos=photos, frames=2, lr_size=16, scene_blur=s, seed=4) for s in (0.0, 1.0))
    before = plain.get_state()
    (clip, softened), (blurred, was_softened) = plain.scene(), soft.scene()
    assert not softened and was_softened and clip.shape == blurred.shape and blurred.dtype == np.uint8
    assert np.array_equal(clip, ClipDataset(photos=photos, frames=2, lr_size=16, seed=4)._hr_clip())
    fresh = ClipDataset(photos=photos, frames=2, lr_size=16, seed=4)
    fresh.set_state(before)
    fresh._hr_clip()
    assert fresh.get_state() == plain.get_state()                   # scene_blur 0: no extra draw

    def roughness(c):
        return np.abs(np.diff(c.astype(np.float64), axis=2)).mean()
    assert roughness(blurred) < 0.7 * roughness(clip)
    with pytest.raises(InputError, match="scene_blur"):
        ClipDataset(photos=photos, scene_blur=1.5)
    task = LevelEstimatorTask(TrainConfig(task="level_estimator", photos=list(photos), frames=2, lr_size=16,
                                          scene_blur=0.3, model={"degradation_input": True}))
    assert task.data_card()["scene_blur"] == 0.3
    model = task.build_model()
    lr = torch.rand(2, 2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    level, weight = torch.full((2, 3), 0.5), torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    loss = task.loss(model, (lr, level, weight))[0]
    assert torch.equal(loss, task.loss(model, (lr, level + torch.tensor([[0, 0, 0.4], [0, 0, 0]]), weight))[0])
    assert not torch.equal(loss, task.loss(model, (lr, level + torch.tensor([[0.4, 0, 0], [0, 0, 0]]), weight))[0])
    lr_b, level_b, weight_b = task.batch()
    assert lr_b.shape[0] == level_b.shape[0] == weight_b.shape[0] == task.cfg.batch
    assert set(weight_b[:, :2].flatten().tolist()) == {1.0} and set(weight_b[:, 2].tolist()) <= {0.0, 1.0}


def test_a_grid_reading_estimator_trains_on_clips_on_and_off_the_codec_grid():
    """With level_grid the level task crops every clip by 8 pixels: at offset 0 (the grid as in the file) or, for
    a share of clips, 1-7 pixels off it each way; without it the clips stay whole."""
    import torch
    from vsr_core.train.level_task import LevelEstimatorTask
    from vsr_core.train.trainer import TrainConfig
    cfg = dict(task="level_estimator", photos=["skimage:astronaut"], frames=2, lr_size=24, batch=2)
    task = LevelEstimatorTask(TrainConfig(**cfg, model={"degradation_input": True, "level_grid": True}))
    assert task.batch()[0].shape[-2:] == (16, 16)
    plain = LevelEstimatorTask(TrainConfig(**cfg, model={"degradation_input": True}))
    assert plain.batch()[0].shape[-2:] == (24, 24)
    ramp = torch.arange(24.0).view(1, 1, 1, 24).expand(2, 3, 24, 24)
    offsets = {int(task._off_grid(ramp)[0, 0, 0, 0]) for _ in range(60)}
    assert 0 in offsets and offsets - {0} and offsets <= set(range(8))


def test_a_full_disk_while_saving_the_training_state_is_one_line(tmp_path, capsys, monkeypatch):
    """torch.save raised its own RuntimeError on a full disk; the state is now serialised first and written by
    the shared writer, whose disk-full error is one line naming the file."""
    import errno
    from vsr_core import safe_files
    from vsr_core.cli import main
    real = safe_files._write_bytes

    def full(f, data, path):
        if "state.pt" in path:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(f, data, path)
    monkeypatch.setattr(safe_files, "_write_bytes", full)
    out = tmp_path / "run"
    rc = main(["train", "--out", str(out), "--steps", "1", "--batch", "1", "--frames", "2", "--lr-size", "12",
               "--eval-every", "0", "--photos", "skimage:astronaut",
               "--model", '{"channels": 8, "heads": 2, "feat_blocks": 1, "prop_blocks": 1, "attn_blocks": 1}'])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert rc == 2 and len(err) == 1 and "state.pt" in err[0] and "No space left on device" in err[0]
    assert not (out / "state.pt").exists() and not [n for n in os.listdir(out) if n.endswith(".tmp")]

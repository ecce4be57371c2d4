"""The cleaning knob (issue 31): `clean` auto|0..1 from the command line, the nodes and the library; the
degradation input of the upscaler (starts as the old network, old weight files still load); one level per clip;
the cache keyed by the knob; the training degradations' levels; and exact-rounding colour conversion."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vsr_core.cli import main
from vsr_core.checkpoints.shipped import load_upscaler
from vsr_core.errors import InputError
from vsr_core.models.upscaler import UpscalerConfig, VideoUpscaler, upscale_clip
from vsr_core.pipeline.cleaning import clip_level, parse_clean
from vsr_core.pipeline.upscale import upscale_frames
from vsr_core.train.degradations import DEGRADATIONS, RealWorldMix, degrade_labelled
from vsr_core.pipeline.upscale_settings import UpscaleSettings

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(channels=8, heads=2, feat_blocks=1, prop_blocks=1, attn_blocks=1, attn_window=4, cleaner_blocks=1)


def tiny(degradation_input: bool, seed: int = 0) -> VideoUpscaler:
    torch.manual_seed(seed)
    m = VideoUpscaler(UpscalerConfig(degradation_input=degradation_input, **TINY)).eval()
    for p in m.parameters():              # non-trivial weights, the FiLM's last layer included
        p.data.add_(0.05 * torch.randn_like(p))
    return m


def saved(model: VideoUpscaler, path, old_card: bool = False) -> str:
    """The model as the pack's weights file + card; ``old_card``: a card written before the knob existed."""
    config = model.config.to_dict()
    if old_card:
        config.pop("degradation_input")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps({"architecture": "VideoUpscaler", "config": config}))
    return str(path)


def lr_clip(frames: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(frames, 3, 6, 8, generator=g), size=(24, 32),
                                             mode="bilinear", align_corners=False)
    return (smooth + 0.05 * torch.rand(frames, 3, 24, 32, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("value,expected", [("auto", "auto"), (" AUTO ", "auto"), (0, 0.0), (1, 1.0),
                                            ("0.5", 0.5), (0.25, 0.25)])
def test_the_knob_takes_auto_or_a_number_from_0_to_1(value, expected):
    assert parse_clean(value) == expected


@pytest.mark.parametrize("value", [-0.1, 1.5, "2", "hard", float("nan"), float("inf"), True, None, [0.5]])
def test_the_knob_refuses_anything_else_naming_it(value):
    with pytest.raises(InputError, match=r"clean=.*expected 'auto' or a number from 0"):
        parse_clean(value)


def test_the_degradation_input_starts_as_the_network_it_was_added_to():
    old, new = tiny(False), tiny(True)
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("level_estimator.", "level_modulation.")) for k in missing)
    torch.nn.init.zeros_(new.level_modulation.mlp[2].weight)      # as built: the modulation starts at zero
    torch.nn.init.zeros_(new.level_modulation.mlp[2].bias)
    lr = lr_clip()
    assert torch.equal(upscale_clip(old, lr), upscale_clip(new, lr, level=torch.tensor([1.0, 1.0, 0.0])))


def test_the_level_changes_the_output_and_is_read_from_the_clip_when_not_given():
    m, lr = tiny(True), lr_clip()
    keep, hard = (upscale_clip(m, lr, level=torch.tensor(v)) for v in ([0.0, 0.0, 0.0], [1.0, 1.0, 0.0]))
    assert (keep - hard).abs().max() > 1e-4
    read = clip_level(m, "auto", lr)
    assert read.shape == (3,) and bool(((read >= 0) & (read <= 1)).all())
    assert torch.allclose(upscale_clip(m, lr), upscale_clip(m, lr, level=read), atol=1e-6)


def test_a_number_sets_noise_and_compression_and_blur_is_still_read():
    m, lr = tiny(True), lr_clip()
    auto, set_ = clip_level(m, "auto", lr), clip_level(m, 0.3, lr)
    assert torch.allclose(set_[:2], torch.tensor([0.3, 0.3])) and set_[2] == auto[2]


def test_old_weight_files_still_load_and_take_only_auto(tmp_path):
    old = load_upscaler(saved(tiny(False), tmp_path / "old.safetensors", old_card=True))
    assert old.level_estimator is None
    lr = lr_clip()
    assert upscale_frames(lr, old, UpscaleSettings(window=5)).shape == (5, 3, 96, 128)
    with pytest.raises(InputError, match="no cleaning input"):
        upscale_frames(lr, old, UpscaleSettings(window=5, clean=0.5))


def test_one_level_per_clip_whatever_the_tiles_and_windows(monkeypatch):
    m, lr = tiny(True), lr_clip(9)
    calls = []
    real = m.estimate_level
    monkeypatch.setattr(m, "estimate_level", lambda x, *flow: calls.append(x.shape) or real(x, *flow))
    out = upscale_frames(lr, m, UpscaleSettings(window=4, window_overlap=1, tile_px=20, tile_overlap_px=4))
    assert len(calls) == 1 and calls[0][1] == 9          # the clip's first frames (up to 16), read once
    whole = upscale_frames(lr, m, UpscaleSettings(window=4, window_overlap=1, tile_px=0))
    assert (out - whole).abs().mean() < 0.01              # tiles see the same level: only seams differ


def test_a_motion_estimator_reads_what_changes_between_frames_along_the_flow():
    """The motion-reading estimator's extra statistics come from each frame minus the next one warped back:
    nothing for a still clip and for content that moves as the flow says, the noise for noise new in every
    frame; it starts as the estimator without motion (its head's last layer at zero); a clip of one frame
    reads; without a flow the upscaler estimates one (DIS), a missing one is named."""
    torch.manual_seed(0)
    plain = VideoUpscaler(UpscalerConfig(degradation_input=True, **TINY)).eval()
    m = VideoUpscaler(UpscalerConfig(degradation_input=True, level_motion=True, **TINY)).eval()
    m.load_state_dict(plain.state_dict(), strict=False)
    est, lr = m.level_estimator, lr_clip(4)
    floor = math.log(1e-6)
    still = lr[:1].expand(4, -1, -1, -1)[None]
    zero = torch.zeros(1, 3, 2, *lr.shape[-2:])
    assert est._change_cells(still, zero).max() < floor + 0.01
    moving = torch.stack([torch.roll(lr[0], shifts=k, dims=-1) for k in range(4)])[None]
    flow = torch.zeros(1, 3, 2, *lr.shape[-2:])
    flow[:, :, 0] = 1.0                                     # each frame's content is one pixel right in the next
    assert est._change_cells(moving, flow).median() < floor + 0.01
    noisy = (still + 0.05 * torch.randn(still.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert est._change_cells(noisy, zero).min() > math.log(0.05 ** 2) - 1.5
    assert torch.equal(m.estimate_level(noisy, zero), plain.estimate_level(noisy))
    with pytest.raises(InputError, match="flow_forward"):
        est(still, None)
    assert m.estimate_level(noisy).shape == (1, 3) and clip_level(m, "auto", lr[:1]).shape == (3,)
    with torch.no_grad():                                 # a single frame: no motion to read, no correction
        m.level_estimator.motion_head[2].bias.fill_(3.0)
        assert torch.equal(m.estimate_level(lr[None, :1]), plain.estimate_level(lr[None, :1]))
    assert upscale_clip(m, lr).shape == (4, 3, 96, 128)
    image_layout = lr.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)   # a ComfyUI IMAGE, channels-last
    assert torch.equal(clip_level(m, "auto", image_layout), clip_level(m, "auto", lr))


def test_a_grid_estimator_reads_steps_on_the_codec_grid_and_starts_as_the_estimator_without_it():
    """The grid statistics: near zero for grain without blocks, large for 8x8 blocks that start at pixel 0
    (as in a file), smaller once the frame is cropped off that grid; zero where a frame holds no grid line; the
    head starts at zero, so the estimator reads as before it was added."""
    torch.manual_seed(0)
    plain = VideoUpscaler(UpscalerConfig(degradation_input=True, level_motion=True, **TINY)).eval()
    m = VideoUpscaler(UpscalerConfig(degradation_input=True, level_motion=True, level_grid=True, **TINY)).eval()
    missing, _ = m.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("level_estimator.grid_head.") for k in missing)
    est, lr = m.level_estimator, lr_clip(4)
    grainy = torch.rand(1, 4, 3, 128, 128, generator=torch.Generator().manual_seed(1))    # no grid in it
    assert est._grid_stats(grainy).abs().max() < 0.5
    blocks = torch.rand(1, 2, 3, 4, 5, generator=torch.Generator().manual_seed(2))
    blocks = blocks.repeat_interleave(8, -1).repeat_interleave(8, -2)               # [1,2,3,32,40]
    on_grid = est._grid_stats(blocks)
    assert on_grid.shape == (1, 6) and on_grid[0, [1, 4]].min() > 2                 # period 8, both directions
    off_grid = est._grid_stats(blocks[..., 3:, 3:])
    assert (off_grid[0, [1, 4]] < on_grid[0, [1, 4]] - 2).all()
    assert torch.equal(est._grid_stats(lr[None, :, :, :3, :3]), torch.zeros(1, 6))
    assert torch.equal(m.estimate_level(lr[None]), plain.estimate_level(lr[None]))


def test_a_motion_estimator_in_the_pipeline_reads_the_flows_the_windows_use(monkeypatch):
    """Reading the level costs no flow of its own: the first windows find the pairs it estimated."""
    from vsr_core.flow.dis import DISFlow
    torch.manual_seed(0)
    m = VideoUpscaler(UpscalerConfig(degradation_input=True, level_motion=True, **TINY)).eval()
    pairs, real = [], DISFlow.__call__
    monkeypatch.setattr(DISFlow, "__call__", lambda self, a, b: pairs.append(len(a)) or real(self, a, b))
    lr = lr_clip(9)
    upscale_frames(lr, m, UpscaleSettings(window=4, window_overlap=1))
    assert sum(pairs) == 2 * 8                                # each of the 8 pairs once each way, nothing more
    assert torch.equal(clip_level(m, "auto", lr), clip_level(m, "auto", lr, torch.cat(
        [real(DISFlow(), lr[i:i + 1], lr[i + 1:i + 2]) for i in range(8)])))


def test_the_cache_is_keyed_by_the_knob(tmp_path, monkeypatch, media):
    from vsr_core.jobs import upscale as job
    keys = []
    monkeypatch.setattr(job, "run_file_job", lambda src, out, work, options, cache, *a, **k: keys.append(cache.key))
    src = media("in.mp4")
    model = load_upscaler(saved(tiny(True), tmp_path / "new.safetensors"))
    for clean in ("auto", 0.2, "0.8"):
        job.upscale_file(src, str(tmp_path / "out.mp4"), UpscaleSettings(clean=clean), model=model)
    assert "clean" not in keys[0] and keys[1]["clean"] == 0.2 and keys[2]["clean"] == 0.8
    assert {k: v for k, v in keys[1].items() if k != "clean"} == {k: v for k, v in keys[2].items() if k != "clean"}


def test_the_command_line_refuses_a_bad_knob_in_one_line(tmp_path, capsys, media):
    out = tmp_path / "out.mp4"
    assert main(["upscale", media("in.mp4"), str(out), "--clean", "strong"]) == 2
    err = capsys.readouterr().err
    assert "clean='strong'" in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("kind,nonzero", [("clean", set()), ("codec", {1}), ("noise_jpeg", {0}),
                                          ("blur", {2}), ("second_order", {0, 1, 2})])
def test_each_training_degradation_says_how_strong_it_was(kind, nonzero):
    hr = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    lr, level = RealWorldMix(seed=3).labelled(hr, kind)
    assert lr.shape == (3, 3, 16, 16) and level.shape == (3,)
    assert bool(((level >= 0) & (level <= 1)).all())
    assert {i for i in range(3) if level[i] > 0} >= nonzero
    assert {i for i in range(3) if level[i] > 0} <= nonzero | {1}      # a codec pass may follow blur


def test_degradations_are_one_table():
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for name in DEGRADATIONS:
        lr, level = degrade_labelled(hr, name, 4, rng_seed=0)
        assert lr.shape == (2, 3, 8, 8) and level.shape == (3,)
    with pytest.raises(InputError, match="degradation='nope'; expected one of bi, bd, realbasicvsr, real"):
        degrade_labelled(hr, "nope")


def test_rgb_yuv_round_trip_keeps_the_mean_colour():
    """swscale's default conversion came back 1.1/1.4/1.1 code values darker; the pack's is exact to 0.1."""
    from vsr_core.video.options import Colour
    from vsr_core.video.yuv import from_rgb24, to_rgb24
    from vsr_core.data.clips import load_photo
    image = load_photo("skimage:coffee")[:256, :256]
    for colour in (Colour(), Colour.default_for(256)):
        back = to_rgb24(from_rgb24(image, colour), colour)
        assert np.abs(back.astype(float).mean((0, 1)) - image.astype(float).mean((0, 1))).max() < 0.1


def test_the_level_is_the_same_however_the_stream_is_cut():
    from vsr_core.pipeline.cleaning import read_level
    m, lr = tiny(True), lr_clip(20)
    levels = []
    for size in (1, 3, 20):
        found: dict = {}
        frames = list(read_level(lr.split(size), m, "auto", found))
        assert torch.equal(torch.cat(frames), lr)             # every frame passes, in order
        levels.append(found["level"])
    assert all(torch.equal(levels[0], other) for other in levels[1:])


# ------------------------------------------------------------------ the shipped default
def shipped_clip(name: str = "skimage:coffee"):
    from vsr_core.data.clips import heldout_clips
    from vsr_core.train.degradations import bi_downsample, quantize
    clip = heldout_clips(4, (128, 160), names=(name,))[name]
    hr = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
    return hr, quantize(bi_downsample(hr, 4))


def test_the_shipped_estimator_reads_noise_of_known_sigma():
    from vsr_core.checkpoints.shipped import load_default_upscaler
    from vsr_core.train.degradations import noise_level, quantize
    m = load_default_upscaler(4)
    _, lr = shipped_clip()
    reads = []
    for sigma in (0, 5, 10):
        g = torch.Generator().manual_seed(sigma)
        noisy = quantize(lr + torch.randn(lr.shape, generator=g) * sigma / 255)
        reads.append(float(clip_level(m, "auto", noisy)[0]))
        assert abs(reads[-1] - noise_level(sigma)) < 0.25, (sigma, reads)
    assert reads[0] < reads[1] < reads[2]


def test_the_shipped_estimator_reads_grain_that_moves_with_the_picture_as_less_noise_than_fresh_noise():
    """Grain in the scene (added to the photo before the camera films it) and noise new in every frame, of the
    same strength at the input: the estimator reads motion, so the grain reads as less noise."""
    from vsr_core.checkpoints.shipped import load_default_upscaler
    from vsr_core.data.clips import load_photo
    from vsr_core.data.virtual_camera import CameraPath, virtual_camera_clip
    from vsr_core.train.degradations import bi_downsample, noise_level, quantize

    def lr_of(image):
        clip = virtual_camera_clip(image, 8, (256, 384), CameraPath(pan=(2.5, 1.0)))
        return quantize(bi_downsample(torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255, 4))
    photo = load_photo("skimage:coffee").astype(np.float32)
    grain = np.random.default_rng(0).normal(0, 12, photo.shape[:2])[..., None]
    clean, grainy = lr_of(photo.astype(np.uint8)), lr_of(np.clip(photo + grain, 0, 255).astype(np.uint8))
    sigma = float((grainy - clean).std()) * 255                          # about 2.7 at the input
    fresh = quantize(clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)) * sigma / 255)
    m = load_default_upscaler(4)
    read = {name: float(clip_level(m, "auto", x)[0]) for name, x in
            (("clean", clean), ("grain", grainy), ("fresh", fresh))}
    assert read["clean"] < read["grain"] < read["fresh"] - 0.02, read
    assert abs(read["fresh"] - noise_level(sigma)) < 0.1, read


def test_the_shipped_estimator_reads_a_soft_scene_as_cleaner_than_the_same_scene_compressed():
    """A soft scene (out of focus: Gaussian sigma 2 at HR) downsampled cleanly, and the same through h264 CRF 30:
    both lack fine detail, only the second has steps on the codec's grid, so it reads as more compressed; the
    soft scene reads as less to clean than stage 9 read it (0.17 / 0.42 noise / compression here, stage 9 0.41 /
    0.77; 0.14 / 0.28 on the same scene unsoftened)."""
    from vsr_core.checkpoints.shipped import load_default_upscaler
    from vsr_core.train.codec import codec_roundtrip
    from vsr_core.train.degradations import bi_downsample, gaussian_blur, quantize
    hr, _ = shipped_clip()
    soft = quantize(bi_downsample(gaussian_blur(hr, 2.0, 13), 4))
    compressed = quantize(codec_roundtrip(soft, "libx264", crf=30, preset="medium"))
    m = load_default_upscaler(4)
    soft_read, compressed_read = clip_level(m, "auto", soft), clip_level(m, "auto", compressed)
    assert compressed_read[1] > soft_read[1], (soft_read, compressed_read)
    assert soft_read[:2].max() < 0.5, soft_read                 # stage 9: 0.41 noise, 0.77 compression


@pytest.mark.parametrize("name", ["skimage:coffee", "skimage:rocket"])
def test_the_shipped_default_keeps_the_mean_colour_of_a_clean_clip(name):
    from vsr_core.checkpoints.shipped import load_default_upscaler
    hr, lr = shipped_clip(name)
    out = upscale_frames(lr, load_default_upscaler(4))
    bias = ((out * 255).round() - (hr * 255).round()).mean((0, 2, 3))
    assert bias.abs().max() < 0.25, bias

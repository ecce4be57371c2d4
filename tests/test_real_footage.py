"""Real-footage training pieces: codec round trip, the mixed degradation, the media-package reader,
and the two network changes (cleaning stage, occlusion-gated propagation)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vsr_core.data import real_videos
from vsr_core.errors import InputError
from vsr_core.models.upscaler import UpscalerConfig, VideoUpscaler
from vsr_core.train.codec import codec_roundtrip
from vsr_core.train.degradations import RealWorldMix, bi_downsample, quantize

pytestmark = pytest.mark.usefixtures("one_thread")


def _hr(clip) -> torch.Tensor:
    return torch.from_numpy(clip[:6, :48, :64].copy()).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("codec,kw", [("libx264", {"crf": 30}), ("libx264", {"crf": 30, "preset": "medium"}),
                                      ("mpeg4", {"qscale": 8}),
                                      ("libx264", {"crf": None, "bitrate": 40000})])
def test_codec_roundtrip_keeps_frame_count_and_size(clip, codec, kw):
    x = _hr(clip)[:, :, :47, :63]          # odd sides: yuv420p needs even, the output must not
    y = codec_roundtrip(x, codec, **kw)
    assert y.shape == x.shape
    err = (y - x).abs().mean().item()
    assert 0 < err < 0.08                   # changed by the codec, still the same picture


def test_codec_strength_follows_crf(clip):
    x = _hr(clip)
    errs = [(codec_roundtrip(x, "libx264", crf=c) - x).abs().mean().item() for c in (18, 40)]
    assert errs[0] < errs[1]


def test_codec_rejects_unknown_codec_and_preset(clip):
    with pytest.raises(InputError, match="codec='vp9'"):
        codec_roundtrip(_hr(clip), "vp9")
    with pytest.raises(InputError, match="preset='quick'"):
        codec_roundtrip(_hr(clip), "libx264", preset="quick")


def test_real_mix_clean_share_is_honoured():
    mix = RealWorldMix(4, seed=3)
    draws = [mix.draw() for _ in range(4000)]
    for kind, share in RealWorldMix.SHARES.items():
        assert abs(draws.count(kind) / len(draws) - share) < 0.03, kind


def test_real_mix_custom_shares_are_normalised_and_honoured():
    mix = RealWorldMix(4, seed=5, shares={"clean": 1, "codec": 3})
    assert mix.shares == {"clean": 0.25, "codec": 0.75}
    draws = [mix.draw() for _ in range(4000)]
    assert abs(draws.count("codec") / len(draws) - 0.75) < 0.03
    assert set(draws) == {"clean", "codec"}


@pytest.mark.parametrize("shares, match", [({"clean": 1, "h265": 1}, "h265"),
                                           ({"clean": -1, "codec": 2}, "non-negative"),
                                           ({"clean": 0}, "positive sum")])
def test_real_mix_bad_shares_name_the_problem(shares, match):
    with pytest.raises(InputError, match=match):
        RealWorldMix(4, shares=shares)


def test_degradation_shares_need_the_real_mixture():
    from vsr_core.train.datasets import ClipDataset
    with pytest.raises(InputError, match="apply to degradation 'real'"):
        ClipDataset(degradation="bi", degradation_shares={"clean": 1})


def test_real_mix_clean_branch_is_plain_bicubic(clip):
    hr = _hr(clip)
    lr = RealWorldMix(4, seed=0)(hr, "clean")
    assert torch.equal(lr, quantize(bi_downsample(hr, 4)))


@pytest.mark.parametrize("kind", list(RealWorldMix.SHARES))
def test_real_mix_every_branch_gives_8bit_lr_of_the_right_size(clip, kind):
    hr = _hr(clip)
    lr = RealWorldMix(4, seed=1)(hr, kind)
    assert lr.shape == (6, 3, 12, 16)
    assert torch.equal(lr, quantize(lr))


def test_media_packages_absent_gives_install_command():
    with pytest.raises(InputError, match="pip install comfyui-workflow-templates-media-api"):
        real_videos.package_dirs(("surely_not_an_installed_package_xyz",))


def test_heldout_split_keeps_a_templates_videos_together():
    a = "pkg/templates/some_video-1.webp"
    b = "pkg/templates/some_video-2.webp"
    assert real_videos.template_of(a) == real_videos.template_of(b) == "some_video"
    ids = [f"p/templates/t{i}-1.webp" for i in range(2000)]
    share = sum(map(real_videos.is_heldout, ids)) / len(ids)
    assert abs(share - real_videos.HELDOUT_SHARE) < 0.02


def test_validation_split_is_whole_templates_apart_from_the_heldout_ones():
    ids = [f"p/templates/t{i}-{k}.webp" for i in range(2000) for k in (1, 2)]
    splits = {i: real_videos.split_of(i, validation_share=0.06) for i in ids}
    for i in range(2000):                                 # a template's videos stay on one side
        assert splits[f"p/templates/t{i}-1.webp"] == splits[f"p/templates/t{i}-2.webp"]
    heldout = [i for i in ids if splits[i] == "heldout"]
    assert heldout == [i for i in ids if real_videos.is_heldout(i)]      # the test clips do not move
    val_share = sum(s == "val" for s in splits.values()) / len(ids)
    assert abs(val_share - 0.06 * (1 - real_videos.HELDOUT_SHARE)) < 0.02
    assert {real_videos.split_of(i) for i in ids} == {"heldout", "train"}   # default: no validation split
    with pytest.raises(InputError, match="validation_share"):
        real_videos.prepare_real_videos("unused", validation_share=0.9)


def test_trainer_validates_on_the_val_split_when_there_is_one(tmp_path, clip):
    from vsr_core.train.real_eval import validation_split
    np.save(tmp_path / "a.npy", clip)
    clips = [{"id": "p/a.webp", "file": "a.npy", "frames": len(clip), "split": "heldout"}]
    manifest = {"packages": {}, "skipped": [], "rules": {}, "clips": clips}
    (tmp_path / real_videos.MANIFEST).write_text(json.dumps(manifest))
    assert validation_split(str(tmp_path)) == "heldout"
    clips.append({"id": "p/b.webp", "file": "a.npy", "frames": len(clip), "split": "val"})
    (tmp_path / real_videos.MANIFEST).write_text(json.dumps(manifest))
    assert validation_split(str(tmp_path)) == "val"
    from vsr_core.models.upscaler import VideoUpscaler
    from vsr_core.train.real_eval import evaluate_real_videos
    res = evaluate_real_videos(VideoUpscaler(channels=8, heads=2, attn_window=4), str(tmp_path), frames=3)
    assert sorted(res) == ["real_val/bd/gain_db", "real_val/bd/worst_gain_db",
                           "real_val/bi/gain_db", "real_val/bi/worst_gain_db",
                           "real_val/h264_crf30/gain_db", "real_val/h264_crf30/worst_gain_db"]


def test_prepared_clips_are_read_as_windows(tmp_path, clip):
    np.save(tmp_path / "a.npy", clip)
    manifest = {"packages": {}, "skipped": [], "rules": {},
                "clips": [{"id": "p/a.webp", "file": "a.npy", "frames": len(clip), "split": "train"}]}
    (tmp_path / real_videos.MANIFEST).write_text(json.dumps(manifest))
    data = real_videos.RealVideoClips(str(tmp_path), "train")
    w = data.window(np.random.default_rng(0), 5, 32)
    assert w.shape == (5, 32, 32, 3) and w.dtype == np.uint8
    assert data.window(np.random.default_rng(0), 5, 1000) is None       # too small for the crop
    with pytest.raises(InputError, match="no 'heldout' clips"):
        real_videos.RealVideoClips(str(tmp_path), "heldout")


def test_missing_manifest_names_the_prepare_command(tmp_path):
    with pytest.raises(InputError, match="prepare-real-videos"):
        real_videos.load_manifest(str(tmp_path))


def test_box_down2_and_motion():
    f = np.zeros((3, 5, 4, 3), np.uint8)
    f[1] = 10
    assert real_videos.box_down2(f).shape == (3, 2, 2, 3)
    assert real_videos.mean_motion(f) == 10.0
    assert real_videos.mean_motion(f[:1]) == 0.0


def _flows(t, h, w, dx):
    ff = torch.zeros(1, t - 1, 2, h, w)
    ff[:, :, 0] = dx
    return ff, -ff


def test_cleaner_starts_as_identity():
    torch.manual_seed(0)
    plain = VideoUpscaler(UpscalerConfig(channels=8, heads=2, attn_window=4))
    torch.manual_seed(0)
    cleaned = VideoUpscaler(UpscalerConfig(channels=8, heads=2, attn_window=4, cleaner_blocks=1))
    cleaned.load_state_dict(plain.state_dict(), strict=False)
    lr = torch.rand(1, 3, 3, 16, 16)
    ff, fb = _flows(3, 16, 16, 1.0)
    out, clean = cleaned(lr, ff, fb, return_clean=True)
    assert torch.equal(clean, lr)
    assert torch.allclose(out, plain(lr, ff, fb), atol=1e-6)


def test_occlusion_mask_stops_propagation_where_flows_disagree():
    torch.manual_seed(0)
    model = VideoUpscaler(UpscalerConfig(channels=8, heads=2, attn_window=4, occlusion_mask=True)).eval()
    lr = torch.rand(1, 3, 3, 16, 16)
    ff, _ = _flows(3, 16, 16, 2.0)
    consistent = -ff
    inconsistent = ff.clone()               # backward flow points the same way: nothing is confirmed
    with torch.no_grad():
        per_frame = model(lr, temporal=False)
        gated = model(lr, ff, inconsistent)
        used = model(lr, ff, consistent)
        # attention also mixes frames; switch it off to isolate propagation
        model.attn = torch.nn.ModuleList()
        gated_no_attn = model(lr, ff, inconsistent)
        per_frame_no_attn = model(lr, temporal=False)
        model.config.occlusion_mask = False
        ungated_no_attn = model(lr, ff, inconsistent)
    assert not torch.allclose(used, gated)
    # every warped feature rejected: propagation sees exactly what a first frame sees
    assert torch.allclose(gated_no_attn, per_frame_no_attn, atol=1e-6)
    assert not torch.allclose(ungated_no_attn, per_frame_no_attn, atol=1e-3)
    assert per_frame.shape == gated.shape

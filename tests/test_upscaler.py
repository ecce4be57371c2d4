"""The video upscaler: shapes for any T and scale, streaming/seams, per-frame mode, bad input,
flow stabilisation of a per-frame upscaler, and the shipped default."""
import numpy as np
import pytest
import torch

from vsr_core.errors import InputError
from vsr_core.models.upscaler import FLOW_PRESET, UpscalerConfig, VideoUpscaler, upscale_clip
from vsr_core.pipeline.stabilize import stabilize_with_flow
from vsr_core.pipeline.upscale import stream_upscale, upscale_frames
from vsr_core.pipeline.upscale_settings import UpscaleSettings
from vsr_core.jobs.job_settings import JobSettings

TINY = dict(channels=8, heads=2, feat_blocks=1, prop_blocks=1, attn_blocks=2, attn_window=4)


def tiny(scale=4, seed=0, **kw):
    torch.manual_seed(seed)
    m = VideoUpscaler(UpscalerConfig(scale=scale, **{**TINY, **kw})).eval()
    for p in m.parameters():            # non-trivial weights so propagation matters
        p.data.add_(0.05 * torch.randn_like(p))
    return m


def lr_clip(clip, t, scale=4):
    x = torch.from_numpy(np.ascontiguousarray(clip[:t])).permute(0, 3, 1, 2).float() / 255
    return torch.nn.functional.avg_pool2d(x, 2)     # 24x32 LR frames


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("t", [1, 2, 5, 7])
def test_frame_count_and_shape_preserved_for_any_t(clip, scale, t):
    lr = lr_clip(clip, t)
    y = upscale_frames(lr, tiny(scale), UpscaleSettings(scale=scale, window=4, window_overlap=1))
    assert y.shape == (t, 3, 24 * scale, 32 * scale)
    assert 0 <= float(y.min()) and float(y.max()) <= 1


def test_x2_from_an_x4_model_is_resampled(clip):
    y = upscale_frames(lr_clip(clip, 3), tiny(4), UpscaleSettings(scale=2, window=3, window_overlap=1))
    assert y.shape == (3, 3, 48, 64)


def test_streaming_does_not_depend_on_how_the_input_is_chunked(clip):
    lr = lr_clip(clip, 9)
    m = tiny()
    whole = torch.cat(list(stream_upscale([lr], m, UpscaleSettings(window=5, window_overlap=2))))
    pieces = torch.cat(list(stream_upscale([lr[:2], lr[2:3], lr[3:8], lr[8:]], m,
                                           UpscaleSettings(window=5, window_overlap=2))))
    assert whole.shape[0] == 9 and torch.allclose(whole, pieces, atol=1e-6)


def test_single_window_equals_one_pass_and_seams_are_cross_faded(clip):
    lr = lr_clip(clip, 6)
    m = tiny()
    one = upscale_clip(m, lr)
    assert torch.allclose(upscale_frames(lr, m, UpscaleSettings(window=6, window_overlap=2, precision="fp32")), one,
                                         atol=1e-5)
    split = upscale_frames(lr, m, UpscaleSettings(window=4, window_overlap=1))
    # frames that only one window produced differ from the one-pass result only through context
    assert (split - one).abs().mean() < 0.05


def test_spatial_tiles_match_untiled(clip):
    lr = lr_clip(clip, 3)
    m = tiny(attn_blocks=0)
    full = upscale_frames(lr, m, UpscaleSettings(window=3, window_overlap=1, tile_px=0))
    tiled = upscale_frames(lr, m, UpscaleSettings(window=3, window_overlap=1, tile_px=16, tile_overlap_px=6))
    assert tiled.shape == full.shape
    assert (tiled - full).abs().mean() < 0.01


def test_temporal_mode_uses_neighbours_and_per_frame_mode_does_not(clip):
    lr = lr_clip(clip, 4)
    m = tiny()
    per_frame = upscale_frames(lr, m, UpscaleSettings(window=4, window_overlap=0, method="learned-per-frame"))
    temporal = upscale_frames(lr, m, UpscaleSettings(window=4, window_overlap=0))
    assert not torch.allclose(per_frame, temporal, atol=1e-4)
    # per-frame: each output depends on its own frame only
    alone = upscale_frames(lr[2:3], m, UpscaleSettings(window=1, window_overlap=0, method="learned-per-frame"))
    assert torch.allclose(per_frame[2:3], alone, atol=1e-5)


def test_blurpool_and_hf_shuttle_options_build_and_run():
    for kw in ({"blurpool": False}, {"hf_shuttle": False}):
        m = tiny(**kw)
        assert m(torch.rand(1, 2, 3, 12, 12), torch.zeros(1, 1, 2, 12, 12),
                 torch.zeros(1, 1, 2, 12, 12)).shape == (1, 2, 3, 48, 48)
    assert tiny(blurpool=True).num_parameters() < 1_000_000


def test_bad_inputs(clip):
    m = tiny()
    with pytest.raises(InputError, match="scale"):
        UpscalerConfig(scale=3)
    with pytest.raises(InputError, match="scale"):
        upscale_frames(lr_clip(clip, 2), m, UpscaleSettings(scale=8))
    with pytest.raises(InputError, match=">= 8 pixels"):
        upscale_frames(torch.rand(2, 3, 6, 20), m)
    bad = lr_clip(clip, 2)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        upscale_frames(bad, m)
    with pytest.raises(InputError, match=r"\[T,3,H,W\]"):
        upscale_frames(torch.rand(2, 24, 32, 3), m)
    with pytest.raises(InputError, match="overlap"):
        upscale_frames(lr_clip(clip, 2), m, UpscaleSettings(window=4, window_overlap=2))
    with pytest.raises(InputError, match="flow_forward has shape"):
        m(torch.rand(1, 3, 3, 16, 16), torch.zeros(1, 1, 2, 16, 16), torch.zeros(1, 1, 2, 16, 16))


def test_stabilize_with_flow_lowers_warping_error_of_a_flickering_upscaler(clip):
    from vsr_core.flow import DISFlow
    from vsr_core.metrics import psnr_y, warping_error
    from vsr_core.train.degradations import bi_downsample
    hr = torch.from_numpy(clip[:8]).permute(0, 3, 1, 2).float() / 255        # 48x64, pans 3 px/frame
    lr = bi_downsample(hr, 2).clamp(0, 1)
    g = torch.Generator().manual_seed(0)
    flicker = (hr + 0.03 * torch.randn(hr.shape, generator=g)).clamp(0, 1)   # per-frame model: new noise each frame
    stable = stabilize_with_flow(flicker, lr)
    assert stable.shape == flicker.shape
    d = DISFlow("medium")
    flow = d(hr[:-1], hr[1:])
    assert warping_error(stable, flow) < 0.7 * warping_error(flicker, flow)
    assert psnr_y(stable, hr) > psnr_y(flicker, hr)
    with pytest.raises(InputError, match="frames"):
        stabilize_with_flow(flicker[:3], lr)
    assert torch.equal(stabilize_with_flow(flicker, lr, strength=0.0), flicker)


def test_shipped_default_upscaler_beats_bicubic_on_a_heldout_clip():
    from vsr_core.checkpoints.shipped import has_default_upscaler, load_default_upscaler
    if not has_default_upscaler(4):
        pytest.skip("shipped weights not installed")
    from vsr_core.data.clips import heldout_clips
    from vsr_core.metrics import psnr_y
    from vsr_core.ops.resize import bicubic_upscale
    from vsr_core.train.degradations import degrade
    m = load_default_upscaler(4)
    assert m.card["steps"] > 0 and "psnr_y" in m.card["metrics"]
    clip = heldout_clips(3, (96, 128), names=("skimage:coffee",))["skimage:coffee"]
    hr = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
    lr = degrade(hr, "bi", 4)
    assert psnr_y(upscale_frames(lr, m), hr) > psnr_y(bicubic_upscale(lr, 4), hr) + 0.5


def test_streamed_stabilisation_equals_one_shot(clip):
    lr = lr_clip(clip, 7)
    m = tiny()
    plain = upscale_frames(lr, m, UpscaleSettings(window=4, window_overlap=1))
    from vsr_core.pipeline.stabilize import stabilize_with_flow as swf
    streamed = upscale_frames(lr, m, UpscaleSettings(window=4, window_overlap=1, stabilize=0.6))
    assert streamed.shape == plain.shape
    assert torch.allclose(streamed, swf(plain, lr, strength=0.6, flow_preset=FLOW_PRESET), atol=1e-5)


def test_cli_learned_method_keeps_frame_count_and_size(tmp_path, clip):
    from conftest import write_media
    from vsr_core.cli import main
    from vsr_core.video import open_video
    from vsr_core.checkpoints.shipped import has_default_upscaler
    if not has_default_upscaler(4):
        pytest.skip("shipped weights not installed")
    src = write_media(tmp_path / "in.mkv", clip[:5, :32, :48])
    out = str(tmp_path / "out.mkv")
    assert main(["upscale", src, out, "--format", "ffv1", "--window", "3", "--overlap", "1"]) == 0
    frames = np.concatenate(list(open_video(out).windows(8)))
    assert frames.shape == (5, 128, 192, 3)
    assert main(["upscale", src, str(tmp_path / "o2.mkv"), "--format", "ffv1", "--scale", "2",
                 "--method", "learned-per-frame"]) == 0
    assert np.concatenate(list(open_video(str(tmp_path / "o2.mkv")).windows(8))).shape == (5, 64, 96, 3)


@pytest.mark.parametrize("stabilize", [0.0, 0.6])
def test_cli_file_matches_memory_and_a_cancelled_run_resumes_to_the_same_frames(tmp_path, clip, stabilize):
    from conftest import write_media
    from vsr_core.errors import Interrupted
    from vsr_core.progress import Reporter
    from vsr_core.jobs.upscale import upscale_file
    from vsr_core.video import open_video
    from vsr_core.checkpoints.shipped import has_default_upscaler, load_default_upscaler
    if not has_default_upscaler(4):
        pytest.skip("shipped weights not installed")
    src = write_media(tmp_path / "in.mkv", clip[:9, :24, :32])
    whole = str(tmp_path / "whole.mkv")
    upscale_file(src, whole, UpscaleSettings(window=4, window_overlap=1, stabilize=stabilize),
                 JobSettings(format="ffv1"))
    got = open_video(whole).read_all()
    if stabilize == 0:
        lr = torch.from_numpy(clip[:9, :24, :32]).permute(0, 3, 1, 2).float() / 255
        want = upscale_frames(lr, load_default_upscaler(4), UpscaleSettings(window=4, window_overlap=1))
        np.testing.assert_array_equal(got, (want.permute(0, 2, 3, 1) * 255).round().byte().numpy())

    class StopAfter(Reporter):
        done = 0

        def update(self, n=1):
            self.done += n

        def check_interrupt(self):
            if self.done >= 3:
                raise Interrupted("cancelled")

    out, cache = tmp_path / "out.mkv", tmp_path / "cache"
    with pytest.raises(Interrupted):
        upscale_file(src, str(out), UpscaleSettings(window=4, window_overlap=1, stabilize=stabilize),
                     JobSettings(format="ffv1", cache_dir=str(cache), chunk_frames=2), reporter=StopAfter())
    assert not out.exists() and (cache / "chunk_000000.json").exists()
    upscale_file(src, str(out), UpscaleSettings(window=4, window_overlap=1, stabilize=stabilize),
                 JobSettings(format="ffv1", cache_dir=str(cache), chunk_frames=2))
    np.testing.assert_array_equal(open_video(str(out)).read_all(), got)
    assert not cache.exists()


def test_x2_from_the_x4_network_is_antialiased():
    """x2 runs the x4 network and resamples with antialiasing: detail finer than x2 can hold must average out,
    not alias (a nearest or plain bilinear resample keeps the x4 checkerboard at full contrast)."""
    class Checker(torch.nn.Module):
        scale = 4

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def forward(self, lr, *args, **kwargs):
            b, t, _, h, w = lr.shape
            yy, xx = torch.meshgrid(torch.arange(4 * h), torch.arange(4 * w), indexing="ij")
            return ((yy + xx) % 2).float().expand(b, t, 3, 4 * h, 4 * w).clone()
    out = upscale_frames(torch.rand(3, 3, 16, 16), Checker(), UpscaleSettings(scale=2, window=3, window_overlap=1))
    assert out.shape == (3, 3, 32, 32)
    inner = out[..., 2:-2, 2:-2]
    assert abs(float(inner.mean()) - 0.5) < 0.02 and float(inner.std()) < 0.05


def test_flow_is_estimated_once_per_pair_for_windows_and_stabiliser(tmp_path, clip, monkeypatch):
    """24 frames, overlapping windows and the stabiliser: 23 pairs, forward and backward, 46 DIS calls."""
    from conftest import write_media
    from vsr_core.flow.dis import DISFlow
    from vsr_core.jobs.upscale import upscale_file
    calls = []
    real = DISFlow.__call__

    def counted(self, a, b):
        calls.append(len(a))
        return real(self, a, b)
    monkeypatch.setattr(DISFlow, "__call__", counted)
    src = write_media(tmp_path / "in.mkv", np.concatenate([clip, clip])[:, :24, :32])
    assert upscale_file(src, str(tmp_path / "o.mkv"), UpscaleSettings(stabilize=0.5, window=12, window_overlap=2),
                        JobSettings(format="ffv1")) == 24
    assert sum(calls) == 46


def test_shipped_default_handles_compressed_input_where_the_clean_only_one_fails():
    """Real footage is compressed: on an h264 CRF 30 LR clip (held-out photo) the default beats bicubic,
    and beats the previous clean-only weights, which sharpen the codec's blocks."""
    from vsr_core.data.clips import heldout_clips
    from vsr_core.metrics import psnr_y
    from vsr_core.ops.resize import bicubic_upscale
    from vsr_core.train.codec import codec_roundtrip
    from vsr_core.train.degradations import degrade, quantize
    from vsr_core.checkpoints.shipped import (clean_upscaler_path, has_default_upscaler, load_default_upscaler,
                                              load_upscaler)
    if not has_default_upscaler(4) or clean_upscaler_path() is None:
        pytest.skip("shipped weights not installed")
    clip = heldout_clips(6, (128, 192), names=("skimage:coffee",))["skimage:coffee"]
    hr = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
    lr = quantize(codec_roundtrip(degrade(hr, "bi", 4), "libx264", crf=30))
    bicubic = psnr_y(bicubic_upscale(lr, 4), hr)
    new = psnr_y(upscale_frames(lr, load_default_upscaler(4)), hr)
    old = psnr_y(upscale_frames(lr, load_upscaler(clean_upscaler_path())), hr)
    assert new > bicubic + 0.3 and new > old + 0.5

"""The upscaler's forward computes what its docstring says, with fewer passes: checked against a plain
reference written here (per-frame concatenation before each fusion conv, pad + permute windows,
interpolate + add for the bicubic skip) on a tiny network with random weights."""
import pytest
import torch
import torch.nn.functional as F

from vsr_core.flow.occlusion import occlusion_masks
from vsr_core.flow.warp import backward_warp, inside_mask
from vsr_core.models.blurpool import low_pass
from vsr_core.models.upscaler import UpscalerConfig, VideoUpscaler, window_rows
from vsr_core.ops.resize import bicubic_phases


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_phases_shuffle_to_pytorch_bicubic(scale):
    x = torch.rand(2, 3, 13, 21)
    ref = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    assert torch.allclose(F.pixel_shuffle(bicubic_phases(x, scale), scale), ref, atol=1e-6)


@pytest.mark.parametrize("shift", [False, True])
def test_window_rows_gather_replicated_windows_and_scatter_back(shift):
    t, h, w, tw, ws = 5, 7, 10, 2, 4
    rows = torch.arange(t * h * w)
    gather, scatter = window_rows(t, h, w, tw, ws, shift)
    tokens = rows[gather]
    assert tokens.numel() % (tw * ws * ws) == 0
    assert torch.equal(tokens[scatter], rows)                # each pixel comes back from one token
    assert set(tokens.tolist()) == set(rows.tolist())        # padding only repeats pixels that exist


def _reference_window_block(blk, x, temporal):
    """The block as first written: replicate-pad in time and space, permute into tubelets, and back."""
    b, t, c, h, w = x.shape
    ws, tw = blk.window, (min(blk.frames, t) if temporal else 1)
    so = ws // 2 if blk.shift else 0
    to = tw // 2 if (blk.shift and tw > 1) else 0
    ph, pw, pt = so + (-(h + so)) % ws, so + (-(w + so)) % ws, to + (-(t + to)) % tw
    y = torch.cat([x[:, :1].expand(b, to, c, h, w), x, x[:, -1:].expand(b, pt - to, c, h, w)], 1)
    tp = y.shape[1]
    y = F.pad(y.reshape(b * tp, c, h, w), (so, pw - so, so, ph - so), mode="replicate")
    hp, wp = h + ph, w + pw
    y = y.reshape(b, tp // tw, tw, c, hp // ws, ws, wp // ws, ws).permute(0, 1, 4, 6, 2, 5, 7, 3)
    tokens = y.reshape(-1, tw * ws * ws, c)
    tokens = tokens + blk._attn(blk.norm1(tokens) + blk.pos[:tokens.shape[1]])
    tokens = tokens + blk.mlp(blk.norm2(tokens))
    y = tokens.reshape(b, tp // tw, hp // ws, wp // ws, tw, ws, ws, c).permute(0, 1, 4, 7, 2, 5, 3, 6)
    return y.reshape(b, tp, c, hp, wp)[:, to:to + t, :, so:so + h, so:so + w]


def _reference_forward(m, lr, ff, fb, temporal=True):
    b, t, _, h, w = lr.shape
    c = m.config.channels
    flat = m.cleaner(lr.reshape(b * t, 3, h, w)) if m.cleaner is not None else lr.reshape(b * t, 3, h, w)
    lr = flat.reshape(b, t, 3, h, w)
    feats, shallow = m._features(flat)
    feats = feats.reshape(b, t, c, h, w)
    if temporal:
        occ_f, occ_b = occlusion_masks(ff.flatten(0, 1), fb.flatten(0, 1))
        to_next, to_prev = (1 - occ_f).reshape(b, t - 1, 1, h, w), (1 - occ_b).reshape(b, t - 1, 1, h, w)

    def neighbour(state, frame_n, frame, flow, ok):
        if state is None or flow is None:
            z = frame.new_zeros(b, 1, h, w)
            return frame.new_zeros(b, c, h, w), z.expand(b, 3, h, w), z
        valid = inside_mask(flow) * ok
        warped = backward_warp(state, flow) * valid
        return warped, (frame - backward_warp(frame_n, flow)).abs() * valid, valid

    back, state = [None] * t, None
    for i in reversed(range(t)):
        fl = ff[:, i] if temporal and i < t - 1 else None
        args = (lr[:, i + 1], lr[:, i], fl, to_next[:, i]) if fl is not None else (None, lr[:, i], None, None)
        state = m.backward_prop.body(F.leaky_relu(m.backward_prop.fuse(
            torch.cat([feats[:, i], *neighbour(state, *args)], 1)), 0.1))
        back[i] = state
    outs, state = [], None
    for i in range(t):
        fl = fb[:, i - 1] if temporal and i > 0 else None
        args = (lr[:, i - 1], lr[:, i], fl, to_prev[:, i - 1]) if fl is not None else (None, lr[:, i], None, None)
        warped, diff, valid = neighbour(state, *args)
        state = m.forward_prop.body(F.leaky_relu(m.forward_prop.fuse(
            torch.cat([feats[:, i], back[i], warped, diff, valid], 1)), 0.1))
        outs.append(state)
    y = torch.stack(outs, 1)
    for blk in m.attn:
        y = _reference_window_block(blk, y, temporal)
    y = y.reshape(b * t, c, h, w) + m.hf_proj(shallow - low_pass(shallow))
    y = F.pixel_shuffle(m.to_pixels(F.leaky_relu(m.recon(y), 0.1)), m.scale)
    y = y + F.interpolate(flat, scale_factor=m.scale, mode="bicubic", align_corners=False)
    return y.reshape(b, t, 3, h * m.scale, w * m.scale)


@pytest.mark.parametrize("t", [1, 2, 5])
def test_forward_matches_the_plain_per_frame_reference(t):
    torch.manual_seed(0)
    m = VideoUpscaler(UpscalerConfig(channels=8, heads=2, feat_blocks=1, prop_blocks=1, attn_blocks=2,
                                     attn_window=4, cleaner_blocks=1, occlusion_mask=True)).eval()
    for p in m.parameters():              # every path non-trivial
        p.data.add_(0.1 * torch.randn_like(p))
    lr = torch.rand(2, t, 3, 11, 14)
    ff, fb = (2 * torch.randn(2, t - 1, 2, 11, 14) for _ in range(2))
    with torch.no_grad():
        temporal = t > 1
        ref = _reference_forward(m, lr, ff, fb, temporal)
        out = m(lr, ff, fb) if temporal else m(lr)
        assert torch.allclose(out, ref, atol=1e-5), float((out - ref).abs().max())
        assert torch.allclose(m(lr, temporal=False), _reference_forward(m, lr, None, None, False), atol=1e-5)

"""Real video compression as a degradation: encode a whole clip with PyAV and decode it back.

Encoding the clip as one stream (not frame by frame) gives the temporally
coherent artefacts of real files: blocks that move with the content, quality
that pulses between key frames and predicted frames.
"""
from __future__ import annotations

import io

import av
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..video.options import Colour
from ..video.yuv import from_rgb24, to_rgb24

CODECS = ("libx264", "mpeg4")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def codec_roundtrip(x: torch.Tensor, codec: str = "libx264", crf: int | None = 28, bitrate: int | None = None,
                    qscale: int | None = None, fps: int = 24, preset: str = "veryfast") -> torch.Tensor:
    """Frames [T,3,H,W] in 0..1 through ``codec`` (yuv420p) and back; same count and size.

    libx264 takes ``crf`` (or ``bitrate``) and an x264 ``preset``; mpeg4 takes ``qscale`` 2..31 (or
    ``bitrate``). Odd sides are encoded cropped to even and padded back by
    replicating the last row/column, as yuv420p needs even sides.
    """
    if codec not in CODECS:
        raise InputError(f"codec={codec!r}; expected one of {', '.join(CODECS)}")
    if preset not in X264_PRESETS:
        raise InputError(f"preset={preset!r}; expected one of {', '.join(X264_PRESETS)}")
    if x.dim() != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 2:
        raise InputError(f"codec_roundtrip: expected frames [T,3,H,W] with sides >= 2, got {tuple(x.shape)}")
    t, _, h, w = x.shape
    h2, w2 = h - h % 2, w - w % 2
    frames = (x[..., :h2, :w2].detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255)
    frames = frames.round().astype(np.uint8)
    colour = Colour.default_for(h2)   # what the reader takes an untagged file of this height to be
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        st = out.add_stream(codec, rate=fps)
        st.width, st.height, st.pix_fmt = w2, h2, "yuv420p"
        if bitrate:
            st.bit_rate = int(bitrate)
        elif codec == "libx264":
            st.options = {"crf": str(int(crf if crf is not None else 28)), "preset": preset}
        else:
            st.codec_context.qscale = int(qscale or 5)
            st.codec_context.flags |= av.codec.context.Flags.qscale
        for f in frames:
            out.mux(st.encode(from_rgb24(f, colour)))
        out.mux(st.encode())
    buf.seek(0)
    with av.open(buf, "r") as inp:
        dec = [torch.from_numpy(to_rgb24(fr, colour)) for fr in inp.decode(video=0)]
    if len(dec) != t:
        raise RuntimeError(f"codec round trip returned {len(dec)} frames for {t}")
    y = torch.stack(dec).permute(0, 3, 1, 2).float().div(255).to(x.dtype)
    if (h2, w2) != (h, w):
        y = F.pad(y, (0, w - w2, 0, h - h2), mode="replicate")
    return y

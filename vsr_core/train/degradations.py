"""Degradations that turn HR clips into LR clips, all on float [T,3,H,W] in 0..1.

- ``bi_downsample``: BI, MATLAB ``imresize(x, 1/s, 'bicubic')`` with its
  antialiasing (kernel widened by s), a = -0.5 cubic and symmetric borders,
  as BasicSR's ``matlab_functions.imresize`` replicates it.
- ``bd_downsample``: BD (KAIR ``generate_LR_Vimeo90K_BD.m``): Gaussian
  sigma = 1.6 with kernel size ceil(3 sigma)*2+2 = 12, replicate padding
  (``imfilter`` puts an even kernel's centre at element size/2, 1-based), then
  every s-th pixel starting at index s/2 (1-based).
- ``RealBasicVSRDegradation``: the second-order real-world pipeline (blur,
  resize, noise, JPEG, video compression, twice), one random draw shared by
  all frames of a clip, as RealBasicVSR does.
- ``RealWorldMix`` (``"real"``): strength sampled over the whole range, mild
  cases well represented (what real footage mostly is): clean BI, BI then one
  codec pass, BI + noise + JPEG, BD, and the full second-order pipeline.

Every degradation also says how strong it was: a level (noise, compression,
blur), each 0..1 (models.degradation_level), the label the degradation-aware
upscaler is trained with. ``DEGRADATIONS`` is the one name -> function table.

``quantize`` rounds to 8 bits, what saving the LR frames to PNG does.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError



def _check(x: torch.Tensor, name: str, scale: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        raise InputError(f"{name}: expected float frames [T,3,H,W], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if scale not in (2, 3, 4):
        raise InputError(f"{name}: scale={scale!r}; expected 2, 3 or 4")
    if x.shape[-1] < scale or x.shape[-2] < scale:
        raise InputError(f"{name}: frames of {x.shape[-1]}x{x.shape[-2]} are smaller than the scale {scale}")


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels and clamp to 0..1."""
    return x.clamp(0, 1).mul(255).round().div(255)


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (a = -0.5)."""
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=128)
def matlab_resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> torch.Tensor:
    """[out_len, in_len] float64 matrix M with out = M @ in, as MATLAB imresize's
    ``contributions`` (bicubic, symmetric boundary)."""
    kernel_width = 4.0
    if scale < 1 and antialias:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    p = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(p)[None, :]          # 1-based source positions
    dist = u[:, None] - idx
    if scale < 1 and antialias:
        w = scale * _cubic(scale * dist)
    else:
        w = _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # symmetric padding: 1..n, n..1 repeated
    aux = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)])
    src = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)] - 1
    m = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_len), p), src.ravel()), w.ravel())
    return torch.from_numpy(m)


def matlab_imresize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` of [...,H,W] float frames (no clamping)."""
    h, w = x.shape[-2:]
    oh, ow = int(math.ceil(h * scale)), int(math.ceil(w * scale))
    mh = matlab_resize_matrix(h, oh, float(scale)).to(x.dtype if x.dtype == torch.float64 else torch.float32)
    mw = matlab_resize_matrix(w, ow, float(scale)).to(mh.dtype)
    y = torch.matmul(mh, x.to(mh.dtype))
    y = torch.matmul(y, mw.t())
    return y.to(x.dtype)


def bi_downsample(hr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """BI degradation: MATLAB antialiased bicubic 1/scale (float, unclamped; see quantize)."""
    _check(hr, "bi_downsample hr", scale)
    return matlab_imresize(hr, 1.0 / scale)


def gaussian_kernel_1d(sigma: float = 1.6, size: int | None = None) -> torch.Tensor:
    """MATLAB fspecial('gaussian') row: size ceil(3 sigma)*2+2 by default (12 for 1.6)."""
    size = size or int(math.ceil(3 * sigma) * 2 + 2)
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float = 1.6, size: int | None = None) -> torch.Tensor:
    """Separable Gaussian (``gaussian_kernel_1d``) of [N,C,H,W] with replicated borders, centred as MATLAB's
    imfilter; computed in float32 (float64 for float64 input), returned in ``x``'s dtype."""
    k = gaussian_kernel_1d(sigma, size).to(torch.float32 if x.dtype != torch.float64 else torch.float64)
    size = k.numel()
    before = (size + 1) // 2 - 1          # imfilter: centre element floor((size+1)/2), 1-based
    after = size - 1 - before
    c = x.shape[1]
    y = F.pad(x.to(k.dtype), (before, after, before, after), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    y = F.conv2d(y, k.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)
    return y.to(x.dtype)


def bd_downsample(hr: torch.Tensor, scale: int = 4, sigma: float = 1.6) -> torch.Tensor:
    """BD degradation: Gaussian blur (replicate) then every `scale`-th pixel from index scale/2 (1-based)."""
    _check(hr, "bd_downsample hr", scale)
    start = scale // 2 - 1 if scale % 2 == 0 else scale // 2   # 0-based
    return gaussian_blur(hr, sigma)[..., start::scale, start::scale]


# ---------------------------------------------------------------- real-world
def gaussian_noise(x: torch.Tensor, sigma_255: float, grey: bool, seed: int) -> torch.Tensor:
    """``x`` plus Gaussian noise of sigma ``sigma_255``/255, the same on the three channels when ``grey``."""
    gen = torch.Generator().manual_seed(seed)
    n = torch.randn(x.shape[0], 1 if grey else 3, *x.shape[-2:], generator=gen).expand_as(x)
    return x + (sigma_255 / 255.0) * n.to(x)


class RealBasicVSRDegradation:
    """Second-order degradation of RealBasicVSR (configs/realbasicvsr_*_reds.py).

    The parameters are drawn once per clip (every frame gets the same blur
    kernel, resize, noise level, JPEG quality and codec), as in the reference.
    Output is LR at 1/scale of the input, quantized to 8 bits.
    """

    def __init__(self, scale: int = 4, seed: int | None = None, video_compression: bool = True):
        self.scale = scale
        self.rng = np.random.default_rng(seed)
        self.video_compression = video_compression

    # -- elementary operations (one draw for the whole clip) --------------
    def _blur(self, x, sigma_range, sizes=range(7, 22, 2)):
        r = self.rng
        size = int(r.choice(list(sizes)))
        sx, sy = r.uniform(*sigma_range, size=2)
        theta = r.uniform(0, math.pi)
        ax = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        yy, xx = torch.meshgrid(ax, ax, indexing="ij")
        cos, sin = math.cos(theta), math.sin(theta)
        u, v = cos * xx + sin * yy, -sin * xx + cos * yy
        k = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
        k = (k / k.sum()).to(x)
        p = size // 2
        return F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), k.expand(3, 1, size, size), groups=3)

    def _resize(self, x, factor_range, target=None):
        if target is None:
            f = self.rng.uniform(*factor_range)
            h, w = x.shape[-2:]
            target = (max(8, round(h * f)), max(8, round(w * f)))
        mode = str(self.rng.choice(["area", "bilinear", "bicubic"]))
        kw = {} if mode == "area" else {"align_corners": False}
        return F.interpolate(x, size=target, mode=mode, **kw)

    def _noise(self, x, sigma_range):
        if self.rng.random() < 0.5:   # Gaussian, colour or grey
            sigma = self.rng.uniform(*sigma_range)
            seed = int(self.rng.integers(2 ** 31))
            return gaussian_noise(x, sigma, grey=self.rng.random() < 0.4, seed=seed)
        scale = 10 ** self.rng.uniform(math.log10(0.05), math.log10(3.0))   # Poisson
        vals = 2 ** np.ceil(np.log2(256))
        gen = torch.Generator().manual_seed(int(self.rng.integers(2 ** 31)))
        xc = x.clamp(0, 1)
        noisy = torch.poisson(xc * vals, generator=gen) / vals
        return x + (noisy - xc) * scale

    def _jpeg(self, x, quality_range=(30, 95)):
        import cv2
        q = int(self.rng.integers(quality_range[0], quality_range[1] + 1))
        out = []
        for f in x:
            u8 = (f.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
            dec = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            out.append(torch.from_numpy(dec).permute(2, 0, 1).float() / 255)
        return torch.stack(out).to(x)

    def _video(self, x):
        """Encode and decode the clip with libx264/mpeg4 at a random bitrate."""
        from .codec import codec_roundtrip
        codec = str(self.rng.choice(["libx264", "libx264", "mpeg4"]))
        return codec_roundtrip(x, codec, bitrate=int(self.rng.uniform(1e4, 1e5)))

    def __call__(self, hr: torch.Tensor) -> torch.Tensor:
        _check(hr, "RealBasicVSRDegradation hr", self.scale)
        h, w = hr.shape[-2:]
        target = (h // self.scale, w // self.scale)
        # unsharp-masked GT is the training target in RealBasicVSR; the input is degraded from plain GT
        x = hr.float()
        # stage 1
        x = self._blur(x, (0.2, 3.0))
        x = self._resize(x, (0.15, 1.5))
        x = self._noise(x, (1, 30)).clamp(0, 1)
        x = self._jpeg(x, (30, 95))
        if self.video_compression:
            x = self._video(x)
        # stage 2
        if self.rng.random() < 0.8:
            x = self._blur(x, (0.2, 1.5))
        x = self._resize(x, (0.3, 1.2))
        x = self._noise(x, (1, 25)).clamp(0, 1)
        x = self._jpeg(x, (30, 95))
        if self.rng.random() < 0.5:
            if self.video_compression:
                x = self._video(x)
            x = self._blur(self._resize(x, None, target), (0.2, 0.8), sizes=(7,))
        else:
            x = self._blur(self._resize(x, None, target), (0.2, 0.8), sizes=(7,))
            if self.video_compression:
                x = self._video(x)
        x = self._resize(x, None, target)
        return quantize(x).to(hr.dtype)


def level(noise: float = 0.0, compression: float = 0.0, blur: float = 0.0) -> torch.Tensor:
    """The level vector (models.degradation_level.LEVEL_NAMES order), each clamped to 0..1."""
    return torch.tensor([noise, compression, blur], dtype=torch.float32).clamp(0, 1)


# What each parameter means as a level: 1 is the strongest the training mixture draws (or more).
def noise_level(sigma_255: float) -> float:
    return sigma_255 / 15.0


def x264_level(crf: int) -> float:
    return (crf - 16) / 24.0          # CRF 20 -> 0.17, 30 -> 0.58, 36 -> 0.83


def mpeg4_level(qscale: int) -> float:
    return (qscale - 1) / 13.0


def jpeg_level(quality: int) -> float:
    return (95 - quality) / 60.0


def blur_level(sigma: float) -> float:
    return (sigma - 0.6) / 1.4        # BD's sigma 1.6 -> 0.71


SECOND_ORDER_LEVEL = (1.0, 1.0, 0.5)   # the heavy pipeline: clean as hard as possible


def check_shares(shares: dict) -> dict:
    """Mixture weights for RealWorldMix: known kinds, non-negative, normalised to sum 1."""
    unknown = sorted(set(shares) - set(RealWorldMix.SHARES))
    if unknown:
        raise InputError(f"degradation shares name {', '.join(unknown)}; expected kinds among "
                         f"{', '.join(RealWorldMix.SHARES)}")
    values = [float(v) for v in shares.values()]
    if any(not np.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise InputError(f"degradation shares {shares}; expected non-negative numbers with a positive sum")
    total = sum(values)
    return {k: float(v) / total for k, v in shares.items()}


class RealWorldMix:
    """One degradation per clip, drawn from ``SHARES``; every branch ends quantized to 8 bits.

    A probe trained on the second-order pipeline alone over-sharpened clean
    input and invented texture, so clean and single-codec clips make up most
    draws and the heavy pipeline is one branch of five.
    """

    X264_PRESETS = ("veryfast", "fast", "medium", "medium")
    SHARES = {"clean": 0.25, "codec": 0.4, "noise_jpeg": 0.15, "blur": 0.1, "second_order": 0.1}

    def __init__(self, scale: int = 4, seed: int | None = None, shares: dict | None = None):
        self.scale = scale
        self.shares = check_shares(shares) if shares else dict(self.SHARES)
        self.rng = np.random.default_rng(seed)
        self.pipeline = RealBasicVSRDegradation(scale, seed=int(self.rng.integers(2 ** 31)))
        self.kinds = {"clean": self._clean, "codec": self._codec_only, "noise_jpeg": self._noise_jpeg,
                      "blur": self._blur, "second_order": self._second_order}

    def draw(self) -> str:
        names = list(self.shares)
        return names[int(self.rng.choice(len(names), p=list(self.shares.values())))]

    def _codec(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """One codec pass (quantized) and its compression level."""
        from .codec import codec_roundtrip
        if self.rng.random() < 0.75:   # presets differ in artefacts; medium is ffmpeg's (and most files') default
            crf = int(self.rng.integers(20, 37))
            y = codec_roundtrip(x, "libx264", crf=crf, preset=str(self.rng.choice(self.X264_PRESETS)))
            return quantize(y), x264_level(crf)
        q = int(self.rng.integers(2, 12))
        return quantize(codec_roundtrip(x, "mpeg4", qscale=q)), mpeg4_level(q)

    def _bi(self, hr):
        return quantize(bi_downsample(hr, self.scale))

    def _clean(self, hr):
        return self._bi(hr), level()

    def _codec_only(self, hr):
        x, compression = self._codec(self._bi(hr))
        return x, level(compression=compression)

    def _noise_jpeg(self, hr):
        x = self._bi(hr)
        sigma = float(self.rng.uniform(1, 12))
        seed = int(self.rng.integers(2 ** 31))
        x = quantize(gaussian_noise(x, sigma, grey=self.rng.random() < 0.4, seed=seed))
        quality = int(self.rng.integers(50, 96))
        compression = 0.0
        if self.rng.random() < 0.6:      # else the noise as the sensor left it (the level estimator must see it)
            x = self.pipeline._jpeg(x, (quality, quality))
            compression = jpeg_level(quality)
        if self.rng.random() < 0.3:
            x, codec = self._codec(x)
            compression = max(compression, codec)
        return quantize(x), level(noise_level(sigma), compression)

    def _blur(self, hr):
        sigma = float(self.rng.uniform(1.0, 2.0))
        x = quantize(bd_downsample(hr, self.scale, sigma=sigma))
        compression = 0.0
        if self.rng.random() < 0.5:
            x, compression = self._codec(x)
        return x, level(compression=compression, blur=blur_level(sigma))

    def _second_order(self, hr):
        return self.pipeline(hr), level(*SECOND_ORDER_LEVEL)

    def labelled(self, hr: torch.Tensor, kind: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR clip, its level [3])."""
        kind = kind or self.draw()
        if kind not in self.kinds:
            raise InputError(f"RealWorldMix kind={kind!r}; expected one of {', '.join(self.SHARES)}")
        return self.kinds[kind](hr)

    def __call__(self, hr: torch.Tensor, kind: str | None = None) -> torch.Tensor:
        return self.labelled(hr, kind)[0]


# name -> (hr, scale, seed, shares) -> (quantized LR clip, level [3])
DEGRADATIONS = {
    "bi": lambda hr, scale, seed, shares: (quantize(bi_downsample(hr, scale)), level()),
    "bd": lambda hr, scale, seed, shares: (quantize(bd_downsample(hr, scale)), level(blur=blur_level(1.6))),
    "realbasicvsr": lambda hr, scale, seed, shares: (RealBasicVSRDegradation(scale, seed=seed)(hr),
                                                     level(*SECOND_ORDER_LEVEL)),
    "real": lambda hr, scale, seed, shares: RealWorldMix(scale, seed=seed, shares=shares).labelled(hr),
}


def degrade_labelled(hr: torch.Tensor, kind: str = "bi", scale: int = 4, rng_seed: int | None = None,
                     shares: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """HR clip [T,3,H,W] -> (quantized LR clip with the named degradation, its level [3])."""
    if kind not in DEGRADATIONS:
        raise InputError(f"degradation={kind!r}; expected one of {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[kind](hr, scale, rng_seed, shares)


def degrade(hr: torch.Tensor, kind: str = "bi", scale: int = 4, rng_seed: int | None = None,
            shares: dict | None = None) -> torch.Tensor:
    """HR clip [T,3,H,W] -> quantized LR clip with the named degradation."""
    return degrade_labelled(hr, kind, scale, rng_seed, shares)[0]

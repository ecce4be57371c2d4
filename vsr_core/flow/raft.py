"""RAFT (Teed & Deng, ECCV 2020), the "large" model, written for vsr_core.

The module tree is laid out so that ``state_dict()`` keys are exactly those of
torchvision's ``raft_large`` (5,257,536 parameters); princeton-vl
``raft-things.pth`` checkpoints are renamed to this layout by
``raft_checkpoint.py``. For the same weights and the same normalised input the
numbers equal both reference implementations (tests/test_flow_raft.py checks
this against golden outputs of the references).

Input range
-----------
The two references expect different inputs: princeton-vl's ``RAFT.forward``
takes [0, 255] and computes ``2 * (x / 255) - 1`` itself; torchvision's takes
[-1, 1] (its ``OpticalFlow`` preset maps [0, 1] there); MGLD-VSR's ``RAFT_SR``
feeds [0, 1] frames without any normalisation (that line is commented out).
``RAFT.forward`` therefore takes an explicit ``input_range``:

=============  ===============================  ============================
input_range    what the caller passes           what the network sees
=============  ===============================  ============================
``"unit"``     [0, 1] (vsr_core frames)         ``2 * x - 1``  (default)
``"uint8"``    [0, 255] (princeton-vl)          ``2 * (x / 255) - 1``
``"signed"``   [-1, 1] (torchvision)            ``x``
``"mgld_raw"`` [0, 1] (MGLD ``RAFT_SR`` quirk)  ``x`` (not normalised)
=============  ===============================  ============================

Frame sizes not divisible by 8 are replicate-padded (split evenly between the
two sides, as princeton-vl's ``InputPadder(mode="sintel")`` does) and the flow
is cropped back.

Output convention: ``flow[:, :, y, x] = (dx, dy)`` such that pixel (x, y) of
``image1`` appears at (x + dx, y + dy) in ``image2``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_RANGES = ("unit", "uint8", "signed", "mgld_raw")

# Architecture constants of RAFT-large.
HIDDEN_DIM = 128
CONTEXT_DIM = 128
CORR_LEVELS = 4
CORR_RADIUS = 4
NUM_PARAMETERS = 5_257_536  # torchvision Raft_Large_Weights meta "num_params"
MIN_SIDE = 57  # padded to 64: the coarsest correlation level is then 1 pixel


def _conv_norm_relu(cin: int, cout: int, kernel: int, stride: int = 1,
                    norm: str | None = None, relu: bool = True) -> nn.Sequential:
    """conv (index 0), optional norm (index 1), optional ReLU: torchvision's
    Conv2dNormActivation key layout (``.0`` conv, ``.1`` norm)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2)]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(cout))
    elif norm == "instance":
        layers.append(nn.InstanceNorm2d(cout))  # affine=False: no keys
    elif norm is not None:
        raise ValueError(f"norm must be 'batch', 'instance' or None, got {norm!r}")
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 conv+norm+ReLU, with a strided 1x1 conv+norm projection on the
    skip path when the block downsamples; ReLU after the sum."""

    def __init__(self, cin: int, cout: int, norm: str, stride: int = 1):
        super().__init__()
        self.convnormrelu1 = _conv_norm_relu(cin, cout, 3, stride, norm)
        self.convnormrelu2 = _conv_norm_relu(cout, cout, 3, 1, norm)
        self.downsample = (_conv_norm_relu(cin, cout, 1, stride, norm, relu=False)
                           if stride != 1 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convnormrelu2(self.convnormrelu1(x))
        if self.downsample is not None:
            x = self.downsample(x)
        return F.relu(x + y)


class Encoder(nn.Module):
    """Feature / context encoder: 1/8 resolution, 256 channels out."""

    def __init__(self, norm: str, out_dim: int = 256):
        super().__init__()
        self.convnormrelu = _conv_norm_relu(3, 64, 7, 2, norm)
        self.layer1 = nn.Sequential(ResidualBlock(64, 64, norm, 1), ResidualBlock(64, 64, norm, 1))
        self.layer2 = nn.Sequential(ResidualBlock(64, 96, norm, 2), ResidualBlock(96, 96, norm, 1))
        self.layer3 = nn.Sequential(ResidualBlock(96, 128, norm, 2), ResidualBlock(128, 128, norm, 1))
        self.conv = nn.Conv2d(128, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convnormrelu(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.conv(x)


class MotionEncoder(nn.Module):
    def __init__(self, corr_channels: int):
        super().__init__()
        self.convcorr1 = _conv_norm_relu(corr_channels, 256, 1)
        self.convcorr2 = _conv_norm_relu(256, 192, 3)
        self.convflow1 = _conv_norm_relu(2, 128, 7)
        self.convflow2 = _conv_norm_relu(128, 64, 3)
        self.conv = _conv_norm_relu(192 + 64, 128 - 2, 3)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        c = self.convcorr2(self.convcorr1(corr))
        f = self.convflow2(self.convflow1(flow))
        out = self.conv(torch.cat([c, f], dim=1))
        return torch.cat([out, flow], dim=1)


class ConvGRU(nn.Module):
    def __init__(self, hidden: int, inp: int, kernel: tuple[int, int], padding: tuple[int, int]):
        super().__init__()
        self.convz = nn.Conv2d(hidden + inp, hidden, kernel, padding=padding)
        self.convr = nn.Conv2d(hidden + inp, hidden, kernel, padding=padding)
        self.convq = nn.Conv2d(hidden + inp, hidden, kernel, padding=padding)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class RecurrentBlock(nn.Module):
    """Separable ConvGRU: a (1,5) pass then a (5,1) pass."""

    def __init__(self, hidden: int, inp: int):
        super().__init__()
        self.convgru1 = ConvGRU(hidden, inp, (1, 5), (0, 2))
        self.convgru2 = ConvGRU(hidden, inp, (5, 1), (2, 0))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.convgru2(self.convgru1(h, x), x)


class FlowHead(nn.Module):
    def __init__(self, cin: int = HIDDEN_DIM, hidden: int = 256):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class UpdateBlock(nn.Module):
    def __init__(self, corr_channels: int):
        super().__init__()
        self.motion_encoder = MotionEncoder(corr_channels)
        self.recurrent_block = RecurrentBlock(HIDDEN_DIM, 128 + CONTEXT_DIM)
        self.flow_head = FlowHead(HIDDEN_DIM, 256)

    def forward(self, hidden, context, corr, flow):
        motion = self.motion_encoder(flow, corr)
        hidden = self.recurrent_block(hidden, torch.cat([context, motion], dim=1))
        return hidden, self.flow_head(hidden)


class MaskPredictor(nn.Module):
    """Weights of the convex 8x upsampling (9 neighbours x 8 x 8), scaled by 0.25."""

    def __init__(self, cin: int = HIDDEN_DIM):
        super().__init__()
        self.convrelu = _conv_norm_relu(cin, 256, 3)
        self.conv = nn.Conv2d(256, 8 * 8 * 9, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.25 * self.conv(self.convrelu(x))


def _coords_grid(n: int, h: int, w: int, device, dtype=torch.float32) -> torch.Tensor:
    """[N, 2, h, w] pixel coordinates, channel 0 = x, channel 1 = y."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys], dim=0)[None].expand(n, 2, h, w).contiguous()


def _sample_pixels(img: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear sample ``img`` [N,C,H,W] at absolute pixel coordinates ``xy``
    [N,h,w,2] (align_corners=True, zero padding). A side of length 1 is left
    unnormalised, as torchvision does for height (princeton-vl divides by 0)."""
    h, w = img.shape[-2:]
    x, y = xy[..., 0:1], xy[..., 1:2]
    if w > 1:
        x = 2 * x / (w - 1) - 1
    if h > 1:
        y = 2 * y / (h - 1) - 1
    return F.grid_sample(img, torch.cat([x, y], dim=-1), mode="bilinear", align_corners=True)


class CorrPyramid:
    """All-pairs correlation volume and its 4-level pooled pyramid."""

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor,
                 levels: int = CORR_LEVELS, radius: int = CORR_RADIUS):
        n, c, h, w = fmap1.shape
        self.radius = radius
        corr = torch.matmul(fmap1.reshape(n, c, h * w).transpose(1, 2), fmap2.reshape(n, c, h * w))
        corr = corr / torch.sqrt(torch.tensor(float(c)))
        corr = corr.reshape(n * h * w, 1, h, w)
        self.pyramid = [corr]
        for _ in range(levels - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.pyramid.append(corr)

    def lookup(self, coords: torch.Tensor) -> torch.Tensor:
        """Correlation features [N, levels*(2r+1)^2, h, w] around ``coords``
        [N,2,h,w]. Within a level the channel index is a*(2r+1)+b, where a
        indexes the x offset and b the y offset (the order both references
        use, which the trained weights depend on)."""
        r = self.radius
        n, _, h, w = coords.shape
        d = torch.linspace(-r, r, 2 * r + 1, device=coords.device, dtype=coords.dtype)
        da, db = torch.meshgrid(d, d, indexing="ij")
        delta = torch.stack([da, db], dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
        centre = coords.permute(0, 2, 3, 1).reshape(n * h * w, 1, 1, 2)
        out = []
        for i, corr in enumerate(self.pyramid):
            sampled = _sample_pixels(corr, centre / 2 ** i + delta)
            out.append(sampled.view(n, h, w, -1))
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N,2,h,w] flow -> [N,2,8h,8w] by a softmax-weighted 3x3 neighbourhood."""
    n, _, h, w = flow.shape
    mask = torch.softmax(mask.view(n, 1, 9, 8, 8, h, w), dim=2)
    up = F.unfold(8 * flow, [3, 3], padding=1).view(n, 2, 9, 1, 1, h, w)
    up = torch.sum(mask * up, dim=2)
    return up.permute(0, 1, 4, 2, 5, 3).reshape(n, 2, 8 * h, 8 * w)


def normalize_input(x: torch.Tensor, input_range: str) -> torch.Tensor:
    """Map an image batch in ``input_range`` to what the network sees."""
    if input_range == "unit":
        return 2 * x - 1
    if input_range == "uint8":
        return 2 * (x / 255.0) - 1.0
    if input_range in ("signed", "mgld_raw"):
        return x
    raise ValueError(f"input_range must be one of {INPUT_RANGES}, got {input_range!r}")


def pad_to_multiple(x: torch.Tensor, multiple: int = 8) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Replicate-pad H and W up to a multiple, split evenly (extra pixel on the
    right/bottom). Returns the padded tensor and (left, right, top, bottom)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if ph or pw:
        x = F.pad(x, pad, mode="replicate")
    return x, pad


def _unpad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    return x[..., top:h - bottom, left:w - right]


class RAFT(nn.Module):
    """RAFT-large. ``state_dict()`` keys are torchvision ``raft_large`` keys."""

    def __init__(self):
        super().__init__()
        corr_channels = CORR_LEVELS * (2 * CORR_RADIUS + 1) ** 2  # 324
        self.feature_encoder = Encoder("instance", 256)
        self.context_encoder = Encoder("batch", HIDDEN_DIM + CONTEXT_DIM)
        self.update_block = UpdateBlock(corr_channels)
        self.mask_predictor = MaskPredictor(HIDDEN_DIM)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, iters: int = 12,
                input_range: str = "unit", flow_init: torch.Tensor | None = None,
                return_all: bool = False, return_lowres: bool = False):
        """Flow from ``image1`` to ``image2`` ([N,3,H,W] each, in ``input_range``).

        ``iters``: GRU refinement steps (12 in princeton-vl and torchvision,
        10 in MGLD-VSR). ``flow_init``: optional [N,2,H/8,W/8] initial flow at
        1/8 of the padded size (e.g. the previous pair's low-res flow, for
        warm starts). Returns the final [N,2,H,W] flow in pixels, or the list
        of all ``iters`` upsampled flows if ``return_all``; with
        ``return_lowres`` a pair (1/8-resolution flow of the padded frames,
        that result), like princeton-vl's ``test_mode``.
        Call ``.eval()`` first (the context encoder has BatchNorm).
        """
        if image1.shape != image2.shape or image1.dim() != 4 or image1.shape[1] != 3:
            raise ValueError(f"image1 and image2 must both be [N,3,H,W] of one shape, got "
                             f"{tuple(image1.shape)} and {tuple(image2.shape)}")
        if iters < 1:
            raise ValueError(f"iters must be >= 1, got {iters}")
        n = image1.shape[0]
        x1 = normalize_input(image1.float(), input_range)
        x2 = normalize_input(image2.float(), input_range)
        if min(image1.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"RAFT needs frames of at least {MIN_SIDE}x{MIN_SIDE} pixels (its 4-level "
                             f"correlation pyramid works at 1/8 to 1/64 scale), got "
                             f"{image1.shape[-2]}x{image1.shape[-1]}")
        x1, pad = pad_to_multiple(x1.contiguous())
        x2, _ = pad_to_multiple(x2.contiguous())

        fmaps = self.feature_encoder(torch.cat([x1, x2], dim=0)).float()
        fmap1, fmap2 = fmaps[:n], fmaps[n:]
        corr = CorrPyramid(fmap1, fmap2)

        ctx = self.context_encoder(x1)
        hidden, context = torch.split(ctx, [HIDDEN_DIM, CONTEXT_DIM], dim=1)
        hidden, context = torch.tanh(hidden), torch.relu(context)

        h8, w8 = fmap1.shape[-2:]
        coords0 = _coords_grid(n, h8, w8, fmap1.device)
        coords1 = coords0.clone()
        if flow_init is not None:
            coords1 = coords1 + flow_init

        flows = []
        up = None
        for _ in range(iters):
            coords1 = coords1.detach()
            feats = corr.lookup(coords1)
            hidden, delta = self.update_block(hidden, context, feats, coords1 - coords0)
            coords1 = coords1 + delta
            up = _unpad(convex_upsample(coords1 - coords0, self.mask_predictor(hidden)), pad)
            if return_all:
                flows.append(up)
        result = flows if return_all else up
        return (coords1 - coords0, result) if return_lowres else result


def build_raft() -> RAFT:
    """A RAFT-large with PyTorch's default initialisation, in eval mode."""
    return RAFT().eval()

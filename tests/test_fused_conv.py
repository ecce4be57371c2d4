"""The CPU-fused convolutions (conv + LeakyReLU, conv + residual add) compute what the plain ops compute:
float32 to rounding, bfloat16 autocast to bf16 rounding; with autograd on, the plain ops run."""
import pytest
import torch
import torch.nn.functional as F

from vsr_core.models import fused_conv
from vsr_core.models.upscaler import ResBlock


def plain(blk, x):
    return x + blk.conv2(F.leaky_relu(blk.conv1(x), 0.1))


@pytest.mark.parametrize("channels_last", [False, True])
def test_resblock_fused_matches_plain_float32(channels_last):
    torch.manual_seed(0)
    blk = ResBlock(8).eval()
    x = torch.randn(3, 8, 17, 23)
    if channels_last:
        blk = blk.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert fused_conv._compute_dtype(x) is torch.float32 or not fused_conv._fused_ops_available()
        assert torch.allclose(blk(x), plain(blk, x), atol=1e-6, rtol=1e-6)


def test_resblock_fused_matches_plain_bf16_autocast():
    torch.manual_seed(0)
    blk = ResBlock(8).eval()
    x = torch.randn(2, 8, 16, 16)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        y, ref = blk(x.bfloat16()), plain(blk, x.bfloat16())
    assert y.dtype == ref.dtype == torch.bfloat16
    assert torch.allclose(y.float(), ref.float(), atol=0.05, rtol=0.02)


def test_training_runs_the_plain_ops_with_gradients():
    blk = ResBlock(4)
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    assert fused_conv._compute_dtype(x) is None
    blk(x).sum().backward()
    assert x.grad is not None and blk.conv1.weight.grad is not None


def test_float32_residual_under_bf16_is_not_fused():
    """The cleaner adds its bf16 correction to the float32 image: summed in float32, as unfused."""
    conv = torch.nn.Conv2d(4, 3, 3, 1, 1).eval()
    image, feats = torch.rand(1, 3, 8, 8), torch.randn(1, 4, 8, 8)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = fused_conv.conv_add(conv, feats, image)
        assert out.dtype == torch.float32
        assert torch.equal(out, image + conv(feats))

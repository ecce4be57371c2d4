"""Fault injection, part two (issue 30, part B): damaged or odd input is refused with one line naming it,
never shipped silently; bad settings are refused before any work. Every test here failed before the fix."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

from conftest import write_media
from vsr_core.cli import main
from vsr_core.errors import InputError
from vsr_core.video import LoadOptions, open_video


def _noise(frames: int, height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (frames, height, width, 3), dtype=np.uint8)


# force_rate: the frame count follows the duration, whatever the container's timestamp rounding
@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
@pytest.mark.parametrize("rate,expected", [(12, 4), (8, 3), (48, 16), (24, 8), (Fraction(30000, 1001), 10)])
def test_force_rate_gives_the_frames_the_duration_holds(tmp_path, ext, rate, expected):
    src = write_media(tmp_path / f"c{ext}", _noise(8))         # 8 frames at 24 fps: 1/3 s
    reader = open_video(src, LoadOptions(force_rate=rate))
    assert len(reader.read_all()) == expected
    np.testing.assert_allclose(reader.timestamps, [float(k / Fraction(rate)) for k in range(expected)])

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


# NaN and infinity: one validator for every float setting, on the command line, in workflows and on nodes
@pytest.mark.parametrize("argv", [["restore", "IN", "OUT", "--guidance=nan"],
                                  ["upscale", "IN", "OUT", "--stabilize=inf"],
                                  ["train", "--out", "OUT", "--lr=-inf"]])
def test_nan_and_inf_command_line_floats_are_one_line_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "not a finite number" in err and argv[-1].split("=")[0].lstrip("-") in err


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_refine_node_refuses_a_non_finite_blend(value):
    from conftest import load_node_pack
    refine = load_node_pack()["VSR_Refine"]()
    frames = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    import torch
    hr = torch.from_numpy(frames)
    with pytest.raises(InputError, match=r"VSR_Refine input 'blend' = (nan|inf) is not a finite number"):
        refine.refine(hr, hr, "fixed blend (no weights)", value, "none")


def test_every_node_checks_its_number_inputs(tmp_path):
    from conftest import load_node_pack
    from nodes.input_guard import _GUARDED
    for kind, cls in load_node_pack().items():
        assert getattr(getattr(cls, cls.FUNCTION), _GUARDED, False), kind


@pytest.mark.parametrize("setting", ["VSR_Refine.blend=NaN", "VSR_Refine.blend=Infinity",
                                     "VSR_LoadVideo.frame_load_cap=NaN", "VSR_LoadVideo.frame_load_cap=-Infinity"])
def test_workflow_number_inputs_refuse_nan_before_running(setting, capsys):
    from conftest import run_workflow
    from pathlib import Path
    workflow = Path(__file__).resolve().parents[1] / "workflows" / "api" / "full_pipeline_default.json"
    assert run_workflow([str(workflow), "--set", setting]) != 0
    err = capsys.readouterr().err.strip()
    name = setting.split(".")[1].split("=")[0]
    assert len(err.splitlines()) == 1 and f"'{name}'" in err and "not a finite number" in err

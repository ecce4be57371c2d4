"""Memory-safe by default (issue 29): tile and window are chosen before the first frame so the job fits the
free memory, said so; too large an output or too little memory is refused at once with one line."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import vsr_core.pipeline.memory_plan as mp
from conftest import load_node_pack
from vsr_core.cli import main
from vsr_core.pipeline.memory_fallback import OutOfMemory
from vsr_core.pipeline.memory_plan import FreeMemory, estimate, plan_upscale
from vsr_core.video import open_video

GB = 1 << 30


def test_defaults_kept_when_they_fit_and_lowered_step_by_step_when_not():
    plenty = FreeMemory(20 * GB)
    plan = plan_upscale(180, 320, 4, 12, 2, 512, plenty)
    assert (plan.tile, plan.window, plan.overlap) == (512, 12, 2)
    assert plan.describe(512, 12) .startswith("memory: --tile-px 512, --window 12 (about")
    # 1080p x4 (8K) on 40 GB free: smaller tiles first, then a shorter window, and the estimate fits
    plan = plan_upscale(1080, 1920, 4, 12, 2, 512, FreeMemory(40 * GB))
    assert plan.tile == 128 and 2 < plan.window < 12 and plan.ram <= mp.BUDGET_SHARE * 40 * GB
    assert plan.describe(512, 12).startswith("memory: --tile-px 512 -> 128, --window 12 -> ")
    # every step down the ladder needs less
    needs = [estimate(1080, 1920, 4, w, t)[0] for t, w in mp.ladder(512, 12, 1920)]
    assert needs == sorted(needs, reverse=True)


def test_too_little_memory_is_refused_with_one_line_naming_sizes_and_what_to_do():
    with pytest.raises(OutOfMemory) as err:
        plan_upscale(1080, 1920, 4, 12, 2, 512, FreeMemory(4 * GB))
    text = str(err.value)
    assert "\n" not in text and "1920x1080 at x4 needs about" in text and "4.0 GB free" in text
    assert "--tile-px 64 --window 2" in text and "--scale 2" in text


def test_on_a_gpu_the_activations_count_against_its_memory():
    ram, dev = estimate(540, 960, 4, 12, 512, on_gpu=True)
    assert dev == 12 * mp.PER_TILE_PIXEL * 512 * 512 and ram < estimate(540, 960, 4, 12, 512)[0]
    plan = plan_upscale(540, 960, 4, 12, 2, 512, FreeMemory(64 * GB, 1 * GB))
    assert plan.tile < 512 and plan.device <= mp.BUDGET_SHARE * GB
    with pytest.raises(OutOfMemory, match="of GPU memory"):
        plan_upscale(540, 960, 4, 12, 2, 512, FreeMemory(64 * GB, 10 << 20))


def _frames_folder(path, n, height, width):
    os.makedirs(path)
    for i in range(n):
        Image.fromarray(np.full((height, width, 3), 40 * i, np.uint8)).save(os.path.join(path, f"f_{i:03d}.png"))
    return str(path)


def test_an_output_beyond_8k_is_refused_at_once_and_nothing_is_written(tmp_path, capsys):
    src = _frames_folder(tmp_path / "big", 2, 1100, 2000)
    out = tmp_path / "out.mp4"
    assert main(["upscale", src, str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("error: a 2000x1100 input at x4 makes 8000x4400 frames, larger than 8K (7680x4320); "
                       "use --scale 2 (4000x2200)")
    assert sorted(os.listdir(tmp_path)) == ["big"]


def test_a_huge_input_on_a_small_machine_is_refused_before_any_frame(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(mp, "ram_bytes", lambda: (3 * GB, 4 * GB))
    src = _frames_folder(tmp_path / "hd", 2, 1080, 1920)
    assert main(["upscale", src, str(tmp_path / "out.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 1920x1080 at x4 needs about")
    assert sorted(os.listdir(tmp_path)) == ["hd"]


def test_the_command_lowers_the_window_and_says_so(tmp_path, media, capsys, monkeypatch):
    between = (estimate(48, 64, 4, 8, 512)[0] + estimate(48, 64, 4, 12, 512)[0]) / 2 / mp.BUDGET_SHARE
    monkeypatch.setattr(mp, "ram_bytes", lambda: (int(between), 4 * GB))     # 12 frames do not fit, 8 do
    out = tmp_path / "out.mkv"
    assert main(["upscale", media("in.mkv"), str(out), "--format", "ffv1"]) == 0
    assert "memory: --window 12 -> 8 so the job fits" in capsys.readouterr().err
    assert open_video(str(out)).read_all().shape == (12, 192, 256, 3)


def test_the_upscale_node_refuses_8k_and_plans_with_comfyuis_figures(monkeypatch, capsys):
    classes = load_node_pack()
    node = classes["VSR_Upscale"]()
    (upscaler,) = classes["VSR_LoadUpscaler"]().load("default (shipped x4)")
    with pytest.raises(Exception, match="larger than 8K .* use scale 2"):
        node.upscale(torch.zeros(1, 1100, 2000, 3), upscaler, 4, True, 12, 2, 512, 0.0)
    nodes_module = sys.modules[type(node).__module__]
    lr = torch.rand(6, 40, 48, 3)
    batch = mp.output_batch_bytes(lr.permute(0, 3, 1, 2), 4)
    between = (estimate(40, 48, 4, 8, 512, extra_ram=batch)[0] + estimate(40, 48, 4, 12, 512, extra_ram=batch)[0]) / 2
    monkeypatch.setattr(nodes_module, "free_memory", lambda device=None: FreeMemory(int(between / mp.BUDGET_SHARE)))
    (out,) = node.upscale(lr, upscaler, 4, True, 12, 2, 512, 0.0)
    assert out.shape == (6, 160, 192, 3)
    log = capsys.readouterr()
    assert "memory: window 12 -> " in log.out + log.err

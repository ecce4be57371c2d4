"""The restore job and workflows/full_pipeline_default are one graph: every widget of the workflow equals the
setting the job uses for that stage, and on a short clip both make the same frames."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_workflow, write_media, read_video as read
from vsr_core.jobs.job_settings import JobSettings
from vsr_core.jobs.restore import restore_file
from vsr_core.pipeline.restore_video import RestoreSettings
from vsr_core.settings import leaves, with_values

WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "api" / "full_pipeline_default.json"
pytestmark = pytest.mark.usefixtures("one_thread")


def stages(settings: RestoreSettings) -> dict:
    """Each node class of the workflow -> the settings object the restore job runs that stage with."""
    return {"VSR_Upscale": settings.upscale, "VSR_GuidedSample": settings.sample,
            "VSR_TemporalDecode": settings.decode, "VSR_Refine": settings.refine}


def widgets(class_type: str) -> dict:
    prompt = json.loads(WORKFLOW.read_text())
    node = next(n for n in prompt.values() if n["class_type"] == class_type)
    return {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}       # links are lists


def test_every_widget_of_the_default_workflow_is_the_restore_jobs_setting():
    settings = RestoreSettings()
    compared = 0
    for class_type, stage in stages(settings).items():
        values = {item.name: item.value for item in leaves(stage)}
        for name, value in widgets(class_type).items():
            if name in values:
                assert values[name] == value, (class_type, name)
                compared += 1
    assert compared >= 20
    assert widgets("VSR_Upscale")["temporal"] == settings.upscale.temporal
    assert widgets("VSR_Upscale")["tile_px"] == settings.upscale_tile_px
    flow = widgets("VSR_EstimateFlow")
    assert (flow["method"], flow["dis_preset"], flow["max_side"]) == ("dis", settings.flow_preset, 0)
    assert widgets("VSR_Refine")["refiner"].startswith("default (shipped")
    loaders = (("VSR_LoadUpscaler", "model_name"), ("VSR_LoadDiffusionModel", "ckpt_name"),
               ("VSR_LoadVAE", "vae_name"))
    assert all(widgets(c)[k].startswith("default (shipped") for c, k in loaders)


def test_the_default_workflow_and_the_restore_job_make_the_same_frames(tmp_path, clip, monkeypatch):
    monkeypatch.setenv("VSR_PRECISION", "fp32")       # "auto" means float32 in both: no per-CPU choice
    src = write_media(tmp_path / "in.mkv", clip[:5, :24, :40])
    steps = 2                                           # the graph's; only fewer steps, for time
    assert run_workflow([str(WORKFLOW), "--set", f"VSR_LoadVideo.video={src}", "--set",
                         f"VSR_GuidedSample.steps={steps}", "--set", "VSR_SaveVideo.format=ffv1-mkv (lossless)",
                         "--output-dir", str(tmp_path / "out")]) == 0
    (graph,) = (tmp_path / "out" / "vsr").iterdir()
    restore_file(src, str(tmp_path / "job.mkv"), with_values(RestoreSettings(), {"steps": steps}),
                 JobSettings(format="ffv1"))
    np.testing.assert_array_equal(read(tmp_path / "job.mkv"), read(graph))

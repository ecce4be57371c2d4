"""Every shared workflow: valid against the pack's and core ComfyUI's node signatures, UI and API
twins in agreement, and the ones made only of the pack's nodes run headless on a tiny clip."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from conftest import load_node_pack, pack_module, run_workflow, tone
from vsr_core.video import open_video

headless = pack_module("nodes.headless")          # the pack's headless runner and checkers (nodes/headless)
ui_to_api, validate_prompt, validate_ui = headless.ui_to_api, headless.validate_prompt, headless.validate_ui

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
# Combos that list the user's model files: any file name is valid there.
FILE_INPUTS = {("VSR_LoadVideo", "video"), ("VSR_LoadDiffusionModel", "ckpt_name"), ("VSR_LoadVAE", "vae_name"),
               ("VSR_EstimateFlow", "raft_model"), ("VSR_LoadUpscaler", "model_name")}


@pytest.fixture(scope="module")
def classes():
    return load_node_pack(str(ROOT))


@pytest.fixture(scope="module")
def infos(classes):
    return pack_module("nodes.ui_workflows").infos_and_titles()[0]   # the pack's nodes + core v0.8.0


def test_every_api_workflow_has_a_ui_twin():
    assert API_FILES
    for api in API_FILES:
        assert (WORKFLOWS / api.name).exists(), api.name


@pytest.mark.parametrize("api", API_FILES, ids=lambda p: p.stem)
def test_workflow_is_valid_and_twins_agree(api, infos):
    prompt = json.loads(api.read_text())
    assert validate_prompt(prompt, infos, FILE_INPUTS) == []
    ui = json.loads((WORKFLOWS / api.name).read_text())
    assert validate_ui(ui, infos, FILE_INPUTS) == []
    converted = ui_to_api(ui, infos=infos)
    assert {k: v["class_type"] for k, v in converted.items()} == {k: v["class_type"] for k, v in prompt.items()}
    for nid, node in prompt.items():
        assert {k: converted[nid]["inputs"].get(k) for k in node["inputs"]} == node["inputs"], (api.name, nid)


def _pack_only(prompt, classes):
    return all(n["class_type"] in classes for n in prompt.values())


@pytest.mark.parametrize("api", API_FILES, ids=lambda p: p.stem)
def test_pack_only_workflows_run_headless(api, classes, media, tmp_path, clip):
    prompt = json.loads(api.read_text())
    if not _pack_only(prompt, classes):
        pytest.skip("uses core ComfyUI nodes; checked in a real ComfyUI (README, testing)")
    if any(n["class_type"] in ("VSR_LoadDiffusionModel", "VSR_LoadVAE") and
           not str(next(iter(n["inputs"].values()))).startswith("default") for n in prompt.values()):
        pytest.skip("needs user checkpoints (MGLD-VSR/StableSR)")
    # Real-ESRGAN x4plus takes seconds per 32x48 keyframe on a CPU: its workflows get a smaller clip
    h, w = (16, 24) if any(n["class_type"] == "VSR_DetailUpscale" for n in prompt.values()) else (32, 48)
    src = media("in.mkv", frames=clip[:3, :h, :w], fps=Fraction(24), audio=tone(3 / 24))
    loader = next(k for k, n in prompt.items() if n["class_type"] == "VSR_LoadVideo")
    overrides = [f"{loader}.video={src}"]
    overrides += [f"{k}.steps=2" for k, n in prompt.items() if n["class_type"] == "VSR_GuidedSample"]
    sets = sum((["--set", o] for o in overrides), [])
    assert run_workflow([str(api), *sets, "--output-dir", str(tmp_path / "out")]) == 0
    saved = sorted((tmp_path / "out").rglob("*.mp4"))
    assert len(saved) == 1
    reader = open_video(str(saved[0]))
    frames = reader.read_all()
    scale = 4 if any(n["class_type"] in ("VSR_Upscale", "VSR_RelayDetail") for n in prompt.values()) else 1
    assert frames.shape == (3, h * scale, w * scale, 3) and reader.fps == 24
    assert reader.audio_ref() is not None


UI_FILES = sorted(WORKFLOWS.glob("*.json"))


def test_ui_workflows_are_made_from_their_api_twins():
    """`python -m nodes.ui_workflows` rewrites them; a twin edited alone would make them disagree."""
    make = pack_module("nodes.ui_workflows")
    infos, titles = make.infos_and_titles()
    for path in UI_FILES:
        assert json.loads(path.read_text()) == make.ui_workflow(path.name, infos, titles), path.name


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_ui_workflow_opens_readable_on_a_1600x900_window(path):
    """The saved view frames every node and note at a zoom the frontend draws in full, inside the
    part of the window its sidebar, bars and minimap leave free; groups and notes do not overlap."""
    ui_export = pack_module("nodes.headless.ui_export")
    MIN_SCALE, TITLE_H, VIEW_AREAS = ui_export.MIN_SCALE, ui_export.TITLE_H, ui_export.VIEW_AREAS
    ui = json.loads(path.read_text())
    scale, (ox, oy) = ui["extra"]["ds"]["scale"], ui["extra"]["ds"]["offset"]
    assert scale >= MIN_SCALE
    boxes = [((n["pos"][0] + ox) * scale, (n["pos"][1] - TITLE_H + oy) * scale,
              (n["pos"][0] + n["size"][0] + ox) * scale, (n["pos"][1] + n["size"][1] + oy) * scale)
             for n in ui["nodes"]]
    groups = [((g["bounding"][0] + ox) * scale, (g["bounding"][1] + oy) * scale,
               (g["bounding"][0] + g["bounding"][2] + ox) * scale, (g["bounding"][1] + g["bounding"][3] + oy) * scale)
              for g in ui["groups"]]
    assert any(all(x0 >= a[0] - 1 and y0 >= a[1] - 1 and x1 <= a[2] + 1 and y1 <= a[3] + 1
                   for x0, y0, x1, y1 in boxes + groups) for a in VIEW_AREAS)
    overlap = lambda a, b: a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]  # noqa: E731
    assert not any(overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert not any(overlap(a, b) for i, a in enumerate(groups) for b in groups[i + 1:])
    assert len(ui["groups"]) >= 1 and all(g["title"] for g in ui["groups"])

"""Every shared workflow: valid against the pack's and core ComfyUI's node signatures, UI and API
twins in agreement, and the ones made only of the pack's nodes run headless on a tiny clip."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from conftest import load_node_pack, run_workflow, tone
from vsr_core.video import open_video
from vsr_core.workflow import node_info, ui_to_api, validate_prompt, validate_ui

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
    known = {k: node_info(c) for k, c in classes.items()}
    known.update(json.loads((ROOT / "tests" / "fixtures" / "comfyui" / "core_nodes_v0.8.0.json").read_text()))
    return known


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
    src = media("in.mkv", frames=clip[:3, :32, :48], fps=Fraction(24), audio=tone(3 / 24))
    loader = next(k for k, n in prompt.items() if n["class_type"] == "VSR_LoadVideo")
    overrides = [f"{loader}.video={src}"]
    overrides += [f"{k}.steps=2" for k, n in prompt.items() if n["class_type"] == "VSR_GuidedSample"]
    sets = sum((["--set", o] for o in overrides), [])
    assert run_workflow([str(api), *sets, "--output-dir", str(tmp_path / "out")]) == 0
    saved = sorted((tmp_path / "out").rglob("*.mp4"))
    assert len(saved) == 1
    reader = open_video(str(saved[0]))
    frames = reader.read_all()
    scale = 4 if any(n["class_type"] == "VSR_Upscale" for n in prompt.values()) else 1
    assert frames.shape == (3, 32 * scale, 48 * scale, 3) and reader.fps == 24
    assert reader.audio_ref() is not None

"""The headless runner: API and UI formats, overrides, validation, shipped workflows."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import load_node_pack, pack_module, run_workflow, tone
from vsr_core.errors import InputError
from vsr_core.video import decode_audio, open_video

headless = pack_module("nodes.headless")          # the pack's headless runner and checkers (nodes/headless)
apply_overrides, load_workflow, run_prompt, ui_to_api = (headless.apply_overrides, headless.load_workflow,
                                                         headless.run_prompt, headless.ui_to_api)

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"


@pytest.fixture(scope="module")
def classes():
    return load_node_pack(str(ROOT))


def test_ui_and_api_twins_convert_to_the_same_prompt(classes):
    api = json.loads((WORKFLOWS / "api" / "trim_convert.json").read_text())
    converted = ui_to_api(json.loads((WORKFLOWS / "trim_convert.json").read_text()), classes)
    strip = lambda p: {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in p.items()}  # noqa: E731
    assert strip(converted) == strip(api)


@pytest.mark.parametrize("name", ["api/trim_convert.json", "trim_convert.json"])
def test_shipped_workflow_runs_from_the_command_line(name, media, tmp_path, clip):
    audio = tone(len(clip) / 24)
    src = media("in.mkv", fps=Fraction(24), audio=audio)
    code = run_workflow([str(WORKFLOWS / name), "--set", f"1.video={src}", "--set", "1.skip_first_frames=2",
                 "--set", "VSR_SaveVideo.format=ffv1-mkv (lossless)", "--output-dir", str(tmp_path / "out")])
    assert code == 0
    out = tmp_path / "out" / "vsr" / "converted_00001.mkv"
    reader = open_video(str(out))
    np.testing.assert_array_equal(reader.read_all(), clip[2:])
    assert reader.fps == 24
    np.testing.assert_array_equal(decode_audio(reader.audio_ref()).waveform, audio[:, 2 * 2000:])


def _prompt():
    return {"1": {"class_type": "VSR_LoadVideo", "inputs": {"video": "x.mp4"}},
            "2": {"class_type": "VSR_SaveVideo", "inputs": {"frames": ["1", 0], "fps": ["1", 1]}}}


def test_unknown_node_class_is_named_with_its_id(classes):
    prompt = _prompt()
    prompt["7"] = {"class_type": "KSamplerAdvanced", "inputs": {}}
    with pytest.raises(InputError, match="node 7 has class 'KSamplerAdvanced'"):
        run_prompt(prompt, classes)


def test_link_type_mismatch_is_refused(classes):
    prompt = _prompt()
    prompt["2"]["inputs"]["frames"] = ["1", 3]  # frame_count (INT) into IMAGE
    with pytest.raises(InputError, match="input 'frames' expects IMAGE but node 1 output 3 gives INT"):
        run_prompt(prompt, classes)


def test_out_of_range_widget_is_refused_before_anything_runs(classes):
    prompt = _prompt()
    prompt["2"]["inputs"]["crf"] = 99
    with pytest.raises(InputError, match=r"node 2 \(VSR_SaveVideo\) input 'crf' = 99 is out of range"):
        run_prompt(prompt, classes)


def test_bad_combo_value_lists_the_choices(classes):
    prompt = _prompt()
    prompt["2"]["inputs"]["format"] = "gif"
    with pytest.raises(InputError, match="expected one of"):
        run_prompt(prompt, classes)


def test_cycles_and_missing_outputs_are_reported(classes):
    prompt = _prompt()
    del prompt["2"]
    with pytest.raises(InputError, match="no output node"):
        run_prompt(prompt, classes)
    prompt = _prompt()
    prompt["2"]["inputs"]["frames"] = ["9", 0]
    with pytest.raises(InputError, match="links to node 9, which does not exist"):
        run_prompt(prompt, classes)


def test_overrides_address_nodes_by_id_title_or_class(classes):
    prompt = _prompt()
    apply_overrides(prompt, ["VSR_LoadVideo.frame_load_cap=5", "2.filename_prefix=a/b", "1.force_rate=12.5"])
    assert prompt["1"]["inputs"]["frame_load_cap"] == 5 and prompt["1"]["inputs"]["force_rate"] == 12.5
    assert prompt["2"]["inputs"]["filename_prefix"] == "a/b"
    with pytest.raises(InputError, match="expected NODE.INPUT=VALUE"):
        apply_overrides(prompt, ["frame_load_cap=5"])
    with pytest.raises(InputError, match="matches no node"):
        apply_overrides(prompt, ["KSampler.seed=1"])


def test_ui_format_skips_seed_control_values_and_follows_reroutes():
    class Sampler:
        RETURN_TYPES = ("LATENT",)
        FUNCTION = "go"
        OUTPUT_NODE = True

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"latent": ("LATENT",), "seed": ("INT", {"default": 0}),
                                 "steps": ("INT", {"default": 20}), "mode": (["a", "b"],)}}

    class Source:
        RETURN_TYPES = ("LATENT",)
        FUNCTION = "go"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

    ui = {"nodes": [{"id": 1, "type": "Source", "inputs": [], "widgets_values": []},
                    {"id": 5, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 1}]},
                    {"id": 2, "type": "Sampler", "inputs": [{"name": "latent", "type": "LATENT", "link": 2}],
                     "widgets_values": [42, "randomize", 8, "b"]}],
          "links": [[1, 1, 0, 5, 0, "LATENT"], [2, 5, 0, 2, 0, "LATENT"]]}
    api = ui_to_api(ui, {"Sampler": Sampler, "Source": Source})
    assert api["2"]["inputs"] == {"seed": 42, "steps": 8, "mode": "b", "latent": ["1", 0]}


def test_workflow_file_errors(tmp_path, classes):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_workflow(str(bad), classes)
    bad.write_text('{"a": 1}')
    with pytest.raises(InputError, match="neither API format"):
        load_workflow(str(bad), classes)


def test_cli_reports_errors_with_exit_code_2(tmp_path, capsys):
    assert run_workflow([str(tmp_path / "missing.json")]) == 2
    assert "cannot read workflow" in capsys.readouterr().err


def _infos(classes):
    return pack_module("nodes.ui_workflows").infos_and_titles()[0]   # the pack's nodes + core v0.8.0


def test_api_to_ui_round_trips_and_validates_with_core_nodes(classes):
    api_to_ui, validate_prompt, validate_ui = headless.api_to_ui, headless.validate_prompt, headless.validate_ui
    infos = _infos(classes)
    prompt = {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
              "2": {"class_type": "VSR_LoadVideo", "inputs": {"video": "", "frame_load_cap": 0,
                                                              "skip_first_frames": 0, "select_every_nth": 1,
                                                              "force_rate": 0.0, "video_in": ["1", 0]}},
              "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": ["2", 1],
                                                            "audio": ["2", 2]}},
              "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "v",
                                                          "format": "auto", "codec": "auto"}}}
    files = {("VSR_LoadVideo", "video")}           # lists the input folder: any name is accepted
    assert validate_prompt(prompt, infos, files) == []
    ui = api_to_ui(prompt, infos, notes={"About": "test"})
    assert validate_ui(ui, infos, files) == []
    back = ui_to_api(ui, infos=infos)
    assert back.keys() == prompt.keys()
    for nid, node in prompt.items():  # the UI also stores optional widgets at their defaults
        assert {k: back[nid]["inputs"][k] for k in node["inputs"]} == node["inputs"]
    assert back["2"]["inputs"]["folder_fps"] == 24.0


def test_validation_names_each_problem(classes):
    validate_prompt, validate_ui = headless.validate_prompt, headless.validate_ui
    infos = _infos(classes)
    prompt = {"1": {"class_type": "VSR_LoadVideo", "inputs": {"video": "x", "frame_load_cap": -1,
                                                              "select_every_nth": 1, "force_rate": 0.0,
                                                              "bogus": 1}},
              "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 3], "fps": ["1", 1]}},
              "3": {"class_type": "NoSuchNode", "inputs": {}}}
    problems = "\n".join(validate_prompt(prompt, infos))
    assert "input 'bogus' is not declared" in problems
    assert "'frame_load_cap' = -1 is out of range" in problems
    assert "'skip_first_frames' is required but missing" in problems
    assert "input 'images' expects IMAGE but gets INT" in problems
    assert "unknown class 'NoSuchNode'" in problems
    ui = json.loads((WORKFLOWS / "trim_convert.json").read_text())
    load = next(n for n in ui["nodes"] if n["type"] == "VSR_LoadVideo")
    assert len(load["widgets_values"]) == 7                   # 6 widgets + the upload button's value
    assert validate_ui(ui, infos, {("VSR_LoadVideo", "video")}) == []
    load["widgets_values"] = load["widgets_values"][:-1]      # as saved before the button: still valid
    assert validate_ui(ui, infos, {("VSR_LoadVideo", "video")}) == []
    load["widgets_values"] = load["widgets_values"][:-1]      # saved before the optional folder_fps: valid
    assert validate_ui(ui, infos, {("VSR_LoadVideo", "video")}) == []
    load["widgets_values"] = load["widgets_values"][:-1]      # a required widget's value missing
    assert any("has 4 widget values; its widgets take 6" in p for p in validate_ui(ui, infos))


def _with_old_names(prompt: dict, classes) -> dict:
    """The prompt as it was saved before the inputs were renamed."""
    old = {}
    for node_id, node in prompt.items():
        back = {new: o for o, new in getattr(classes.get(node["class_type"]), "RENAMED_INPUTS", {}).items()}
        old[node_id] = {**node, "inputs": {back.get(k, k): v for k, v in node["inputs"].items()}}
    return old


@pytest.mark.parametrize("name", ["full_pipeline_default.json", "fast_path.json", "long_video.json"])
def test_api_prompts_saved_with_the_old_input_names_still_load(classes, tmp_path, name):
    api = json.loads((WORKFLOWS / "api" / name).read_text())
    old = _with_old_names(api, classes)
    assert old != api                                    # the file really used names that changed
    (tmp_path / name).write_text(json.dumps(old))
    loaded = load_workflow(str(tmp_path / name), classes)
    assert {k: v["inputs"] for k, v in loaded.items()} == {k: v["inputs"] for k, v in api.items()}


def test_set_accepts_an_old_input_name(classes):
    prompt = json.loads((WORKFLOWS / "api" / "full_pipeline_default.json").read_text())
    refine = next(k for k, n in prompt.items() if n["class_type"] == "VSR_Refine")
    apply_overrides(prompt, [f"{refine}.w=0.25"], classes)                # `w` is now `blend`
    assert prompt[refine]["inputs"]["blend"] == 0.25 and "w" not in prompt[refine]["inputs"]


def test_every_renamed_input_points_at_a_declared_one(classes):
    node_info, declared_inputs = headless.node_info, pack_module("nodes.headless.signature").declared_inputs
    renamed = 0
    for kind, cls in classes.items():
        names = {i.name for i in declared_inputs(node_info(cls))}
        for old, new in getattr(cls, "RENAMED_INPUTS", {}).items():
            assert new in names and old not in names, (kind, old, new)
            renamed += 1
    assert renamed >= 10


# malformed workflow files: one line naming the problem, never a traceback (issue 30)
def _trim_api() -> dict:
    return json.loads((WORKFLOWS / "api" / "trim_convert.json").read_text())


def _trim_ui() -> dict:
    return json.loads((WORKFLOWS / "trim_convert.json").read_text())


def _chain_api(length: int) -> dict:
    """Load Video -> `length` Refine nodes in a chain -> Save Video (the load fails on a missing file)."""
    prompt = {"1": {"class_type": "VSR_LoadVideo", "inputs": {"video": "/no/such/clip.mkv"}}}
    previous = "1"
    for i in range(2, length + 2):
        prompt[str(i)] = {"class_type": "VSR_Refine", "inputs": {"upscaled": [previous, 0], "decoded": [previous, 0],
                                                                 "refiner": "fixed blend (no weights)"}}
        previous = str(i)
    prompt["end"] = {"class_type": "VSR_SaveVideo", "inputs": {"frames": [previous, 0], "fps": 24.0}}
    return prompt


def _reroute_chain_ui(length: int) -> dict:
    ui = _trim_ui()
    first_id = 100
    ui["nodes"] += [{"id": first_id + i, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 1000 + i}],
                     "outputs": [{"name": "", "type": "IMAGE", "links": [1001 + i]}]} for i in range(length)]
    ui["links"] = [link for link in ui["links"] if link[0] != 1]
    ui["links"] += [[1000, 1, 0, first_id, 0, "IMAGE"]]
    ui["links"] += [[1001 + i, first_id + i, 0, first_id + i + 1, 0, "IMAGE"] for i in range(length - 1)]
    ui["links"] += [[1000 + length, first_id + length - 1, 0, 2, 0, "IMAGE"]]
    save = next(n for n in ui["nodes"] if n["id"] == 2)
    save["inputs"][0]["link"] = 1000 + length
    return ui


def _broken(case: str):
    api, ui = _trim_api(), _trim_ui()
    if case == "nan int":
        api["1"]["inputs"]["frame_load_cap"] = float("nan")
    elif case == "inf int":
        api["1"]["inputs"]["skip_first_frames"] = float("inf")
    elif case == "class_type list":
        api["1"]["class_type"] = ["VSR_LoadVideo"]
    elif case == "_meta not a dict":
        api["1"]["_meta"] = "Load Video"
    elif case == "node not an object":
        api["1"] = ["VSR_LoadVideo"]
    elif case == "literal into a socket":
        api["2"]["inputs"]["frames"] = [[0.5]]
    elif case == "10000-node chain":
        return _chain_api(10_000)
    elif case == "10000 reroutes":
        return _reroute_chain_ui(10_000)
    elif case == "link without type":
        ui["links"][0] = ui["links"][0][:5]
    elif case == "link to missing slot":
        ui["links"][0][2] = 99
    elif case == "link slot not a number":
        ui["links"][0][2] = "zero"
    elif case == "link too short":
        ui["links"][0] = [1, 1]
    elif case == "link not a list":
        ui["links"][0] = "1->2"
    elif case == "node in ui not an object":
        ui["nodes"][0] = 7
    elif case == "node without type":
        del ui["nodes"][0]["type"]
    elif case == "widgets_values a number":
        ui["nodes"][0]["widgets_values"] = 3
    elif case == "input link not a number":
        ui["nodes"][1]["inputs"][0]["link"] = "one"
    elif case == "inputs not a list":
        ui["nodes"][1]["inputs"] = {"frames": 1}
    else:
        raise AssertionError(case)
    return api if case in ("nan int", "inf int", "class_type list", "_meta not a dict", "node not an object",
                           "literal into a socket") else ui


MALFORMED = ["nan int", "inf int", "class_type list", "_meta not a dict", "node not an object",
             "literal into a socket", "10000-node chain", "10000 reroutes", "link without type",
             "link to missing slot", "link slot not a number", "link too short", "link not a list",
             "node in ui not an object", "node without type", "widgets_values a number",
             "input link not a number", "inputs not a list"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_workflows_fail_with_one_line(case, tmp_path, capsys):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(_broken(case)))
    settings = ["--set", "Load Video (VSR).frame_load_cap=2"] if case == "_meta not a dict" else []
    assert run_workflow([str(path), *settings, "--output-dir", str(tmp_path / "out")]) == 2
    _one_error_line(capsys)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.*"))


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"[" * 200_000, b'{"a":' * 200_000, b"\xef\xbb\xbf[1, 2]"])
def test_binary_and_deeply_nested_files_fail_with_one_line(content, tmp_path, capsys):
    path = tmp_path / "w.json"
    path.write_bytes(content)
    assert run_workflow([str(path)]) == 2
    assert "w.json" in _one_error_line(capsys)

"""The ComfyUI node contract, checked without ComfyUI: every class well formed, the
pack importable, vsr_core free of ComfyUI, and the nodes working through V1 calls."""
from __future__ import annotations

import ast
import os
import sys
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_node_pack, tone
from vsr_core.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SOCKET_TYPES = {"IMAGE", "LATENT", "MODEL", "VAE", "AUDIO", "VIDEO", "MASK", "CONDITIONING", "UPSCALE_MODEL"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


@pytest.fixture(scope="module")
def classes():
    return load_node_pack(str(ROOT))


def test_pack_exports_prefixed_mappings(classes):
    import importlib
    pack = sys.modules[next(iter(classes.values())).__module__.split(".")[0]]
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) == set(classes)
    assert {"VSR_LoadVideo", "VSR_SaveVideo"} <= set(classes)
    assert all(name.startswith("VSR_") for name in classes)
    # the pack knows whether it runs inside ComfyUI (these tests pass in either environment)
    bridge = sys.modules[next(iter(classes.values())).__module__.rsplit(".", 1)[0] + ".comfy_bridge"]
    assert bridge.IN_COMFYUI == (importlib.util.find_spec("comfy") is not None)


def test_every_node_is_well_formed(classes):
    for name, cls in classes.items():
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"}, name
        for section in ("required", "optional"):
            for inp, decl in spec.get(section, {}).items():
                kind, options = decl[0], decl[1] if len(decl) > 1 else {}
                assert options.get("tooltip"), f"{name}.{inp} has no tooltip"
                if isinstance(kind, list):
                    assert kind and options.get("default", kind[0]) in kind, f"{name}.{inp}"
                elif kind in ("INT", "FLOAT"):
                    assert options["min"] <= options["default"] <= options["max"], f"{name}.{inp}"
                else:
                    for part in kind.split(","):  # "A,B" is a union socket
                        assert part in WIDGET_TYPES | SOCKET_TYPES or part.startswith("VSR_"), f"{name}.{inp}: {kind}"
        assert isinstance(cls.RETURN_TYPES, tuple)
        assert len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES)
        assert callable(getattr(cls, cls.FUNCTION)), name
        assert isinstance(cls.CATEGORY, str) and cls.CATEGORY.startswith("video super-resolution")
        assert getattr(cls, "DESCRIPTION", ""), name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_nodes_hold_no_comfyui_imports_outside_the_bridge():
    for path in (ROOT / "nodes").glob("*.py"):
        if path.name != "comfy_bridge.py":
            assert not _imports(path) & {"comfy", "folder_paths", "comfy_api"}, path


def test_load_then_save_keeps_frames_fps_and_audio(classes, media, tmp_path, monkeypatch, clip):
    monkeypatch.setenv("VSR_OUTPUT_DIR", str(tmp_path / "out"))
    fps = Fraction(30000, 1001)
    audio = tone(len(clip) / float(fps))
    src = media("in.mkv", fps=fps, audio=audio)
    frames, out_fps, comfy_audio, count = classes["VSR_LoadVideo"]().load(src, 0, 0, 1, 0.0)
    assert frames.dtype == torch.float32 and frames.shape == (12, 48, 64, 3)
    assert count == 12 and Fraction(out_fps).limit_denominator(10**6) == fps
    assert comfy_audio["waveform"].shape == (1, 2, audio.shape[1]) and comfy_audio["sample_rate"] == 48000

    result = classes["VSR_SaveVideo"]().save(frames, out_fps, "clips/test", "ffv1-mkv (lossless)", 18,
                                             audio=comfy_audio)
    path = result["result"][0]
    assert path == str(tmp_path / "out" / "clips" / "test_00001.mkv")
    assert result["ui"]["images"][0] == {"filename": "test_00001.mkv", "subfolder": "clips", "type": "output",
                                         "format": "video/mkv", "frame_rate": out_fps}
    again = classes["VSR_LoadVideo"]().load(path, 0, 0, 1, 0.0)
    assert torch.equal(again[0], frames)
    np.testing.assert_array_equal(again[2]["waveform"][0].numpy(), audio)
    second = classes["VSR_SaveVideo"]().save(frames, out_fps, "clips/test", "h264-mp4", 18)
    assert second["result"][0].endswith("test_00002.mp4")  # never overwrites


def test_save_refuses_a_prefix_outside_the_output_folder(classes, tmp_path, monkeypatch, clip):
    monkeypatch.setenv("VSR_OUTPUT_DIR", str(tmp_path / "out"))
    frames = torch.from_numpy(clip).float() / 255
    with pytest.raises(OSError, match="outside the output folder"):
        classes["VSR_SaveVideo"]().save(frames, 24.0, "../escape", "h264-mp4", 18)


def test_load_refuses_an_empty_path(classes):
    with pytest.raises(ValueError, match="video is empty"):
        classes["VSR_LoadVideo"]().load("  ", 0, 0, 1, 0.0)


class _CoreVideo:
    """Stands in for core ComfyUI's VIDEO (comfy_api VideoInput) in memory."""

    def __init__(self, images, rate, audio=None):
        self.components = types.SimpleNamespace(images=images, frame_rate=rate, audio=audio)

    def get_stream_source(self):
        return None

    def get_components(self):
        return self.components


def test_load_accepts_core_video_and_applies_the_same_selection(classes, clip):
    images = torch.from_numpy(clip).float() / 255
    audio = {"waveform": torch.from_numpy(tone(0.5))[None], "sample_rate": 48000}
    video = _CoreVideo(images, Fraction(24), audio)
    frames, fps, out_audio, count = classes["VSR_LoadVideo"]().load("", 4, 2, 1, 0.0, video_in=video)
    assert torch.equal(frames, images[2:6]) and count == 4 and fps == 24.0
    assert torch.equal(out_audio["waveform"], audio["waveform"][..., 4000:12000])


def test_load_streams_a_core_video_backed_by_a_file(classes, media, clip):
    video = _CoreVideo(None, None)
    video.get_stream_source = lambda: media("core.mkv")
    frames, _fps, _audio, count = classes["VSR_LoadVideo"]().load("", 0, 0, 3, 0.0, video_in=video)
    assert count == 4 and torch.equal(frames, torch.from_numpy(clip[::3]).float() / 255)


def test_bridge_uses_comfyui_progress_and_interrupts_when_present(monkeypatch, tmp_path):
    """With stand-ins for comfy.utils / model_management / folder_paths, the bridge drives them."""
    calls = []

    class ProgressBar:
        def __init__(self, total):
            calls.append(("start", total))

        def update(self, n):
            calls.append(("update", n))

    class Interrupted(Exception):
        pass

    def interrupt():
        raise Interrupted()

    comfy = types.ModuleType("comfy")
    comfy.utils = types.SimpleNamespace(ProgressBar=ProgressBar)
    comfy.model_management = types.SimpleNamespace(throw_exception_if_processing_interrupted=interrupt)
    comfy.model_patcher = types.SimpleNamespace(ModelPatcher=object)
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.models_dir = str(tmp_path)
    folder_paths.folder_names_and_paths = {}
    folder_paths.get_folder_paths = lambda kind: folder_paths.folder_names_and_paths[kind][0]
    for name, mod in {"comfy": comfy, "comfy.utils": comfy.utils, "folder_paths": folder_paths,
                      "comfy.model_management": comfy.model_management,
                      "comfy.model_patcher": comfy.model_patcher}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    import importlib.util
    spec = importlib.util.spec_from_file_location("bridge_under_test", ROOT / "nodes" / "comfy_bridge.py")
    bridge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bridge)
    assert bridge.IN_COMFYUI
    reporter = bridge.make_reporter()
    reporter.start(5)
    reporter.update(2)
    assert calls == [("start", 5), ("update", 2)]
    with pytest.raises(Interrupted):
        reporter.check_interrupt()
    bridge.register_model_folder("vsr_upscalers", {".safetensors"})
    (tmp_path / "vsr_upscalers").mkdir()
    (tmp_path / "vsr_upscalers" / "x4.safetensors").write_bytes(b"")
    assert bridge.list_models("vsr_upscalers", (".safetensors",)) == ["x4.safetensors"]
    assert bridge.model_path("vsr_upscalers", "x4.safetensors") == os.path.join(tmp_path, "vsr_upscalers",
                                                                                 "x4.safetensors")


def test_stages_load_the_packs_models_through_comfyuis_model_management(monkeypatch):
    """With stand-ins for comfy.model_management and comfy.model_patcher: a stage wraps the pack's model in
    one ModelPatcher (ComfyUI's own devices), loads it with load_models_gpu (counted in ComfyUI's memory
    estimates) and, when asked, unloads it and frees the cache afterwards."""
    import importlib.util
    calls, current = [], []

    class Patcher:
        def __init__(self, model, load_device, offload_device):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device
            calls.append("wrap")

    class Loaded:
        def __init__(self, patcher):
            self.model = patcher

        def model_unload(self):
            calls.append("unload")

    def load_models_gpu(patchers):
        calls.append("load")
        current.extend(Loaded(p) for p in patchers if not any(m.model is p for m in current))

    comfy = types.ModuleType("comfy")
    comfy.model_management = types.SimpleNamespace(
        get_torch_device=lambda: torch.device("cpu"), unet_offload_device=lambda: torch.device("cpu"),
        load_models_gpu=load_models_gpu, current_loaded_models=current,
        soft_empty_cache=lambda: calls.append("empty"))
    comfy.model_patcher = types.SimpleNamespace(ModelPatcher=Patcher)
    spec = importlib.util.spec_from_file_location("bridge_devices", ROOT / "nodes" / "comfy_bridge.py")
    bridge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bridge)
    monkeypatch.setattr(bridge, "IN_COMFYUI", True)
    monkeypatch.setattr(bridge, "comfy", comfy, raising=False)

    module = torch.nn.Linear(2, 2)
    with bridge.on_compute_device(module, offload_after=True):
        calls.append("stage")
    assert calls == ["wrap", "load", "stage", "unload", "empty"] and current == []
    calls.clear()
    with bridge.on_compute_device(module, offload_after=False):
        calls.append("stage")
    assert calls == ["load", "stage"] and len(current) == 1    # one patcher per model; stays loaded
    assert bridge.managed(module).model is module
    with bridge.on_compute_device(None):  # a core model or nothing: left alone
        pass
    assert calls == ["load", "stage"]


def test_requirements_and_pyproject_list_the_same_dependencies():
    import tomllib
    req = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [r for r in req if r] == project


def test_ci_runs_the_readme_commands_verbatim():
    """.ci/run runs the README's set-up and test commands; only the README's PyTorch line (the CPU build from
    PyTorch's own index, which CI cannot reach) is replaced there by the CPU build pinned from PyPI."""
    readme = (ROOT / "README.md").read_text()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in ci if line.startswith(("pip ", "python "))]
    assert len(commands) == 3 and commands[0] == "pip install torch==2.13.0"
    assert "    pip install torch --index-url https://download.pytorch.org/whl/cpu\n" in readme
    for command in commands[1:]:
        assert f"    {command}\n" in readme, command
    assert readme.index("pip install torch --index-url") < readme.index(commands[1]) < readme.index(commands[2])


def test_load_video_names_the_folders_it_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_INPUT_DIR", str(tmp_path))
    load = load_node_pack(str(ROOT))["VSR_LoadVideo"]
    with pytest.raises(InputError, match=f"not found in the input folder '{tmp_path}'"):
        load().load("input.mp4", 0, 0, 1, 0.0)
    assert load.IS_CHANGED(video="input.mp4") == "input.mp4"


def test_load_video_lists_the_input_folder_with_upload_and_still_takes_paths(tmp_path, monkeypatch, media, clip):
    monkeypatch.setenv("VSR_INPUT_DIR", str(tmp_path / "input"))
    load = load_node_pack(str(ROOT))["VSR_LoadVideo"]
    (tmp_path / "input").mkdir()
    choices, options = load.INPUT_TYPES()["required"]["video"]
    assert options["video_upload"] and choices == ["(no video in the input folder: upload one)"]
    with pytest.raises(InputError, match=f"input folder '{tmp_path / 'input'}' holds none; upload one"):
        load().load(choices[0], 0, 0, 1, 0.0)
    src = media("elsewhere.mkv")
    os.link(src, tmp_path / "input" / "Clip.MKV")
    (tmp_path / "input" / "notes.txt").write_text("x")
    (tmp_path / "input" / ".hidden.mp4").write_text("x")
    (tmp_path / "input" / "anim.webp").write_bytes(b"")
    (tmp_path / "input" / "frames").mkdir()
    (tmp_path / "input" / "frames" / "f_0001.png").write_bytes(b"")
    (tmp_path / "input" / "sub").mkdir()
    (tmp_path / "input" / "sub" / "take2.mp4").write_bytes(b"")
    choices = load.INPUT_TYPES()["required"]["video"][0]
    assert choices == ["anim.webp", "Clip.MKV", "frames", os.path.join("sub", "take2.mp4")]
    frames = load().load("Clip.MKV", 0, 0, 1, 0.0)[0]            # picked from the list
    assert frames.shape[0] == len(clip)
    # an absolute path is not in the list, yet valid (ComfyUI skips the list check for VALIDATE_INPUTS' inputs)
    assert load.VALIDATE_INPUTS(video=str(src)) is True
    assert load().load(str(src), 0, 0, 1, 0.0)[0].shape[0] == len(clip)


def test_loaders_name_the_folder_of_a_missing_model_before_the_graph_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_MODELS_DIR", str(tmp_path))
    classes = load_node_pack(str(ROOT))
    msg = classes["VSR_LoadDiffusionModel"].VALIDATE_INPUTS(ckpt_name="mgldvsr_unet.ckpt")
    assert "'mgldvsr_unet.ckpt' is not in ComfyUI/models/vsr_diffusion/" in msg and "refresh" in msg
    assert "ComfyUI/models/vsr_vae/" in classes["VSR_LoadVAE"].VALIDATE_INPUTS(vae_name="video_vae_cfw.ckpt")
    assert classes["VSR_LoadVAE"].VALIDATE_INPUTS(vae_name="default (shipped tiny video VAE)") is True
    (tmp_path / "vsr_diffusion").mkdir()
    (tmp_path / "vsr_diffusion" / "mgldvsr_unet.ckpt").write_bytes(b"")
    assert classes["VSR_LoadDiffusionModel"].VALIDATE_INPUTS(ckpt_name="mgldvsr_unet.ckpt") is True
    assert "ComfyUI/models/vsr_upscaler/" in classes["VSR_LoadUpscaler"].VALIDATE_INPUTS(model_name="mine.safetensors")

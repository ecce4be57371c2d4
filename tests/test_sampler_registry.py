"""diffusion/samplers.py's SAMPLERS is the one list of samplers: the command line and every node offer its
names, each entry's options are its function's keyword arguments, and options given anywhere reach them."""
from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest
import torch

from conftest import load_node_pack
from vsr_core.cli import build_parser, main
from vsr_core.diffusion.motion_guidance import MotionGuidance
from vsr_core.diffusion.sampler_options import SamplerEntry, parse_assignments
from vsr_core.diffusion.samplers import SAMPLERS, sample_ddpm
from vsr_core.errors import InputError
from vsr_core.pipeline.guided_sample import PROCESSES, SampleSettings, guided_sample

ROOT = Path(__file__).resolve().parents[1]
COMMON = {"denoise", "x", "schedule", "s", "base", "noise", "y", "guide", "callback"}


def _restore_choices(parser=None):
    restore = (parser or build_parser())._subparsers._group_actions[0].choices["restore"]
    return next(a.choices for a in restore._actions if a.dest == "sampler")


def _node_choices(classes):
    return {name: classes[name].INPUT_TYPES()["required"]["sampler"][0]
            for name in ("VSR_GuidedSample", "VSR_RestoreVideoStreaming")}


def test_command_line_and_nodes_offer_exactly_the_registry():
    names = list(SAMPLERS)
    assert list(_restore_choices()) == names
    assert _node_choices(load_node_pack()) == {"VSR_GuidedSample": names, "VSR_RestoreVideoStreaming": names}


def test_a_sampler_added_to_the_table_appears_everywhere(monkeypatch):
    monkeypatch.setitem(SAMPLERS, "ddpm_copy", SAMPLERS["ddpm"])
    assert "ddpm_copy" in _restore_choices()
    assert all("ddpm_copy" in c for c in _node_choices(load_node_pack()).values())
    assert SampleSettings(sampler="ddpm_copy").steps == SAMPLERS["ddpm"].steps


def test_no_other_file_lists_sampler_names():
    """A list, tuple or set literal naming two samplers anywhere in vsr_core/ or nodes/ but the registry
    is a second list that would go stale."""
    names, found = set(SAMPLERS), []
    for path in list((ROOT / "vsr_core").rglob("*.py")) + list((ROOT / "nodes").rglob("*.py")):
        if path.name == "samplers.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                strings = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if len(strings & names) >= 2:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_each_entry_declares_its_function_s_keyword_options(name):
    entry = SAMPLERS[name]
    params = inspect.signature(entry.function).parameters
    own = {k: p.default for k, p in params.items() if k not in COMMON}
    assert own == {k: o.default for k, o in entry.options.items()}
    assert entry.process in PROCESSES and entry.steps >= 1 and entry.help
    for option in entry.all_options.values():
        assert type(option.default) in (float, int, str) and option.help


def test_options_are_filled_converted_and_checked():
    assert SampleSettings(sampler="ddim").options == {"eta": 0.0}
    assert SampleSettings(sampler="ddim", options={"eta": "0.25"}).options == {"eta": 0.25}
    opts = SampleSettings(sampler="blur_resshift", options={"patch": "4", "chain": "markov"}).options
    assert opts["patch"] == 4 and opts["chain"] == "markov" and opts["kappa"] == 2.0
    for sampler, options, message in [
            ("ddpm", {"eta": 0.5}, "sampler 'ddpm' has no option eta; it takes no options"),
            ("ddim", {"eta": 1.5}, "eta=1.5; expected at most 1.0"),
            ("ddim", {"eta": "fast"}, "eta='fast'; expected a float"),
            ("ddim", {"eta": float("nan")}, "not a finite number"),
            ("blur_resshift", {"chain": "ihdm"}, "expected one of resshift, markov, paper"),
            ("blur_resshift", {"patch": 2.5}, "patch=2.5; expected a int"),
            ("blur_resshift", {"sigma_min": 3.0}, "sigma_min=3.0, sigma_max=2.0"),
            ("resshift", {"min_noise": 1.0}, "min_noise")]:
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            SampleSettings(sampler=sampler, options=options)
    with pytest.raises(InputError, match="NAME=VALUE"):
        parse_assignments(["eta"])
    assert parse_assignments(["eta = 0.5", "chain=paper"]) == {"eta": "0.5", "chain": "paper"}


def _spy_on(monkeypatch, name) -> list:
    """Replace SAMPLERS[name]'s function by one that records its schedule and keyword options."""
    entry, calls = SAMPLERS[name], []

    def spy(denoise, x, schedule, noise, **kw):
        calls.append((schedule, {k: v for k, v in kw.items() if k not in ("y", "guide", "callback")}))
        return entry.function(denoise, x, schedule, noise, **kw)

    monkeypatch.setitem(SAMPLERS, name, dataclasses.replace(entry, function=spy))
    return calls


def _tiny_model(prediction="eps"):
    class Model:
        latent_scale, betas = 1.0, torch.linspace(1e-4, 2e-2, 1000, dtype=torch.float64)

        def __call__(self, x, t, lr, n):
            return 0.5 * x

    model = Model()
    model.prediction = prediction
    return model


def test_options_reach_the_sampler_function_and_the_schedule(monkeypatch):
    z = torch.randn(2, 4, 8, 8)
    off = MotionGuidance(scale=0.0)
    calls = _spy_on(monkeypatch, "ddim")
    guided_sample(z, _tiny_model(), SampleSettings(sampler="ddim", steps=3, options={"eta": 0.7}, guidance=off))
    assert [kw for _s, kw in calls] == [{"eta": 0.7}]
    calls = _spy_on(monkeypatch, "blur_resshift")
    options = {"kappa": 1.5, "sigma_max": 1.0, "chain": "markov", "patch": 4}
    guided_sample(z, _tiny_model("x0"), SampleSettings(sampler="blur_resshift", steps=3, options=options,
                                                        guidance=off))
    (schedule, kw), = calls
    assert schedule.kappa == 1.5 and schedule.num_steps == 3                 # the process's option
    assert kw == {"patch": 4, "sigma_min": 0.5, "sigma_max": 1.0, "chain": "markov"}   # the function's


def test_a_new_sampler_needs_only_its_entry(monkeypatch):
    """An entry in the table is enough for the library to run it (here: DDPM under another name)."""
    monkeypatch.setitem(SAMPLERS, "plain", SamplerEntry(sample_ddpm, "ddpm", 3, "DDPM again"))
    z = torch.randn(1, 4, 8, 8)
    a = guided_sample(z, _tiny_model(), SampleSettings(sampler="plain", seed=1))
    b = guided_sample(z, _tiny_model(), SampleSettings(sampler="ddpm", steps=3, seed=1))
    torch.testing.assert_close(a, b)


def test_the_command_line_passes_sampler_options(monkeypatch, tmp_path, capsys):
    import vsr_core.commands.restore as restore
    from vsr_core.samples import example_clip
    seen = {}

    def fake_restore_file(src, dst, settings, job, **kw):
        seen["sample"] = settings.sample
        return 0

    monkeypatch.setattr(restore, "restore_file", fake_restore_file)
    out = str(tmp_path / "out.mp4")
    assert main(["restore", example_clip(), out, "--sampler", "ddim", "--sampler-option", "eta=0.5"]) == 0
    assert seen["sample"].sampler == "ddim" and seen["sample"].options == {"eta": 0.5}
    assert main(["restore", example_clip(), out, "--sampler", "blur_resshift", "--sampler-option", "sigma_max=1",
                 "--sampler-option", "chain=paper"]) == 0
    assert seen["sample"].options["sigma_max"] == 1.0 and seen["sample"].options["chain"] == "paper"
    assert main(["restore", example_clip(), out, "--sampler-option", "eta=0.5"]) == 2
    assert "sampler 'ddpm' has no option eta" in capsys.readouterr().err

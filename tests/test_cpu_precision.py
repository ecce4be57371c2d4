"""Precision "auto" on a CPU: chosen from timings of the actual network (mocked here), cached per CPU model
and torch version in a JSON under the user's cache folder, overridden by VSR_PRECISION."""
import json
import os

import pytest
import torch

from vsr_core import cpu_precision, speed
from vsr_core.errors import InputError
from vsr_core.models.upscaler import VideoUpscaler
from vsr_core.pipeline.precision_probe import choose_cpu_precision


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(cpu_precision.ENV_OVERRIDE, raising=False)
    cpu_precision.forget()
    yield tmp_path
    cpu_precision.forget()


def fake_run(seconds: dict, calls: list):
    """A run(precision) that advances a fake clock by that precision's seconds."""
    clock = [0.0]

    def run(precision):
        calls.append(precision)
        clock[0] += seconds[precision]
    return run, (lambda: clock[0])


@pytest.mark.parametrize("seconds, expected", [
    ({"fp32": 2.0, "bf16": 1.0}, "bf16"),      # AMD Zen 4 / AMX: bf16 clearly faster
    ({"fp32": 2.0, "bf16": 1.95}, "fp32"),     # the Xeon of issue 33: a tie keeps float32
    ({"fp32": 1.0, "bf16": 3.0}, "fp32"),      # emulated bf16
    ({"fp32": 1.0}, "fp32"),
])
def test_choose_from_timings(seconds, expected):
    assert cpu_precision.choose(seconds) == expected


def test_measure_alternates_and_keeps_the_fastest():
    calls = []
    run, clock = fake_run({"fp32": 0.5, "bf16": 0.25}, calls)
    best = cpu_precision.measure(run, repeats=2, clock=clock)
    assert calls == ["fp32", "bf16"] * 3                 # a warm-up each, then alternating rounds
    assert best == pytest.approx({"fp32": 0.5, "bf16": 0.25})


def test_resolve_measures_once_then_reads_the_cache(own_cache, monkeypatch):
    calls = []
    run, clock = fake_run({"fp32": 0.4, "bf16": 0.2}, calls)
    monkeypatch.setattr(cpu_precision.time, "perf_counter", clock)
    assert cpu_precision.resolve(run, has_bf16_flag=True) == "bf16"
    assert len(calls) == 8
    path = cpu_precision.cache_file()
    assert path == os.path.join(str(own_cache), "vsr", "cpu_precision.json")
    entry = json.load(open(path))[cpu_precision.machine_key()]
    assert entry["choice"] == "bf16" and entry["seconds"] == {"fp32": 0.4, "bf16": 0.2}
    assert torch.__version__ in cpu_precision.machine_key()
    cpu_precision.forget()                               # a new process: the file answers, nothing is timed
    assert cpu_precision.resolve(run, has_bf16_flag=True) == "bf16"
    assert len(calls) == 8


def test_cache_keeps_other_machines_and_survives_damage(own_cache):
    cpu_precision.store("fp32", {"fp32": 1.0, "bf16": 1.0}, key="other CPU | torch 0")
    cpu_precision.store("bf16", {"fp32": 2.0, "bf16": 1.0})
    data = json.load(open(cpu_precision.cache_file()))
    assert data["other CPU | torch 0"]["choice"] == "fp32" and cpu_precision.cached_choice() == "bf16"
    with open(cpu_precision.cache_file(), "w") as fh:
        fh.write("{not json")
    assert cpu_precision.cached_choice() is None          # damaged: measured again, never an error
    calls = []
    run, _ = fake_run({"fp32": 0.0, "bf16": 0.0}, calls)
    assert cpu_precision.resolve(run, has_bf16_flag=True) in cpu_precision.CHOICES and calls


def test_no_bf16_flag_means_fp32_untimed():
    calls = []
    run, _ = fake_run({"fp32": 1.0, "bf16": 0.1}, calls)
    assert cpu_precision.resolve(run, has_bf16_flag=False) == "fp32" and calls == []


def test_env_override_wins_and_bad_value_is_named(monkeypatch):
    calls = []
    run, _ = fake_run({"fp32": 1.0, "bf16": 0.1}, calls)
    monkeypatch.setenv(cpu_precision.ENV_OVERRIDE, "fp32")
    assert cpu_precision.resolve(run, has_bf16_flag=True) == "fp32" and calls == []
    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: True)
    assert speed.autocast_dtype(torch.device("cpu"), "auto") is None
    monkeypatch.setenv(cpu_precision.ENV_OVERRIDE, "int4")
    with pytest.raises(InputError, match="VSR_PRECISION='int4'"):
        cpu_precision.resolve(run, has_bf16_flag=True)


def test_autocast_auto_follows_the_cached_verdict(monkeypatch):
    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: True)
    cpu_precision.store("fp32", {"fp32": 1.0, "bf16": 1.0})
    assert speed.autocast_dtype(torch.device("cpu"), "auto") is None
    cpu_precision.forget()
    cpu_precision.store("bf16", {"fp32": 2.0, "bf16": 1.0})
    assert speed.autocast_dtype(torch.device("cpu"), "auto") is torch.bfloat16
    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: False)
    assert speed.autocast_dtype(torch.device("cpu"), "auto") is None


def test_probe_times_the_real_network_and_leaves_it_unchanged(monkeypatch):
    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: True)
    model = VideoUpscaler(channels=8, heads=2, attn_blocks=1).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert choose_cpu_precision(model) in cpu_precision.CHOICES
    assert cpu_precision.machine_key() in json.load(open(cpu_precision.cache_file()))
    assert all(torch.equal(v, before[k]) and v.is_contiguous() for k, v in model.state_dict().items())


@pytest.mark.parametrize("cores, busy, expected", [(2, 0.0, 2), (2, 0.4, 2), (2, 0.7, 1), (2, 5.0, 1),
                                                   (16, 3.2, 13), (4, 0.0, 4)])
def test_free_cores_leaves_the_busy_ones(cores, busy, expected):
    from vsr_core.machine import busy_cores, free_cores
    assert free_cores(cores, busy) == expected
    assert 0.0 <= busy_cores(0.05) <= (os.cpu_count() or 1) + 1e-6
    assert 1 <= free_cores() <= (os.cpu_count() or 1)

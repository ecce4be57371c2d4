"""Settings as data (issue 32): each setting is declared once (default, range, help, former names) and the
command line's options, the nodes' inputs and the validation are all made from that one declaration."""
from __future__ import annotations

import argparse

import pytest

from conftest import load_node_pack
from vsr_core.checkpoints.restore_models import RestoreModelSettings
from vsr_core.cli import build_parser
from vsr_core.commands.options import from_args
from vsr_core.errors import InputError
from vsr_core.jobs.job_settings import JobSettings
from vsr_core.pipeline.guided_sample import SampleSettings
from vsr_core.pipeline.restore_video import RestoreSettings
from vsr_core.pipeline.stage_settings import DecodeSettings, RefineSettings
from vsr_core.pipeline.upscale_settings import TILE_PX, UpscaleSettings
from vsr_core.settings import leaf, leaves, with_values
from vsr_core.train.latent_diffusion import DiffusionTrainConfig
from vsr_core.train.trainer import TrainConfig

SETTINGS = [UpscaleSettings(), JobSettings(), RestoreSettings(), RestoreModelSettings(), SampleSettings(),
            DecodeSettings(), RefineSettings(), TrainConfig(), DiffusionTrainConfig()]


@pytest.fixture(scope="module")
def classes():
    return load_node_pack(str(__import__("pathlib").Path(__file__).resolve().parents[1]))


def parse(*argv):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("defaults", SETTINGS, ids=lambda s: type(s).__name__)
def test_every_setting_has_help_and_a_default_inside_its_range(defaults):
    for item in leaves(defaults):
        assert item.setting.help, item.name
        s, value = item.setting, item.value
        if s.choices is not None and value is not None:
            assert value in s.choices, item.name
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert (s.min is None or value >= s.min) and (s.max is None or value <= s.max), item.name


def test_a_setting_outside_its_declaration_is_refused_naming_it():
    for bad, message in [(dict(window=0), "window=0 is out of range; expected from 1 to 256"),
                         (dict(window=2.5), "window=2.5; expected an integer"),
                         (dict(scale=3), "scale=3; expected one of 4, 2"),
                         (dict(stabilize=float("nan")), "stabilize = nan is not a finite number"),
                         (dict(window=4, window_overlap=2), "window_overlap=2; expected 2 * window_overlap < "),
                         (dict(tile_px=20), "tile_px=20; expected 0 (no tiling) or more than 32")]:
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
            UpscaleSettings(**bad)


def test_old_flags_still_work_and_mean_the_same_setting():
    new = from_args(UpscaleSettings(), parse("upscale", "a", "b", "--tile-px", "128", "--window-overlap", "1"))
    old = from_args(UpscaleSettings(), parse("upscale", "a", "b", "--tile", "128", "--overlap", "1"))
    assert new == old and new.tile_px == 128 and new.window_overlap == 1
    restore = from_args(RestoreSettings(), parse("restore", "a", "b", "--tile", "32", "--upscale-tile", "128",
                                                 "--guidance", "4", "--window", "3"))
    assert (restore.tile_latent, restore.upscale_tile_px, restore.sample.guidance.scale) == (32, 128, 4.0)
    # one latent tile for the three stages, the overlaps as the command line always made them
    assert (restore.sample.tile_latent, restore.sample.tile_overlap_latent) == (32, 16)
    assert (restore.decode.tile_latent, restore.decode.tile_overlap_latent) == (32, 8)
    assert restore.sample.window == 3 and restore.decode.window == DecodeSettings().window


def test_the_command_line_offers_exactly_the_declared_settings():
    commands = {"upscale": [UpscaleSettings(), JobSettings()],
                "restore": [RestoreSettings(), RestoreModelSettings(), JobSettings()],
                "train": [DiffusionTrainConfig()], "train-diffusion": [DiffusionTrainConfig()]}
    extra = {"upscale": {"help", "input", "output", "example"}, "restore": {"help", "input", "output"},
             "train": {"help", "ship"}, "train-diffusion": {"help", "ship"}}
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, groups in commands.items():
        dests = {a.dest for a in subparsers.choices[command]._actions}
        declared = {item.name for g in groups for item in leaves(g) if item.setting.cli}
        assert dests - extra[command] == declared, command


def test_train_options_come_from_the_training_configs():
    from vsr_core.commands.options import given_settings
    from vsr_core.train.tasks import task_config

    def config(*argv):
        args = parse(*argv)
        values = given_settings(DiffusionTrainConfig(), args)
        return task_config(args.task, {k: v for k, v in values.items() if v is not None and k != "task"})
    cfg = config("train", "--steps", "3", "--photos", "skimage:astronaut,skimage:coffee", "--model",
                 '{"channels": 8}', "--init-drop", "attn.1.", "--keep-evaluated", "--lr", "0.001")
    assert (cfg.steps, cfg.photos, cfg.model, cfg.init_drop, cfg.keep_evaluated, cfg.lr) == \
        (3, ["skimage:astronaut", "skimage:coffee"], {"channels": 8}, ["attn.1."], True, 0.001)
    assert config("train") == TrainConfig()
    # a setting whose default differs between the tasks' configs is left to the task's
    assert config("train-diffusion", "--task", "autoencoder", "--out", "r") == DiffusionTrainConfig(out="r")
    assert config("train", "--task", "refiner").batch == TrainConfig().batch


def test_the_upscaler_tile_has_one_default_everywhere(classes):
    assert UpscaleSettings().upscaler_tile_px == TILE_PX == RestoreSettings().upscale_tile_px
    for node in ("VSR_Upscale", "VSR_UpscaleVideoStreaming"):
        spec = classes[node].INPUT_TYPES()["required"]["tile_px"][1]
        declared = leaf(UpscaleSettings(), "tile_px").setting
        assert (spec["default"], spec["min"], spec["max"]) == (TILE_PX, declared.min, declared.max) == (TILE_PX, 0, 4096)
    assert classes["VSR_RelayDetail"].INPUT_TYPES()["optional"]["tile_px"][1]["default"] == TILE_PX


def test_node_inputs_are_the_declared_settings(classes):
    def spec(node, name, section="required"):
        return classes[node].INPUT_TYPES()[section][name]
    window = leaf(UpscaleSettings(), "window").setting
    assert spec("VSR_Upscale", "window")[1]["max"] == spec("VSR_UpscaleVideoStreaming", "window")[1]["max"] \
        == window.max
    assert spec("VSR_GuidedSample", "steps")[1]["default"] == SampleSettings().steps
    assert spec("VSR_RestoreVideoStreaming", "steps")[1]["default"] == RestoreSettings().sample.steps
    assert spec("VSR_GuidedSample", "sampler")[0] == list(leaf(SampleSettings(), "sampler").setting.choices)
    assert spec("VSR_TemporalDecode", "fusion_weight")[1]["min"] == -1.0
    # former input names map to the declared ones
    assert classes["VSR_Upscale"].RENAMED_INPUTS["tile"] == "tile_px"
    assert classes["VSR_GuidedSample"].RENAMED_INPUTS["reference_offset"] == "mgld_flow_offset"


def test_with_values_rebuilds_groups_and_checks_them():
    s = with_values(RestoreSettings(), {"steps": 3, "guidance_scale": 2.0})
    assert s.sample.steps == 3 and s.sample.guidance.scale == 2.0
    with pytest.raises(InputError, match="steps=0"):
        with_values(RestoreSettings(), {"steps": 0})

"""The shipped models' training commands live in readable files (vsr_core/configs), listed by their cards; every
file is a command the command line accepts, and the cards keep no second copy that could disagree."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from vsr_core.cli import build_parser
from vsr_core.train.reproduce import card_commands, command_line, config_argv, load_config

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted((ROOT / "vsr_core" / "weights").glob("*.json"))
TRAINED = [c for c in CARDS if "reproduce_configs" in json.loads(c.read_text())]
CONFIGS = sorted((ROOT / "vsr_core" / "configs").glob("*/*.json"))


def test_every_trained_card_lists_its_configs_and_every_config_is_listed():
    names = {c.stem for c in TRAINED}
    assert names == {"upscaler_x4", "upscaler_x4_clean", "refiner", "tiny_vae", "tiny_unet", "tiny_video_vae",
                     "relay_fusion"}
    listed = [p for c in TRAINED for p in json.loads(c.read_text())["reproduce_configs"]]
    assert sorted(listed) == sorted(str(p.relative_to(ROOT)) for p in CONFIGS)
    for card in CARDS:
        data = json.loads(card.read_text())
        assert "reproduce" not in data                                       # no second, one-line copy
        assert all("command" not in stage for stage in data.get("stages", []))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_config_is_a_command_the_command_line_accepts(path):
    config = load_config(str(path.relative_to(ROOT)))
    assert config["about"] and set(config) <= {"about", "command", "positional", "arguments", "then", "note"}
    args = build_parser().parse_args(config_argv(config))
    assert args.command == config["command"]
    for name, value in config.get("arguments", {}).items():
        assert getattr(args, name) == value, name                            # each value arrives as written
    assert shlex.split(command_line(config))[3:3 + len(config_argv(config))] == config_argv(config)


def test_the_tiny_models_training_command_is_their_config():
    """ship.py still writes `training_command` into a card (and tests read it): it must say what the file says."""
    parser = build_parser()
    for card in TRAINED:
        data = json.loads(card.read_text())
        if "training_command" in data:
            (config,) = [load_config(p) for p in data["reproduce_configs"]]
            given = parser.parse_args(shlex.split(data["training_command"])[3:])
            assert vars(given) == vars(parser.parse_args(config_argv(config)))


def test_upscaler_x4_stages_in_order():
    card = json.loads((ROOT / "vsr_core" / "weights" / "upscaler_x4.json").read_text())
    lines = card_commands(card)
    assert [line.split()[3] for line in lines] == ["prepare-real-videos"] + ["train"] * 4 + \
        ["prepare-real-videos"] + ["train"] * 6
    assert [s["config"] for s in card["stages"]] == [p for p in card["reproduce_configs"] if "stage" in p]
    for k in range(2, 8):                                 # each stage starts from the one before
        assert f"--init-weights STAGE{k - 1}/" in lines[card["reproduce_configs"].index(
            f"vsr_core/configs/upscaler_x4/stage{k}.json")]
    assert any(line.endswith("'STAGE6/average.safetensors')\"") for line in lines)     # stage 6's averaging
    assert "--init-weights STAGE6/average.safetensors" in lines[-4]                       # stage 7 starts from it
    assert "--task level_estimator" in lines[-3] and "--init-weights STAGE7/" in lines[-3]   # stage 8: its estimator
    assert "--task level_estimator" in lines[-2] and "--init-weights STAGE8/" in lines[-2]   # stage 9: motion
    assert "--task level_estimator" in lines[-1] and "--init-weights STAGE9/" in lines[-1]   # stage 10: grid

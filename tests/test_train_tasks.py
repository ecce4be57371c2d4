"""One list of training tasks (vsr_core/train/tasks.py): complete whatever was imported, shown and accepted by
`train --task` and `train-diffusion --task`, each task trained with its own config's defaults."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import vsr_core.commands.train as train_command
import vsr_core.commands.train_diffusion as train_diffusion_command
from vsr_core.cli import build_parser, main
from vsr_core.train.latent_diffusion import DiffusionTrainConfig
from vsr_core.train.tasks import TASK_TABLE
from vsr_core.train.trainer import TASKS, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
ALL = ["upscaler", "refiner", "level_estimator", "relay_fusion", "autoencoder", "latent_diffusion", "temporal_decoder"]


def _task_choices(command):
    parser = build_parser()._subparsers._group_actions[0].choices[command]
    return list(next(a.choices for a in parser._actions if a.dest == "task"))


def test_importing_the_trainer_alone_registers_every_task():
    code = "from vsr_core.train.trainer import TASKS; print(','.join(sorted(TASKS)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ",".join(sorted(ALL))
    assert list(TASK_TABLE) == ALL and set(TASKS) >= set(ALL)


@pytest.mark.parametrize("command", ["train", "train-diffusion"])
def test_train_and_train_diffusion_list_every_task(command, capsys):
    assert _task_choices(command) == ALL
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = capsys.readouterr().out
    assert all(name in shown for name in ALL)


@pytest.fixture
def trained(monkeypatch):
    """The config `train` would run, without training."""
    import vsr_core.train.trainer as trainer
    seen = []
    monkeypatch.setattr(trainer, "train", lambda cfg, **kw: seen.append(cfg) or {})
    return seen


def test_each_task_gets_its_own_config_defaults_unless_an_option_is_given(trained):
    assert main(["train", "--task", "autoencoder"]) == 0
    cfg = trained[-1]
    d = DiffusionTrainConfig()
    assert isinstance(cfg, DiffusionTrainConfig) and cfg.task == "autoencoder" and cfg.out == "runs/tiny_vae"
    assert (cfg.steps, cfg.batch, cfg.frames, cfg.lr_size, cfg.grad_clip) == (d.steps, d.batch, d.frames,
                                                                              d.lr_size, d.grad_clip)
    assert main(["train", "--task", "autoencoder", "--steps", str(TrainConfig().steps), "--out", "x"]) == 0
    assert trained[-1].steps == TrainConfig().steps and trained[-1].out == "x"       # given, even if equal
    assert main(["train"]) == 0
    cfg, u = trained[-1], TrainConfig()
    assert type(cfg) is TrainConfig and cfg.task == "upscaler" and (cfg.steps, cfg.out) == (u.steps, u.out)


def test_train_diffusion_is_train_with_the_task_required(trained, capsys):
    argv = ["--task", "latent_diffusion", "--vae", "v.safetensors", "--steps", "7", "--warmup", "3"]
    assert main(["train-diffusion", *argv]) == 0 and main(["train", *argv]) == 0
    assert trained[-1] == trained[-2] and trained[-1].vae == "v.safetensors" and trained[-1].warmup == 3
    with pytest.raises(SystemExit):
        main(["train-diffusion"])
    assert "--task" in capsys.readouterr().err


def test_options_of_other_tasks_are_one_line_errors(trained, capsys):
    assert main(["train", "--task", "upscaler", "--vae", "v.safetensors"]) == 2
    assert "task 'upscaler' takes no vae; that is for autoencoder, latent_diffusion, temporal_decoder" in \
        capsys.readouterr().err
    assert main(["train", "--task", "refiner", "--ship", "name"]) == 2
    assert "task 'refiner' is not a diffusion task" in capsys.readouterr().err
    assert trained == []


def test_the_command_modules_hold_no_task_list_of_their_own():
    for module in (train_command, train_diffusion_command):
        text = Path(module.__file__).read_text()
        assert '"autoencoder", "latent_diffusion"' not in text and "TASK_NAMES" not in text

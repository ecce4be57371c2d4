"""`pip install .` gives the library, its shipped weights and the `vsr` command (issue 29)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _leave_out(folder, names):
    """Caches and a user's runtime folders, not part of what pip would install from a clone."""
    skip = {".git", "__pycache__", ".pytest_cache", "build"}
    if os.path.samefile(folder, ROOT):
        skip |= {"output", "models"}
    return [n for n in names if n in skip or n.endswith(".egg-info")]


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A throwaway venv that sees the system's torch & co. and pip (nothing is downloaded), the pack installed."""
    base = tmp_path_factory.mktemp("venv")
    src = base / "src"     # a copy, so the build leaves no build/ or *.egg-info in the checkout
    shutil.copytree(ROOT, src, ignore=_leave_out)
    env_dir = base / "env"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", str(src)], check=True, cwd=base)
    return env_dir


def test_vsr_command_and_version(venv, tmp_path):
    out = subprocess.run([str(venv / "bin" / "vsr"), "--version"], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    from vsr_core import __version__
    assert out.stdout.strip() == f"vsr {__version__}"


def test_installed_package_has_its_data_and_not_the_node_pack(venv, tmp_path):
    code = ("import os, json, vsr_core, vsr_core.checkpoints.shipped as s; "
            "from vsr_core.samples import example_clip; from vsr_core.train.reproduce import card_commands; "
            "print(os.path.dirname(vsr_core.__file__)); print(s.default_upscaler_path(4)); print(example_clip()); "
            "print(len(card_commands(json.load(open(s.card_path(s.default_upscaler_path(4)))))))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout.split("\n")
    package, weights, sample, commands = out[0], out[1], out[2], out[3]
    assert "site-packages" in package and not package.startswith(ROOT)
    assert weights.startswith(package) and os.path.getsize(weights) > 100_000
    assert sample.startswith(package) and os.path.getsize(sample) > 1000
    assert int(commands) > 1                   # the card's training configs (vsr_core/configs) are installed
    assert os.path.isfile(os.path.join(package, "configs", "README.md"))
    site = os.path.dirname(package)
    assert not os.path.exists(os.path.join(site, "nodes")) and not os.path.exists(os.path.join(site, "workflows"))
    help_text = subprocess.run([str(venv / "bin" / "python"), "-m", "vsr_core", "upscale", "--help"],
                               capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert "--example" in help_text

"""`python -m vsr_core flow IMG1 IMG2 OUT.npy` end to end."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from vsr_core.cli import main
from vsr_core.flow import deterministic_weights, to_princeton_layout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def pair(tmp_path):
    """Two PNGs of a real photo; the content of the second is moved by (+3, +2) px."""
    import skimage.data
    bgr = skimage.data.astronaut()[:, :, ::-1]
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(a), bgr[200:296, 150:278])
    cv2.imwrite(str(b), bgr[198:294, 147:275])
    return str(a), str(b)


def test_cli_dis_writes_flow_array(pair, tmp_path, capsys):
    out = tmp_path / "flow.npy"
    assert main(["flow", *pair, str(out), "--method", "dis", "--preset", "medium"]) == 0
    flow = np.load(out)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    inner = flow[8:-8, 8:-8]
    assert np.abs(inner[..., 0] - 3).mean() < 0.1 and np.abs(inner[..., 1] - 2).mean() < 0.1
    assert "wrote" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".flow-")] == []  # no temp left
    # running again replaces the file atomically, when asked to
    assert main(["flow", pair[1], pair[0], str(out), "--overwrite"]) == 0
    assert np.abs(np.load(out)[8:-8, 8:-8, 0] + 3).mean() < 0.1


def test_cli_raft_with_weights(pair, tmp_path):
    weights = tmp_path / "raft-things.pth"
    torch.save(to_princeton_layout(deterministic_weights(0)), weights)
    out = tmp_path / "raft.npy"
    assert main(["flow", *pair, str(out), "--method", "raft", "--weights", str(weights), "--iters", "2"]) == 0
    flow = np.load(out)
    assert flow.shape == (96, 128, 2) and np.isfinite(flow).all()


def test_cli_bad_inputs(pair, tmp_path, capsys):
    out = tmp_path / "o.npy"
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    assert main(["flow", pair[0], str(junk), str(out)]) == 2
    assert "IMG2: cannot read" in capsys.readouterr().err
    assert main(["flow", pair[0], str(tmp_path / "none.png"), str(out)]) == 2
    assert "IMG2: no file" in capsys.readouterr().err
    other = tmp_path / "small.png"
    cv2.imwrite(str(other), np.zeros((40, 50, 3), np.uint8))
    assert main(["flow", pair[0], str(other), str(out)]) == 2
    assert "same size" in capsys.readouterr().err
    assert main(["flow", *pair, str(tmp_path / "no_dir" / "o.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err
    notraft = tmp_path / "notraft.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, notraft)
    assert main(["flow", *pair, str(out), "--method", "raft", "--weights", str(notraft)]) == 2
    assert "unexpected keys (1): conv.weight" in capsys.readouterr().err
    assert not out.exists()


def test_python_dash_m_entry_point(pair, tmp_path):
    out = tmp_path / "flow.npy"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "vsr_core", "flow", *pair, str(out), "--preset", "ultrafast"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert np.load(out).shape == (96, 128, 2)

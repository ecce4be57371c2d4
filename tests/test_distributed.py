"""upscale/restore --workers N on a local Ray cluster (2 CPUs): the same frames for any number of workers,
and a worker killed mid-job is replaced without changing them."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from conftest import write_media
from vsr_core.errors import InputError
from vsr_core.jobs.restore import restore_file
from vsr_core.jobs.upscale import upscale_file
from vsr_core.pipeline.guided_sample import SampleSettings
from vsr_core.checkpoints.restore_models import load_restore_models
from vsr_core.jobs.job_settings import JobSettings
from vsr_core.pipeline.restore_video import RestoreSettings
from vsr_core.video import open_video
from vsr_core.pipeline.upscale_settings import UpscaleSettings

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def source(tmp_path, clip):
    return write_media(tmp_path / "in.mkv", np.concatenate([clip, clip])[:, :24, :32])


def run(src, dst, workers, **kw):
    upscale_file(src, str(dst), UpscaleSettings(window=6, window_overlap=2, stabilize=0.5),
                 JobSettings(format="ffv1", workers=workers, **kw))
    return open_video(str(dst)).read_all()


def test_frames_are_the_same_for_any_number_of_workers(cluster, source, tmp_path):
    one, two = run(source, tmp_path / "w1.mkv", 1), run(source, tmp_path / "w2.mkv", 2)
    assert one.shape == (24, 96, 128, 3)
    np.testing.assert_array_equal(one, two)


def test_a_killed_worker_is_replaced_and_the_frames_do_not_change(cluster, source, tmp_path, monkeypatch):
    from vsr_core.jobs import distributed
    reference = run(source, tmp_path / "ref.mkv", 2)
    real_collect, killed = distributed.RayPool.collect, []

    def collect_then_kill(self, handle):
        out = real_collect(self, handle)
        if not killed:                             # kill a worker while other windows are in flight
            pid = ray.get(self.actors[1].pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return out
    monkeypatch.setattr(distributed.RayPool, "collect", collect_then_kill)
    frames = run(source, tmp_path / "killed.mkv", 2)
    assert killed
    np.testing.assert_array_equal(frames, reference)


INDEPENDENT = RestoreSettings(segment=6, segment_overlap=2, sample=SampleSettings(steps=2), precision="fp32",
                              seams="independent")


def restore(src, dst, workers, **kw):
    restore_file(src, str(dst), INDEPENDENT, JobSettings(format="ffv1", workers=workers, **kw))
    return open_video(str(dst)).read_all()


@pytest.fixture(scope="module")
def short_source(tmp_path_factory, clip):
    return write_media(tmp_path_factory.mktemp("in") / "in.mkv", clip[:11, :24, :32])


def test_restore_frames_are_the_same_for_any_number_of_workers_and_as_one_process(cluster, short_source,
                                                                                    tmp_path):
    one, two = restore(short_source, tmp_path / "w1.mkv", 1), restore(short_source, tmp_path / "w2.mkv", 2)
    assert one.shape == (11, 96, 128, 3)
    np.testing.assert_array_equal(one, two)
    # the single-process job in the same seam mode gives the workers' frames
    restore_file(short_source, str(tmp_path / "p.mkv"), INDEPENDENT, JobSettings(format="ffv1"),
                 load_restore_models())
    np.testing.assert_array_equal(open_video(str(tmp_path / "p.mkv")).read_all(), one)


def test_restore_with_a_killed_worker_gives_the_same_frames(cluster, short_source, tmp_path, monkeypatch):
    from vsr_core.jobs import distributed
    reference = restore(short_source, tmp_path / "ref.mkv", 2)
    real_collect, killed = distributed.RayPool.collect, []

    def collect_then_kill(self, handle):
        out = real_collect(self, handle)
        if not killed:
            pid = ray.get(self.actors[1].pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return out
    monkeypatch.setattr(distributed.RayPool, "collect", collect_then_kill)
    np.testing.assert_array_equal(restore(short_source, tmp_path / "killed.mkv", 2), reference)
    assert killed


def test_restore_workers_need_independent_seams_and_their_own_models(short_source, tmp_path):
    carried = RestoreSettings(segment=6, segment_overlap=2, sample=SampleSettings(steps=2), seams="carried")
    with pytest.raises(InputError, match="needs seams='independent'"):
        restore_file(short_source, str(tmp_path / "o.mkv"), carried, JobSettings(workers=2))
    with pytest.raises(InputError, match="workers load their own models"):
        restore_file(short_source, str(tmp_path / "o.mkv"), INDEPENDENT, JobSettings(workers=2),
                     load_restore_models())
    assert not (tmp_path / "o.mkv").exists()


def test_unknown_seam_mode_is_named():
    with pytest.raises(InputError, match="seams='loose'"):
        RestoreSettings(seams="loose")


def test_missing_ray_is_a_clear_message(monkeypatch):
    import builtins
    from vsr_core.errors import InputError
    from vsr_core.jobs.distributed import import_ray
    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(InputError, match='pip install "ray\\[default\\]"'):
        import_ray()

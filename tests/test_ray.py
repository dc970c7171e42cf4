"""`rolldepth run --ray local`: the same outputs as a one-process run, and a broken video does not stop the others."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from conftest import encode_video, pattern_frames
from rolldepth.apps.cli import main

ray = pytest.importorskip("ray")

ARGS = ["--res", "32", "-d", "1", "3", "--no-save-png", "--cmap", "--no-save-sbs"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [encode_video(folder / f"clip{k}.mp4", pattern_frames(8, seed=k)) for k in (1, 2)]


def test_ray_run_matches_the_one_process_run(tmp_path, videos, tiny_checkpoint, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    local, spread = tmp_path / "local", tmp_path / "ray"
    model = ["--model", str(tiny_checkpoint)]
    assert main(["-q", "run", *map(str, videos), "-o", str(local), *model, *ARGS]) == 0
    code = main(["-q", "run", *map(str, videos), "-o", str(spread), *model, *ARGS, "--ray", "local"])
    assert code == 0, capsys.readouterr().err
    assert not ray.is_initialized()  # the driver disconnected
    for name in ("clip1_pred.npy", "clip2_pred.npy"):
        np.testing.assert_allclose(np.load(spread / name), np.load(local / name), atol=1e-5)
    assert sorted(p.name for p in spread.iterdir()) == [  # no work folders
        ".clip1.rolldepth-done.json", ".clip2.rolldepth-done.json", "clip1_pred.npy", "clip2_pred.npy"]


def test_ray_run_reports_a_failing_video_and_finishes_the_others(tmp_path, videos, tiny_checkpoint, capsys):
    # An image sequence whose headers are fine but one image's data is cut: it only fails inside the worker.
    broken = tmp_path / "broken"
    broken.mkdir()
    for i, frame in enumerate(pattern_frames(6)):
        Image.fromarray(frame).save(broken / f"f{i}.png")
    data = (broken / "f4.png").read_bytes()
    (broken / "f4.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    code = main(["-q", "run", str(broken), str(videos[1]), "-o", str(out), "--model", str(tiny_checkpoint), *ARGS,
                 "--ray", "local"])
    err = capsys.readouterr().err
    assert code == 2 and "1 of 2 videos failed" in err and "f4.png" in err and "Traceback" not in err
    assert (out / "clip2_pred.npy").is_file() and not (out / "broken_pred.npy").exists()


def test_unreachable_cluster_is_one_error_line(tmp_path, videos, tiny_checkpoint, capsys):
    code = main(["-q", "run", str(videos[0]), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint), *ARGS,
                 "--ray", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot connect to the Ray cluster" in err and "Traceback" not in err


def test_malformed_address_is_one_error_line(tmp_path, videos, tiny_checkpoint, capsys):
    code = main(["-q", "run", str(videos[0]), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint), *ARGS,
                 "--ray", "headnode"])
    err = capsys.readouterr().err
    assert code == 2 and "expected auto, local, host:port" in err and "Traceback" not in err


def test_a_ray_init_error_without_text_is_still_one_line(monkeypatch):
    # Ray's init can raise with an empty message; the error line then names the exception's type.
    from rolldepth.apps import ray_cluster
    from rolldepth.errors import UserError

    def fail(**kwargs):
        raise ConnectionError("")

    monkeypatch.setattr(ray, "init", fail)
    with pytest.raises(UserError, match=r"cluster at 'local': ConnectionError$"):
        ray_cluster.connect("local", quiet=True)


def test_each_video_reserves_a_gpu_where_the_cluster_has_them(tmp_path, videos, tiny_checkpoint, monkeypatch,
                                                               capsys):
    """Without a reservation, every task on a node would take its first GPU (and sixteen SD-sized models would not
    fit on it). This machine declares two GPUs to Ray: each video's task reserves one, so Ray shows each worker its
    own; here torch is a CPU build, so the workers still compute on the CPU, as `auto` then picks."""
    real_init, real_remote, reserved = ray.init, ray.remote, []
    monkeypatch.setattr(ray, "init", lambda **kwargs: real_init(num_gpus=2, **kwargs))

    def remote(**options):
        reserved.append(options)  # Ray's own remote functions too, which ask for no retries setting
        return real_remote(**options)

    monkeypatch.setattr(ray, "remote", remote)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    code = main(["-q", "run", *map(str, videos), "-o", str(out), "--model", str(tiny_checkpoint), *ARGS,
                 "--ray", "local"])
    assert code == 0, capsys.readouterr().err
    assert [r for r in reserved if "max_retries" in r] == [{"num_cpus": 1, "num_gpus": 1.0, "max_retries": 0}]
    assert (out / "clip1_pred.npy").is_file() and (out / "clip2_pred.npy").is_file()
    # --device cuda is not refused here, where the command starts, but by the workers, whose torch cannot use CUDA
    code = main(["-q", "run", str(videos[0]), "-o", str(tmp_path / "cuda"), "--model", str(tiny_checkpoint), *ARGS,
                 "--ray", "local", "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and "1 of 1 videos failed" in err and "device 'cuda' is not usable here" in err


@pytest.mark.parametrize("requested, device, node_gpus, expected", [
    (None, "auto", 8, 1.0),  # a GPU each by default where there are GPUs
    (None, "cuda", 8, 1.0),
    (None, "auto", 0, 0.0),  # none on a CPU cluster
    (None, "cpu", 8, 0.0),  # nor when the CPU is asked for
    (0.25, "auto", 1, 0.25),  # four videos share a GPU
    (2, "auto", 4, 2),
    (3, "auto", 2, "no node of the Ray cluster has that many GPUs (the largest has 2)"),
    (1, "cuda:1", 8, "Ray gives each video its own GPU, which it sees as cuda:0"),
    (0, "cuda", 8, "--device cuda with --ray needs --ray-gpus"),
    (None, "cuda", 0, "--device cuda with --ray needs --ray-gpus"),
])
def test_gpus_per_video(requested, device, node_gpus, expected):
    from rolldepth.apps.ray_cluster import gpus_per_video
    from rolldepth.errors import UserError

    if isinstance(expected, str):
        with pytest.raises(UserError, match=re.escape(expected)):
            gpus_per_video(requested, device, node_gpus)
    else:
        assert gpus_per_video(requested, device, node_gpus) == expected


def test_a_worker_finishes_a_done_video_without_loading_the_model(tmp_path, videos, tiny_checkpoint, monkeypatch):
    """A batch run again on the cluster: the body of a task loads the model only for a video that needs it."""
    from dataclasses import replace

    from rolldepth.apps import ray_cluster
    from rolldepth.process.presets import resolve_settings
    from rolldepth.process.runner import RunOptions, check_input

    options = RunOptions(settings=resolve_settings("fast", res=32, dilations=[1, 3]), cmaps=(), save_png=False,
                         save_sbs=False, progress=False)
    info = check_input(videos[0], options)
    out = tmp_path / "out"
    args = (str(tiny_checkpoint), "fp32", "cpu", videos[0], out)
    assert ray_cluster.process_one(*args, options, info) is None
    pred = np.load(out / "clip1_pred.npy")
    loads = []
    real = ray_cluster._pipeline
    monkeypatch.setattr(ray_cluster, "_pipeline", lambda *a: loads.append(a) or real(*a))
    assert ray_cluster.process_one(*args, options, info) is None  # done already
    assert ray_cluster.process_one(*args, replace(options, save_png=True), info) is None  # from its depth
    assert loads == [] and len(list((out / "clip1_png16").glob("*.png"))) == 8
    np.testing.assert_array_equal(np.load(out / "clip1_pred.npy"), pred)
    assert ray_cluster.process_one(*args, replace(options, seed=7), info) is None  # another depth: the model
    assert len(loads) == 1

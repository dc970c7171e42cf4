"""Shot-aware runs: cuts found exactly, each shot processed as if alone, a video without cuts unchanged, shot files."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import encode_video, pattern_frames
from rolldepth.apps.cli import main
from rolldepth.errors import UserError
from rolldepth.model.pipeline import RollingDepthPipeline
from rolldepth.process.presets import resolve_settings
from rolldepth.process.runner import RunOptions, process_video
from rolldepth.video.shots import drop_short_shots, read_shots_file, shot_ranges

LENGTHS = (20, 18, 22)  # three shots; cuts at 20 and 38


def three_shots() -> np.ndarray:
    """Three unrelated scenes: the moving-square pattern, its negative with another square, a darker BGR one."""
    a = pattern_frames(LENGTHS[0], seed=0)
    b = 255 - pattern_frames(LENGTHS[1], seed=1)
    c = pattern_frames(LENGTHS[2], seed=2)[..., ::-1] // 2
    return np.concatenate([a, b, c])


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint):
    return RollingDepthPipeline.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    return encode_video(tmp_path_factory.mktemp("shots") / "cuts.mp4", three_shots())


def options_for(**changes) -> RunOptions:
    settings = resolve_settings("fast", res=26, dilations=[1, 4], dtype="fp32")
    base = RunOptions(settings=settings, cmaps=(), save_png=False, save_sbs=False, progress=False,
                      batch_size=3, vae_batch_size=2, seed=5)
    return replace(base, **changes)


def test_cuts_are_found_exactly_and_each_shot_equals_running_it_alone(pipe, cut_video, tmp_path):
    written = process_video(pipe, cut_video, tmp_path / "all", options_for())
    report = json.loads(written["shots"].read_text())
    assert [s["frames"] for s in report["shots"]] == [[0, 20], [20, 38], [38, 60]]
    depth = np.load(written["pred"])
    first = 0
    for k, length in enumerate(LENGTHS):
        alone = process_video(pipe, cut_video, tmp_path / f"alone{k}",
                              options_for(start=first, count=length, shots="none"))
        np.testing.assert_array_equal(depth[first : first + length], np.load(alone["pred"]))
        assert report["shots"][k]["range"] == [float(depth[first : first + length].min()),
                                               float(depth[first : first + length].max())]
        first += length
    # each shot is normalised on its own: every shot spans [-1, 1]
    assert all(s["range"] == [-1.0, 1.0] for s in report["shots"])


def test_each_shots_uncertainty_equals_running_it_alone(pipe, cut_video, tmp_path):
    written = process_video(pipe, cut_video, tmp_path / "all", options_for(save_uncertainty=True))
    uncertainty = np.load(written["uncertainty"])
    assert written["uncertainty"].name == "cuts_uncertainty.npy" and uncertainty.shape == (60, 18, 26)
    without = process_video(pipe, cut_video, tmp_path / "without", options_for())
    assert "uncertainty" not in without  # asking for it changes no other output
    np.testing.assert_array_equal(np.load(written["pred"]), np.load(without["pred"]))
    first = 0
    for k, length in enumerate(LENGTHS):
        alone = process_video(pipe, cut_video, tmp_path / f"alone{k}",
                              options_for(start=first, count=length, shots="none", save_uncertainty=True))
        np.testing.assert_array_equal(uncertainty[first : first + length], np.load(alone["uncertainty"]))
        first += length
    assert (uncertainty >= 0).all() and uncertainty.max() > 1e-4


def test_a_video_without_cuts_is_unchanged_bit_for_bit(pipe, tmp_path):
    video = encode_video(tmp_path / "one.mp4", pattern_frames(30))
    auto = process_video(pipe, video, tmp_path / "auto", options_for())
    none = process_video(pipe, video, tmp_path / "none", options_for(shots="none"))
    np.testing.assert_array_equal(np.load(auto["pred"]), np.load(none["pred"]))
    assert auto.keys() == none.keys() and "shots" not in auto  # the same outputs, no shots file


def test_shots_from_a_file_match_detection(pipe, cut_video, tmp_path):
    numbers = tmp_path / "cuts.txt"
    numbers.write_text("# first frames of new shots\n20, 38\n")
    csv = tmp_path / "scenes.csv"  # `scenedetect list-scenes` layout: 1-based frames, inclusive ends
    csv.write_text("Timecode List:,00:00:00.800,00:00:01.520\n"
                   "Scene Number,Start Frame,Start Timecode,Start Time (seconds),End Frame,End Timecode\n"
                   "1,1,00:00:00.000,0.000,20,00:00:00.800\n2,21,00:00:00.800,0.800,38,00:00:01.520\n"
                   "3,39,00:00:01.520,1.520,60,00:00:02.400\n")
    assert read_shots_file(numbers) == [20, 38]
    assert shot_ranges(read_shots_file(csv), 0, 60, 60) == [(0, 20), (20, 38), (38, 60)]
    detected = np.load(process_video(pipe, cut_video, tmp_path / "auto", options_for())["pred"])
    from_file = np.load(process_video(pipe, cut_video, tmp_path / "file", options_for(shots=str(numbers)))["pred"])
    np.testing.assert_array_equal(detected, from_file)


def test_a_window_sees_only_its_own_cuts():
    assert shot_ranges([20, 38], 10, 20, 60) == [(0, 10), (10, 20)]  # frames 10..29: the cut at 20 -> 10
    assert shot_ranges([20, 38], 40, 20, 60) == [(0, 20)]
    with pytest.raises(UserError, match="past the end"):
        shot_ranges([20, 99], 0, 60, 60)


def test_detected_shots_too_short_for_a_snippet_join_a_neighbour():
    assert drop_short_shots([(0, 20), (20, 22)], 3) == [(0, 22)]
    assert drop_short_shots([(0, 2), (2, 30), (30, 40)], 3) == [(0, 30), (30, 40)]
    assert drop_short_shots([(0, 2)], 3) == [(0, 2)]


def test_an_interrupted_multi_shot_run_resumes_without_redoing_finished_shots(pipe, cut_video, tmp_path,
                                                                              monkeypatch):
    reference = np.load(process_video(pipe, cut_video, tmp_path / "ref", options_for())["pred"])
    calls, real = [], pipe.denoise

    def counted(*args):
        calls.append(1)
        if fail and len(calls) == fail:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(pipe, "denoise", counted)
    fail = 14  # inside the second shot (the first takes 10 UNet calls of 3 snippets)
    with pytest.raises(KeyboardInterrupt):
        process_video(pipe, cut_video, tmp_path / "out", options_for())
    first_try, calls[:] = len(calls), []
    fail = 0
    resumed = np.load(process_video(pipe, cut_video, tmp_path / "out", options_for())["pred"])
    np.testing.assert_array_equal(resumed, reference)
    full = len(calls)
    calls[:] = []
    process_video(pipe, cut_video, tmp_path / "again", options_for())
    assert full < len(calls) <= first_try - 1 + full  # finished work was kept, nothing was skipped


def test_another_output_of_a_finished_multi_shot_video_keeps_its_shots(pipe, cut_video, tmp_path, monkeypatch):
    first = process_video(pipe, cut_video, tmp_path / "out", options_for())
    report = first["shots"].read_text()
    monkeypatch.setattr(pipe, "denoise", lambda *a: pytest.fail("the depth was computed again"))
    again = process_video(pipe, cut_video, tmp_path / "out", options_for(save_png=True, save_exr=True))
    assert again.keys() == first.keys() | {"png16", "exr"} and again["shots"].read_text() == report
    assert len(list(again["png16"].glob("*.png"))) == 60


@pytest.mark.parametrize(
    "content, message",
    [
        ("20 99", "frame 99 is past the end"),
        ("20 21", "shot of frames 20-20"),
        ("Scene Number,Start Frame,End Frame\n1,1,30\n2,25,60\n", "overlap"),
        ("twenty", "frame numbers"),
    ],
)
def test_bad_shot_files_are_one_line_and_exit_2(tmp_path, tiny_checkpoint, cut_video, capsys, content, message):
    shots = tmp_path / "shots.txt"
    shots.write_text(content)
    code = main(["-q", "run", str(cut_video), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint),
                 "--shots", str(shots)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("rolldepth: error:") and "\n" not in err and message in err, err
    assert not (tmp_path / "o").exists()


def test_metric_anchors_on_a_video_with_cuts_are_refused(tmp_path, tiny_checkpoint, cut_video, capsys):
    anchors = tmp_path / "anchors.csv"
    anchors.write_text("frame,x,y,metres\n0,10,10,2.0\n30,20,20,3.0\n50,5,5,4.0\n")
    code = main(["-q", "run", str(cut_video), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint),
                 "--res", "26", "--metric-anchors", str(anchors)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "has 3 shots (cuts at frames 20, 38)" in err and "\n" not in err, err
    assert not list((tmp_path / "o").glob("cuts_*"))  # no output that looks complete


def test_without_opencv_the_video_runs_as_one_shot_with_a_warning(pipe, cut_video, tmp_path, monkeypatch, caplog):
    import rolldepth.video.shots as shots

    def unavailable(*args, **kwargs):
        raise ImportError("libGL.so.1: cannot open shared object file")

    monkeypatch.setattr(shots, "detect_cuts", unavailable)
    written = process_video(pipe, cut_video, tmp_path / "o", options_for())
    assert "shots" not in written and "processed as one shot" in caplog.text and "libGL.so.1" in caplog.text
    alone = process_video(pipe, cut_video, tmp_path / "none", options_for(shots="none"))
    np.testing.assert_array_equal(np.load(written["pred"]), np.load(alone["pred"]))

"""`rolldepth eval`: variants really differ where they should, scores match an independent float64 computation."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import pattern_frames
from rolldepth.apps.cli import main
from rolldepth.data.benchmarks import VideoSample
from rolldepth.errors import UserError
from rolldepth.data.benchmarks import load_dataset
from rolldepth.evaluate.runner import (VARIANTS, depth_like, evaluate, markdown_table, parse_variants, score,
                                      score_saved)
from rolldepth.model.loading import load_pipeline
from rolldepth.model.pipeline import RollingDepthPipeline
from rolldepth.data.synth import write_dataset
from rolldepth.video.writers import write_depth16, write_exr, write_png16


def test_parse_variants_splits_on_names_not_commas():
    assert parse_variants(None) == list(VARIANTS)
    assert parse_variants("per-frame,{1,10,25}") == ["per-frame", "{1,10,25}"]
    assert parse_variants("{1,25}, {1}") == ["{1,25}", "{1}"]
    with pytest.raises(UserError, match="unknown variant"):
        parse_variants("{1,5}")


def test_depth_like_closed_form():
    # [0, 1, 3] -> unit [0, 1/3, 1] -> 1 / clip(unit, 1e-3) = [1000, 3, 1]
    np.testing.assert_allclose(depth_like(np.array([0.0, 1.0, 3.0])), [1000.0, 3.0, 1.0], rtol=1e-6)


def reference_abs_rel(pred, gt, max_depth, min_depth=1e-3):
    """Disparity alignment by float64 lstsq over the whole video, inverted, clipped; AbsRel over valid pixels."""
    mask = (gt > min_depth) & (gt <= max_depth)
    a, b = np.linalg.lstsq(np.stack([pred[mask], np.ones(mask.sum())], 1).astype(np.float64),
                           1.0 / gt[mask].astype(np.float64), rcond=None)[0]
    depth = 1.0 / np.clip(a * pred.astype(np.float64) + b, 1 / max_depth, 1 / min_depth)
    return float(np.mean(np.abs(depth[mask] - gt[mask]) / gt[mask]))


class FakePipe:
    """Returns a given prediction per video (keyed by the first pixel) and records the kernels it was asked for."""

    def __init__(self, predictions, fail_at=None):
        self.predictions, self.calls, self.fail_at = predictions, [], fail_at

    def __call__(self, frames, **kwargs):
        if len(self.calls) == self.fail_at:
            raise KeyboardInterrupt  # the user pressed Ctrl-C, or the machine went down
        self.calls.append(kwargs)
        return SimpleNamespace(depth=self.predictions[int(frames[0, 0, 0, 0])])

    def weights_digest(self):
        return "fake"

    def resolve_res(self, res):
        return res or 64


def make_sample(name, key, depth):
    n, h, w = depth.shape
    frames = np.full((n, h, w, 3), key, dtype=np.uint8)
    return VideoSample(name=name, depth=depth, valid=depth > 0, fps=30.0, max_depth=20.0,
                       poses=np.tile(np.eye(4), (n, 1, 1)), K=np.array([[40.0, 0, w / 2], [0, 40.0, h / 2], [0, 0, 1]]),
                       frame_loader=lambda: frames)


def test_evaluate_scores_and_averages_like_an_independent_computation():
    rng = np.random.default_rng(0)
    gt_a = rng.uniform(1.0, 8.0, size=(1, 12, 16)).repeat(4, axis=0).astype(np.float32)  # static scene
    gt_b = rng.uniform(2.0, 15.0, size=(4, 12, 16)).astype(np.float32)
    exact = (3.0 / gt_a - 0.2).astype(np.float32)  # an exact affine disparity
    noisy = (1.0 / gt_b + rng.normal(0, 0.02, gt_b.shape)).astype(np.float32)
    pipe = FakePipe({1: exact, 2: noisy})
    samples = [make_sample("a", 1, gt_a), make_sample("b", 2, gt_b)]
    report = evaluate(pipe, samples, ["per-frame", "{1,25}"], refine_steps=5, seed=3)

    video_a = report["videos"][0]["variants"]["per-frame"]["disparity"]
    assert video_a["abs_rel"] == pytest.approx(0, abs=1e-5) and video_a["delta1"] == pytest.approx(100)
    assert video_a["tae"] == pytest.approx(0, abs=1e-3)  # static camera and scene: no temporal error
    expected = np.mean([reference_abs_rel(exact, gt_a, 20.0), reference_abs_rel(noisy, gt_b, 20.0)])
    assert report["summary"]["{1,25}"]["disparity"]["abs_rel"] == pytest.approx(expected, rel=1e-4)
    assert report["summary"]["per-frame"]["depth"]["n_videos"] == 2
    # The per-frame baseline asks for single-frame snippets and is never refined; the others get the options.
    first, second = pipe.calls[0], pipe.calls[1]
    assert (first["snippet_lengths"], first["dilations"], first["refine_steps"]) == ((1,), (1,), 0)
    assert (second["dilations"], second["refine_steps"], second["generator"]) == ((1, 25), 5, 3)
    table = markdown_table(report["summary"])
    assert table.count("\n") == 4 and f"| per-frame | {expected * 100:.2f} |" in table
    # The ground truth's own TAE: 0 on the static video; on b the camera stands still, so every pixel is compared
    # with itself in the next frame, both ways (a closed form).
    truth_b = 100 * np.mean([np.mean(np.abs(gt_b[d].astype(np.float64) - gt_b[s]) / gt_b[d])
                             for i in range(3) for s, d in ((i, i + 1), (i + 1, i))])
    assert [v["ground_truth_tae"] for v in report["videos"]] == pytest.approx([0.0, truth_b], abs=1e-6)
    assert report["ground_truth_tae"] == pytest.approx(truth_b / 2)
    truth_row = markdown_table(report["summary"], report).splitlines()[-1]
    assert truth_row.startswith("| ground truth | 0.00 | 100.00 | ") and f"{truth_b / 2:.2f}" in truth_row


def test_static_and_flow_tae_columns_in_every_row():
    # A still camera; an object at 2 m crosses a wall at 6 m, one column per frame. The exact prediction's TAE is
    # all moving object, and so is the ground truth's: both drop to 0 off the object (static) and along the
    # object's own motion (flow: 1 column per frame at 2 m with f = 40, so 0.05 m sideways a frame).
    n, h, w = 4, 6, 8
    gt = np.full((n, h, w), 6.0, dtype=np.float32)
    objects = np.zeros(gt.shape, np.uint8)
    for i in range(n):
        gt[i, :, i], objects[i, :, i] = 2.0, 1
    sample = make_sample("m", 1, gt)
    sample.moving = objects > 0
    object_poses = np.tile(np.eye(4), (n, 1, 1, 1))
    object_poses[:, 0, 0, 3] = 2.0 * np.arange(n) / sample.K[0, 0]
    sample.objects, sample.object_poses = objects, object_poses
    report = evaluate(FakePipe({1: 1.0 / gt}), [sample], ["per-frame"])
    scores = report["summary"]["per-frame"]["disparity"]
    assert scores["tae"] > 10 and scores["tae_static"] == pytest.approx(0, abs=1e-4)
    assert scores["tae_flow"] == pytest.approx(0, abs=1e-4)
    assert report["ground_truth_tae"] == pytest.approx(scores["tae"], rel=1e-4)
    assert report["ground_truth_tae_static"] == pytest.approx(0, abs=1e-9)
    assert report["ground_truth_tae_flow"] == pytest.approx(0, abs=1e-9)
    head, _, row, truth = markdown_table(report["summary"], report).splitlines()
    assert head.count("TAE static↓") == head.count("TAE flow↓") == 2
    assert row.count("|") == head.count("|") == truth.count("|") == 13
    assert truth.startswith(f"| ground truth | 0.00 | 100.00 | {report['ground_truth_tae']:.2f} | 0.00 | 0.00 |")


def without_seconds(report):
    """Everything but the timings, which differ between runs."""
    videos = [{**v, "variants": {k: {s: r[s] for s in ("disparity", "depth")} for k, r in v["variants"].items()}}
              for v in report["videos"]]
    return videos, {name: {s: m[s] for s in ("disparity", "depth")} for name, m in report["summary"].items()}


def test_interrupted_evaluation_resumes_with_only_the_missing_work(tmp_path):
    rng = np.random.default_rng(1)
    gts = [rng.uniform(1.0, 9.0, size=(4, 6, 8)).astype(np.float32) for _ in range(3)]
    predictions = {k + 1: (1 / gt + rng.normal(0, 0.05, gt.shape)).astype(np.float32) for k, gt in enumerate(gts)}
    samples = [make_sample(f"synth/v{k}", k + 1, gt) for k, gt in enumerate(gts)]
    variants, work = ["per-frame", "{1,25}"], tmp_path / "work"
    whole = evaluate(FakePipe(predictions), samples, variants, seed=3)

    with pytest.raises(KeyboardInterrupt):
        evaluate(FakePipe(predictions, fail_at=3), samples, variants, seed=3, work_dir=work)
    assert len(list(work.glob("*.json"))) == 3 and not list(work.glob(".*.partial"))
    pipe = FakePipe(predictions)
    resumed = evaluate(pipe, samples, variants, seed=3, work_dir=work)
    assert len(pipe.calls) == 3  # 6 (video, variant) pairs, 3 done before the interruption
    assert without_seconds(resumed) == without_seconds(whole)

    (work / "synth__v0__per-frame.json").write_text("{truncated")  # a damaged result is recomputed, not trusted
    pipe = FakePipe(predictions)
    evaluate(pipe, samples, variants, seed=3, work_dir=work)
    assert len(pipe.calls) == 1
    pipe = FakePipe(predictions)
    evaluate(pipe, samples, variants, seed=4, work_dir=work)  # another seed: nothing earlier is reused
    assert len(pipe.calls) == 6
    other = [make_sample(s.name, k + 1, gts[k] * 2) for k, s in enumerate(samples)]  # same names, other data
    pipe = FakePipe(predictions)
    evaluate(pipe, other, variants, seed=4, work_dir=work)
    assert len(pipe.calls) == 6

    # Asked to keep the predictions, a run recomputes the results whose prediction file is missing, and only those.
    saved = tmp_path / "predictions"
    pipe = FakePipe(predictions)
    evaluate(pipe, other, variants, seed=4, work_dir=work, predictions_dir=saved)
    assert len(pipe.calls) == 6 and len(list(saved.rglob("*.npy"))) == 6 and not list(saved.rglob(".*"))
    (saved / "synth" / "v1" / "{1,25}.npy").unlink()
    pipe = FakePipe(predictions)
    evaluate(pipe, other, variants, seed=4, work_dir=work, predictions_dir=saved)
    assert len(pipe.calls) == 1 and pipe.calls[0]["dilations"] == (1, 25)
    np.testing.assert_array_equal(np.load(saved / "synth" / "v1" / "{1,25}.npy"), predictions[2])


def affine_residual(x, y):
    """Relative residual of the best affine fit y ~ a x + b (0 = exactly affine)."""
    A = np.stack([x.ravel(), np.ones(x.size)], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(A, y.ravel().astype(np.float64), rcond=None)
    return float(np.abs(A @ coef - y.ravel()).max() / np.ptp(y))


def test_without_tae_the_same_abs_rel_and_delta1_and_no_temporal_score(tmp_path):
    rng = np.random.default_rng(2)
    gts = [rng.uniform(1.0, 9.0, size=(4, 6, 8)).astype(np.float32) for _ in range(2)]
    predictions = {k + 1: (1 / gt + rng.normal(0, 0.05, gt.shape)).astype(np.float32) for k, gt in enumerate(gts)}
    samples = [make_sample(f"synth/v{k}", k + 1, gt) for k, gt in enumerate(gts)]
    for sample in samples:
        sample.moving = np.zeros(sample.depth.shape, bool)
    variants, work = ["per-frame", "{1,25}"], tmp_path / "work"
    whole = evaluate(FakePipe(predictions), samples, variants)
    quick = evaluate(FakePipe(predictions), samples, variants, work_dir=work, temporal=False)
    for space in ("disparity", "depth"):
        for name in variants:
            full, fast = whole["summary"][name][space], quick["summary"][name][space]
            assert full["tae"] > 0 and full["tae_static"] is not None
            assert (fast["abs_rel"], fast["delta1"]) == (full["abs_rel"], full["delta1"])
            assert fast["tae"] is fast["tae_static"] is fast["tae_flow"] is None
    assert whole["ground_truth_tae"] is not None and quick["ground_truth_tae"] is None
    table = markdown_table(quick["summary"], quick)
    assert "static" not in table and "ground truth" not in table and table.count("n/a") == 4
    pipe = FakePipe(predictions)  # results saved without TAE are not taken for a full evaluation's
    assert without_seconds(evaluate(pipe, samples, variants, work_dir=work)) == without_seconds(whole)
    assert len(pipe.calls) == 4


def test_per_frame_variant_ignores_the_other_frames(tiny_checkpoint):
    pipe = RollingDepthPipeline.from_pretrained(tiny_checkpoint)
    video = pattern_frames(6, seed=1)
    changed = video.copy()
    changed[[0, 1, 3, 4, 5]] = pattern_frames(6, seed=7)[[5, 4, 3, 1, 0]] // 2  # all frames but 2 replaced
    kwargs = dict(processing_res=32, generator=0, progress=False)
    per_frame = [pipe(v, **VARIANTS["per-frame"], **kwargs).depth[2] for v in (video, changed)]
    alone = affine_residual(per_frame[0], per_frame[1])
    snippets = [pipe(v, **VARIANTS["{1}"], **kwargs).depth[2] for v in (video, changed)]
    assert alone < 1e-5  # frame 2 alone decides its own prediction
    assert affine_residual(snippets[0], snippets[1]) > 100 * max(alone, 1e-7)  # with snippets, neighbours matter


def test_eval_cli_writes_json_and_table(tmp_path, tiny_checkpoint, capsys):
    data = write_dataset(tmp_path / "synth", 2, 6, (48, 32), seed=4, progress=False)
    out = tmp_path / "eval"
    code = main(["-q", "eval", "--data", str(data), "--kind", "synth", "-o", str(out), "-m", str(tiny_checkpoint),
                 "--res", "32", "--variants", "per-frame,{1},{1,10,25}", "--save-predictions"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "eval.json").read_text())
    assert list(report["summary"]) == ["per-frame", "{1}", "{1,10,25}"]
    assert [v["name"] for v in report["videos"]] == ["synth/seq_00000", "synth/seq_00001"]
    for summary in report["summary"].values():
        for space in ("disparity", "depth"):
            assert all(np.isfinite(summary[space][k]) for k in ("abs_rel", "delta1", "tae"))
    assert report["settings"]["res"] == 32
    table = (out / "eval.md").read_text()
    assert table in capsys.readouterr().out and table.count("\n") == 6 and "| ground truth |" in table
    assert sorted(p.name for p in out.iterdir()) == ["eval.json", "eval.md", "predictions"]  # no partial files,
    # no work folder. Each saved prediction, scored again, gives its row of eval.json: the flow TAE included,
    # as the renders give every object's motion.
    samples = list(load_dataset("synth", data))
    for video, sample in zip(report["videos"], samples):
        for variant, result in video["variants"].items():
            pred = np.load(out / "predictions" / video["name"] / f"{variant}.npy")
            assert pred.dtype == np.float32 and pred.shape[0] == 6 and max(pred.shape[1:]) == 32
            rescored = score(pred, sample)
            assert rescored == {space: result[space] for space in ("disparity", "depth")}
            assert rescored["disparity"]["tae_flow"] is not None


def test_eval_scores_the_snippets_uncertainty(tmp_path, tiny_checkpoint, capsys):
    """--uncertainty: each snippet variant's spread scored as the pipeline gives it (the per-frame baseline has
    none), its means in the summary and a table of its own in eval.md."""
    from rolldepth.evaluate.uncertainty import score_uncertainty

    data = write_dataset(tmp_path / "synth", 2, 6, (48, 32), seed=4, progress=False)
    out = tmp_path / "eval"
    assert main(["-q", "eval", "--data", str(data), "--kind", "synth", "-o", str(out), "-m", str(tiny_checkpoint),
                 "--res", "32", "--variants", "per-frame,{1}", "--uncertainty", "--no-tae"]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert "uncertainty" not in report["summary"]["per-frame"] and report["settings"]["uncertainty"]
    pipe = RollingDepthPipeline.from_pretrained(tiny_checkpoint)
    for video, sample in zip(report["videos"], load_dataset("synth", data)):
        assert "uncertainty" not in video["variants"]["per-frame"]
        run = pipe(np.asarray(sample.frames), **VARIANTS["{1}"], processing_res=32, generator=0,
                   output_uncertainty=True, progress=False)
        assert video["variants"]["{1}"]["uncertainty"] == score_uncertainty(run.depth, run.uncertainty, sample)
    summary = report["summary"]["{1}"]["uncertainty"]
    for space in ("disparity", "abs_rel"):
        scored = [v["variants"]["{1}"]["uncertainty"][space] for v in report["videos"]]
        assert summary[space]["ause_spread"] == pytest.approx(np.mean([s["spread"]["ause"] for s in scored]))
        assert summary[space]["gap_closed"] == pytest.approx(np.mean([s["gap_closed"] for s in scored]))
        assert summary[space]["videos"] == 2
    table = (out / "eval.md").read_text()
    assert "Uncertainty (--uncertainty)" in table and "| {1} | disparity |" in table and "| {1} | AbsRel |" in table
    assert "| per-frame | disparity |" not in table

    # the same depth and uncertainty saved as rolldepth run writes them, scored with --predictions: the same scores
    saved = tmp_path / "run"
    saved.mkdir()
    for sample in load_dataset("synth", data):
        run = pipe(np.asarray(sample.frames), **VARIANTS["{1}"], processing_res=32, generator=0,
                   output_uncertainty=True, progress=False)
        sequence = sample.name.split("/")[-1]
        np.save(saved / f"{sequence}_pred.npy", run.depth)
        np.save(saved / f"{sequence}_uncertainty.npy", run.uncertainty)
    args = ["-q", "eval", "--data", str(data), "--kind", "synth", "-o", str(tmp_path / "e2"), "--predictions",
            str(saved), "--uncertainty", "--no-tae"]
    assert main(args) == 0
    again = json.loads((tmp_path / "e2" / "eval.json").read_text())
    assert [v["variants"]["run"]["uncertainty"] for v in again["videos"]] == [
        v["variants"]["{1}"]["uncertainty"] for v in report["videos"]]
    assert "| run | disparity |" in (tmp_path / "e2" / "eval.md").read_text()
    (saved / "seq_00001_uncertainty.npy").unlink()
    assert main(args) == 2
    assert "no seq_00001_uncertainty.npy in" in capsys.readouterr().err


def test_eval_of_your_own_videos_beside_their_depth(tmp_path, tiny_checkpoint, capsys):
    """--kind video: an image folder NAME/ or a video NAME.mp4 beside NAME_depth.npy, with NAME_poses.npy and
    NAME_K.npy for TAE, scored as a benchmark is, each video capped at its farthest measured depth."""
    from PIL import Image

    from conftest import encode_video

    synth = write_dataset(tmp_path / "synth", 2, 6, (48, 32), seed=4, progress=False)
    first, second = sorted(synth.glob("seq_*"))
    own = tmp_path / "own"
    (own / "shot_a").mkdir(parents=True)
    frames = np.load(first / "frames.npy")
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(own / "shot_a" / f"{i:04d}.png")
    depth_a = np.load(first / "depth.npy")
    depth_a[0, :3, :3] = 0  # no measurement there
    np.save(own / "shot_a_depth.npy", depth_a)
    np.save(own / "shot_a_poses.npy", np.load(first / "poses.npy"))
    np.save(own / "shot_a_K.npy", np.load(first / "intrinsics.npy"))
    encode_video(own / "shot_b.mp4", np.load(second / "frames.npy"))
    depth_b = np.load(second / "depth.npy")
    np.save(own / "shot_b_depth.npy", depth_b)

    samples = list(load_dataset("video", own))
    assert [s.name for s in samples] == ["video/shot_a", "video/shot_b"]
    np.testing.assert_array_equal(samples[0].frames, frames)
    assert samples[1].frames.shape == (6, 32, 48, 3)
    assert (samples[0].fps, samples[1].fps) == (30.0, 25.0)  # an image sequence's default rate, the video's own
    measured = depth_a[np.isfinite(depth_a) & (depth_a > 0)]
    assert samples[0].max_depth == measured.max() and not samples[0].valid[0, :3, :3].any()
    assert samples[0].poses is not None and samples[1].poses is None and samples[1].K is None

    out = tmp_path / "eval"
    code = main(["-q", "eval", "--data", str(own), "--kind", "video", "-o", str(out), "-m", str(tiny_checkpoint),
                 "--res", "0", "--variants", "per-frame,{1}", "--save-predictions"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "eval.json").read_text())
    for video, sample, gt in zip(report["videos"], samples, (depth_a, depth_b)):
        for variant in ("per-frame", "{1}"):
            pred = np.load(out / "predictions" / video["name"] / f"{variant}.npy")
            result = video["variants"][variant]
            expected = reference_abs_rel(pred, gt, sample.max_depth)  # aligned in disparity, as the paper does
            assert result["disparity"]["abs_rel"] == pytest.approx(expected, rel=1e-4)
            assert (result["disparity"]["tae"] is None) == (sample.poses is None)


def test_own_phone_footage_is_seen_upright_and_scored_in_its_depths_orientation(tmp_path, tiny_checkpoint, caplog):
    """Photos carry an EXIF quarter turn, and capture apps write depth either upright or as the sensor stored the
    pixels. The model sees the frames upright either way (as rolldepth run shows them to it); where the depth is
    stored turned, the prediction is turned onto it, so that prediction and depth line up."""
    from test_video_io import save_with_orientation

    stored = np.stack([np.full((32, 48, 3), 10 * i, np.uint8) for i in range(3)])
    stored[:, :4, :, 1] = 255  # a top band, to tell the turns apart
    stored[:, :, :6, 0] = 200  # and a left one
    upright = np.rot90(stored, -1, axes=(1, 2))  # orientation 6: turn a quarter clockwise to view
    rng = np.random.default_rng(0)
    pipe = load_pipeline(str(tiny_checkpoint), "fp32", "cpu")
    predictions = {}
    for name, shape in (("as_stored", (3, 32, 48)), ("upright", (3, 48, 32))):
        own = tmp_path / name
        (own / "shot").mkdir(parents=True)
        for i, frame in enumerate(stored):
            save_with_orientation(own / "shot" / f"{i}.png", frame, 6)
        np.save(own / "shot_depth.npy", rng.uniform(1, 5, shape).astype(np.float32))
        with caplog.at_level("INFO"):
            sample = next(iter(load_dataset("video", own)))
        np.testing.assert_array_equal(sample.frames, upright)
        assert (sample.to_depth is None) == (name == "upright")
        assert ("its prediction is turned onto the depth" in caplog.text) == (name == "as_stored")
        caplog.clear()
        report = evaluate(pipe, [sample], ["per-frame"], res=32, predictions_dir=tmp_path / f"pred_{name}",
                          progress=False)
        assert report["videos"][0]["variants"]["per-frame"]["disparity"]["abs_rel"] is not None
        predictions[name] = np.load(tmp_path / f"pred_{name}" / "video" / "shot" / "per-frame.npy")
        if name == "as_stored":  # another tool's prediction of the upright frames is turned the same way
            np.save(tmp_path / "shot.npy", np.rot90(predictions[name], -1, axes=(1, 2)))
            saved = score_saved([sample], tmp_path, temporal=False)["videos"][0]["variants"]["predictions"]
            ours = report["videos"][0]["variants"]["per-frame"]["disparity"]
            assert [saved["disparity"][k] for k in ("abs_rel", "delta1")] == [ours[k] for k in ("abs_rel", "delta1")]
    assert predictions["upright"].shape[1] > predictions["upright"].shape[2]  # portrait, as the frames
    np.testing.assert_array_equal(predictions["as_stored"], np.rot90(predictions["upright"], 1, axes=(1, 2)))


def test_eval_lets_each_video_go_once_it_is_scored(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    """A benchmark's frames and depth do not fit in memory together (ScanNet's 90-frame videos hold some 0.5 GB
    each): the command must not keep the videos it has scored."""
    import gc
    import weakref

    import rolldepth.data.benchmarks as benchmarks

    data = write_dataset(tmp_path / "synth", 3, 4, (48, 32), seed=4, progress=False)
    load, first_alive_at_third = benchmarks.load_dataset, []

    def tracked(*args, **kwargs):
        refs = []
        for sample in load(*args, **kwargs):
            if len(refs) == 2:
                gc.collect()
                first_alive_at_third.append(refs[0]() is not None)
            refs.append(weakref.ref(sample))
            yield sample

    monkeypatch.setattr(benchmarks, "load_dataset", tracked)
    code = main(["-q", "eval", "--data", str(data), "--kind", "synth", "-o", str(tmp_path / "eval"), "-m",
                 str(tiny_checkpoint), "--res", "32", "--variants", "per-frame", "--no-tae"])
    assert code == 0, capsys.readouterr().err
    assert first_alive_at_third == [False]
    assert len(json.loads((tmp_path / "eval" / "eval.json").read_text())["videos"]) == 3


def test_eval_scores_predictions_made_elsewhere(tmp_path, capsys):
    """--predictions DIR: another tool's (or an earlier run's) inverse depth, scored as the model's would be, with
    no model loaded; a missing, misshapen or NaN prediction is one error line."""
    data = write_dataset(tmp_path / "synth", 2, 6, (48, 32), seed=4, progress=False)
    samples = list(load_dataset("synth", data))
    folder = tmp_path / "other_tool"
    folder.mkdir()
    gt = [np.where(s.valid, s.depth, 1.0) for s in samples]
    exact = (2.0 / gt[0] + 0.1).astype(np.float32)  # an exact affine disparity
    rng = np.random.default_rng(1)
    noisy = (1.0 / gt[1] + rng.normal(0, 0.05, gt[1].shape)).astype(np.float32)[:, ::2, ::2]  # half resolution
    np.save(folder / "seq_00000_pred.npy", exact)  # as rolldepth run names it
    np.save(folder / "seq_00001.npy", noisy)
    out = tmp_path / "eval"
    code = main(["-q", "eval", "--data", str(data), "--kind", "synth", "-o", str(out), "--predictions", str(folder)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "eval.json").read_text())
    assert list(report["summary"]) == ["other_tool"] and report["settings"]["predictions"] == str(folder)
    first, second = (v["variants"]["other_tool"]["disparity"] for v in report["videos"])
    assert first["abs_rel"] == pytest.approx(0, abs=1e-5) and first["delta1"] == pytest.approx(100)
    assert second == score(noisy, samples[1])["disparity"] and second["abs_rel"] > 0.01
    assert "| other_tool |" in (out / "eval.md").read_text()

    for bad, message in ((noisy[:5], r"is \[5, 16, 24\]: expected \[6, h, w\]"),
                         (np.full_like(noisy, np.nan), "NaN or infinite")):
        np.save(folder / "seq_00001.npy", bad)
        assert main(["eval", "--data", str(data), "--kind", "synth", "-o", str(out), "--predictions", str(folder)]) == 2
        assert re.search(message, capsys.readouterr().err)
    (folder / "seq_00001.npy").unlink()
    assert main(["eval", "--data", str(data), "--kind", "synth", "-o", str(out), "--predictions", str(folder)]) == 2
    assert "no predictions for synth/seq_00001" in capsys.readouterr().err
    assert main(["eval", "--data", str(data), "--kind", "synth", "-o", str(out), "--predictions", str(folder),
                 "--variants", "{1}"]) == 2
    assert "do not apply" in capsys.readouterr().err


def test_eval_reads_the_npz_files_other_tools_write(tmp_path, capsys):
    """DepthCrafter's NAME.npz (key depth) and Video Depth Anything's NAME_depths.npz (key depths) score as the same
    arrays in .npy files; an archive with no usable array, or two files for one video, is one error line."""
    data = write_dataset(tmp_path / "synth", 2, 6, (48, 32), seed=4, progress=False)
    samples = list(load_dataset("synth", data))
    rng = np.random.default_rng(3)
    preds = [(1.0 / np.where(s.valid, s.depth, 1.0) + rng.normal(0, 0.05, s.depth.shape)).astype(np.float32)
             for s in samples]
    npz, npy = tmp_path / "tools", tmp_path / "plain"
    npz.mkdir()
    npy.mkdir()
    np.savez_compressed(npz / "seq_00000.npz", depth=preds[0])
    np.savez_compressed(npz / "seq_00001_depths.npz", depths=preds[1].astype(np.float16))
    for k, pred in enumerate(preds):
        np.save(npy / f"seq_{k:05d}.npy", pred.astype(np.float16) if k else pred)
    reports = []
    for folder in (npz, npy):
        assert main(["-q", "eval", "--data", str(data), "--kind", "synth", "-o", str(tmp_path / f"e_{folder.name}"),
                     "--predictions", str(folder), "--no-tae"]) == 0, capsys.readouterr().err
        reports.append(json.loads((tmp_path / f"e_{folder.name}" / "eval.json").read_text()))
    scored = [[v["variants"][label] for v in r["videos"]] for r, label in zip(reports, ("tools", "plain"))]
    assert scored[0] == scored[1] and scored[0][0]["disparity"] == score(preds[0], samples[0], temporal=False)[
        "disparity"]

    np.savez(npz / "seq_00001_depths.npz", a=preds[1], b=preds[1])
    args = ["eval", "--data", str(data), "--kind", "synth", "-o", str(tmp_path / "x"), "--predictions", str(npz)]
    assert main(args) == 2
    assert "holds a, b: expected one array, or one named depth or depths" in capsys.readouterr().err
    np.save(npz / "seq_00001.npy", preds[1])
    assert main(args) == 2
    assert "several predictions for synth/seq_00001" in capsys.readouterr().err


def test_eval_reads_folders_of_prediction_images(tmp_path, capsys):
    """An EXR per frame (rolldepth run --save-exr's, Video Depth Anything's) scores as its array; rolldepth run's
    16-bit PNGs, affine in it, score within their rounding, and its 16-bit video (--save-depth16) as those PNGs;
    beside an array file neither is read, beside the video no folder."""
    data = write_dataset(tmp_path / "synth", 2, 6, (48, 32), seed=4, progress=False)
    samples = list(load_dataset("synth", data))
    rng = np.random.default_rng(5)
    preds = [(1.0 / np.where(s.valid, s.depth, 1.0) + rng.normal(0, 0.05, s.depth.shape)).astype(np.float32)
             for s in samples]
    folder = tmp_path / "frames"
    write_exr(folder / "seq_00000_exr", preds[0])
    write_png16(folder / "seq_00001_png16", preds[1])
    out = tmp_path / "e"
    args = ["-q", "eval", "--data", str(data), "--kind", "synth", "-o", str(out), "--predictions", str(folder),
            "--no-tae"]
    assert main(args) == 0, capsys.readouterr().err
    videos = json.loads((out / "eval.json").read_text())["videos"]
    first, second = (v["variants"]["frames"]["disparity"] for v in videos)
    assert first == score(preds[0], samples[0], temporal=False)["disparity"]
    exact = score(preds[1], samples[1], temporal=False)["disparity"]
    assert second["abs_rel"] == pytest.approx(exact["abs_rel"], abs=1e-4) and second["abs_rel"] != exact["abs_rel"]

    write_depth16(folder / "seq_00001_depth16.mkv", preds[1], 30)  # --save-depth16's: read before the folder
    assert main(args) == 0
    from_video = json.loads((out / "eval.json").read_text())["videos"][1]["variants"]["frames"]["disparity"]
    assert from_video["abs_rel"] == pytest.approx(second["abs_rel"], abs=1e-6)  # the PNGs' very codes
    np.save(folder / "seq_00001_pred.npy", preds[1])  # as rolldepth run leaves it: the array file is read
    assert main(args) == 0
    second = json.loads((out / "eval.json").read_text())["videos"][1]["variants"]["frames"]["disparity"]
    assert second == exact
    (folder / "seq_00000_exr" / "frame_000005.exr").unlink()
    assert main(args[1:]) == 2
    assert "seq_00000_exr holds 5 images: expected 6" in capsys.readouterr().err


def test_eval_scores_depth_predictions_in_depth_space(tmp_path, capsys):
    """--prediction-kind depth: an affine-invariant depth (Marigold's kind of output) is aligned as depth, which a
    float64 least-squares reference reproduces; read as inverse depth, the same files score far worse."""
    data = write_dataset(tmp_path / "synth", 1, 6, (48, 32), seed=4, progress=False)
    sample = next(iter(load_dataset("synth", data)))
    gt = np.where(sample.valid, sample.depth, 1.0)
    rng = np.random.default_rng(2)
    marigold_like = ((gt - gt.min()) / (gt.max() - gt.min()) + rng.normal(0, 0.02, gt.shape)).astype(np.float32)
    folder = tmp_path / "marigold"
    folder.mkdir()
    np.save(folder / "seq_00000.npy", marigold_like)

    mask = sample.valid & (sample.depth > sample.min_depth) & (sample.depth <= sample.max_depth)
    a, b = np.linalg.lstsq(np.stack([marigold_like[mask], np.ones(mask.sum())], 1).astype(np.float64),
                           sample.depth[mask].astype(np.float64), rcond=None)[0]
    aligned = np.clip(a * marigold_like.astype(np.float64) + b, sample.min_depth, sample.max_depth)
    expected = np.mean(np.abs(aligned[mask] - sample.depth[mask]) / sample.depth[mask])

    reports = {}
    for kind in ("depth", "inverse-depth"):
        out = tmp_path / kind
        assert main(["-q", "eval", "--data", str(data), "--kind", "synth", "-o", str(out), "--predictions",
                     str(folder), "--prediction-kind", kind, "--no-tae"]) == 0, capsys.readouterr().err
        reports[kind] = json.loads((out / "eval.json").read_text())
    depth = reports["depth"]["summary"]["marigold"]
    assert reports["depth"]["settings"]["prediction_kind"] == "depth"
    assert depth["depth"]["abs_rel"] == pytest.approx(expected, rel=1e-4)
    assert depth["depth"]["abs_rel"] < 0.5 * reports["inverse-depth"]["summary"]["marigold"]["depth"]["abs_rel"]
    assert main(["eval", "--data", str(data), "--kind", "synth", "-o", str(tmp_path / "x"),
                 "--prediction-kind", "depth"]) == 2
    assert "give --predictions DIR too" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{tmp}/missing", "--kind", "synth"], "not a folder"),
        (["--data", "{tmp}", "--kind", "nyu"], "unknown dataset"),
        (["--data", "{tmp}", "--kind", "synth", "--variants", "{2}"], "unknown variant"),
        (["--data", "{tmp}", "--kind", "synth", "--max-frames", "1"], "--max-frames must be at least 2"),
        (["--data", "{tmp}", "--kind", "synth", "--predictions", "{tmp}", "--uncertainty", "--prediction-kind",
          "depth"], "not with --prediction-kind depth"),
    ],
)
def test_eval_bad_input_is_one_error_line(tmp_path, capsys, args, message):
    code = main(["eval", *[a.replace("{tmp}", str(tmp_path)) for a in args], "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1

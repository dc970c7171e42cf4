"""benchmarks/error_decomposition.py: one alignment per video against one per frame, checked against float64 fits."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "error_decomposition.py"
_spec = importlib.util.spec_from_file_location("error_decomposition", _SCRIPT)
error_decomposition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(error_decomposition)


def _reference_abs_rel(pred, depth, mask, min_depth, max_depth):
    """float64 least squares of disparity on ``mask``, clipped and inverted, AbsRel x100 on ``mask``."""
    A = np.stack([pred[mask], np.ones(mask.sum())], 1).astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(A, 1.0 / depth[mask].astype(np.float64), rcond=None)
    aligned = 1.0 / np.clip(a * pred[mask] + b, 1 / max_depth, 1 / min_depth)
    return float(np.mean(np.abs(aligned - depth[mask]) / depth[mask]) * 100)


def test_drift_between_frames_is_forgiven_per_frame_and_paid_per_video():
    """Each frame predicted as an exact affine map of its true disparity, with a different map in every frame:
    aligned per frame the error vanishes; aligned per video it is the float64 fit's, on every pixel set."""
    rng = np.random.default_rng(0)
    n, h, w = 5, 12, 16
    depth = rng.uniform(1.0, 8.0, (n, h, w)).astype(np.float32)
    scale, shift = rng.uniform(0.5, 2.0, n), rng.uniform(-0.3, 0.3, n)
    pred = (scale[:, None, None] / depth + shift[:, None, None]).astype(np.float32)
    moving = np.zeros((n, h, w), bool)
    moving[:, :4, :5] = True

    out = error_decomposition.decompose(pred, depth, None, moving, 0.5, 10.0)
    for key in ("frame", "frame_static", "frame_moving"):
        assert out[key] == pytest.approx(0.0, abs=1e-3)
    everything = np.ones((n, h, w), bool)
    # the per-video fit uses every pixel; its error is then read on each set of pixels
    A = np.stack([pred.ravel(), np.ones(pred.size)], 1).astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(A, 1.0 / depth.ravel().astype(np.float64), rcond=None)
    aligned = 1.0 / np.clip(a * pred.astype(np.float64) + b, 1 / 10.0, 1 / 0.5)
    rel = np.abs(aligned - depth) / depth * 100
    assert out["video"] == pytest.approx(_reference_abs_rel(pred, depth, everything, 0.5, 10.0), rel=1e-4)
    assert out["video_static"] == pytest.approx(rel[~moving].mean(), rel=1e-4)
    assert out["video_moving"] == pytest.approx(rel[moving].mean(), rel=1e-4)
    assert out["video"] > 5  # the drift is real, so the zeros above are not a metric that always reads 0


def test_no_moving_pixels_reads_nan_and_the_perfect_target_is_per_frame():
    rng = np.random.default_rng(1)
    depth = rng.uniform(1.0, 4.0, (3, 8, 8)).astype(np.float32)
    depth[1] *= 3  # the second frame sees a farther scene: its own normalisation differs
    target = error_decomposition.perfect_target(depth)
    assert target.shape == depth.shape and target.min() == -1 and target.max() == 1
    for i in range(3):  # each frame normalised alone by its own 2nd/98th percentiles, not jointly
        inverse = 1.0 / depth[i].astype(np.float64)
        lo, hi = np.percentile(inverse, [2, 98])
        np.testing.assert_allclose(target[i], np.clip((inverse - lo) / (hi - lo) * 2 - 1, -1, 1), atol=1e-6)
    out = error_decomposition.decompose(target, depth, None, None, 0.5, 20.0)
    assert np.isnan(out["video_moving"]) and np.isnan(out["frame_moving"])
    assert out["frame"] < out["video"]


def test_codec_round_trips_saved_by_codec_ceiling_score_the_same_here(tmp_path, tiny_checkpoint):
    """codec_ceiling.py --per-frame --save-predictions writes the layout this script reads; each frame aligned
    alone, the two scripts' figures for the same round trips agree."""
    import json
    import subprocess
    import sys

    from rolldepth.data.scene import SceneConfig
    from rolldepth.data.synth import write_dataset

    data = write_dataset(tmp_path / "d", 2, n_frames=4, size=(48, 36), seed=7, progress=False,
                         config=SceneConfig(flyby=True))
    saved, ceiling = tmp_path / "codec", tmp_path / "ceiling.json"
    subprocess.run([sys.executable, str(_SCRIPT.parent / "codec_ceiling.py"), "--data", str(data), "--model",
                    str(tiny_checkpoint), "--per-frame", "--save-predictions", str(saved), "--json", str(ceiling)],
                   check=True, capture_output=True)
    assert sorted(p.name for p in (saved / "synth").iterdir()) == ["seq_00000", "seq_00001"]
    decomposed = tmp_path / "decomposed.json"
    subprocess.run([sys.executable, str(_SCRIPT), "--data", str(data), "--predictions", str(saved), "--label", "codec",
                    "--json", str(decomposed)], check=True, capture_output=True)
    by_codec = {v["name"]: v["abs_rel"] for v in json.loads(ceiling.read_text())["videos"]}
    for video in json.loads(decomposed.read_text())["videos"]:
        assert video["model"]["frame"] == pytest.approx(by_codec[video["name"]], rel=1e-5)
        assert video["model"]["video"] >= 0 and np.isfinite(video["model"]["video"])

"""Metric scale from anchors: exact recovery of rendered metric depth, robustness to outliers, the pixel convention
between input and depth resolution, anchor files, and one clear error for every bad set of anchors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rolldepth.errors import UserError
from rolldepth.method.metric_scale import (
    MAX_PAIRS,
    Anchor,
    AnchorError,
    MetricView,
    apply_metric,
    assumed_range_map,
    fit_inverse_affine,
    fit_metric_scale,
    read_anchors,
    to_depth_pixels,
)
from rolldepth.data.synth import render_sequence


@pytest.fixture(scope="module")
def rendered():
    """A small rendered video with exact metric depth (float64 for exact comparisons)."""
    sample = render_sequence(7, n_frames=5, size=(64, 48))
    return sample["depth"].astype(np.float64)


def distorted(depth: np.ndarray, scale: float = 2.7, shift: float = -0.35) -> np.ndarray:
    """What the model gives at best: an unknown affine map of inverse depth, renormalised to [-1, 1]."""
    inverse = scale / depth + shift
    return (inverse - inverse.min()) / (inverse.max() - inverse.min()) * 2 - 1


def anchors_from(depth: np.ndarray, count: int, seed: int = 0) -> list[Anchor]:
    rng = np.random.default_rng(seed)
    n, height, width = depth.shape
    picks = zip(rng.integers(0, n, count), rng.integers(0, width, count), rng.integers(0, height, count))
    return [Anchor(int(f), float(x), float(y), float(depth[f, y, x]), f"anchor {i}") for i, (f, x, y) in
            enumerate(picks)]


def test_fit_recovers_the_rendered_metric_depth(rendered):
    pred = distorted(rendered)
    fit = fit_metric_scale(pred, anchors_from(rendered, 5))
    np.testing.assert_allclose(fit.depth(pred), rendered, rtol=1e-6)
    assert fit.rmse_m < 1e-6 and fit.inliers.all()
    assert fit.a > 0
    assert rendered.max() / rendered.min() > 3  # a real range of depths, not a flat wall


def test_two_anchors_are_enough(rendered):
    pred = distorted(rendered, 0.8, 0.4)
    near = np.unravel_index(rendered.argmin(), rendered.shape)
    far = np.unravel_index(rendered.argmax(), rendered.shape)
    anchors = [Anchor(int(f), float(x), float(y), float(rendered[f, y, x])) for f, y, x in (near, far)]
    np.testing.assert_allclose(fit_metric_scale(pred, anchors).depth(pred), rendered, rtol=1e-6)


def test_outliers_among_the_anchors_are_found_and_left_out(rendered):
    pred = distorted(rendered)
    anchors = anchors_from(rendered, 12, seed=1)
    wrong = {2: 2.0, 5: 0.4, 9: 1.6}  # a misread tape, a wrong pixel, a typo
    anchors = [Anchor(a.frame, a.x, a.y, a.metres * wrong.get(i, 1.0), a.source) for i, a in enumerate(anchors)]
    fit = fit_metric_scale(pred, anchors)
    np.testing.assert_allclose(fit.depth(pred), rendered, rtol=1e-6)
    assert sorted(np.flatnonzero(~fit.inliers)) == sorted(wrong)
    report = fit.to_json()
    assert report["n_inliers"] == 9 and report["rmse_m"] < 1e-6
    assert report["anchors"][2]["residual_m"] == pytest.approx(-anchors[2].metres / 2, rel=1e-6)
    assert "anchor 2" in fit.summary() and "outlier" in fit.summary()


def test_many_anchors_use_a_seeded_sample_of_pairs(rendered):
    pred = distorted(rendered)
    anchors = anchors_from(rendered, 120, seed=2)
    assert 120 * 119 // 2 > MAX_PAIRS
    rng = np.random.default_rng(3)
    bad = rng.choice(120, 40, replace=False)  # a third of them wrong
    anchors = [Anchor(a.frame, a.x, a.y, a.metres * (rng.uniform(1.5, 3) if i in bad else 1)) for i, a in
               enumerate(anchors)]
    first, second = fit_metric_scale(pred, anchors), fit_metric_scale(pred, anchors)
    assert (first.a, first.b) == (second.a, second.b)  # deterministic
    np.testing.assert_allclose(first.depth(pred), rendered, rtol=1e-6)
    assert set(np.flatnonzero(~first.inliers)) == set(bad)


def test_noisy_anchors_give_the_least_squares_fit_and_honest_residuals(rendered):
    pred = distorted(rendered)
    anchors = anchors_from(rendered, 30, seed=4)
    noise = np.random.default_rng(5).normal(0, 0.02, 30)
    noisy = [Anchor(a.frame, a.x, a.y, a.metres * (1 + e)) for a, e in zip(anchors, noise)]
    fit = fit_metric_scale(pred, noisy)
    assert fit.inliers.all()
    given = np.array([a.metres for a in noisy])
    np.testing.assert_allclose(fit.residuals_m, fit.fitted_m - given)
    assert 0.005 < np.sqrt(np.mean((fit.residuals_m / given) ** 2)) < 0.04  # about the 2 % noise
    relative = np.abs(fit.depth(pred) / rendered - 1)
    assert np.median(relative) < 0.02


def test_anchor_pixels_are_input_pixels_mapped_to_the_depth_grid():
    """A bilinear inverse-depth field is sampled exactly by bilinear interpolation, so its prediction at another
    resolution is exact under the pixel-centre convention; anchors in input pixels then fit exactly only if they are
    mapped the same way."""
    width, height, w, h = 64, 48, 40, 30  # a non-integer ratio, as processing sizes are

    def inverse_depth(x, y):
        return 0.31 + 0.004 * x - 0.0025 * y + 0.0002 * x * y

    xd, yd = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    x_in, y_in = (xd + 0.5) * width / w - 0.5, (yd + 0.5) * height / h - 0.5
    pred = (1.7 * inverse_depth(x_in, y_in) - 0.2)[None]
    anchors = [Anchor(0, float(ax), float(ay), 1 / inverse_depth(ax, ay)) for ax, ay in
               [(1, 1), (62, 46), (10, 40), (50, 5), (31.5, 23.25)]]  # inside the outermost depth pixel centres
    fit = fit_metric_scale(pred, anchors, image_size=(width, height))
    assert fit.rmse_m < 1e-9
    np.testing.assert_allclose(fit.depth(pred)[0], 1 / inverse_depth(x_in, y_in), rtol=1e-6)
    np.testing.assert_allclose(to_depth_pixels(1.0, 0.0, (64, 48), (32, 24)), (0.25, -0.25))
    # read as depth pixels instead (no mapping) the same anchors do not fit
    naive = [Anchor(0, a.x * w / width, a.y * h / height, a.metres) for a in anchors]
    assert fit_metric_scale(pred, naive, tolerance=1.0).rmse_m > 1e-3


def test_anchor_frames_are_input_frame_numbers(rendered):
    pred = distorted(rendered)[2:]  # processed from input frame 2 (--from 2)
    anchors = [a for a in anchors_from(rendered, 12, seed=6) if a.frame >= 2]
    fit = fit_metric_scale(pred, anchors, first_frame=2)
    np.testing.assert_allclose(fit.depth(pred), rendered[2:], rtol=1e-6)
    with pytest.raises(UserError, match="before the first processed frame 2"):
        fit_metric_scale(pred, [*anchors, Anchor(1, 3, 3, 5.0, "early")], first_frame=2)


def test_fitted_inverse_depth_below_zero_is_nan():
    depth = apply_metric(np.array([[-1.0, 0.0, 1.0]]), 1.0, 0.5)
    assert np.isnan(depth[0, 0]) and depth[0, 1] == pytest.approx(2.0) and depth[0, 2] == pytest.approx(2 / 3)
    assert depth.dtype == np.float32
    view = MetricView(np.array([[[-1.0, 0.0, 1.0]]] * 2), 1.0, 0.5)
    assert view.shape == (2, 1, 3) and len(view) == 2
    np.testing.assert_array_equal(view[1], depth)
    assert np.asarray(view[0:2]).shape == (2, 1, 3)


def test_assumed_range_maps_the_video_extremes_to_near_and_far():
    a, b = assumed_range_map(-1.0, 1.0, near=2.0, far=8.0)
    np.testing.assert_allclose(apply_metric(np.array([-1.0, 1.0]), a, b), [8.0, 2.0], rtol=1e-6)
    with pytest.raises(UserError, match="0 < near < far"):
        assumed_range_map(-1, 1, near=5, far=5)


# ------------------------------------------------------------------------------------------------------------------
# Anchor files
def test_anchor_files_csv_and_json_read_the_same(tmp_path):
    expected = [Anchor(0, 10.0, 20.5, 3.2), Anchor(4, 7.0, 1.0, 12.0)]
    files = {
        "plain.csv": "0,10,20.5,3.2\n4, 7, 1, 12\n",
        "header.csv": "# measured with a laser\nmetres,frame,y,x\n3.2,0,20.5,10\n\n12,4,1,7  # the door\n",
        "spaces.txt": "0 10 20.5 3.2\n4 7 1 12\n",
        "objects.json": json.dumps([{"frame": 0, "x": 10, "y": 20.5, "meters": 3.2},
                                    {"frame": 4, "x": 7, "y": 1, "metres": 12}]),
        "lists.json": json.dumps({"anchors": [[0, 10, 20.5, 3.2], [4, 7, 1, 12]]}),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        got = [(a.frame, a.x, a.y, a.metres) for a in read_anchors(tmp_path / name)]
        assert got == [(a.frame, a.x, a.y, a.metres) for a in expected], name
    assert read_anchors(tmp_path / "header.csv")[1].source == "header.csv line 5"


@pytest.mark.parametrize("text, message", [
    ("0,1,2,-3\n1,1,1,2\n", "header.csv line 1: the distance must be a positive number of metres"),
    ("0,1,2,0\n", "positive number of metres"),
    ("0.5,1,2,3\n", "frame must be a whole number"),
    ("-1,1,2,3\n", "frame must be a whole number"),
    ("0,1,2\n", "expected frame, x, y, metres"),
    ("0,1,nan,3\n", "finite"),
    ("frame,x,y,colour\n0,1,2,3\n", "no metres column"),
    ("0,one,2,3\n", "must be numbers"),
])
def test_malformed_anchor_files_are_one_clear_error(tmp_path, text, message):
    (tmp_path / "header.csv").write_text(text)
    with pytest.raises(UserError, match=message):
        read_anchors(tmp_path / "header.csv")


def test_missing_anchor_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_anchors(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------------------------------------------
# Bad anchors
def test_bad_anchor_sets_are_refused_with_the_reason(rendered):
    pred = distorted(rendered)
    good = anchors_from(rendered, 4, seed=8)
    n, height, width = pred.shape
    cases = [
        ([good[0]], UserError, "at least 2 anchors"),
        ([*good, Anchor(0, 64, 3, 2.0, "x.csv line 9")], UserError, r"x.csv line 9: pixel \(64, 3\) is off the 64x48"),
        ([*good, Anchor(0, 3, -0.6, 2.0, "y")], UserError, "off the 64x48 frame"),
        ([*good, Anchor(5, 3, 3, 2.0, "late")], UserError, "late: frame 5 is past the last processed frame 4"),
        ([good[0], good[0]], AnchorError, "same predicted depth"),
    ]
    for anchors, kind, message in cases:
        with pytest.raises(kind, match=message):
            fit_metric_scale(pred, anchors)
    assert width == 64 and height == 48 and n == 5


def test_anchors_on_invalid_pixels_are_refused(rendered):
    pred = distorted(rendered)
    pred[1, 10, 20] = np.nan  # e.g. a masked pixel
    anchors = [*anchors_from(rendered, 3, seed=9), Anchor(1, 20, 10, 4.0, "bad.csv line 4")]
    with pytest.raises(UserError, match="bad.csv line 4: .* invalid pixel"):
        fit_metric_scale(pred, anchors)


def test_contradictory_anchors_are_refused():
    values = np.array([-0.5, 0.0, 0.5, 0.9])
    consistent = 1 / (0.2 * values + 0.3)
    contradictory = consistent * np.array([1.0, 2.5, 1.0, 0.3])  # two agree, two do not: no majority
    with pytest.raises(AnchorError, match="contradict each other: at most 2 of 4 agree"):
        fit_inverse_affine(values, contradictory)
    fit_inverse_affine(values, contradictory, tolerance=3.0)  # a looser tolerance accepts them
    farther_is_nearer = 1 / (-0.2 * values + 0.5)  # larger prediction = farther: a < 0
    with pytest.raises(AnchorError, match="no scale a > 0"):
        fit_inverse_affine(values, farther_is_nearer)
    with pytest.raises(AnchorError, match="same predicted depth"):
        fit_inverse_affine(np.zeros(3), np.array([1.0, 2.0, 3.0]))

"""Metrics checked against closed forms, numpy's lstsq, hand-worked cases and analytic scenes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from rolldepth.evaluate import metrics
from rolldepth.errors import UserError
from rolldepth.evaluate.metrics import (
    abs_rel,
    align_depth,
    delta1,
    evaluate_video,
    fit_scale_shift,
    mean_over_videos,
    resize_prediction,
    tae,
)


def lstsq_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    design = np.stack([x.astype(np.float64), np.ones(x.size)], axis=1)
    return np.linalg.lstsq(design, y.astype(np.float64), rcond=None)[0]


def test_fit_recovers_exact_affine():
    x = np.random.default_rng(0).uniform(-1, 1, size=(3, 5, 7))
    a, b = fit_scale_shift(x, 2.5 * x - 0.7, np.ones(x.shape, bool))
    assert a == pytest.approx(2.5, rel=1e-13)
    assert b == pytest.approx(-0.7, rel=1e-13)


@pytest.mark.parametrize("block", [7, 1 << 22])
def test_fit_matches_lstsq_with_mask_large_mean_and_streaming(monkeypatch, block):
    # A large mean with a small spread is where sum(x^2) - sum(x)^2/n would lose digits; tiny blocks force
    # the pairwise merge of many partial results.
    monkeypatch.setattr(metrics, "_BLOCK", block)
    rng = np.random.default_rng(1)
    x = (1000.0 + rng.normal(0, 0.5, size=(4, 9, 11))).astype(np.float32)
    y = (3.0 * x - 2900.0 + rng.normal(0, 0.3, size=x.shape)).astype(np.float32)
    valid = rng.random(x.shape) > 0.3
    expected = lstsq_reference(x[valid], y[valid])
    np.testing.assert_allclose(fit_scale_shift(x, y, valid), expected, rtol=1e-9)


def test_fit_degenerate_cases():
    x = np.full((2, 3), 4.0)
    y = np.arange(6.0).reshape(2, 3)
    assert fit_scale_shift(x, y, np.ones((2, 3), bool)) == (0.0, pytest.approx(2.5))
    with pytest.raises(UserError, match="no valid"):
        fit_scale_shift(x, y, np.zeros((2, 3), bool))


def make_gt(seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 9.0, size=(3, 6, 8))


def test_disparity_alignment_of_affine_disparity_is_exact():
    gt = make_gt()
    pred = 0.37 / gt + 0.05  # what an ideal inverse-depth model could output
    depth = align_depth(pred, gt, None, "disparity", 1e-3, 10.0)
    valid = np.ones(gt.shape, bool)
    assert abs_rel(depth, gt, valid) < 1e-6
    assert delta1(depth, gt, valid) == 100.0


def test_depth_alignment_of_affine_depth_is_exact():
    gt = make_gt()
    pred = -0.8 * gt + 3.0  # "depth" space treats the prediction as affine-invariant depth
    depth = align_depth(pred, gt, None, "depth", 1e-3, 10.0)
    valid = np.ones(gt.shape, bool)
    assert abs_rel(depth, gt, valid) < 1e-6
    assert delta1(depth, gt, valid) == 100.0


def test_alignment_ignores_invalid_gt_and_clips_to_range():
    gt = make_gt()
    gt[0, 0, 0] = 50.0  # beyond the 10 m cap: excluded by the range alone
    pred = 0.37 / gt + 0.05
    pred[0, 0, 1] = -5.0  # masked-out pixel whose aligned disparity is negative -> clipped to the far cap
    valid = np.ones(gt.shape, bool)
    valid[0, 0, 1] = False
    depth = align_depth(pred, gt, valid, "disparity", 1e-3, 10.0)
    scored = valid.copy()
    scored[0, 0, 0] = False
    assert abs_rel(depth, gt, scored) < 1e-6  # neither outlier bent the fit
    assert depth[0, 0, 1] == pytest.approx(10.0)
    assert depth.min() >= 1e-3 and depth.max() <= 10.0
    with pytest.raises(UserError, match="alignment space"):
        align_depth(pred, gt, None, "log", 1e-3, 10.0)


def test_abs_rel_and_delta1_hand_computed():
    depth = np.array([[1.0, 2.0], [3.0, 4.0]])
    gt = np.array([[1.0, 2.5], [2.0, 100.0]])
    valid = np.array([[True, True], [True, False]])
    # |d-gt|/gt = 0, 0.2, 0.5 -> mean 0.7/3; ratios 1, 1.25 (not < 1.25), 1.5 -> 1 of 3 pixels pass.
    assert abs_rel(depth, gt, valid) == pytest.approx(0.7 / 3, rel=1e-12)
    assert delta1(depth, gt, valid) == pytest.approx(100.0 / 3, rel=1e-12)


# ----------------------------------------------------------------------------------------- TAE scenes

H, W = 48, 64


def intrinsics(scale: int = 1) -> np.ndarray:
    return np.array([[50.0 * scale, 0, (W * scale - 1) / 2], [0, 50.0 * scale, (H * scale - 1) / 2], [0, 0, 1]])


def translation(x: float, y: float, z: float) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, 3] = (x, y, z)
    return pose


@pytest.mark.parametrize("scale_error", [1.0, 1.1, 0.8])
def test_tae_fronto_parallel_plane_moving_along_z_matches_hand_computation(scale_error):
    # Wall at Z = D, camera 1 moved forward by tz: true depths are D and D - tz everywhere. Perturb frame 1 by s:
    #   0 -> 1: z' = D - tz against s (D - tz)      => |s - 1| / s
    #   1 -> 0: z' = s (D - tz) + tz against D      => |s - 1| (D - tz) / D
    dist, tz, s = 5.0, 1.0, scale_error
    gt = np.stack([np.full((H, W), dist), np.full((H, W), dist - tz)])
    pred = gt * np.array([1.0, s])[:, None, None]
    poses = np.stack([np.eye(4), translation(0, 0, tz)])
    expected = 100 * (abs(s - 1) / s + abs(s - 1) * (dist - tz) / dist) / 2
    assert tae(pred, gt, None, poses, intrinsics(), max_depth=10.0) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("flicker", [1.0, 1.2])
def test_tae_leaves_moving_objects_out_closed_form(flicker):
    # A still camera before a wall at D; an object (depth 2) moves from block A in frame 0 to block B in frame 1.
    # Every pixel is compared with itself in the other frame. Without the mask A and B cost even the true depth:
    # 0 -> 1: A |D - 2| / D, B |2 - D| / 2; 1 -> 0 the same with A and B swapped. With it only the static wall
    # counts, where a prediction whose frame 1 is scaled by s costs |s - 1| / s one way and |s - 1| the other.
    dist, s = 6.0, flicker
    gt = np.full((2, H, W), dist)
    moving = np.zeros(gt.shape, bool)
    gt[0, 2:6, 3:9], moving[0, 2:6, 3:9] = 2.0, True
    gt[1, 10:14, 12:18], moving[1, 10:14, 12:18] = 2.0, True
    poses = np.stack([np.eye(4), np.eye(4)])
    area = 24 / (H * W)
    both_ways = area * (abs(dist - 2) / dist + abs(2 - dist) / 2)
    assert tae(gt, gt, None, poses, intrinsics(), max_depth=10.0) == pytest.approx(100 * both_ways, rel=1e-9)
    assert tae(gt, gt, None, poses, intrinsics(), max_depth=10.0, moving=moving) == pytest.approx(0, abs=1e-12)
    pred = gt * np.array([1.0, s])[:, None, None]
    expected = 100 * (abs(s - 1) / s + abs(s - 1)) / 2
    assert tae(pred, gt, None, poses, intrinsics(), 10.0, moving=moving) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    result = evaluate_video(1.0 / pred, gt, None, max_depth=10.0, poses=poses, K=intrinsics(), moving=moving)
    assert result["tae"] > result["tae_static"] >= 0
    with pytest.raises(UserError, match="moving-object mask"):
        tae(gt, gt, None, poses, intrinsics(), 10.0, moving=moving[:, :4])


@pytest.mark.parametrize("flicker", [1.0, 1.2])
def test_flow_tae_moves_each_object_with_its_own_motion_closed_form(flicker):
    # The scene above, with the object's motion given: it jumps 9 columns right and 8 rows down at 2 m, i.e. by
    # (9, 8) * 2 / f metres. Moved with its own motion, the true depth agrees everywhere: TAE 0. Wall pixels that
    # land on the object in the other frame (A <-> B) are hidden there and left out. A prediction whose frame-1
    # wall is scaled by s, the object exact, costs |s - 1| / s one way and |s - 1| the other on the H W - 48 wall
    # pixels compared, and 0 on the 24 object pixels, which now count.
    dist, s, f = 6.0, flicker, 50.0
    gt = np.full((2, H, W), dist)
    objects = np.zeros(gt.shape, np.uint8)
    gt[0, 2:6, 3:9], objects[0, 2:6, 3:9] = 2.0, 1
    gt[1, 10:14, 12:18], objects[1, 10:14, 12:18] = 2.0, 1
    poses = np.stack([np.eye(4), np.eye(4)])
    motion = (objects, np.stack([np.eye(4), translation(9 * 2 / f, 8 * 2 / f, 0)])[:, None])
    assert tae(gt, gt, None, poses, intrinsics(), 10.0, motion=motion) == pytest.approx(0, abs=1e-12)
    pred = gt.copy()
    pred[1][objects[1] == 0] *= s
    expected = 100 * (H * W - 48) / (H * W - 24) * (abs(s - 1) / s + abs(s - 1)) / 2
    assert tae(pred, gt, None, poses, intrinsics(), 10.0, motion=motion) == pytest.approx(expected, rel=1e-9, abs=1e-12)

    # An object that stays put but flickers: the static TAE never looks at it, the flow TAE does, in closed form.
    gt = np.full((2, H, W), dist)
    objects = np.zeros(gt.shape, np.uint8)
    gt[:, 2:6, 3:9], objects[:, 2:6, 3:9] = 2.0, 1
    pred = gt.copy()
    pred[1, 2:6, 3:9] *= s
    still = (objects, np.tile(translation(0.5, 0, 1), (2, 1, 1, 1)))
    result = evaluate_video(1.0 / pred, gt, None, max_depth=10.0, poses=poses, K=intrinsics(), moving=objects > 0,
                            motion=still)
    flow = 100 * 24 / (H * W) * (abs(s - 1) / s + abs(s - 1)) / 2
    assert tae(pred, gt, None, poses, intrinsics(), 10.0, motion=still) == pytest.approx(flow, rel=1e-9, abs=1e-12)
    assert result["tae_static"] == pytest.approx(0, abs=1e-6)  # the wall is the same in both frames once aligned
    assert result["tae_flow"] == pytest.approx(0, abs=1e-6) if s == 1 else result["tae_flow"] > flow / 2
    with pytest.raises(UserError, match="not both"):
        tae(gt, gt, None, poses, intrinsics(), 10.0, moving=objects > 0, motion=still)
    with pytest.raises(UserError, match="object indices"):
        tae(gt, gt, None, poses, intrinsics(), 10.0, motion=(objects[:, :4], still[1]))


def test_flow_tae_composes_the_objects_motion_with_the_cameras():
    # The camera moves 0.5 m forward towards a wall at 6 m and carries an object at 2 m along: the object keeps its
    # pixels and its depth, the wall comes to 5.5 m. Moved with the right composition, camera^-1 o object motion o
    # camera, the true depth agrees exactly; with the camera's motion alone, or the composition's last factor
    # inverted, the object does not.
    poses = np.stack([np.eye(4), translation(0, 0, 0.5)])
    gt = np.stack([np.full((H, W), 6.0), np.full((H, W), 5.5)])
    objects = np.zeros(gt.shape, np.uint8)
    gt[:, 14:34, 20:44], objects[:, 14:34, 20:44] = 2.0, 1
    motion = (objects, poses[:, None])  # the object's pose is the camera's
    assert tae(gt, gt, None, poses, intrinsics(), 10.0, motion=motion) == pytest.approx(0, abs=1e-12)
    assert tae(gt, gt, None, poses, intrinsics(), 10.0) > 1
    wrong = (objects, np.stack([np.eye(4), translation(0, 0, -0.5)])[:, None])
    assert tae(gt, gt, None, poses, intrinsics(), 10.0, motion=wrong) > 1


def room_depth(pose: np.ndarray, k: np.ndarray, height: int, width: int) -> np.ndarray:
    """Exact z-depth from inside a closed box room (float64 ray-box exit distances): no occlusions anywhere."""
    low, high = np.array([-3.0, -2.0, -1.0]), np.array([3.0, 2.0, 6.0])
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.linalg.inv(k) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])  # z component = 1
    direction, origin = pose[:3, :3] @ rays, pose[:3, 3:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        exits = np.where(direction > 0, (high[:, None] - origin) / direction,
                         np.where(direction < 0, (low[:, None] - origin) / direction, np.inf))
    return exits.min(axis=0).reshape(height, width)


def room_video(scale: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    poses = np.stack([np.eye(4), translation(0.15, -0.05, 0.3)])
    poses[1, :3, :3] = Rotation.from_euler("xyz", [2, -3, 1], degrees=True).as_matrix()
    k = intrinsics(scale)
    depth = np.stack([room_depth(p, k, H * scale, W * scale) for p in poses])
    return depth, poses, k


def test_tae_consistent_room_is_near_zero_and_only_discretisation():
    depth, poses, k = room_video()
    consistent = tae(depth, depth, None, poses, k, max_depth=10.0)
    # The only error left is rounding projections to the nearest pixel: it halves when resolution doubles.
    depth2, poses2, k2 = room_video(scale=2)
    finer = tae(depth2, depth2, None, poses2, k2, max_depth=10.0)
    assert consistent < 0.5
    assert finer < 0.6 * consistent
    perturbed = depth.copy()
    perturbed[1] *= 1.05
    assert 4.0 < tae(perturbed, depth, None, poses, k, max_depth=10.0) < 5.5


def test_tae_respects_masks_and_skips_lost_poses():
    depth, poses, k = room_video()
    reference = tae(depth, depth, None, poses, k, max_depth=10.0)
    corrupted = depth.copy()
    corrupted[1, :, : W // 2] *= 3.0
    valid = np.ones(depth.shape, bool)
    valid[1, :, : W // 2] = False
    assert tae(corrupted, depth, None, poses, k, max_depth=10.0) > 10 * reference
    assert tae(corrupted, depth, valid, poses, k, max_depth=10.0) < 0.5
    # A third frame whose tracking was lost (ScanNet writes -inf) adds no pair.
    lost = np.concatenate([poses, np.full((1, 4, 4), -np.inf)])
    three = np.concatenate([depth, depth[:1]])
    assert tae(three, three, None, lost, k, max_depth=10.0) == pytest.approx(reference, rel=1e-12)
    # A frame without any valid ground truth neither adds zero-error terms nor breaks the mean ...
    blind = np.concatenate([poses, poses[:1]])
    no_gt = np.ones(three.shape, bool)
    no_gt[2] = False
    assert tae(three, three, no_gt, blind, k, max_depth=10.0) == pytest.approx(reference, rel=1e-12)
    # ... and a video with no overlap at all has no TAE.
    assert np.isnan(tae(depth, depth, np.zeros(depth.shape, bool), poses, k, max_depth=10.0))


def test_evaluate_video_resizes_prediction_and_reports_all_metrics():
    depth, poses, k = room_video()
    pred_full = 2.0 / depth + 0.1
    low_res = resize_prediction(pred_full.astype(np.float32), H // 2, W // 2)
    assert low_res.shape == (2, H // 2, W // 2)
    result = evaluate_video(low_res, depth, None, max_depth=10.0, poses=poses, K=k)
    assert set(result) == {"abs_rel", "delta1", "tae", "tae_static", "tae_flow", "n_pixels"}
    assert result["tae_static"] is None and result["tae_flow"] is None
    assert result["n_pixels"] == depth.size
    assert result["abs_rel"] < 0.02 and result["delta1"] > 99.0 and result["tae"] < 2.0
    exact = evaluate_video(pred_full, depth, None, max_depth=10.0)
    assert exact["abs_rel"] < 1e-6 and exact["tae"] is None
    with pytest.raises(UserError, match="same number of frames"):
        evaluate_video(pred_full[:1], depth, None, max_depth=10.0)


def test_resize_prediction_is_bilinear():
    ramp = np.tile(np.arange(4, dtype=np.float32), (1, 3, 1))  # value = column index
    up = resize_prediction(ramp, 3, 8)
    # Pixel-centre bilinear: output column j samples input x = (j + 0.5) / 2 - 0.5, clamped at the borders.
    expected = np.clip((np.arange(8) + 0.5) / 2 - 0.5, 0, 3)
    np.testing.assert_allclose(up[0, 1], expected, atol=1e-5)


def test_mean_over_videos_skips_missing_metrics():
    summary = mean_over_videos([
        dict(abs_rel=0.1, delta1=90.0, tae=None),
        dict(abs_rel=0.3, delta1=80.0, tae=2.0, tae_static=0.5),
        dict(abs_rel=0.2, delta1=70.0, tae=float("nan"), tae_flow=0.25),
    ])
    assert summary == dict(abs_rel=pytest.approx(0.2), delta1=pytest.approx(80.0), tae=2.0, tae_static=0.5,
                           tae_flow=0.25, n_videos=3)
    assert mean_over_videos([dict(abs_rel=0.1, delta1=90.0, tae=1.0)])["tae_static"] is None

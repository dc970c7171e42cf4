"""Video depth evaluation: per-video affine alignment, AbsRel, delta1 and temporal alignment error (TAE).

RollingDepth predicts affine-invariant *inverse* depth, so a prediction only becomes metric after one scale
and one shift are fitted against the ground truth. Following the paper's protocol the fit is made ONCE per
video, on every valid pixel of every frame: a per-frame fit would hide exactly the temporal flicker the
benchmark is meant to expose. All fits and sums run in float64 because a video has tens of millions of
pixels and float32 accumulators lose the digits the metrics are quoted with.

Units: ``abs_rel`` is a fraction (the paper's tables print it x100), ``delta1`` and ``tae`` are percentages.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from PIL import Image

from ..errors import UserError

logger = logging.getLogger(__name__)

Space = Literal["disparity", "depth"]

# Elements per block when streaming sums over a video: large enough for numpy to be efficient, small enough
# that the float64 copies of one block stay a few tens of MB however long the video is.
_BLOCK = 1 << 22


def fit_scale_shift(pred: np.ndarray, target: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(a, b)`` minimising ``sum((a * pred + b - target)^2)`` over the ``valid`` pixels.

    Sums are streamed block by block and merged with the pairwise (Chan et al.) update of means and
    centred co-moments, so memory stays flat for any video length and there is no catastrophic
    cancellation from ``sum(x^2) - sum(x)^2 / n`` when the values have a large mean.

    Parameters
    ----------
    pred, target : np.ndarray
        Same shape, any float dtype.
    valid : np.ndarray
        Boolean mask, same shape.

    Returns
    -------
    tuple[float, float]
        Scale ``a`` and shift ``b``. If ``pred`` is constant over the valid pixels the scale is not
        identifiable; we then return ``a = 0`` and ``b = mean(target)``, the best constant fit.
    """
    if pred.shape != target.shape or pred.shape != valid.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape}, target {target.shape}, valid {valid.shape}")
    x_all, y_all, m_all = pred.reshape(-1), target.reshape(-1), valid.reshape(-1)
    n = 0
    mean_x = mean_y = c_xx = c_xy = 0.0
    for start in range(0, x_all.size, _BLOCK):
        m = m_all[start : start + _BLOCK]
        x = x_all[start : start + _BLOCK][m].astype(np.float64)
        if x.size == 0:
            continue
        y = y_all[start : start + _BLOCK][m].astype(np.float64)
        n_b = x.size
        mx_b, my_b = x.mean(), y.mean()
        dx_b, dy_b = x - mx_b, y - my_b
        cxx_b, cxy_b = float(dx_b @ dx_b), float(dx_b @ dy_b)
        n_new = n + n_b
        delta_x, delta_y = mx_b - mean_x, my_b - mean_y
        weight = n * n_b / n_new
        c_xx += cxx_b + delta_x * delta_x * weight
        c_xy += cxy_b + delta_x * delta_y * weight
        mean_x += delta_x * n_b / n_new
        mean_y += delta_y * n_b / n_new
        n = n_new
    if n == 0:
        raise UserError("no valid ground-truth pixels to fit the scale and shift on")
    if c_xx <= 0.0:
        return 0.0, float(mean_y)
    a = c_xy / c_xx
    return float(a), float(mean_y - a * mean_x)


def eval_mask(gt_depth: np.ndarray, valid: np.ndarray | None, min_depth: float, max_depth: float) -> np.ndarray:
    """Pixels that count: the caller's mask AND finite ground truth inside the dataset's range (min, max]."""
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt_depth) & (gt_depth > min_depth) & (gt_depth <= max_depth)
    return mask if valid is None else mask & valid.astype(bool)


def align_depth(
    pred_inv: np.ndarray,
    gt_depth: np.ndarray,
    valid: np.ndarray | None,
    space: Space = "disparity",
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
) -> np.ndarray:
    """Metric depth from an affine-invariant prediction, with one scale and shift for the whole array.

    Parameters
    ----------
    pred_inv : np.ndarray
        Prediction, same shape as ``gt_depth`` (a single frame or a whole video).
    gt_depth : np.ndarray
        Ground-truth depth in metres.
    valid : np.ndarray or None
        Extra mask of usable ground truth (combined with the depth range).
    space : {"disparity", "depth"}
        ``"disparity"``: ``pred_inv`` is affine-invariant inverse depth (RollingDepth's output); fit
        ``a * pred + b`` to ``1 / gt``, clip the disparity to ``[1/max_depth, 1/min_depth]`` and invert.
        ``"depth"``: ``pred_inv`` is treated as affine-invariant *depth* (e.g. a depth-predicting baseline);
        fit ``a * pred + b`` to ``gt`` directly and clip to ``[min_depth, max_depth]``.
    min_depth, max_depth : float
        The dataset's depth range in metres.

    Returns
    -------
    np.ndarray
        float32 metric depth, same shape, within ``[min_depth, max_depth]`` everywhere.
    """
    mask = eval_mask(gt_depth, valid, min_depth, max_depth)
    pred = np.asarray(pred_inv, dtype=np.float32)
    if space == "disparity":
        # float32 targets keep a long video's copies small; the fit itself still accumulates in float64.
        target = np.zeros(gt_depth.shape, dtype=np.float32)
        np.divide(1.0, gt_depth, out=target, where=mask)
        a, b = fit_scale_shift(pred, target, mask)
        disparity = np.clip(np.float32(a) * pred + np.float32(b), 1.0 / max_depth, 1.0 / min_depth)
        return (1.0 / disparity).astype(np.float32)
    if space == "depth":
        a, b = fit_scale_shift(pred, gt_depth, mask)
        return np.clip(np.float32(a) * pred + np.float32(b), min_depth, max_depth).astype(np.float32)
    raise UserError(f"unknown alignment space {space!r}: use 'disparity' or 'depth'")


def _as_frames(x: np.ndarray) -> np.ndarray:
    """View any array as a stack of 2-D frames (a single image becomes a stack of one)."""
    return x.reshape((-1,) + x.shape[-2:]) if x.ndim >= 2 else x.reshape(1, -1)


def _pooled_mean(per_pixel, depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray, name: str) -> float:
    """Mean of ``per_pixel(d, gt)`` over all valid pixels, streamed frame by frame in float64."""
    total, count = 0.0, 0
    for d, g, m in zip(_as_frames(depth), _as_frames(gt_depth), _as_frames(valid)):
        values = per_pixel(d[m].astype(np.float64), g[m].astype(np.float64))
        total += float(values.sum())
        count += values.size
    if count == 0:
        raise UserError(f"no valid ground-truth pixels to compute {name} on")
    return total / count


def abs_rel(depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> float:
    """Mean of ``|d - gt| / gt`` over the valid pixels, pooled (not averaged per frame); a fraction."""
    return _pooled_mean(lambda d, g: np.abs(d - g) / g, depth, gt_depth, valid, "AbsRel")


def delta1(depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> float:
    """Percentage of valid pixels with ``max(d / gt, gt / d) < 1.25``, pooled over all of them."""
    return 100.0 * _pooled_mean(lambda d, g: np.maximum(d / g, g / d) < 1.25, depth, gt_depth, valid, "delta1")


def _pair_error(
    depth_src: np.ndarray,
    depth_dst: np.ndarray,
    mask_src: np.ndarray,
    mask_dst: np.ndarray,
    dst_from_src: np.ndarray,
    k_src: np.ndarray,
    k_dst: np.ndarray,
) -> tuple[float, int]:
    """Sum of relative reprojection errors from one frame into another, and how many pixels it covers.

    Every valid source pixel is back-projected with its predicted depth, moved by the rigid transform,
    projected and rounded to the nearest destination pixel (the established TAE convention). Its
    transformed depth ``z'`` is compared with the destination prediction there: ``|d_dst - z'| / d_dst``.
    Points behind the camera, outside the image or on invalid destination ground truth are skipped.
    """
    height, width = depth_src.shape
    v, u = np.nonzero(mask_src)
    z = depth_src[v, u].astype(np.float64)
    pixels = np.stack([u, v, np.ones_like(u)]).astype(np.float64)
    points = (np.linalg.inv(k_src) @ pixels) * z
    points = dst_from_src[:3, :3] @ points + dst_from_src[:3, 3:4]
    z_dst = points[2]
    front = z_dst > 1e-9
    projected = k_dst @ points[:, front]
    u_dst = np.floor(projected[0] / projected[2] + 0.5).astype(np.int64)
    v_dst = np.floor(projected[1] / projected[2] + 0.5).astype(np.int64)
    z_dst = z_dst[front]
    inside = (u_dst >= 0) & (u_dst < width) & (v_dst >= 0) & (v_dst < height)
    u_dst, v_dst, z_dst = u_dst[inside], v_dst[inside], z_dst[inside]
    hit = mask_dst[v_dst, u_dst]
    reference = depth_dst[v_dst[hit], u_dst[hit]].astype(np.float64)
    return float(np.sum(np.abs(reference - z_dst[hit]) / reference)), int(hit.sum())


def tae(
    depth: np.ndarray,
    gt_depth: np.ndarray,
    valid: np.ndarray | None,
    poses: np.ndarray,
    K: np.ndarray,
    max_depth: float,
    min_depth: float = 1e-3,
    moving: np.ndarray | None = None,
    motion: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """Temporal alignment error in percent: how well consecutive aligned depth maps agree in 3D.

    For each consecutive pair (i, i+1) the aligned prediction of frame i is reprojected into frame i+1
    with the ground-truth camera motion and compared with the prediction of frame i+1 (AbsRel), and the
    same from i+1 into i. Only pixels with valid ground truth in the source frame that land on valid
    ground truth in the destination frame count. Each direction's mean is one term; the result is the
    mean of all terms x100. Directions with no overlapping pixel and pairs with a non-finite pose (ScanNet
    marks lost tracking with ``-inf``) are left out rather than counted as zero error.

    Parameters
    ----------
    depth : np.ndarray
        [N, H, W] aligned metric depth of the prediction (e.g. from :func:`align_depth`).
    gt_depth : np.ndarray
        [N, H, W] ground-truth depth, only used to decide which pixels are valid.
    valid : np.ndarray or None
        [N, H, W] extra ground-truth mask.
    poses : np.ndarray
        [N, 4, 4] camera-to-world, OpenCV axes (x right, y down, z forward).
    K : np.ndarray
        [3, 3] intrinsics at the ground-truth resolution, or [N, 3, 3] per frame.
    max_depth, min_depth : float
        Dataset depth range.
    moving : np.ndarray or None
        [N, H, W] bool, True on independently moving objects. Their pixels are left out as sources and as
        destinations: the camera's motion does not move them, so even the true depth disagrees there. With
        it, TAE measures flicker on the static scene only.
    motion : (np.ndarray, np.ndarray) or None
        The flow TAE: ``(objects, object_poses)``, uint8 [N, H, W] index of the moving object seen at each pixel
        (0: the static scene) and [N, K, 4, 4] object-to-world of each object in every frame. Each pixel then
        moves with its own object (camera and object motion), and a pixel counts only where it lands on the same
        object, so the true depth scores (near) zero on every pixel, moving objects included; occlusion by
        another object is left out rather than counted. Not together with ``moving``.

    Returns
    -------
    float
        TAE in percent; NaN if no pair had any usable pixel.
    """
    n_frames = depth.shape[0]
    if poses.shape != (n_frames, 4, 4):
        raise UserError(f"poses must be [{n_frames}, 4, 4] camera-to-world matrices, got {poses.shape}")
    intrinsics = np.broadcast_to(np.asarray(K, dtype=np.float64), (n_frames, 3, 3))
    mask = eval_mask(gt_depth, valid, min_depth, max_depth)
    if moving is not None:
        if moving.shape != mask.shape:
            raise UserError(f"the moving-object mask is {moving.shape}, the ground truth {mask.shape}")
        mask = mask & ~moving.astype(bool)
    if motion is not None:
        if moving is not None:
            raise UserError("TAE takes either the moving-object mask or the objects' motion, not both")
        objects, object_poses = np.asarray(motion[0]), np.asarray(motion[1], dtype=np.float64)
        if objects.shape != mask.shape or object_poses.shape[:1] + object_poses.shape[2:] != (n_frames, 4, 4):
            raise UserError(f"object indices {objects.shape} and poses {object_poses.shape} must be [{n_frames}, "
                            f"H, W] like the ground truth {mask.shape} and [{n_frames}, K, 4, 4]")
    poses = poses.astype(np.float64)
    terms = []
    for i in range(n_frames - 1):
        j = i + 1
        if not (np.all(np.isfinite(poses[i])) and np.all(np.isfinite(poses[j]))):
            continue
        for src, dst in ((i, j), (j, i)):
            to_dst = np.linalg.inv(poses[dst])
            camera = to_dst @ poses[src]
            groups = [(mask[src], mask[dst], camera)]  # (source pixels, destination pixels, their rigid motion)
            if motion is not None:  # each object moves by its own motion and lands only on itself
                groups = [(mask[src] & (objects[src] == k), mask[dst] & (objects[dst] == k),
                           camera if k == 0 else to_dst @ object_poses[dst, k - 1]
                           @ np.linalg.inv(object_poses[src, k - 1]) @ poses[src])
                          for k in np.unique(objects[src][mask[src]])]
            total = count = 0
            for mask_src, mask_dst, dst_from_src in groups:
                pair_total, pair_count = _pair_error(depth[src], depth[dst], mask_src, mask_dst, dst_from_src,
                                                     intrinsics[src], intrinsics[dst])
                total, count = total + pair_total, count + pair_count
            if count:
                terms.append(total / count)
    if not terms:
        logger.warning("TAE: no consecutive frame pair had overlapping valid pixels")
        return float("nan")
    return float(100.0 * np.mean(terms))


def resize_prediction(pred: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinearly resize a [N, h, w] prediction to [N, height, width] (PIL, antialiased when shrinking).

    Predictions are often made at a working resolution; metrics are computed at the ground truth's
    native resolution so that no ground-truth value is ever interpolated.
    """
    if pred.shape[1:] == (height, width):
        return pred
    out = np.empty((pred.shape[0], height, width), dtype=np.float32)
    for index, frame in enumerate(pred):
        image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.float32))
        out[index] = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
    return out


def evaluate_video(
    pred_inv: np.ndarray,
    gt_depth: np.ndarray,
    valid: np.ndarray | None,
    max_depth: float,
    min_depth: float = 1e-3,
    space: Space = "disparity",
    poses: np.ndarray | None = None,
    K: np.ndarray | None = None,
    moving: np.ndarray | None = None,
    motion: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """All metrics of one video: align once, then AbsRel, delta1 and (given poses and K) TAE.

    Parameters
    ----------
    pred_inv : np.ndarray
        [N, h, w] prediction (affine-invariant inverse depth, or depth with ``space="depth"``). Resized
        bilinearly to the ground-truth size if it differs.
    gt_depth : np.ndarray
        [N, H, W] ground-truth depth in metres.
    valid : np.ndarray or None
        [N, H, W] ground-truth validity; combined with ``min_depth < gt <= max_depth``.
    max_depth, min_depth : float
        The dataset's depth range (caps: ScanNet 10, Bonn 10, KITTI 80, Sintel 70 m).
    space : {"disparity", "depth"}
        Alignment space, see :func:`align_depth`.
    poses, K : np.ndarray or None
        Camera-to-world poses [N, 4, 4] and intrinsics ([3, 3] or [N, 3, 3]) for TAE.
    moving : np.ndarray or None
        [N, H, W] bool mask of moving objects; with it (and poses and K) also the static-scene TAE.
    motion : (np.ndarray, np.ndarray) or None
        The objects' indices and poses (see :func:`tae`); with them (and poses and K) also the flow TAE.

    Returns
    -------
    dict
        ``abs_rel`` (fraction), ``delta1`` (%), ``tae`` (% or None without poses/K), ``tae_static`` (TAE off
        the moving objects, % or None without ``moving``), ``tae_flow`` (TAE along every pixel's true motion, % or
        None without ``motion``), ``n_pixels``.
    """
    if pred_inv.ndim != 3 or gt_depth.ndim != 3 or pred_inv.shape[0] != gt_depth.shape[0]:
        raise UserError(
            f"prediction {pred_inv.shape} and ground truth {gt_depth.shape} must both be [N, H, W] "
            "with the same number of frames"
        )
    pred = resize_prediction(pred_inv, *gt_depth.shape[1:])
    mask = eval_mask(gt_depth, valid, min_depth, max_depth)
    aligned = align_depth(pred, gt_depth, mask, space, min_depth, max_depth)
    temporal = static = flow = None
    if poses is not None and K is not None:
        temporal = tae(aligned, gt_depth, mask, poses, K, max_depth, min_depth)
        if moving is not None:
            static = tae(aligned, gt_depth, mask, poses, K, max_depth, min_depth, moving)
        if motion is not None:
            flow = tae(aligned, gt_depth, mask, poses, K, max_depth, min_depth, motion=motion)
    return dict(
        abs_rel=abs_rel(aligned, gt_depth, mask),
        delta1=delta1(aligned, gt_depth, mask),
        tae=temporal,
        tae_static=static,
        tae_flow=flow,
        n_pixels=int(mask.sum()),
    )


def mean_over_videos(results: list[dict]) -> dict:
    """Benchmark summary: the unweighted mean of each metric over videos (each video counts once).

    A metric missing (None or NaN) for some videos is averaged over the others; None if missing for all.
    """
    summary = {}
    for key in ("abs_rel", "delta1", "tae", "tae_static", "tae_flow"):
        values = [r[key] for r in results if r.get(key) is not None and np.isfinite(r[key])]
        summary[key] = float(np.mean(values)) if values else None
    summary["n_videos"] = len(results)
    return summary

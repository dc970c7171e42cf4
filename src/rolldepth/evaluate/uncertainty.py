"""Does the snippets' disagreement say where the depth is wrong? Sparsification curves and AUSE.

``--save-uncertainty`` (and ``rolldepth eval --uncertainty``) gives at every pixel the standard deviation of the
co-aligned snippet predictions averaged into it. Scored here as a ranking of the pixels: remove the most uncertain
first, a tenth at a time, and follow the mean error of the pixels left (the sparsification curve of Ilg et al.,
2018). The oracle removes the largest errors first, the best any ranking can do; chance leaves the mean error flat;
the depth's own edges (its spatial gradient) are a ranking any depth map gives for free, since errors gather at
depth edges. AUSE is the mean gap between a ranking's curve and the oracle's (lower is better), and the share of
chance's gap a ranking closes, ``1 - AUSE / AUSE(chance)``, does not depend on the video's disparity scale.
"""

from __future__ import annotations

import numpy as np

from .metrics import eval_mask, fit_scale_shift, resize_prediction

FRACTIONS = np.round(np.arange(0.0, 1.0, 0.1), 2)  # shares of the pixels removed
RANKINGS = ("spread", "edges", "oracle", "chance")


def sparsification(error: np.ndarray, ranking: np.ndarray) -> np.ndarray:
    """Mean ``error`` of the pixels left after removing each of ``FRACTIONS`` of them, largest ``ranking`` first."""
    error = np.asarray(error, dtype=np.float64).reshape(-1)
    order = np.argsort(-np.asarray(ranking, dtype=np.float64).reshape(-1), kind="stable")
    kept_sums = np.cumsum(error[order][::-1])[::-1]  # kept_sums[i]: the error of every pixel from rank i on
    removed = np.round(FRACTIONS * error.size).astype(np.int64)
    return kept_sums[removed] / (error.size - removed)


def edge_strength(depth: np.ndarray) -> np.ndarray:
    """Magnitude of each frame's spatial gradient [N, H, W] (central differences)."""
    gy, gx = np.gradient(np.asarray(depth, dtype=np.float64), axis=(1, 2))
    return np.hypot(gx, gy)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation of two samples (ties broken by order, which is enough for continuous values)."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def score_uncertainty(depth: np.ndarray, spread: np.ndarray, sample) -> dict:
    """Sparsification curves and AUSE of the spread, the depth's edges, the oracle and chance, on one video, for two
    errors.

    The prediction and the spread are resized to the ground truth's size (bilinear, as ``rolldepth eval`` resizes a
    prediction) and the prediction is fitted to the true disparity as it is fitted there (``a * depth + b``, one
    scale and shift per video). The spread is a standard deviation of the prediction itself, so it is paired first
    with the error in that space, the aligned disparity's absolute error (``disparity``), then with the per-pixel
    AbsRel of the aligned depth (``abs_rel``), where a disparity error ``e`` at disparity ``x`` counts about
    ``e / x``: there the ranking is the spread relative to the aligned disparity, ``|a| spread / x``, and the
    edges' likewise.

    Returns
    -------
    dict
        Per error (``"disparity"``, ``"abs_rel"``): per ranking its ``curve`` (but chance's) and ``ause``, the
        spread's ``gap_closed`` and the edges' ``edges_gap_closed``, the ``mean`` error and the Spearman
        correlation of spread and error.
    """
    mask = eval_mask(sample.depth, sample.valid, sample.min_depth, sample.max_depth)
    truth = np.zeros(sample.depth.shape, dtype=np.float64)
    np.divide(1.0, sample.depth, out=truth, where=mask)
    depth, spread = (np.asarray(x, dtype=np.float32) for x in (depth, spread))
    if depth.shape != sample.depth.shape:
        depth, spread = (resize_prediction(x, *sample.depth.shape[1:]) for x in (depth, spread))
    pred = depth.astype(np.float64)
    a, b = fit_scale_shift(pred, truth, mask)
    disparity = np.clip(a * pred + b, 1.0 / sample.max_depth, 1.0 / sample.min_depth)
    spread, edges = np.asarray(spread, dtype=np.float64) * abs(a), edge_strength(depth) * abs(a)
    errors = {"disparity": (np.abs(disparity - truth)[mask], (spread[mask], edges[mask])),
              "abs_rel": ((np.abs(1 / disparity - sample.depth) / np.where(mask, sample.depth, 1))[mask],
                          (spread[mask] / disparity[mask], edges[mask] / disparity[mask]))}
    result = {}
    for space, (error, (by_spread, by_edges)) in errors.items():
        oracle = sparsification(error, error)
        curves = {"spread": sparsification(error, by_spread), "edges": sparsification(error, by_edges),
                  "oracle": oracle}
        scores = {name: {"curve": c.tolist(), "ause": float(np.mean(c - oracle))} for name, c in curves.items()}
        scores["chance"] = {"ause": float(np.mean(error.mean() - oracle))}
        chance = scores["chance"]["ause"]
        result[space] = {
            **scores, "mean": float(error.mean()), "spearman": spearman(by_spread, error),
            "gap_closed": 1 - scores["spread"]["ause"] / chance if chance > 0 else None,
            "edges_gap_closed": 1 - scores["edges"]["ause"] / chance if chance > 0 else None,
        }
    return result

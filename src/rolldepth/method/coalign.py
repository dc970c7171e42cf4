"""Co-alignment: one scale ``s_k`` and shift ``t_k`` per snippet so that overlapping snippets agree.

Every snippet prediction is affine-invariant inverse depth, so each needs its own ``s_k x + t_k``. The official
implementation minimises, with 2000 Adam steps, a per-frame normalised L1 disagreement between each aligned
snippet and the per-frame mean of all aligned snippets (in inverse depth and in depth), plus soft penalties
keeping ``s >= 1`` and ``t`` small. This module holds

* :func:`official_objective`, that loss evaluated exactly in float64 (the target taken at the same ``s, t``):
  the yardstick any solver is judged by;
* :func:`adam_coalign`, the official Adam procedure (index-add instead of a dense ``[rows, frames, pixels]``
  tensor, identical loss values), kept as the baseline;
* :func:`coalign`, our solver of the same objective: damped Gauss-Newton steps on an iteratively reweighted
  quadratic model of the L1 terms, one sparse linear solve per step over all snippets at once, and a backtracking
  line search on the exact objective (so it never goes uphill).

Layout shared by all three: group ``g`` has snippets of ``L_g`` frames; the official dense tensor has one "row"
per (group, position in snippet), ``R = sum_g L_g`` rows, and each frame meets at most one snippet per row. We
work frame by frame in that row layout, gathering small chunks of frames at a time, so memory stays at the size
of the input plus one chunk.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import UserError
from ..storage.workdir import rows_in_blocks
from .snippets import SnippetGroup

log = logging.getLogger(__name__)

DEPTH_CLIP = 1e-3  # aligned inverse depth is clipped here before taking 1/x for the depth-space term
DEPTH_WEIGHT = 1.0  # weight of the depth-space term
SCALE_PENALTY = 0.1  # weight of mean(max(0, 1 - s)^2) per group
SHIFT_PENALTY = 10.0  # weight of mean(t^2) per group
CHUNK_ELEMENTS = 1 << 20  # frames are processed in chunks of about this many (row, pixel) values


@dataclass
class CoalignResult:
    """Per-group scales and shifts (``[K_g]`` float64 each), the official objective reached, and the cost."""

    scales: list[np.ndarray]
    shifts: list[np.ndarray]
    objective: float
    iterations: int
    seconds: float


BORDER = 2  # pixels cropped on every side before co-alignment (decoder edge artefacts)


def check_coalign_size(height: int, width: int, border: int = BORDER) -> None:
    """Refuse frames (at the processing size) that leave no pixel once ``border`` is cropped on every side."""
    if height <= 2 * border or width <= 2 * border:
        raise UserError(f"frames of {width}x{height} pixels (width x height) are too small to co-align: both sides "
                        f"need more than {2 * border} px (a border of {border} px is cropped)")


def subsample(x: np.ndarray, border: int = BORDER, stride: int = 10) -> np.ndarray:
    """Crop ``border`` pixels on every side (decoder edge artefacts), keep every ``stride``-th pixel.

    Co-alignment only estimates two numbers per snippet, so a sparse pixel grid carries all the information
    needed at a fraction of the cost. Works on any ``[..., H, W]`` array.
    """
    height, width = x.shape[-2:]
    check_coalign_size(height, width, border)
    return x[..., border : height - border : stride, border : width - border : stride]


# ------------------------------------------------------------------------------------------------------------------
class _Layout:
    """Index bookkeeping between snippets (group, k, position j) and (frame, row) slots of the dense layout."""

    def __init__(self, preds: list[np.ndarray], groups: list[SnippetGroup], n_frames: int):
        if len(preds) != len(groups):
            raise ValueError(f"{len(preds)} prediction arrays for {len(groups)} snippet groups")
        self.groups = groups
        self.n_frames = n_frames
        self.flat = []
        for pred, group in zip(preds, groups):
            if pred.shape[:2] != group.indices.shape:
                raise ValueError(f"predictions {pred.shape} do not match snippet indices {group.indices.shape}")
            self.flat.append(pred.reshape(pred.shape[0], pred.shape[1], -1))
        self.n_pixels = self.flat[0].shape[-1]
        self.sizes = [len(g.indices) for g in groups]
        self.snippet_offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.n_snippets = int(self.snippet_offsets[-1])
        # one (group, position) pair per row of the official dense tensor
        self.rows = [(g, j) for g, group in enumerate(groups) for j in range(group.indices.shape[1])]
        self.n_rows = len(self.rows)
        self.n_entries = self.n_rows * n_frames * self.n_pixels  # the official loss averages over all of them
        self.group_of = np.repeat(np.arange(len(groups)), self.sizes)
        self.chunk = max(1, CHUNK_ELEMENTS // max(1, self.n_rows * self.n_pixels))
        # global snippet id in every (frame, row) slot, -1 where that row has no snippet on that frame
        self.slot_table = np.full((n_frames, self.n_rows), -1, dtype=np.int64)
        for r, (g, j) in enumerate(self.rows):
            frames = groups[g].indices[:, j]
            if frames.min(initial=0) < 0 or frames.max(initial=0) >= n_frames or len(np.unique(frames)) < len(frames):
                raise ValueError(f"snippet indices of group {g} do not fit a {n_frames}-frame rolling layout")
            self.slot_table[frames, r] = self.snippet_offsets[g] + np.arange(len(frames))
        if (self.slot_table < 0).all(axis=1).any():
            raise ValueError("some frames are in no snippet")

    def chunks(self):
        """Frame ranges ``[n0, n1)`` small enough to gather densely."""
        for n0 in range(0, self.n_frames, self.chunk):
            yield n0, min(self.n_frames, n0 + self.chunk)

    def gather(self, n0: int, n1: int) -> tuple[np.ndarray, np.ndarray]:
        """Predictions of frames ``[n0, n1)`` as ``[frames, rows, pixels]`` float64 (zeros in empty slots)."""
        slots = self.slot_table[n0:n1]
        x = np.zeros((n1 - n0, self.n_rows, self.n_pixels))
        for r, (g, j) in enumerate(self.rows):
            ok = slots[:, r] >= 0
            x[ok, r] = self.flat[g][slots[ok, r] - self.snippet_offsets[g], j]
        return x, slots

    def split(self, values: np.ndarray) -> list[np.ndarray]:
        """Flat per-snippet values -> one array per group."""
        return [values[a:b].copy() for a, b in zip(self.snippet_offsets[:-1], self.snippet_offsets[1:])]

    def join(self, per_group, name: str) -> np.ndarray:
        """One array per group -> flat per-snippet float64 values (shape-checked)."""
        out = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in per_group])
        if len(per_group) != len(self.groups) or out.shape != (self.n_snippets,):
            raise ValueError(f"{name}: expected {self.sizes} values per group")
        return out


def _disagreement(values, mask3, counts):
    """One space (inverse depth or depth) of one chunk: residuals against the per-frame target, their L1 sum
    per frame and the normaliser ``mean_p |target|`` (values and residuals are zero in empty slots)."""
    target = values.sum(axis=1)
    target /= counts[:, None]
    r = values - target[:, None, :]
    r *= mask3
    l1 = np.abs(r).sum(axis=(1, 2))
    return target, r, l1, np.abs(target).mean(axis=1)


def _disagreement_gradient(target, r, l1, norm, mask3, counts, n_entries):
    """Derivative of ``sum_frames l1 / norm / n_entries`` with respect to every slot value, including how the
    target (the mean over the frame's slots) and the normaliser move with the values."""
    sign = np.sign(r)
    through_target = sign.sum(axis=1) / counts[:, None]
    through_norm = (l1 / norm**2 / target.shape[1])[:, None] * np.sign(target) / counts[:, None]
    sign -= through_target[:, None, :]
    sign /= norm[:, None, None]
    sign -= through_norm[:, None, :]
    sign *= mask3 / n_entries
    return sign


def _aligned(layout: "_Layout", n0: int, n1: int, scales, shifts):
    """Frames ``[n0, n1)`` aligned: the raw predictions ``x`` per slot, the slot mask (also as ``mask3``), the
    snippet ids, the aligned disparity ``a`` and depth, and the number of snippets per frame."""
    x, slots = layout.gather(n0, n1)
    occupied = slots >= 0
    mask = occupied.astype(np.float64)
    mask3 = mask[:, :, None]
    ids = np.where(occupied, slots, 0)
    a = scales[ids][:, :, None] * mask3 * x
    a += (shifts[ids] * mask)[:, :, None]
    depth = mask3 / np.maximum(a, DEPTH_CLIP)
    counts = mask.sum(axis=1)
    return x, mask, mask3, ids, a, depth, counts


def _chunk(layout: "_Layout", n0: int, n1: int, scales, shifts, model: bool):
    """Objective contribution of frames ``[n0, n1)``; with ``model`` also its gradient pieces and GN blocks.

    Returns ``value`` or ``(value, ids, mask, grad_s, grad_t, blocks)`` where ``grad_*[f, row]`` is the
    derivative with respect to the parameters of the snippet in slot ``(f, row)`` (to be summed per snippet)
    and ``blocks`` the ``[frames, 2R, 2R]`` Gauss-Newton blocks of both spaces.
    """
    x, mask, mask3, ids, a, depth, counts = _aligned(layout, n0, n1, scales, shifts)
    value = 0.0
    spaces = []
    for weight, values in ((1.0, a), (DEPTH_WEIGHT, depth)):
        target, r, l1, norm = _disagreement(values, mask3, counts)
        value += weight * float(np.sum(l1 / norm)) / layout.n_entries
        spaces.append((weight, values, target, r, l1, norm))
    if not model:
        return value

    grad_s = np.zeros(mask.shape)
    grad_t = np.zeros(mask.shape)
    blocks = 0.0
    for weight, values, target, r, l1, norm in spaces:
        dvalues = _disagreement_gradient(target, r, l1, norm, mask3, counts, layout.n_entries)
        if values is a:
            dvda = mask3
        else:  # d(1/a)/da = -1/a^2, zero where the clip is active
            dvda = np.where(a > DEPTH_CLIP, -(depth**2), 0.0)
            dvalues *= dvda
        grad_s += weight * (dvalues * x).sum(axis=2)
        grad_t += weight * dvalues.sum(axis=2)
        z_t = np.broadcast_to(dvda, x.shape).astype(np.float32)
        scale = weight / (layout.n_entries * norm)
        blocks = blocks + _gauss_newton_blocks(r, l1, norm, z_t * x, z_t, mask, counts) * scale[:, None, None]
    return value, ids, mask, grad_s, grad_t, blocks


def _penalty(layout: "_Layout", scales: np.ndarray, shifts: np.ndarray):
    """Soft constraints, summed over groups of their per-group means: value, gradients and diagonal Hessians."""
    per = 1.0 / np.asarray(layout.sizes, dtype=np.float64)[layout.group_of]  # 1/K_g for each snippet
    below = np.maximum(0.0, 1.0 - scales)
    value = float(np.sum(per * (SCALE_PENALTY * below**2 + SHIFT_PENALTY * shifts**2)))
    grad_s, grad_t = -2 * SCALE_PENALTY * per * below, 2 * SHIFT_PENALTY * per * shifts
    hess_s, hess_t = 2 * SCALE_PENALTY * per * (scales < 1), 2 * SHIFT_PENALTY * per
    return value, grad_s, grad_t, hess_s, hess_t


def _evaluate(layout: "_Layout", scales, shifts, model: bool = False):
    """Official objective at ``(scales, shifts)``; with ``model`` also its exact gradient and a Gauss-Newton
    Hessian (sparse ``[2Q, 2Q]``, scales first then shifts).

    The Hessian model replaces each L1 term ``|r|`` by ``r^2 / (2 max(|r|, floor))`` around the current point
    (``floor`` a fraction of the frame's mean residual, so the curvature is that of the residual *distribution*,
    not of single near-zero residuals), linearises the depth map ``1/a`` and keeps the normaliser fixed.
    Snippets couple only through shared frames, so the matrix is sparse.
    """
    q = layout.n_snippets
    penalty, pen_gs, pen_gt, pen_hs, pen_ht = _penalty(layout, scales, shifts)
    if not model:
        return penalty + sum(_chunk(layout, n0, n1, scales, shifts, False) for n0, n1 in layout.chunks())
    total, grad_s, grad_t = penalty, pen_gs.copy(), pen_gt.copy()
    rows, cols, vals = [np.arange(2 * q)], [np.arange(2 * q)], [np.concatenate([pen_hs, pen_ht])]
    for n0, n1 in layout.chunks():
        value, ids, mask, chunk_gs, chunk_gt, blocks = _chunk(layout, n0, n1, scales, shifts, True)
        total += value
        _accumulate(q, ids, mask, chunk_gs, chunk_gt, blocks, grad_s, grad_t, rows, cols, vals)
    hessian = _sparse(q, rows, cols, vals)
    return total, np.concatenate([grad_s, grad_t]), (hessian + hessian.T) / 2


def _accumulate(q, ids, mask, chunk_gs, chunk_gt, blocks, grad_s, grad_t, rows, cols, vals) -> None:
    """Add one chunk's gradient to ``grad_s``/``grad_t`` and its valid ``[2R, 2R]`` blocks to the sparse triplets."""
    valid = mask > 0
    np.add.at(grad_s, ids[valid], chunk_gs[valid])
    np.add.at(grad_t, ids[valid], chunk_gt[valid])
    index = np.concatenate([ids, ids + q], axis=1)
    valid2 = np.concatenate([valid, valid], axis=1)
    pair = valid2[:, :, None] & valid2[:, None, :]
    rows.append(np.broadcast_to(index[:, :, None], pair.shape)[pair])
    cols.append(np.broadcast_to(index[:, None, :], pair.shape)[pair])
    vals.append(blocks[pair])


def _sparse(q: int, rows, cols, vals) -> sp.csc_matrix:
    """The ``[2q, 2q]`` sparse matrix of the collected triplets (duplicates summed)."""
    return sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * q, 2 * q)
    ).tocsc()


def _irls_weights(r, l1, norm, mask, counts, dtype, floor_fraction: float):
    """IRLS weights ``1 / max(|r|, floor)`` of every slot and pixel (the L1 term's curvature), zero in empty slots
    and on frames seen by one snippet only; ``floor`` is a fraction of the frame's mean residual, so the curvature
    is that of the residual distribution, not of single near-zero residuals."""
    floor = np.maximum(floor_fraction * l1 / (counts * r.shape[2]), 1e-9 * norm).astype(dtype)
    w = np.abs(r).astype(dtype)
    np.maximum(w, floor[:, None, None], out=w)
    np.divide((mask * (counts > 1)[:, None]).astype(dtype)[:, :, None], w, out=w)
    return w


def _gauss_newton_blocks(r, l1, norm, z_s, z_t, mask, counts, floor_fraction: float = 0.25):
    """Per-frame ``[2R, 2R]`` Hessian of ``sum_{i,p} w_ip (Pi z delta)_ip^2`` with IRLS weights ``w = 1/|r|``.

    ``Pi`` removes the per-pixel mean over the frame's snippets (the target moves with the parameters), so for
    derivative rows ``alpha, beta`` (``z_s`` or ``z_t``) of two slots the block is
    ``diag(sum w alpha beta) - (1/C)[(w alpha) beta^T + alpha (w beta)^T] + (1/C^2) (alpha W) beta^T``,
    ``W = sum_i w_i`` per pixel, ``C`` the number of snippets covering the frame. A frame seen by one snippet
    only has no disagreement to model: its weights are zero (its exact block is zero). Float32 is plenty for a
    model (measured: same iterates as float64).
    """
    w = _irls_weights(r, l1, norm, mask, counts, np.float32, floor_fraction)
    spread = w.sum(axis=1)[:, None, :]
    ws, wt = w * z_s, w * z_t
    zs_t, zt_t = z_s.transpose(0, 2, 1), z_t.transpose(0, 2, 1)
    cross = [[ws @ zs_t, ws @ zt_t], [wt @ zs_t, wt @ zt_t]]  # [(w alpha) beta^T]
    del ws, wt
    spread_s, spread_t = z_s * spread, z_t * spread
    spread_st = spread_s @ zt_t
    spread = [[spread_s @ zs_t, spread_st], [spread_st.transpose(0, 2, 1), spread_t @ zt_t]]
    c = counts[:, None, None]
    eye = np.eye(mask.shape[1], dtype=bool)
    return np.block(
        [[cross[i][j] * eye - (cross[i][j] + cross[j][i].transpose(0, 2, 1)) / c + spread[i][j] / c**2
          for j in range(2)] for i in range(2)]
    )


# ------------------------------------------------------------------------------------------------------------------
def official_objective(preds, groups, n_frames: int, scales, shifts) -> float:
    """The official co-alignment loss at ``(scales, shifts)``, in float64, with the target at the same point.

    Parameters
    ----------
    preds : list of np.ndarray
        ``[K_g, L_g, h, w]`` per group: subsampled predictions with the global minimum already subtracted.
    groups : list of SnippetGroup
        The snippet frame indices of each group.
    n_frames : int
        Frames in the video.
    scales, shifts : list of np.ndarray
        ``[K_g]`` per group.
    """
    layout = _Layout(preds, groups, n_frames)
    return _evaluate(layout, layout.join(scales, "scales"), layout.join(shifts, "shifts"))


def coalign(
    preds,
    groups,
    n_frames: int,
    *,
    max_iterations: int = 50,
    rtol: float = 1e-6,
    min_scale: float = 1e-6,
) -> CoalignResult:
    """Fit per-snippet scales and shifts minimising :func:`official_objective`, fast.

    Each iteration builds a Gauss-Newton model of the exact objective (L1 terms reweighted, depth map
    linearised, the moving target and normaliser included), solves it for all snippets jointly with one sparse
    factorisation (snippets only couple through shared frames), and searches along the step until the exact
    objective decreases (steps are often lengthened: the reweighted L1 model is too stiff). Starting point
    ``s = 1, t = 0`` as in the official code; deterministic. Cost per iteration about three passes over the
    data; memory the input plus one chunk of frames plus the sparse ``[2K, 2K]`` system.

    Parameters
    ----------
    preds, groups, n_frames
        As for :func:`official_objective`. The predictions must be min-subtracted (non-negative), as in the
        official pipeline: below the depth clip the objective is flat, and from such a start any local method
        (ours or Adam) can settle in a different, possibly worse, local minimum.
    max_iterations : int
        Gauss-Newton steps at most.
    rtol : float
        Stop when an accepted step lowers the objective by less than this fraction.
    min_scale : float
        Scales are kept above this (the paper constrains ``s > 0``).
    """
    tic = time.perf_counter()
    layout = _Layout(preds, groups, n_frames)
    if min(float(np.min(p)) for p in preds) < 0:
        log.warning("co-alignment input has negative values: subtract the global minimum (merge.global_min) first")
    q = layout.n_snippets
    theta = np.concatenate([np.ones(q), np.zeros(q)])
    damping, stretch = 1e-6, 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        value = _evaluate(layout, theta[:q], theta[q:])
    iterations = 0
    if not np.isfinite(value):  # e.g. all-zero predictions (a constant video): nothing to align
        log.warning("co-alignment objective is not finite at s=1, t=0; keeping the identity alignment")
        max_iterations = 0
    while iterations < max_iterations:
        iterations += 1
        value, grad, hessian = _evaluate(layout, theta[:q], theta[q:], model=True)
        step = _damped_step(hessian, grad, damping)
        if -float(grad @ step) <= 1e-3 * rtol * abs(value):  # stationary: the model promises nothing more
            break
        alpha, new_value = _line_search(layout, theta, value, grad, step, min_scale, stretch)
        if alpha == 0:  # the model misled us: trust it less and retry from the same point
            damping *= 10
            if damping > 1e3:
                break
            continue
        damping, stretch = max(1e-9, damping / 3), min(max(alpha, 1.0), 8.0)
        theta = theta + alpha * step
        decrease, value = value - new_value, new_value
        if decrease <= rtol * abs(value):
            break
    log.debug("co-alignment: %d snippets, objective %.6g after %d iterations", q, value, iterations)
    return CoalignResult(
        scales=layout.split(theta[:q]), shifts=layout.split(theta[q:]), objective=float(value),
        iterations=iterations, seconds=time.perf_counter() - tic,
    )


def _damped_step(hessian: sp.csc_matrix, grad: np.ndarray, damping: float) -> np.ndarray:
    """Solve ``(H + damping * (diag(H) + eps)) step = -grad`` with a sparse LU factorisation."""
    diag = hessian.diagonal()
    regular = damping * (diag + 1e-12 * max(float(diag.max()), 1e-30))
    system = (hessian + sp.diags(regular)).tocsc()
    return spla.spsolve(system, -grad)


def _line_search(layout, theta, value, grad, step, min_scale, first: float, max_halvings: int = 12):
    """Step length along ``step``: ``(alpha, objective)``, or ``(0, value)`` if no length lowers the objective.

    Starts at ``first`` (the previous accepted length: the reweighted L1 model is systematically too stiff, so
    full steps are often too short), backtracks until the exact objective drops enough (Armijo), then tries
    once the minimum of the parabola through ``f(0)``, ``f'(0)`` and ``f(alpha)``. Scales stay above
    ``min_scale`` for every length tried.
    """
    q = layout.n_snippets
    slope = float(grad @ step)
    if not np.isfinite(slope) or slope >= 0:
        return 0.0, value

    def objective(alpha: float) -> float:
        candidate = theta + alpha * step
        return _evaluate(layout, candidate[:q], candidate[q:])

    shrinking = step[:q] < 0
    longest = np.inf
    if shrinking.any():
        longest = 0.99 * float(np.min((min_scale - theta[:q][shrinking]) / step[:q][shrinking]))
    alpha = min(first, longest)
    new_value = objective(alpha)
    halvings = 0
    while new_value > value + 1e-4 * alpha * slope:
        halvings += 1
        if halvings > max_halvings:
            return 0.0, value
        alpha /= 2
        new_value = objective(alpha)
    curvature = (new_value - value - slope * alpha) / alpha**2
    if curvature > 0:
        best = min(-slope / (2 * curvature), longest, 16 * alpha)
        promised = new_value - (value + slope * best + curvature * best**2)
        if promised > 0.1 * (value - new_value):  # worth one more evaluation
            best_value = objective(best)
            if best_value < new_value and best_value <= value + 1e-4 * best * slope:
                return best, best_value
    return alpha, new_value


# ------------------------------------------------------------------------------------------------------------------
def _fixed_point_chunk(layout: "_Layout", n0: int, n1: int, scales, shifts, floor_fraction: float = 0.25):
    """The official Adam's update direction on frames ``[n0, n1)`` and its IRLS Jacobian.

    The official code detaches the per-frame target and normaliser before each step, so what Adam drives to
    zero is the PARTIAL gradient ``sum sign(a - T) z / (N n_entries)`` (T, N held). Its Jacobian with the L1
    sign replaced by ``r / max(|r|, floor)`` and the target moving with the parameters is, per frame,
    ``diag(sum w alpha beta) - (1/C) (w alpha) beta^T`` (not symmetric: only the own slot's weight enters).
    """
    x, mask, mask3, ids, a, depth, counts = _aligned(layout, n0, n1, scales, shifts)
    grad_s, grad_t, blocks = np.zeros(mask.shape), np.zeros(mask.shape), 0.0
    eye = np.eye(mask.shape[1], dtype=bool)
    c = counts[:, None, None]
    for weight, values in ((1.0, a), (DEPTH_WEIGHT, depth)):
        target, r, l1, norm = _disagreement(values, mask3, counts)
        dvda = mask3 if values is a else np.where(a > DEPTH_CLIP, -(depth**2), 0.0)
        scale = weight / (layout.n_entries * norm)[:, None, None]
        direction = np.sign(r) * dvda * scale
        grad_s += (direction * x).sum(axis=2)
        grad_t += direction.sum(axis=2)
        w = _irls_weights(r, l1, norm, mask, counts, np.float64, floor_fraction) * scale
        z_s, z_t = np.broadcast_to(dvda, x.shape) * x, np.broadcast_to(dvda, x.shape)
        rows_z = (z_s, z_t)
        part = [[None, None], [None, None]]
        for i, alpha in enumerate(rows_z):
            for j, beta in enumerate(rows_z):
                cross = (w * alpha) @ beta.transpose(0, 2, 1)
                part[i][j] = cross * eye - cross / c
        blocks = blocks + np.block(part)
    return ids, mask, grad_s, grad_t, blocks


def _fixed_point_system(layout: "_Layout", theta: np.ndarray):
    """``F(theta)``, the partial gradient the official Adam zeroes (penalties included), and its sparse Jacobian."""
    q = layout.n_snippets
    _, pen_gs, pen_gt, pen_hs, pen_ht = _penalty(layout, theta[:q], theta[q:])
    grad_s, grad_t = pen_gs.copy(), pen_gt.copy()
    rows, cols, vals = [np.arange(2 * q)], [np.arange(2 * q)], [np.concatenate([pen_hs, pen_ht])]
    for n0, n1 in layout.chunks():
        ids, mask, chunk_gs, chunk_gt, blocks = _fixed_point_chunk(layout, n0, n1, theta[:q], theta[q:])
        _accumulate(q, ids, mask, chunk_gs, chunk_gt, blocks, grad_s, grad_t, rows, cols, vals)
    jacobian = _sparse(q, rows, cols, vals)
    return np.concatenate([grad_s, grad_t]), jacobian


def official_coalign(preds, groups, n_frames: int, *, max_iterations: int = 60, min_scale: float = 1e-6,
                     ) -> CoalignResult:
    """The official co-alignment's solution, solved directly instead of with 2000 Adam steps.

    The official procedure holds the target fixed in every Adam step, so it converges to a fixed point: a
    ``(s, t)`` where the partial gradient ``F`` (target held) vanishes, which is not the minimum of the loss that
    :func:`coalign` finds. Here ``F = 0`` is solved by damped Newton steps with an IRLS Jacobian (one sparse
    non-symmetric solve per step over all snippets), each accepted only if it lowers ``|F|``. Starts at
    ``s = 1, t = 0`` like the official code.

    Scaling every ``s`` and ``t`` by one factor changes ``F`` only through the soft penalties and the depth clip.
    Where those barely bind (a tiny random model's flat predictions), the fixed points form a near-continuum and
    the solution can lie at another common scale than Adam's (which travels at most ~2 in 2000 steps): the merged
    video, renormalised, is the same (``benchmarks/parity_official.py``: 7e-4 from the official merge, inside the
    1.5e-3 between two Adam runs), the per-snippet scales are not.
    """
    tic = time.perf_counter()
    layout = _Layout(preds, groups, n_frames)
    q = layout.n_snippets
    theta = np.concatenate([np.ones(q), np.zeros(q)])
    residual, jacobian = _fixed_point_system(layout, theta)
    size, damping, iterations = float(np.linalg.norm(residual)), 1e-3, 0
    while iterations < max_iterations and np.isfinite(size) and size > 0:
        iterations += 1
        diag = np.abs(jacobian.diagonal()) + 1e-12
        step = spla.spsolve((jacobian + sp.diags(damping * diag)).tocsc(), -residual)
        shrinking = step[:q] < 0
        if shrinking.any():
            step *= min(1.0, 0.99 * float(np.min((min_scale - theta[:q][shrinking]) / step[:q][shrinking])))
        candidate = theta + step
        new_residual, new_jacobian = _fixed_point_system(layout, candidate)
        new_size = float(np.linalg.norm(new_residual))
        if new_size < size:
            theta, residual, jacobian = candidate, new_residual, new_jacobian
            converged = new_size > 0.999 * size
            size, damping = new_size, max(1e-6, damping / 3)
            if converged:
                break
        else:
            damping *= 10
            if damping > 1e6:
                break
    value = _evaluate(layout, theta[:q], theta[q:])
    log.debug("official co-alignment: %d snippets, |F| %.3g after %d iterations", q, size, iterations)
    return CoalignResult(scales=layout.split(theta[:q]), shifts=layout.split(theta[q:]), objective=float(value),
                         iterations=iterations, seconds=time.perf_counter() - tic)


COALIGN_SOLVERS = {"official": official_coalign, "objective": coalign}
DEFAULT_COALIGN = "objective"


# ------------------------------------------------------------------------------------------------------------------
def adam_coalign(
    preds,
    groups,
    n_frames: int,
    *,
    iterations: int = 2000,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.9),
) -> CoalignResult:
    """The official co-alignment procedure (the baseline): Adam on the loss with the target held fixed per step.

    Same loss as the official dense ``[rows, frames, pixels]`` formulation, computed in float32 with index-add
    over the snippet slots that exist (empty slots of the dense tensor contribute exactly zero), so memory is
    ``O(K L P)``. Each step: target and normalisers from the current alignment (detached), loss, backward, Adam
    update from ``s = 1, t = 0``. The reported objective is the loss at the returned parameters.
    """
    import torch

    tic = time.perf_counter()
    layout = _Layout(preds, groups, n_frames)
    x = torch.cat([torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32)).reshape(-1, layout.n_pixels)
                   for f in layout.flat])  # [sum_g K_g L_g, P]
    frame = torch.from_numpy(np.concatenate([g.indices.reshape(-1) for g in groups]))
    snippet = torch.from_numpy(
        np.concatenate([off + np.repeat(np.arange(len(g.indices)), g.indices.shape[1])
                        for off, g in zip(layout.snippet_offsets, groups)])
    )
    counts = torch.bincount(frame, minlength=n_frames).to(torch.float32)[:, None]
    group_of = torch.from_numpy(layout.group_of)
    per = 1.0 / torch.tensor(layout.sizes, dtype=torch.float32)[group_of]
    scales = torch.ones(layout.n_snippets, requires_grad=True)
    shifts = torch.zeros(layout.n_snippets, requires_grad=True)
    optimizer = torch.optim.Adam([scales, shifts], lr=lr, betas=betas)

    def loss_fn() -> torch.Tensor:
        aligned = scales[snippet, None] * x + shifts[snippet, None]
        loss = 0.0
        for weight, values in ((1.0, aligned), (DEPTH_WEIGHT, 1.0 / aligned.clamp(min=DEPTH_CLIP))):
            with torch.no_grad():
                target = torch.zeros(n_frames, layout.n_pixels).index_add_(0, frame, values) / counts
                norm = target.abs().mean(dim=1, keepdim=True)
            loss = loss + weight * ((values - target[frame]).abs() / norm[frame]).sum() / layout.n_entries
        penalty = per * (SCALE_PENALTY * (1 - scales).clamp(min=0) ** 2 + SHIFT_PENALTY * shifts**2)
        return loss + penalty.sum()

    for _ in range(iterations):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()
    with torch.no_grad():
        objective = float(loss_fn())
    return CoalignResult(
        scales=layout.split(scales.detach().double().numpy()), shifts=layout.split(shifts.detach().double().numpy()),
        objective=objective, iterations=iterations, seconds=time.perf_counter() - tic,
    )


def subsampled(preds, offset: float) -> np.ndarray:
    """``subsample(preds - offset)`` as a compact array, read block by block (``preds`` may be on disk)."""
    return np.concatenate([subsample(block - offset) for _, block in rows_in_blocks(preds)])

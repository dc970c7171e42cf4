"""Metric depth from a few known distances: anchors, a robust fit of the video's affine map, and its inverse.

RollingDepth predicts *affine-invariant inverse depth*: the true inverse depth is ``1 / z = a * pred + b`` for one
unknown ``a > 0`` and ``b`` shared by every frame of a video. Given anchors (a frame, a pixel and its distance in
metres) this module fits ``a`` and ``b`` and turns the prediction into depth in metres.

Conventions
-----------
- Anchor ``x, y`` are pixel coordinates in the ORIGINAL input frame (as displayed: after autorotation), x to the
  right, y down, pixel centres at integers (pixel ``(0, 0)`` covers ``[-0.5, 0.5]^2``). Fractions are allowed;
  anything inside ``[-0.5, W - 0.5) x [-0.5, H - 0.5)`` is on the frame.
- When the depth is at another size (the processing resolution), anchor coordinates are mapped with the same
  pixel-centre convention as the resize (``x_depth = (x + 0.5) * w / W - 0.5``) and the prediction is sampled
  there bilinearly.
- Anchor ``frame`` is the frame number in the input (0 = its first frame), not in a ``--from`` window.
- ``z`` is z-depth along the optical axis (what depth maps hold), in metres.

The fit is robust: every pair of anchors proposes a line in inverse depth (RANSAC, exhaustive when there are few
anchors, otherwise a fixed-seed sample), the proposal that most anchors agree with (relative depth error within a
tolerance) wins, and ``a, b`` are refitted by least squares on those anchors, minimising the relative depth error
``(a * pred + b) * metres - 1`` (= ``metres / z - 1``). Anchors that disagree are reported as outliers. Pixels whose
fitted inverse depth is ``<= 0`` lie beyond infinity under the fit: their metric depth is NaN.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError, read_user_file

DEFAULT_TOLERANCE = 0.25  # relative depth error an anchor may have and still agree with the fit (delta1's 1.25)
MAX_PAIRS = 4000  # RANSAC proposals when the anchors have more pairs than this (sampled with a fixed seed)
INVALID_MEANING = "NaN where the fitted inverse depth a * pred + b is <= 0 (beyond infinity under the fit)"
_METRE_NAMES = ("metres", "meters", "metre", "meter", "m", "depth", "depth_m", "distance", "z")


class AnchorError(UserError):
    """Anchors that cannot give a metric fit (too few, degenerate or contradictory): a user mistake found after the
    depth was computed, so the runner keeps its work for a rerun with corrected anchors."""


@dataclass(frozen=True)
class Anchor:
    """A known distance: ``metres`` at pixel ``(x, y)`` of input frame ``frame``; ``source`` says where it was
    given (``anchors.csv line 4``), for error messages and the report."""

    frame: int
    x: float
    y: float
    metres: float
    source: str = ""


# ------------------------------------------------------------------------------------------------------------------
# Reading anchors
def read_anchors(path: str | Path) -> list[Anchor]:
    """Anchors from a CSV or JSON file.

    CSV: one anchor per line, ``frame, x, y, metres``, with an optional header naming the columns (``frame``,
    ``x``, ``y`` and ``metres``/``meters``/``depth``; any order); ``#`` starts a comment. JSON: a list of objects
    with those keys, or of ``[frame, x, y, metres]`` lists, or ``{"anchors": [...]}``.

    Raises
    ------
    UserError
        Unreadable file, a malformed line, a fractional or negative frame, non-finite coordinates, or a distance
        that is not a positive number of metres.
    """
    path = Path(path)
    text = read_user_file(path, "anchor file")
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" or stripped.startswith(("[", "{")):
        return _anchors_from_json(text, path.name)
    return _anchors_from_csv(text, path.name)


def _anchors_from_json(text: str, name: str) -> list[Anchor]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{name} is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("anchors")
    if not isinstance(data, list):
        raise UserError(f"{name}: expected a list of anchors (or {{\"anchors\": [...]}})")
    anchors = []
    for index, item in enumerate(data):
        where = f"{name} anchor {index}"
        if isinstance(item, dict):
            keys = {str(k).lower(): v for k, v in item.items()}
            metre_key = next((k for k in _METRE_NAMES if k in keys), None)
            missing = [k for k in ("frame", "x", "y") if k not in keys] + ([] if metre_key else ["metres"])
            if missing:
                raise UserError(f"{where} lacks {', '.join(missing)}")
            values = [keys["frame"], keys["x"], keys["y"], keys[metre_key]]
        elif isinstance(item, list):
            values = item
        else:
            raise UserError(f"{where}: expected an object or a [frame, x, y, metres] list, got {item!r}")
        anchors.append(make_anchor(values, where))
    return anchors


def _anchors_from_csv(text: str, name: str) -> list[Anchor]:
    lines = [(number, line.split("#", 1)[0].strip()) for number, line in enumerate(text.splitlines(), 1)]
    lines = [(number, _cells(line)) for number, line in lines if line]
    order = [0, 1, 2, 3]
    if lines and not _is_number(lines[0][1][0]):
        order = _header_order(lines[0][1], name)
        lines = lines[1:]
    anchors = []
    for number, cells in lines:
        where = f"{name} line {number}"
        if len(cells) < 4:
            raise UserError(f"{where}: expected frame, x, y, metres, got {', '.join(cells)!r}")
        anchors.append(make_anchor([cells[i] for i in order], where))
    return anchors


def _cells(line: str) -> list[str]:
    """The cells of a CSV line; a line without commas is split on whitespace."""
    if "," not in line:
        return line.split()
    return [cell.strip() for cell in next(csv.reader(io.StringIO(line), skipinitialspace=True))]


def _header_order(header: list[str], name: str) -> list[int]:
    """Column index of frame, x, y and metres in a CSV header."""
    names = [cell.strip().lower() for cell in header]
    order = []
    for wanted in (("frame",), ("x",), ("y",), _METRE_NAMES):
        found = [i for i, cell in enumerate(names) if cell in wanted]
        if not found:
            raise UserError(f"{name}: the header {', '.join(header)} has no {wanted[0]} column "
                            f"(expected frame, x, y, metres)")
        order.append(found[0])
    return order


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def make_anchor(values, where: str = "") -> Anchor:
    """An :class:`Anchor` from ``[frame, x, y, metres]`` (numbers or strings), checked for sense."""
    if len(values) != 4:
        raise UserError(f"{where}: expected frame, x, y, metres, got {values!r}")
    try:
        frame, x, y, metres = (float(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"{where}: frame, x, y and metres must be numbers, got {values!r}") from None
    if not all(math.isfinite(v) for v in (frame, x, y, metres)):
        raise UserError(f"{where}: values must be finite numbers, got {values!r}")
    if frame != int(frame) or frame < 0:
        raise UserError(f"{where}: frame must be a whole number >= 0, got {values[0]!r}")
    if metres <= 0:
        raise UserError(f"{where}: the distance must be a positive number of metres, got {values[3]!r}")
    return Anchor(int(frame), x, y, metres, where)


# ------------------------------------------------------------------------------------------------------------------
# Where the anchors are
def check_anchors(anchors: list[Anchor], image_size: tuple[int, int], n_frames: int, first_frame: int = 0) -> None:
    """Refuse anchors off the frame or outside the processed frames; needs no depth, so it runs before the model.

    Parameters
    ----------
    anchors : list of Anchor
    image_size : (int, int)
        (width, height) of the input frames the anchors' pixel coordinates refer to.
    n_frames : int
        Frames processed, starting at input frame ``first_frame`` (``--from``).
    """
    width, height = image_size
    if len(anchors) < 2:
        raise UserError(f"a metric fit needs at least 2 anchors (frame, x, y, metres), got {len(anchors)}")
    last = first_frame + n_frames - 1
    for anchor in anchors:
        if not (-0.5 <= anchor.x < width - 0.5 and -0.5 <= anchor.y < height - 0.5):
            raise UserError(f"{anchor.source}: pixel ({anchor.x:g}, {anchor.y:g}) is off the {width}x{height} frame "
                            f"(x must be in 0..{width - 1}, y in 0..{height - 1})")
        if anchor.frame > last:
            raise UserError(f"{anchor.source}: frame {anchor.frame} is past the last processed frame {last}")
        if anchor.frame < first_frame:
            raise UserError(f"{anchor.source}: frame {anchor.frame} is before the first processed frame "
                            f"{first_frame} (--from)")


def to_depth_pixels(x, y, image_size: tuple[int, int], depth_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Map input pixel coordinates to the depth's pixel grid (sizes as (width, height)): pixel centres at integers
    on both, the convention of an ``align_corners=False`` resize, so ``x_d = (x + 0.5) * w / W - 0.5``."""
    (width, height), (w, h) = image_size, depth_size
    x_d = (np.asarray(x, dtype=np.float64) + 0.5) * (w / width) - 0.5
    y_d = (np.asarray(y, dtype=np.float64) + 0.5) * (h / height) - 0.5
    return x_d, y_d


def _neighbours(coordinate: float, size: int) -> tuple[int, int, float]:
    """The two pixel indices around ``coordinate`` (clamped to the edge pixels) and the weight of the second."""
    coordinate = min(max(float(coordinate), 0.0), size - 1.0)
    first = min(int(coordinate), max(size - 2, 0))
    return first, min(first + 1, size - 1), coordinate - first


def bilinear(frame: np.ndarray, x: float, y: float) -> float:
    """``frame`` [H, W] sampled at ``(x, y)`` (pixel centres at integers), clamped to the edge pixels; only its two
    rows around ``y`` are read (``frame`` may be one frame of a disk-backed video, ``video[i]``-indexable by row)."""
    height, width = frame.shape
    y0, y1, fy = _neighbours(y, height)
    x0, x1, fx = _neighbours(x, width)
    top, bottom = (np.asarray(frame[row], dtype=np.float64) for row in (y0, y1))
    return float((1 - fy) * ((1 - fx) * top[x0] + fx * top[x1]) + fy * ((1 - fx) * bottom[x0] + fx * bottom[x1]))


class _Frame:
    """Frame ``index`` of a video, read one row at a time (``frame[row]`` is ``video[index, row]``)."""

    def __init__(self, video, index: int):
        self.video, self.index, self.shape = video, index, tuple(video.shape[1:])

    def __getitem__(self, row: int) -> np.ndarray:
        return self.video[self.index, row]


def sample_prediction(
    pred: np.ndarray, anchors: list[Anchor], image_size: tuple[int, int] | None = None, first_frame: int = 0
) -> np.ndarray:
    """The prediction at every anchor, bilinear at its mapped position: float64 ``[len(anchors)]``.

    Parameters
    ----------
    pred : array [N, h, w]
        Relative inverse depth (may be disk-backed: only the anchors' frames are read).
    image_size : (int, int), optional
        (width, height) the anchor coordinates refer to; default the depth's own size.
    first_frame : int
        Input frame number of ``pred[0]``.

    Raises
    ------
    UserError
        An anchor on an invalid pixel (NaN or inf in the prediction around it).
    """
    depth_size = (pred.shape[2], pred.shape[1])
    image_size = image_size or depth_size
    check_anchors(anchors, image_size, len(pred), first_frame)
    x_d, y_d = to_depth_pixels([a.x for a in anchors], [a.y for a in anchors], image_size, depth_size)
    values = np.empty(len(anchors))
    for i, anchor in enumerate(anchors):
        values[i] = bilinear(_Frame(pred, anchor.frame - first_frame), x_d[i], y_d[i])
        if not np.isfinite(values[i]):
            raise UserError(f"{anchor.source}: pixel ({anchor.x:g}, {anchor.y:g}) of frame {anchor.frame} is an "
                            f"invalid pixel (the depth there is {values[i]}); move the anchor onto valid depth")
    return values


# ------------------------------------------------------------------------------------------------------------------
# The fit
@dataclass(frozen=True)
class MetricFit:
    """``1 / z = a * pred + b`` and how well the anchors agree with it.

    Attributes
    ----------
    a, b : float
        The affine map from the prediction to inverse depth in 1/m (``a > 0``).
    anchors : tuple of Anchor
    predicted : np.ndarray
        The prediction at each anchor.
    fitted_m : np.ndarray
        Depth in metres the fit gives each anchor (inf where ``a * pred + b <= 0``).
    inliers : np.ndarray of bool
        Anchors that agree with the fit (relative depth error <= ``tolerance``) and were used to fit it.
    tolerance : float
    """

    a: float
    b: float
    anchors: tuple[Anchor, ...]
    predicted: np.ndarray
    fitted_m: np.ndarray
    inliers: np.ndarray
    tolerance: float

    @property
    def residuals_m(self) -> np.ndarray:
        """Fitted minus given depth at each anchor, in metres."""
        return self.fitted_m - np.array([a.metres for a in self.anchors])

    @property
    def rmse_m(self) -> float:
        """Root mean square residual over the anchors used for the fit (the inliers), in metres."""
        return float(np.sqrt(np.mean(self.residuals_m[self.inliers] ** 2)))

    @property
    def rmse_all_m(self) -> float:
        """Root mean square residual over every anchor, outliers included (inf if one is beyond infinity)."""
        return float(np.sqrt(np.mean(self.residuals_m**2)))

    def depth(self, pred: np.ndarray) -> np.ndarray:
        """Metric depth of a prediction (any shape): see :func:`apply_metric`."""
        return apply_metric(pred, self.a, self.b)

    def summary(self) -> str:
        """One line for the log."""
        outliers = int(np.sum(~self.inliers))
        text = (f"metric fit 1/z = {self.a:.6g} * pred + {self.b:.6g} on {len(self.anchors)} anchors: residual RMSE "
                f"{self.rmse_m:.4g} m, max {np.max(np.abs(self.residuals_m[self.inliers])):.4g} m")
        if outliers:
            names = ", ".join(a.source for a, ok in zip(self.anchors, self.inliers) if not ok)
            text += f"; {outliers} outlier(s) left out (more than {self.tolerance:.0%} off): {names}"
        return text

    def to_json(self) -> dict:
        """The fit, per-anchor residuals and RMSE, for ``<stem>_metric.json``."""
        anchors = []
        for anchor, value, fitted, residual, inlier in zip(
            self.anchors, self.predicted, self.fitted_m, self.residuals_m, self.inliers
        ):
            anchors.append({
                "frame": anchor.frame, "x": anchor.x, "y": anchor.y, "metres": anchor.metres,
                "source": anchor.source, "pred": float(value), "fitted_m": _finite_or_none(fitted),
                "residual_m": _finite_or_none(residual), "inlier": bool(inlier),
            })
        return {
            "model": "1 / depth_m = a * pred + b",
            "a": self.a,
            "b": self.b,
            "n_anchors": len(self.anchors),
            "n_inliers": int(np.sum(self.inliers)),
            "tolerance": self.tolerance,
            "rmse_m": self.rmse_m,
            "rmse_all_m": _finite_or_none(self.rmse_all_m),
            "max_abs_residual_m": float(np.max(np.abs(self.residuals_m[self.inliers]))),
            "anchors": anchors,
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def apply_metric(pred: np.ndarray, a: float, b: float) -> np.ndarray:
    """Depth in metres ``1 / (a * pred + b)`` as float32; NaN where ``a * pred + b <= 0`` (or pred is NaN)."""
    inverse = a * np.asarray(pred, dtype=np.float64) + b
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(inverse > 0, 1.0 / inverse, np.nan)
    return depth.astype(np.float32)


def _fitted_depth(values: np.ndarray, a: float, b: float) -> np.ndarray:
    inverse = a * values + b
    with np.errstate(divide="ignore"):
        return np.where(inverse > 0, 1.0 / np.where(inverse > 0, inverse, 1.0), np.inf)


def _relative_errors(values: np.ndarray, metres: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|fitted depth / metres - 1| for candidate lines ``a, b`` [C] and anchors [n]: [C, n] (inf beyond infinity)."""
    inverse = a[:, None] * values[None] + b[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        errors = np.abs(1.0 / (inverse * metres[None]) - 1.0)
    return np.where(inverse > 0, errors, np.inf)


def _candidate_pairs(n: int, seed: int) -> np.ndarray:
    """Index pairs [P, 2]: all of them, or ``MAX_PAIRS`` drawn with a fixed seed."""
    i, j = np.triu_indices(n, k=1)
    pairs = np.stack([i, j], axis=1)
    if len(pairs) > MAX_PAIRS:
        pairs = pairs[np.random.default_rng(seed).choice(len(pairs), MAX_PAIRS, replace=False)]
    return pairs


def _least_squares(values: np.ndarray, metres: np.ndarray) -> tuple[float, float]:
    """``a, b`` minimising ``sum(((a * pred + b) * metres - 1) ** 2)``: the relative error of the inverse depth,
    to first order the relative depth error."""
    design = np.stack([values * metres, metres], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(metres), rcond=None)
    return float(a), float(b)


def fit_inverse_affine(
    values: np.ndarray, metres: np.ndarray, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0
) -> tuple[float, float, np.ndarray]:
    """Robust ``a, b`` with ``1 / metres ~ a * values + b``; returns ``(a, b, inliers)``.

    Every pair of anchors proposes a line (``MAX_PAIRS`` of them drawn with ``seed`` when there are more); the
    proposal with the most anchors within ``tolerance`` relative depth error wins (ties: the smaller sum of squared
    errors, capped at the tolerance), then ``a, b`` are refitted by least squares on its inliers until the inlier
    set settles.

    Raises
    ------
    AnchorError
        Fewer than 2 anchors, all anchors at the same predicted value (degenerate), no line with ``a > 0``
        (the anchors' distances run against the prediction), or no more than half the anchors agreeing
        (contradictory anchors).
    """
    values, metres = np.asarray(values, dtype=np.float64), np.asarray(metres, dtype=np.float64)
    n = len(values)
    if n < 2:
        raise AnchorError(f"a metric fit needs at least 2 anchors, got {n}")
    if np.ptp(values) <= 1e-9 * max(1.0, float(np.max(np.abs(values)))):
        raise AnchorError("the anchors all sit at the same predicted depth (the same pixel, or a flat prediction): "
                          "give anchors at different distances")
    pairs = _candidate_pairs(n, seed)
    x_i, x_j = values[pairs[:, 0]], values[pairs[:, 1]]
    keep = np.abs(x_i - x_j) > 1e-12
    pairs, x_i, x_j = pairs[keep], x_i[keep], x_j[keep]
    y_i, y_j = 1 / metres[pairs[:, 0]], 1 / metres[pairs[:, 1]]
    a = (y_i - y_j) / (x_i - x_j)
    b = y_i - a * x_i
    positive = a > 0
    if not np.any(positive):
        raise AnchorError("the anchors contradict the prediction: the farther anchors have the larger predicted "
                          "inverse depth everywhere, so no scale a > 0 fits (check their pixels, frames and metres)")
    a, b = a[positive], b[positive]
    errors = _relative_errors(values, metres, a, b)
    counts = np.sum(errors <= tolerance, axis=1)
    cost = np.sum(np.minimum(errors, tolerance) ** 2, axis=1)
    best = np.lexsort((cost, -counts))[0]
    inliers = errors[best] <= tolerance
    fit = float(a[best]), float(b[best])
    for _ in range(20):  # refit on the inliers until they settle
        if np.sum(inliers) < 2 or np.ptp(values[inliers]) <= 1e-12:
            break
        refit = _least_squares(values[inliers], metres[inliers])
        if refit[0] <= 0:
            break
        new = _relative_errors(values, metres, np.array([refit[0]]), np.array([refit[1]]))[0] <= tolerance
        if np.sum(new) < np.sum(inliers):
            break
        fit = refit
        if np.array_equal(new, inliers):
            break
        inliers = new
    if np.sum(inliers) * 2 <= n:
        raise AnchorError(
            f"the anchors contradict each other: at most {int(np.sum(inliers))} of {n} agree with any one fit within "
            f"{tolerance:.0%} (check their frames, pixels and metres, or allow more with --anchor-tolerance)"
        )
    return fit[0], fit[1], inliers


def fit_metric_scale(
    pred: np.ndarray,
    anchors: list[Anchor] | str | Path,
    image_size: tuple[int, int] | None = None,
    first_frame: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
) -> MetricFit:
    """Fit the video's metric map ``1 / z = a * pred + b`` to anchors.

    Parameters
    ----------
    pred : array [N, h, w]
        RollingDepth's relative inverse depth (``<stem>_pred.npy``); may be disk-backed.
    anchors : list of Anchor, or a path
        Known distances, or a CSV/JSON file of them (:func:`read_anchors`).
    image_size : (int, int), optional
        (width, height) of the input frames the anchors' pixels refer to; default the depth's size. Give the
        input's size when the depth is at the processing resolution.
    first_frame : int
        Input frame number of ``pred[0]`` (``--from``).
    tolerance : float
        Relative depth error within which an anchor agrees with the fit (0.25 = 25 %).
    seed : int
        Seed of the sampled RANSAC proposals (used only beyond ``MAX_PAIRS`` anchor pairs).

    Returns
    -------
    MetricFit
        ``fit.depth(pred)`` is the metric depth; ``fit.residuals_m``, ``fit.rmse_m`` and ``fit.to_json()`` report
        how well the anchors agree.
    """
    if not tolerance > 0:
        raise UserError(f"the anchor tolerance must be > 0, got {tolerance}")
    if isinstance(anchors, (str, Path)):
        anchors = read_anchors(anchors)
    anchors = list(anchors)
    values = sample_prediction(pred, anchors, image_size, first_frame)
    metres = np.array([anchor.metres for anchor in anchors])
    a, b, inliers = fit_inverse_affine(values, metres, tolerance, seed)
    return MetricFit(a, b, tuple(anchors), values, _fitted_depth(values, a, b), inliers, tolerance)


def assumed_range_map(low: float, high: float, near: float = 1.0, far: float = 10.0) -> tuple[float, float]:
    """``a, b`` mapping a prediction's range ``[low, high]`` linearly in inverse depth onto ``[1/far, 1/near]``:
    the video's farthest prediction at ``far`` metres, its nearest at ``near``. Not metric: an assumption for
    viewing relative depth in 3-D."""
    if not 0 < near < far:
        raise UserError(f"the assumed depth range needs 0 < near < far, got near {near}, far {far}")
    span = high - low if high > low else 1.0
    a = (1 / near - 1 / far) / span
    return a, 1 / far - a * low


class MetricView:
    """A prediction read as metric depth, frame by frame: ``view[i]`` is ``apply_metric(pred[i], a, b)``.

    Has ``shape``, ``dtype`` (float32), ``len`` and integer or slice indexing, so the writers stream it like any
    depth array (``writers.write_npy``, ``writers.write_exr``) without a second copy of the video in memory.
    """

    def __init__(self, pred, a: float, b: float):
        self.pred, self.a, self.b = pred, float(a), float(b)
        self.shape = tuple(pred.shape)
        self.dtype = np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        return apply_metric(self.pred[key], self.a, self.b)

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]

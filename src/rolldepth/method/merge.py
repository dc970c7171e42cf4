"""Merging co-aligned snippets into one depth video, frame by frame, at full resolution.

Each frame is the mean of ``s_k (x - offset) + t_k`` over every snippet ``k`` that contains it, ``offset``
being the global minimum the co-alignment subtracted before fitting; the standard deviation of the same values says
how much the snippets disagree about each pixel (the uncertainty). Working one frame at a time keeps memory
at one frame per snippet slot, so the snippet predictions and the output may be memory-mapped files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .snippets import SnippetGroup
from ..storage.workdir import rows_in_blocks


def global_min(preds: Sequence[np.ndarray]) -> float:
    """Smallest value over all snippet predictions (the official co-alignment subtracts it first); read block by
    block, so the predictions may be disk-backed (``NpyArray``)."""
    return float(min(float(np.min(block)) for p in preds for _, block in rows_in_blocks(p)))


def _members(groups: Sequence[SnippetGroup], n_frames: int) -> list[list[tuple[int, int, int]]]:
    """For every frame, the ``(group, snippet, position)`` of each snippet slot holding it."""
    members: list[list[tuple[int, int, int]]] = [[] for _ in range(n_frames)]
    for g, group in enumerate(groups):
        for (k, j), frame in np.ndenumerate(group.indices):
            members[frame].append((g, k, j))
    return members


def _aligned_frames(full_preds, groups, n_frames: int, scales, shifts, offset: float, out: np.ndarray | None):
    """``out`` checked (or allocated: ``[N, H, W]`` float32) and, for every frame, its index, how many snippet slots
    hold it and their aligned predictions ``s_k (x - offset) + t_k`` (float64 [H, W]), read one at a time."""
    height, width = full_preds[0].shape[-2:]
    if out is None:
        out = np.empty((n_frames, height, width), dtype=np.float32)
    elif out.shape != (n_frames, height, width):
        raise ValueError(f"out has shape {out.shape}, expected {(n_frames, height, width)}")

    def frames():
        for frame, members in enumerate(_members(groups, n_frames)):
            if not members:
                raise ValueError(f"frame {frame} is in no snippet")
            yield frame, len(members), (
                float(scales[g][k]) * (np.asarray(full_preds[g][k, j], dtype=np.float64) - offset) + float(shifts[g][k])
                for g, k, j in members
            )

    return out, frames()


def merge_frames(
    full_preds: Sequence[np.ndarray],
    groups: Sequence[SnippetGroup],
    n_frames: int,
    scales: Sequence[np.ndarray],
    shifts: Sequence[np.ndarray],
    offset: float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Mean of the aligned predictions of every frame: ``[N, H, W]`` float32.

    Parameters
    ----------
    full_preds : sequence of np.ndarray
        ``[K_g, L_g, H, W]`` per group, raw model output (not min-subtracted); may be disk-backed (``NpyArray``,
        ``np.memmap``): only ``full_preds[g][k, j]`` is read.
    groups : sequence of SnippetGroup
        Frame indices of the snippets of each group.
    n_frames : int
        Frames in the video.
    scales, shifts : sequence of np.ndarray
        ``[K_g]`` per group, fitted on predictions minus ``offset``.
    offset : float
        The global minimum subtracted before the fit.
    out : np.ndarray, optional
        ``[N, H, W]`` array (e.g. a memmap) to write into; allocated if not given.
    """
    out, frames = _aligned_frames(full_preds, groups, n_frames, scales, shifts, offset, out)
    for frame, count, values in frames:
        total = np.zeros(out.shape[1:], dtype=np.float64)
        for value in values:
            total += value
        out[frame] = total / count
    return out


def snippet_spread(
    full_preds: Sequence[np.ndarray],
    groups: Sequence[SnippetGroup],
    n_frames: int,
    scales: Sequence[np.ndarray],
    shifts: Sequence[np.ndarray],
    offset: float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """How much the aligned snippets disagree at every pixel: ``[N, H, W]`` float32 standard deviation.

    The population standard deviation, over every snippet ``k`` holding the frame, of the values
    ``s_k (x - offset) + t_k`` whose mean :func:`merge_frames` writes; the same parameters, the same units. Where
    a frame lies in a single snippet it is 0: nothing to disagree with.
    """
    out, frames = _aligned_frames(full_preds, groups, n_frames, scales, shifts, offset, out)
    for frame, _, values in frames:
        out[frame] = np.stack(list(values)).std(axis=0)  # two passes over the values: no cancellation of a large mean
    return out


def video_range(depth: np.ndarray) -> tuple[float, float]:
    """Smallest and largest value of a video, read frame by frame (``depth`` may be disk-backed)."""
    return float(min(np.min(frame) for frame in depth)), float(max(np.max(frame) for frame in depth))


def renormalise(depth: np.ndarray, out: np.ndarray | None = None,
                bounds: tuple[float, float] | None = None) -> np.ndarray:
    """Map the whole video linearly to ``[-1, 1]`` (one min and max for all frames, so frames stay comparable).

    A constant video has no range to stretch and becomes zeros. Works frame by frame so ``depth`` and ``out``
    may be disk-backed; ``out`` may be ``depth`` itself. ``bounds``: the video's ``(min, max)`` if already known
    (:func:`video_range`); the map multiplies every difference by ``2 / (max - min)``.
    """
    if out is None:
        out = np.empty(depth.shape, dtype=np.float32)
    low, high = video_range(depth) if bounds is None else bounds
    span = high - low
    for i, frame in enumerate(depth):
        if span > 0:
            out[i] = (np.asarray(frame, dtype=np.float64) - low) / span * 2 - 1
        else:
            out[i] = 0
    return out

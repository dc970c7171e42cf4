"""Stereo 3-D video from the depth: each eye's view rendered by moving every pixel along its row.

For two parallel cameras a baseline ``B`` apart, converged (by shifting the images) on the plane at depth ``Z0``, a
point at depth ``Z`` appears ``f B (1/Z - 1/Z0)`` pixels apart in the two views: an affine function of inverse depth.
The relative inverse depth rolldepth writes (one unknown scale and shift per video) therefore gives every pixel's
parallax exactly, up to the two numbers a stereographer chooses anyway: how strong the effect is (the parallax
between the nearest and the farthest point of the video) and which depth sits on the screen plane. Both hold for the
whole video (for each shot), so the 3-D effect is as steady as the depth is; a depth that flickers makes the scene
wobble in and out of the screen.

Each eye gets half the parallax, in opposite directions. Where two pixels land on one, the nearer wins (a z-buffer);
where none lands, the part of the background that the foreground hid, the nearest pixel on the background's side
of the row fills it (a near object moves right in the left eye's view, so what it uncovers lies to its left).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import UserError

STEREO_LAYOUTS = ("sbs", "half-sbs", "anaglyph")


@dataclass(frozen=True)
class StereoOptions:
    """What ``--save-stereo`` renders.

    Attributes
    ----------
    layout : str
        ``"sbs"``: left | right at full width each (VR players, YouTube 3-D); ``"half-sbs"``: each eye squeezed to
        half the width, the frame keeping the input's size (3-D TVs and projectors); ``"anaglyph"``: red from the
        left eye, green and blue from the right (red-cyan glasses).
    parallax : float
        Parallax between the nearest and the farthest point of the video, in % of the frame's width.
    convergence : float
        Which depth lies on the screen plane, as a fraction of the video's depth range: 0 the farthest point (all
        the scene comes out of the screen), 1 the nearest (all of it lies behind).
    """

    layout: str = "sbs"
    parallax: float = 2.0
    convergence: float = 0.5

    def check(self) -> None:
        if self.layout not in STEREO_LAYOUTS:
            raise UserError(f"unknown stereo layout {self.layout!r}; use {', '.join(STEREO_LAYOUTS)}")
        if not 0 < self.parallax <= 20:
            raise UserError(f"--stereo-parallax is a percentage of the frame width, in (0, 20], got {self.parallax}")
        if not 0 <= self.convergence <= 1:
            raise UserError(f"--stereo-convergence is a fraction of the depth range, in [0, 1], got {self.convergence}")


def render_eye(rgb: np.ndarray, shift: np.ndarray, nearer_right: bool) -> np.ndarray:
    """One eye's view: every pixel of ``rgb`` [H, W, 3] moved ``shift`` [H, W] pixels along its row (rounded half
    up: a surface moved by 2.5 px moves by 3 everywhere, where rounding half to even would tear it).

    ``nearer_right``: a nearer pixel moves farther right (the left eye's view; else farther left, the right eye's).
    Where several pixels land on one, the nearest wins, and that is always the leftmost of them (the rightmost when
    not ``nearer_right``): for ``x1 < x2`` to land together, ``x1`` must move farther right than ``x2``, by at
    least ``x2 - x1 - 1``. So the z-buffer keeps source columns, no depth. A pixel none lands on takes the nearest
    landed pixel of its row on the background's side: the left with ``nearer_right``, else the right (and the
    other side where that side has none).
    """
    height, width = shift.shape
    columns = np.arange(width, dtype=np.int32)
    target = np.floor(shift + 0.5).astype(np.int32)  # whole pixels, so x + shift rounds as shift does
    target += columns
    np.clip(target, -1, width, out=target)  # -1 and width: off the frame, each a slot beyond its row's ends
    rows = np.arange(height, dtype=np.int64)[:, None]
    slots = (rows * (width + 2) + 1 + target).reshape(-1)
    columns = np.broadcast_to(columns, (height, width)).reshape(-1)
    if nearer_right:  # the z-buffer: each pixel's source column
        source = np.full(height * (width + 2), width, dtype=np.int32)
        np.minimum.at(source, slots, columns)
    else:
        source = np.full(height * (width + 2), -1, dtype=np.int32)
        np.maximum.at(source, slots, columns)
    source = source.reshape(height, width + 2)[:, 1:-1]
    landed = (source >= 0) & (source < width)
    filled = np.take_along_axis(source, _hole_sources(landed, from_left=nearer_right), axis=1)
    np.clip(filled, 0, width - 1, out=filled)
    pixels = (rows * width + filled).reshape(-1)  # gathered whole: take_along_axis over the channels took 5x longer
    view = np.take(np.ascontiguousarray(rgb).reshape(-1, 3), pixels, axis=0).reshape(height, width, 3)
    empty = ~landed.any(axis=1)
    if empty.any():  # a row nothing landed on stays black
        view[empty] = 0
    return view


def _hole_sources(landed: np.ndarray, from_left: bool) -> np.ndarray:
    """For every pixel, the column it takes its value from: its own where something landed, else the nearest
    landed column of its row on one side (the other side before a row's first or after its last landed pixel)."""
    width = landed.shape[1]
    columns = np.arange(width, dtype=np.int32)
    if from_left:
        nearest = np.maximum.accumulate(np.where(landed, columns, -1), axis=1)
        edge = np.argmax(landed, axis=1).astype(np.int32)[:, None]  # each row's first landed column
        return np.where(nearest >= 0, nearest, edge)
    nearest = np.minimum.accumulate(np.where(landed, columns, width)[:, ::-1], axis=1)[:, ::-1]
    edge = (width - 1 - np.argmax(landed[:, ::-1], axis=1)).astype(np.int32)[:, None]  # each row's last one
    return np.where(nearest < width, nearest, edge)


def stereo_pair(rgb: np.ndarray, depth: np.ndarray, low: float, high: float,
                options: StereoOptions) -> tuple[np.ndarray, np.ndarray]:
    """The left and right views of one frame: uint8 RGB [H, W, 3] and its relative inverse depth, resized to the
    frame where it differs (bilinear, by Pillow: ``reading.resize_depth``'s torch call takes 55 % longer per
    1080p frame here); ``low``, ``high``: the video's depth range (the farthest and the nearest point)."""
    from PIL import Image

    from .writers import _normalised  # the colour and PNG outputs' map of the range to [0, 1]

    height, width = rgb.shape[:2]
    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape != (height, width):
        depth = np.asarray(Image.fromarray(depth).resize((width, height), Image.Resampling.BILINEAR))
    nearness = _normalised(depth, low, high)  # 0: the farthest point of the video, 1: the nearest
    parallax = options.parallax / 100 * width * (nearness - options.convergence)  # > 0: in front of the screen
    left = render_eye(rgb, parallax / 2, nearer_right=True)
    right = render_eye(rgb, -parallax / 2, nearer_right=False)
    return left, right


def compose(left: np.ndarray, right: np.ndarray, layout: str) -> np.ndarray:
    """The two views in one frame, as ``layout`` (see :class:`StereoOptions`) puts them."""
    if layout == "sbs":
        return np.concatenate([left, right], axis=1)
    if layout == "half-sbs":
        from PIL import Image

        height, width = left.shape[:2]
        half = max(1, width // 2)
        views = (np.asarray(Image.fromarray(v).resize((half, height), Image.Resampling.LANCZOS)) for v in (left, right))
        return np.concatenate(list(views), axis=1)
    if layout == "anaglyph":
        return np.ascontiguousarray(np.dstack([left[..., 0], right[..., 1], right[..., 2]]))
    raise ValueError(f"unknown stereo layout {layout!r}")


def stereo_frames(rgb: Iterable[np.ndarray], depth: Iterable[np.ndarray], low: float, high: float,
                  options: StereoOptions) -> Iterator[np.ndarray]:
    """Stereo frames of a video, lazily: ``rgb`` at any size (the depth is resized to it), read once."""
    for frame, frame_depth in zip(rgb, depth, strict=True):
        yield compose(*stereo_pair(frame, frame_depth, low, high, options), options.layout)

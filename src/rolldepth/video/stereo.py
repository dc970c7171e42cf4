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


def render_eye(rgb: np.ndarray, shift: np.ndarray, nearness: np.ndarray, background_left: bool) -> np.ndarray:
    """One eye's view: every pixel of ``rgb`` [H, W, 3] moved ``shift`` [H, W] pixels along its row (rounded half
    up: a surface moved by 2.5 px moves by 3 everywhere, where rounding half to even would tear it).

    Where several land on one pixel, the largest ``nearness`` wins; a pixel none lands on takes the nearest landed
    pixel of its row on the background's side: the left with ``background_left``, else the right (and the other side
    where that side has none).
    """
    height, width = shift.shape
    target = np.floor(np.arange(width)[None, :] + shift + 0.5).astype(np.int64)
    inside = (target >= 0) & (target < width)
    flat = (np.arange(height)[:, None] * width + target)[inside]
    near = np.asarray(nearness, dtype=np.float64)[inside]
    best = np.full(height * width, -np.inf)
    np.maximum.at(best, flat, near)  # the z-buffer: the nearest pixel landing on each one
    wins = near >= best[flat]
    packed = np.zeros((height, width, 4), dtype=np.uint8)  # a pixel as one 32-bit word: 4x fewer element copies
    packed[..., :3] = rgb
    words = packed.view(np.uint32).reshape(-1)
    out = np.zeros(height * width, dtype=np.uint32)
    out[flat[wins]] = words[inside.reshape(-1)][wins]
    landed = np.zeros(height * width, dtype=bool)
    landed[flat[wins]] = True
    filled = _fill_holes(out.reshape(height, width), landed.reshape(height, width), background_left)
    return np.ascontiguousarray(filled.view(np.uint8).reshape(height, width, 4)[..., :3])


def _fill_holes(view: np.ndarray, landed: np.ndarray, from_left: bool) -> np.ndarray:
    """Each pixel nothing landed on takes the nearest landed pixel of its row on one side (the other where none)."""
    width = view.shape[1]
    columns = np.broadcast_to(np.arange(width), landed.shape)
    left = np.maximum.accumulate(np.where(landed, columns, -1), axis=1)  # nearest landed at or left of each pixel
    right = np.minimum.accumulate(np.where(landed, columns, width)[:, ::-1], axis=1)[:, ::-1]
    first, second = (left, right) if from_left else (right, left)
    source = np.clip(np.where((first >= 0) & (first < width), first, second), 0, width - 1)
    return np.take_along_axis(view, source, axis=1)


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
    left = render_eye(rgb, parallax / 2, nearness, background_left=True)
    right = render_eye(rgb, -parallax / 2, nearness, background_left=False)
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

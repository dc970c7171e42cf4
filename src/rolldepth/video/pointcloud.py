"""Coloured 3-D point clouds from depth maps: pinhole intrinsics, back-projection and binary PLY files.

Points are in each frame's own camera coordinates (OpenCV axes: x right, y down, z forward, metres), one cloud per
exported frame; RollingDepth estimates no camera motion, so clouds of different frames are not registered to one
world frame. Pixel centres sit at integer coordinates, the convention of ``rolldepth synth`` and of the resize, so
``X = (u - cx) * z / fx``, ``Y = (v - cy) * z / fy``, ``Z = z`` for pixel ``(u, v)`` with z-depth ``z``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import UserError, read_user_file


# ------------------------------------------------------------------------------------------------------------------
# Intrinsics
def intrinsics_from_fov(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K [3, 3] for a ``width`` x ``height`` image with horizontal field of view ``hfov_deg``, square
    pixels and the principal point at the image centre ``((W - 1) / 2, (H - 1) / 2)``."""
    if not 0 < hfov_deg < 180:
        raise UserError(f"--fov is the horizontal field of view in degrees, between 0 and 180; got {hfov_deg:g}")
    focal = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]], dtype=np.float64)


def read_intrinsics(path: str | Path) -> tuple[np.ndarray, tuple[int, int] | None]:
    """K [3, 3] from a file, and the (width, height) it was given for if the file says.

    Accepted: JSON ``{"K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]}`` or ``{"fx":, "fy":, "cx":, "cy":}`` (either
    optionally with ``"width"`` and ``"height"``), or a bare 3x3 JSON list; or plain text with ``fx fy cx cy`` or
    the 9 numbers of K (row by row; commas or whitespace). Without a size, K is taken to be in the input video's
    pixels.
    """
    path = Path(path)
    text = read_user_file(path, "intrinsics file")
    size = None
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path.name} is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            if "width" in data or "height" in data:
                size = _size(data.get("width"), data.get("height"), path.name)
            if "K" in data:
                data = data["K"]
            elif all(k in data for k in ("fx", "fy", "cx", "cy")):
                data = [data["fx"], data["fy"], data["cx"], data["cy"]]
            else:
                raise UserError(f"{path.name}: expected \"K\" (3x3) or \"fx\", \"fy\", \"cx\", \"cy\"")
        numbers = _numbers(np.ravel(np.array(data, dtype=object)).tolist(), path.name)
    else:
        numbers = _numbers(text.replace(",", " ").split(), path.name)
    return intrinsics_from_numbers(numbers, path.name), size


def _size(width, height, name: str) -> tuple[int, int]:
    try:
        size = int(width), int(height)
    except (TypeError, ValueError):
        raise UserError(f"{name}: width and height must be whole numbers, got {width!r} x {height!r}") from None
    if min(size) < 1:
        raise UserError(f"{name}: width and height must be >= 1, got {size[0]} x {size[1]}")
    return size


def _numbers(items, name: str) -> list[float]:
    try:
        return [float(item) for item in items]
    except (TypeError, ValueError):
        raise UserError(f"{name}: intrinsics must be numbers, got {items!r}") from None


def intrinsics_from_numbers(numbers: list[float], name: str = "intrinsics") -> np.ndarray:
    """K from ``[fx, fy, cx, cy]`` or the 9 entries of a 3x3 matrix, checked: finite, positive focal lengths, zero
    skew and a last row ``0 0 1``."""
    if len(numbers) == 4:
        fx, fy, cx, cy = numbers
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    elif len(numbers) == 9:
        K = np.array(numbers, dtype=np.float64).reshape(3, 3)
    else:
        raise UserError(f"{name}: expected fx fy cx cy or a 3x3 matrix (9 numbers), got {len(numbers)} numbers")
    if not np.all(np.isfinite(K)):
        raise UserError(f"{name}: intrinsics must be finite")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise UserError(f"{name}: focal lengths fx, fy must be > 0, got {K[0, 0]:g}, {K[1, 1]:g}")
    if K[0, 1] != 0 or K[1, 0] != 0 or not np.allclose(K[2], [0, 0, 1]):
        raise UserError(f"{name}: expected a pinhole K [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
    return K


def scale_intrinsics(K: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """K for the same camera after resizing the image from ``from_size`` to ``to_size`` (width, height), with
    pixel centres at integers on both: ``f' = f * s``, ``c' = (c + 0.5) * s - 0.5``, per axis."""
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    out = np.array(K, dtype=np.float64)
    out[0, 0], out[1, 1] = K[0, 0] * sx, K[1, 1] * sy
    out[0, 2], out[1, 2] = (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
    return out


# ------------------------------------------------------------------------------------------------------------------
# Points
def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-space points [H, W, 3] (float64, OpenCV axes) of a z-depth map [H, W] in metres; NaN depth gives NaN
    points."""
    depth = np.asarray(depth, dtype=np.float64)
    height, width = depth.shape
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * depth
    y = (v - K[1, 2]) / K[1, 1] * depth
    return np.stack([x, y, depth], axis=-1)


def frame_points(depth: np.ndarray, rgb: np.ndarray | None, K: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The valid (finite, positive depth) pixels of one frame as float32 points [M, 3] and uint8 colours [M, 3]."""
    points = backproject(depth, K)
    valid = np.isfinite(depth) & (np.asarray(depth) > 0)
    colours = None
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape[:2] != depth.shape or rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be uint8 {list(depth.shape)} + [3], got {rgb.dtype} {list(rgb.shape)}")
        colours = rgb[valid]
    return points[valid].astype(np.float32), colours


def write_ply(path: str | Path, points: np.ndarray, colours: np.ndarray | None = None,
              comments: tuple[str, ...] = ()) -> Path:
    """A binary little-endian PLY of ``points`` [M, 3] (float32 x, y, z) with uint8 ``red, green, blue``
    [M, 3] if given, and header ``comment`` lines; written atomically (see ``writers.atomic_path``)."""
    from plyfile import PlyData, PlyElement

    from .writers import atomic_path

    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if colours is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertices = np.empty(len(points), dtype=fields)
    vertices["x"], vertices["y"], vertices["z"] = points.T
    if colours is not None:
        colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
        vertices["red"], vertices["green"], vertices["blue"] = colours.T
    data = PlyData([PlyElement.describe(vertices, "vertex")], text=False, byte_order="<",
                   comments=[c.replace("\n", " ") for c in comments])
    path = Path(path)
    with atomic_path(path) as tmp:
        data.write(str(tmp))
    return path


def fit_plane(points: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares plane through points [M, 3]: unit normal ``n`` (pointing away from the origin's side, so
    ``offset >= 0``), ``offset`` with ``n . p = offset`` on the plane (the origin's distance to it) and each
    point's signed distance to it."""
    points = np.asarray(points, dtype=np.float64)
    centre = points.mean(axis=0)
    normal = np.linalg.svd(points - centre, full_matrices=False)[2][-1]
    offset = float(normal @ centre)
    if offset < 0:
        normal, offset = -normal, -offset
    return normal, offset, points @ normal - offset

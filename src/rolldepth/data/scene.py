"""Scene description of the synthetic videos: materials, meshes, objects, transforms and camera matrices.

Conventions
-----------
* World: metres, **y up**, the floor at y = 0 (the sky shading uses the world's up axis).
* Poses: camera-to-world [4, 4] in **OpenCV axes** (camera x right, y down, z forward).
* Depth: the z-distance along the optical axis in metres (not the ray length); every pixel is valid
  because every scene is closed (room walls, or ground plus a far sky box).
* Intrinsics: [3, 3] pixels; pixel (u, v) = (column, row) has its centre at integer coordinates, i.e.
  ``[u, v, 1] ~ K @ X_cam``, which is what :func:`rolldepth.evaluate.metrics.tae` assumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


SCENE_KINDS = ("room", "tabletop", "street", "field")
CAMERA_PATHS = ("dolly", "orbit", "pan", "handheld", "walk", "sweep", "approach")
# Shots whose visible depth range changes over the clip, what a per-frame model normalises differently in every
# frame and a video model must keep on one scale: a camera turning from a near wall to a far view (sweep) and one
# closing in on the scene (approach); the consistency split also always has an object flying through the near field.
CONSISTENCY_PATHS = ("sweep", "approach")
TEXTURES = {"solid": 0, "checker": 1, "stripes": 2, "noise": 3, "gradient": 4, "marble": 5, "sky": 6,
            "bricks": 7, "tiles": 8, "wood": 9, "cells": 10, "dots": 11}
# The families ``rich_textures`` adds: man-made layouts (bricks, tiles, dots) and natural ones (wood, cells).
RICH_TEXTURES = ("bricks", "tiles", "wood", "cells", "dots")
MAX_MOVING = 31  # moving objects per scene; slot 0 of the shader's model-matrix array is the static world


# ============================================================================================ scene description
@dataclass(frozen=True)
class Material:
    """A procedural surface pattern, evaluated in the object's own coordinates so it moves with the object.

    Attributes
    ----------
    texture : str
        A key of :data:`TEXTURES`; ``"sky"`` is unlit and shaded by view elevation (for the far backdrop).
    color_a, color_b : tuple of float
        Linear-RGB albedos in [0, 1] that the pattern mixes.
    direction : tuple of float
        Unit vector for stripes, gradients and marble veins (object coordinates).
    frequency : float
        Pattern repeats per metre (checker, stripes, noise, marble).
    phase : tuple of float
        Offset of the pattern, so equal objects do not look identical.
    detail : float
        Amplitude of a fine multiplicative noise on every pattern: real surfaces are never flat colour, and
        a depth model needs texture to see motion.
    """

    texture: str = "solid"
    color_a: tuple[float, float, float] = (0.7, 0.7, 0.7)
    color_b: tuple[float, float, float] = (0.2, 0.2, 0.2)
    direction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    frequency: float = 1.0
    phase: tuple[float, float, float] = (0.0, 0.0, 0.0)
    detail: float = 0.0


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh in its own coordinates: positions and normals [V, 3] float64, triangles [T, 3]."""

    positions: np.ndarray
    normals: np.ndarray
    triangles: np.ndarray

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre and half extents of the local axis-aligned bounding box (for clearance and clip planes)."""
        lo, hi = self.positions.min(axis=0), self.positions.max(axis=0)
        return (lo + hi) / 2, (hi - lo) / 2

    def scaled(self, factors) -> "Mesh":
        """The mesh stretched per axis; normals follow the inverse transpose so shading stays right."""
        factors = np.broadcast_to(np.asarray(factors, dtype=np.float64), (3,))
        normals = self.normals / factors
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        return Mesh(self.positions * factors, normals, self.triangles)


@dataclass(frozen=True)
class SceneObject:
    """A mesh with a material and a rigid placement.

    Attributes
    ----------
    transform : np.ndarray
        Object-to-world [4, 4] for a static object, or [N, 4, 4] (one per frame) for a moving one.
    casts_shadow : bool
        False for the enclosure (room shell, sky box): a ceiling or sky dome would shadow the whole scene.
    """

    mesh: Mesh
    material: Material
    transform: np.ndarray
    casts_shadow: bool = True

    @property
    def moving(self) -> bool:
        return self.transform.ndim == 3


@dataclass
class Scene:
    """Everything the renderer needs besides the camera.

    Attributes
    ----------
    objects : list of SceneObject
    light_direction : np.ndarray
        Unit vector in world coordinates pointing TOWARDS the (directional) light.
    light_color, ambient : tuple of float
        Linear-RGB irradiance of the light and of the uniform ambient term.
    sky_top, sky_horizon : tuple of float
        Colours of the ``"sky"`` material at the zenith and the horizon (also the fog colour).
    fog_distance : float
        Distance in metres over which colour fades by 1/e towards the horizon colour; 0 disables fog.
    exposure : float
        Multiplies the final linear colour before gamma encoding.
    shadows : bool
        Cast shadows of the directional light (shadow mapping); the enclosure receives them but casts none.
    """

    objects: list[SceneObject] = field(default_factory=list)
    light_direction: np.ndarray = field(
        default_factory=lambda: np.array([0.3, 0.8, 0.5]) / np.linalg.norm([0.3, 0.8, 0.5]))
    light_color: tuple[float, float, float] = (0.8, 0.8, 0.8)
    ambient: tuple[float, float, float] = (0.25, 0.25, 0.25)
    sky_top: tuple[float, float, float] = (0.25, 0.45, 0.85)
    sky_horizon: tuple[float, float, float] = (0.75, 0.82, 0.9)
    fog_distance: float = 0.0
    exposure: float = 1.0
    shadows: bool = False


@dataclass(frozen=True)
class SceneConfig:
    """What :func:`render_sequence` may draw from the seed, and what the caller fixes.

    Attributes
    ----------
    kind : str or None
        One of :data:`SCENE_KINDS`; None lets the seed choose.
    camera_path : str or None
        One of :data:`CAMERA_PATHS`; None lets the seed choose. A path that does not fit the scene falls
        back to ``"pan"`` (the camera stays where it is).
    camera_paths : tuple of str or None
        Paths the seed chooses from with equal weights (instead of the scene kind's own weights), e.g.
        :data:`CONSISTENCY_PATHS`; ``camera_path`` wins when both are given.
    moving_objects : bool
        False renders a static scene, which reprojection checks (TAE) need.
    flyby : bool or None
        Force or forbid an object passing close to the camera (only with ``moving_objects``); None lets the
        seed choose (35 %).
    antialias : bool
        4x multisampled colour (depth stays single-sample at pixel centres, so it remains exact).
    fps : float
        Frame rate that converts speeds to per-frame motion.
    motion_blur : int
        Odd number of instants rendered per frame and averaged into its colour (1 = none). Depth and pose stay
        those of the middle instant, the frame's own time: what a real camera's blurred frame is paired with.
    shutter : float
        How long the shutter is open, in frame intervals (0.5 = the cinema's 180 degrees); the instants spread
        evenly over it.
    shadows : bool
        Objects cast shadows of the scene's light. Shadows are dark regions that are not depth edges, a cue a
        depth model must learn not to trust.
    rich_textures : bool
        About half the surfaces get the rich pattern families (bricks, tiles, wood, cells, dots) instead.
    thin_structures : bool
        Adds wires, railings, fences, rod frames or pencils (by scene kind): structures a pixel or less across.

    The three realism options draw from their own random streams: the scene, camera and motion of a seed stay
    the same with or without them.
    """

    kind: str | None = None
    camera_path: str | None = None
    camera_paths: tuple[str, ...] | None = None
    moving_objects: bool = True
    flyby: bool | None = None
    antialias: bool = True
    fps: float = 30.0
    motion_blur: int = 1
    shutter: float = 0.5
    shadows: bool = False
    rich_textures: bool = False
    thin_structures: bool = False


# ============================================================================================ meshes
def box_mesh(half_extents) -> Mesh:
    """A box centred at the origin with flat-shaded faces (24 vertices, so each face has its own normal)."""
    half = np.asarray(half_extents, dtype=np.float64)
    positions, normals, triangles = [], [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u, v = (axis + 1) % 3, (axis + 2) % 3
            corners = np.zeros((4, 3))
            corners[:, axis] = sign
            corners[:, u] = [-1, 1, 1, -1]
            corners[:, v] = [-1, -1, 1, 1]
            base = len(positions) * 4
            positions.append(corners * half)
            normals.append(np.tile(np.eye(3)[axis] * sign, (4, 1)))
            triangles += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return Mesh(np.concatenate(positions), np.concatenate(normals), np.array(triangles, dtype=np.int64))


def quad_mesh(half_u: float, half_v: float) -> Mesh:
    """A rectangle in the local x-y plane with normal +z (walls, floors, test targets)."""
    positions = np.array([[-half_u, -half_v, 0], [half_u, -half_v, 0], [half_u, half_v, 0], [-half_u, half_v, 0]],
                         dtype=np.float64)
    normals = np.tile([0.0, 0.0, 1.0], (4, 1))
    return Mesh(positions, normals, np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64))


def sphere_mesh(radius: float, n_lat: int = 12, n_lon: int = 24) -> Mesh:
    """A UV sphere with smooth normals; depth is exact for this faceted surface, not the ideal sphere."""
    theta = np.linspace(0, np.pi, n_lat + 1)[:, None]
    phi = np.linspace(0, 2 * np.pi, n_lon + 1)[None, :]
    unit = np.stack(np.broadcast_arrays(np.sin(theta) * np.cos(phi), np.cos(theta), np.sin(theta) * np.sin(phi)), -1)
    unit = unit.reshape(-1, 3)
    rows, cols = np.meshgrid(np.arange(n_lat), np.arange(n_lon), indexing="ij")
    a = (rows * (n_lon + 1) + cols).ravel()
    b, c, d = a + n_lon + 1, a + n_lon + 2, a + 1
    triangles = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return Mesh(unit * radius, unit.copy(), triangles)


def cylinder_mesh(radius: float, half_height: float, n_sides: int = 24) -> Mesh:
    """A capped cylinder along local y: smooth sides, flat caps."""
    phi = np.linspace(0, 2 * np.pi, n_sides + 1)
    ring = np.stack([np.cos(phi), np.zeros_like(phi), np.sin(phi)], 1)
    side_pos = np.concatenate([ring * radius - [0, half_height, 0], ring * radius + [0, half_height, 0]])
    side_nrm = np.concatenate([ring, ring])
    k = np.arange(n_sides)
    side_tri = np.concatenate([np.stack([k, k + n_sides + 1, k + n_sides + 2], 1),
                               np.stack([k, k + n_sides + 2, k + 1], 1)])
    positions, normals, triangles = [side_pos], [side_nrm], [side_tri]
    offset = len(side_pos)
    for sign in (-1.0, 1.0):
        centre = np.array([[0.0, sign * half_height, 0.0]])
        cap = np.concatenate([centre, ring[:-1] * radius + centre])
        positions.append(cap)
        normals.append(np.tile([0.0, sign, 0.0], (len(cap), 1)))
        triangles.append(offset + np.stack([np.zeros(n_sides, dtype=np.int64), 1 + k, 1 + (k + 1) % n_sides], 1))
        offset += len(cap)
    return Mesh(np.concatenate(positions), np.concatenate(normals), np.concatenate(triangles))


# ============================================================================================ geometry helpers
def random_unit(rng: np.random.Generator) -> np.ndarray:
    """A random direction: a unit 3-vector, uniform on the sphere."""
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def rotation(axis, angle: float) -> np.ndarray:
    """[3, 3] rotation by ``angle`` radians about ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    x, y, z = axis / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def rigid(rot: np.ndarray, translation) -> np.ndarray:
    """[4, 4] (or [..., 4, 4]) homogeneous transform from rotation(s) and translation(s)."""
    rot = np.asarray(rot, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64)
    batch = np.broadcast_shapes(rot.shape[:-2], translation.shape[:-1])
    out = np.zeros(batch + (4, 4))
    out[..., :3, :3] = rot
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def look_at(eye, forward, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Camera-to-world [..., 4, 4] in OpenCV axes for cameras at ``eye`` looking along ``forward``.

    The camera's x axis is ``forward x up`` (right), y is ``forward x right`` (down in the image), so the
    horizon stays level; ``forward`` must not be parallel to ``up``.
    """
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(forward, dtype=np.float64)
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    x = np.cross(z, np.broadcast_to(np.asarray(up, dtype=np.float64), z.shape))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return rigid(np.stack([x, y, z], axis=-1), eye)


def intrinsics_matrix(width: int, height: int, hfov_deg: float, principal_offset=(0.0, 0.0)) -> np.ndarray:
    """Pinhole K with square pixels; the principal point is the image centre ((W-1)/2, (H-1)/2) plus an
    offset in pixels, since pixel centres sit at integer coordinates."""
    fx = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
    return np.array(
        [[fx, 0, (width - 1) / 2 + principal_offset[0]], [0, fx, (height - 1) / 2 + principal_offset[1]], [0, 0, 1]]
    )


def projection_matrix(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL clip matrix for OpenCV camera coordinates, exact to the pinhole model of ``K``.

    GL pixel i has its centre at window coordinate i + 0.5, and K puts pixel centres at integers, hence
    the +0.5. Image row v maps to GL window row v (not H-1-v), so the framebuffer read back bottom-row
    first is already in image order (top row first); the mirrored winding does not matter (no culling).
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return np.array(
        [
            [2 * fx / width, K[0, 1] * 2 / width, 2 * (cx + 0.5) / width - 1, 0],
            [0, 2 * fy / height, 2 * (cy + 0.5) / height - 1, 0],
            [0, 0, (far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, 1, 0],
        ]
    )


def frames_transforms(obj: SceneObject, n_frames: int) -> np.ndarray:
    return obj.transform if obj.moving else np.broadcast_to(obj.transform, (n_frames, 4, 4))


def box_distance(points: np.ndarray, transforms: np.ndarray, centre: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Distance from points [N, 3] to an oriented box given per point by transforms [N, 4, 4] (0 inside)."""
    local = np.einsum("nji,nj->ni", transforms[:, :3, :3], points - transforms[:, :3, 3]) - centre
    return np.linalg.norm(np.maximum(np.abs(local) - half, 0.0), axis=1)


_BOX_SIGNS = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T  # the 8 corners of a unit box


def box_corners(obj: SceneObject, n_frames: int) -> np.ndarray:
    """World coordinates [N, 8, 3] of the corners of an object's bounding box, frame by frame."""
    transforms = frames_transforms(obj, n_frames)
    centre, half = obj.mesh.bounds
    return np.einsum("nij,kj->nki", transforms[:, :3, :3], centre + _BOX_SIGNS * half) + transforms[:, None, :3, 3]


def clip_range(scene: Scene, poses: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> tuple[float, float]:
    """Near and far planes that clip nothing visible yet keep the z-buffer as precise as the scene allows.

    Near: no surface is closer to a camera than its distance to the object's bounding box, and a point
    at distance r inside the view frustum has z >= r * cos(angle of the farthest image corner).
    Far: no point is farther than the farthest bounding-box corner.
    """
    width, height = size
    n_frames = len(poses)
    corners_px = np.array([[-0.5, -0.5, 1], [width - 0.5, -0.5, 1], [-0.5, height - 0.5, 1],
                           [width - 0.5, height - 0.5, 1]])
    rays = np.linalg.solve(K, corners_px.T).T
    min_cos = float(np.min(1.0 / np.linalg.norm(rays, axis=1)))
    eyes = poses[:, :3, 3]
    nearest, farthest = np.inf, 0.0
    for obj in scene.objects:
        centre, half = obj.mesh.bounds
        nearest = min(nearest, float(box_distance(eyes, frames_transforms(obj, n_frames), centre, half).min()))
        farthest = max(farthest, float(np.linalg.norm(box_corners(obj, n_frames) - eyes[:, None], axis=2).max()))
    near = max(0.9 * nearest * min_cos, 1e-4)
    return near, max(1.01 * farthest, 2 * near)

"""Procedural synthetic videos with exact metric depth, camera poses and intrinsics.

rolldepth trains and checks its own small depth model on synthetic video, because only a renderer gives
depth that is exact at every pixel, with poses that agree with it to float precision. Each seed builds one
scene (a furnished room, a tabletop, a street or an open field) from boxes, spheres, cylinders and quads with
procedural textures, Lambertian + ambient lighting, a camera path (dolly, orbit, pan, handheld, forward walk)
and optionally moving objects, one of which may pass close to the camera. Scene scale spans tabletop
(tens of centimetres) to street (about 100 m).

Conventions
-----------
* World: metres, **y up**, the floor at y = 0 (the sky shading uses the world's up axis).
* Poses: camera-to-world [4, 4] in **OpenCV axes** (camera x right, y down, z forward).
* Depth: the z-distance along the optical axis in metres (not the ray length); every pixel is valid
  because every scene is closed (room walls, or ground plus a far sky box).
* Intrinsics: [3, 3] pixels; pixel (u, v) = (column, row) has its centre at integer coordinates, i.e.
  ``[u, v, 1] ~ K @ X_cam``, which is what :func:`rolldepth.metrics.tae` assumes.

Rendering is headless OpenGL (moderngl on EGL, Mesa llvmpipe). Depth is not decoded from the z-buffer: the
shader writes the interpolated view-space z into a float32 colour attachment, so it is exact up to float32
rounding; the z-buffer only decides visibility, with near/far planes fitted to every scene.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import logging
import os
import shutil
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError

logger = logging.getLogger(__name__)

FORMAT_NAME = "rolldepth-synth"
FORMAT_VERSION = 1
EGL_FIX = "apt-get update && apt-get install -y libegl1 libgl1-mesa-dri libgles2"
SCENE_KINDS = ("room", "tabletop", "street", "field")
CAMERA_PATHS = ("dolly", "orbit", "pan", "handheld", "walk", "sweep", "approach")
# Shots whose visible depth range changes over the clip, what a per-frame model normalises differently in every
# frame and a video model must keep on one scale: a camera turning from a near wall to a far view (sweep) and one
# closing in on the scene (approach); the consistency split also always has an object flying through the near field.
CONSISTENCY_PATHS = ("sweep", "approach")
TEXTURES = {"solid": 0, "checker": 1, "stripes": 2, "noise": 3, "gradient": 4, "marble": 5, "sky": 6}
MAX_MOVING = 31  # moving objects per scene; slot 0 of the shader's model-matrix array is the static world
_SEQUENCE_FILES = ("frames.npy", "depth.npy", "poses.npy", "intrinsics.npy", "meta.json")


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
    """

    mesh: Mesh
    material: Material
    transform: np.ndarray

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
    """

    objects: list[SceneObject] = field(default_factory=list)
    light_direction: np.ndarray = field(default_factory=lambda: np.array([0.3, 0.8, 0.5]) / np.linalg.norm([0.3, 0.8, 0.5]))
    light_color: tuple[float, float, float] = (0.8, 0.8, 0.8)
    ambient: tuple[float, float, float] = (0.25, 0.25, 0.25)
    sky_top: tuple[float, float, float] = (0.25, 0.45, 0.85)
    sky_horizon: tuple[float, float, float] = (0.75, 0.82, 0.9)
    fog_distance: float = 0.0
    exposure: float = 1.0


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
    """

    kind: str | None = None
    camera_path: str | None = None
    camera_paths: tuple[str, ...] | None = None
    moving_objects: bool = True
    flyby: bool | None = None
    antialias: bool = True
    fps: float = 30.0


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
    positions = np.array([[-half_u, -half_v, 0], [half_u, -half_v, 0], [half_u, half_v, 0], [-half_u, half_v, 0]], dtype=np.float64)
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
    side_tri = np.concatenate([np.stack([k, k + n_sides + 1, k + n_sides + 2], 1), np.stack([k, k + n_sides + 2, k + 1], 1)])
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


def _frames_transforms(obj: SceneObject, n_frames: int) -> np.ndarray:
    return obj.transform if obj.moving else np.broadcast_to(obj.transform, (n_frames, 4, 4))


def box_distance(points: np.ndarray, transforms: np.ndarray, centre: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Distance from points [N, 3] to an oriented box given per point by transforms [N, 4, 4] (0 inside)."""
    local = np.einsum("nji,nj->ni", transforms[:, :3, :3], points - transforms[:, :3, 3]) - centre
    return np.linalg.norm(np.maximum(np.abs(local) - half, 0.0), axis=1)


def clip_range(scene: Scene, poses: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> tuple[float, float]:
    """Near and far planes that clip nothing visible yet keep the z-buffer as precise as the scene allows.

    Near: no surface is closer to a camera than its distance to the object's bounding box, and a point
    at distance r inside the view frustum has z >= r * cos(angle of the farthest image corner).
    Far: no point is farther than the farthest bounding-box corner.
    """
    width, height = size
    n_frames = len(poses)
    corners_px = np.array([[-0.5, -0.5, 1], [width - 0.5, -0.5, 1], [-0.5, height - 0.5, 1], [width - 0.5, height - 0.5, 1]])
    rays = np.linalg.solve(K, corners_px.T).T
    min_cos = float(np.min(1.0 / np.linalg.norm(rays, axis=1)))
    eyes = poses[:, :3, 3]
    nearest, farthest = np.inf, 0.0
    signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
    for obj in scene.objects:
        transforms = _frames_transforms(obj, n_frames)
        centre, half = obj.mesh.bounds
        nearest = min(nearest, float(box_distance(eyes, transforms, centre, half).min()))
        corners = np.einsum("nij,kj->nki", transforms[:, :3, :3], centre + signs * half) + transforms[:, None, :3, 3]
        farthest = max(farthest, float(np.linalg.norm(corners - eyes[:, None], axis=2).max()))
    near = max(0.9 * nearest * min_cos, 1e-4)
    return near, max(1.01 * farthest, 2 * near)


# ============================================================================================ renderer
_VERTEX_SHADER = """
#version 330
uniform mat4 u_proj;
uniform mat4 u_view;
uniform mat4 u_model[%(slots)d];
in vec3 in_pos; in vec3 in_normal; in vec3 in_tex; in vec3 in_unit;
in vec3 in_color_a; in vec3 in_color_b; in vec3 in_dir; in vec3 in_params;
out vec3 v_world; out vec3 v_normal; out vec3 v_tex; out vec3 v_unit;
out vec3 v_color_a; out vec3 v_color_b; out vec3 v_dir; out vec2 v_params; out float v_z;
void main() {
    mat4 model = u_model[int(in_params.z + 0.5)];
    vec4 world = model * vec4(in_pos, 1.0);
    vec4 cam = u_view * world;
    v_world = world.xyz;
    v_normal = mat3(model) * in_normal;
    v_tex = in_tex; v_unit = in_unit; v_color_a = in_color_a; v_color_b = in_color_b; v_dir = in_dir;
    v_params = in_params.xy;
    v_z = cam.z;
    gl_Position = u_proj * cam;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 u_eye; uniform vec3 u_light_dir; uniform vec3 u_light_color; uniform vec3 u_ambient;
uniform vec3 u_sky_top; uniform vec3 u_sky_horizon; uniform float u_fog_distance; uniform float u_exposure;
in vec3 v_world; in vec3 v_normal; in vec3 v_tex; in vec3 v_unit;
in vec3 v_color_a; in vec3 v_color_b; in vec3 v_dir; in vec2 v_params; in float v_z;
layout(location = 0) out vec4 out_color;
layout(location = 1) out float out_depth;

float hash(ivec3 cell) {  // integer avalanche hash of a lattice cell -> [0, 1)
    uvec3 h = uvec3(cell) * uvec3(0x8da6b343u, 0xd8163841u, 0xcb1ab31fu);
    uint n = h.x ^ h.y ^ h.z;
    n = (n ^ (n >> 15u)) * 0x2c1b3c6du;
    n = (n ^ (n >> 12u)) * 0x297a2d39u;
    n ^= n >> 15u;
    return float(n) / 4294967296.0;
}

float value_noise(vec3 p) {
    ivec3 i = ivec3(floor(p));
    vec3 f = fract(p);
    vec3 w = f * f * (3.0 - 2.0 * f);
    float x00 = mix(hash(i), hash(i + ivec3(1, 0, 0)), w.x);
    float x10 = mix(hash(i + ivec3(0, 1, 0)), hash(i + ivec3(1, 1, 0)), w.x);
    float x01 = mix(hash(i + ivec3(0, 0, 1)), hash(i + ivec3(1, 0, 1)), w.x);
    float x11 = mix(hash(i + ivec3(0, 1, 1)), hash(i + ivec3(1, 1, 1)), w.x);
    return mix(mix(x00, x10, w.y), mix(x01, x11, w.y), w.z);
}

float fbm(vec3 p) {
    float sum = 0.0, amp = 0.5;
    for (int k = 0; k < 4; ++k) { sum += amp * value_noise(p); p = p * 2.03 + 17.1; amp *= 0.5; }
    return sum / 0.9375;
}

vec3 sky(vec3 dir) {
    float up = clamp(dir.y, 0.0, 1.0);
    vec3 base = mix(u_sky_horizon, u_sky_top, pow(up, 0.6));
    float cloud = smoothstep(0.55, 0.85, fbm(vec3(dir.xz / max(dir.y, 0.05) * 1.5, 0.0)));
    return mix(base, vec3(0.95), cloud * 0.7 * smoothstep(0.0, 0.15, up));
}

void main() {
    int kind = int(v_params.x + 0.5);
    vec3 view = v_world - u_eye;
    float dist = length(view);
    vec3 color;
    if (kind == 6) {
        color = sky(view / dist);
    } else {
        float t;
        float blur = clamp(length(fwidth(v_tex)) - 0.3, 0.0, 1.0);  // fade patterns finer than a pixel
        if (kind == 0) t = 0.0;
        else if (kind == 1) t = mod(floor(v_tex.x) + floor(v_tex.y) + floor(v_tex.z), 2.0);
        else if (kind == 2) t = smoothstep(0.45, 0.55, abs(fract(dot(v_tex, v_dir)) - 0.5) * 2.0);
        else if (kind == 3) t = fbm(v_tex);
        else if (kind == 4) t = clamp(dot(v_unit, v_dir) * 0.5 + 0.5, 0.0, 1.0);
        else t = 0.5 + 0.5 * sin(6.2831853 * dot(v_tex, v_dir) + 5.0 * fbm(v_tex));
        if (kind == 1 || kind == 2) t = mix(t, 0.5, blur);
        vec3 albedo = mix(v_color_a, v_color_b, t);
        albedo *= 1.0 + v_params.y * (2.0 * fbm(v_tex * 7.31 + 3.7) - 1.0);
        vec3 n = normalize(v_normal);
        if (dot(n, view) > 0.0) n = -n;  // two-sided: light the side the camera sees
        color = albedo * (u_ambient + u_light_color * max(dot(n, u_light_dir), 0.0));
        if (u_fog_distance > 0.0) color = mix(u_sky_horizon, color, exp(-dist / u_fog_distance));
    }
    out_color = vec4(pow(clamp(color * u_exposure, 0.0, 1.0), vec3(1.0 / 2.2)), 1.0);
    out_depth = v_z;
}
"""

_ATTRIBUTES = ("in_pos", "in_normal", "in_tex", "in_unit", "in_color_a", "in_color_b", "in_dir", "in_params")


@lru_cache(maxsize=1)
def _gl_context():
    """One headless EGL context per process (creating contexts repeatedly is slow and leaks on some drivers)."""
    try:
        import moderngl
    except ImportError:
        raise UserError("the synthetic renderer needs moderngl: pip install moderngl==5.13.0") from None
    try:
        return moderngl.create_context(standalone=True, backend="egl")
    except Exception as exc:  # moderngl reports a missing libEGL/driver with plain Exceptions
        raise UserError(f"no headless OpenGL (EGL) available ({exc}); fix: {EGL_FIX}") from None


class Renderer:
    """Renders scenes to uint8 RGB and float32 metric depth at one image size.

    Two passes share one program: a 4x multisampled colour pass (when antialiasing) and a single-sample
    pass whose float32 attachment receives view-space z at exact pixel centres, so antialiasing never
    blends depths across an edge.
    """

    def __init__(self, size: tuple[int, int], antialias: bool = True):
        self.size = (int(size[0]), int(size[1]))
        self.antialias = antialias
        ctx = self.ctx = _gl_context()
        self.program = ctx.program(
            vertex_shader=_VERTEX_SHADER % {"slots": MAX_MOVING + 1}, fragment_shader=_FRAGMENT_SHADER
        )
        color = ctx.renderbuffer(self.size, 4)
        depth_f32 = ctx.renderbuffer(self.size, 1, dtype="f4")
        self.fbo = ctx.framebuffer([color, depth_f32], ctx.depth_renderbuffer(self.size))
        if antialias:
            samples = min(4, ctx.max_samples)
            self.msaa_fbo = ctx.framebuffer(
                [ctx.renderbuffer(self.size, 4, samples=samples)], ctx.depth_renderbuffer(self.size, samples=samples)
            )
            self.resolve_fbo = ctx.framebuffer([ctx.renderbuffer(self.size, 4)])

    def render(self, scene: Scene, poses: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Render every camera pose.

        Parameters
        ----------
        scene : Scene
            Moving objects need one transform per pose.
        poses : np.ndarray
            [N, 4, 4] camera-to-world, OpenCV axes.
        K : np.ndarray
            [3, 3] intrinsics in pixels for :attr:`size`.

        Returns
        -------
        frames, depth : np.ndarray
            uint8 [N, H, W, 3] and float32 [N, H, W] z-depth in metres (0 where no geometry was hit).
        """
        width, height = self.size
        n_frames = len(poses)
        movers = [obj for obj in scene.objects if obj.moving]
        if len(movers) > MAX_MOVING:
            raise ValueError(f"at most {MAX_MOVING} moving objects, got {len(movers)}")
        if any(len(obj.transform) != n_frames for obj in movers):
            raise ValueError("every moving object needs one transform per frame")
        near, far = clip_range(scene, poses, K, self.size)
        vertices, indices = _vertex_data(scene)
        ctx, program = self.ctx, self.program
        vbo, ibo = ctx.buffer(vertices.tobytes()), ctx.buffer(indices.tobytes())
        vao = ctx.vertex_array(program, [(vbo, "3f " * 8, *_ATTRIBUTES)], index_buffer=ibo, index_element_size=4)
        try:
            self._set_scene_uniforms(scene, K, near, far)
            frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
            depth = np.empty((n_frames, height, width), dtype=np.float32)
            ctx.enable(ctx.DEPTH_TEST)
            models = np.tile(np.eye(4), (MAX_MOVING + 1, 1, 1))
            for i in range(n_frames):
                for slot, obj in enumerate(movers, start=1):
                    models[slot] = obj.transform[i]
                program["u_model"].write(_gl_matrices(models))
                program["u_view"].write(_gl_matrices(np.linalg.inv(poses[i])))
                program["u_eye"].value = tuple(float(c) for c in poses[i][:3, 3])
                frames[i], depth[i] = self._draw(vao)
        finally:
            vao.release()
            vbo.release()
            ibo.release()
        return frames, depth

    def _set_scene_uniforms(self, scene: Scene, K: np.ndarray, near: float, far: float) -> None:
        program = self.program
        program["u_proj"].write(_gl_matrices(projection_matrix(K, *self.size, near, far)))
        light = np.asarray(scene.light_direction, dtype=np.float64)
        program["u_light_dir"].value = tuple(float(c) for c in light / np.linalg.norm(light))
        for name in ("light_color", "ambient", "sky_top", "sky_horizon"):
            program[f"u_{name}"].value = tuple(float(c) for c in getattr(scene, name))
        program["u_fog_distance"].value = float(scene.fog_distance)
        program["u_exposure"].value = float(scene.exposure)

    def _draw(self, vao) -> tuple[np.ndarray, np.ndarray]:
        ctx = self.ctx
        width, height = self.size
        self.fbo.use()
        self.fbo.clear(0.0, 0.0, 0.0, 0.0)
        self.fbo.clear(depth=1.0)  # the depth attachment separately: the colour clear leaves it stale
        vao.render()
        depth = np.frombuffer(self.fbo.read(components=1, attachment=1, dtype="f4", alignment=1), dtype=np.float32)
        source = self.fbo
        if self.antialias:
            self.msaa_fbo.use()
            self.msaa_fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            vao.render()
            ctx.copy_framebuffer(self.resolve_fbo, self.msaa_fbo)
            source = self.resolve_fbo
        color = np.frombuffer(source.read(components=3, attachment=0, alignment=1), dtype=np.uint8)
        return color.reshape(height, width, 3), depth.reshape(height, width)


@lru_cache(maxsize=4)
def get_renderer(width: int, height: int, antialias: bool = True) -> Renderer:
    """A cached :class:`Renderer`, so repeated sequences reuse the GL program and framebuffers."""
    return Renderer((width, height), antialias)


def _gl_matrices(matrices: np.ndarray) -> bytes:
    """Row-major numpy matrices as the column-major float32 bytes OpenGL expects."""
    return np.ascontiguousarray(np.swapaxes(np.asarray(matrices), -1, -2), dtype=np.float32).tobytes()


def _vertex_data(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved float32 vertices (8 x vec3) and uint32 indices for the whole scene, drawn in one call.

    Static objects are baked into world coordinates (slot 0, identity model matrix); each moving object keeps
    local coordinates and gets its own slot. Texture coordinates are always the object's local position
    times the pattern frequency, so patterns stick to their surfaces.
    """
    chunks, index_chunks, offset, slot = [], [], 0, 0
    for obj in scene.objects:
        mesh, mat = obj.mesh, obj.material
        centre, half = mesh.bounds
        n = len(mesh.positions)
        if obj.moving:
            slot += 1
            positions, normals = mesh.positions, mesh.normals
        else:
            rot, trans = obj.transform[:3, :3], obj.transform[:3, 3]
            positions, normals = mesh.positions @ rot.T + trans, mesh.normals @ rot.T
        tex = mesh.positions * mat.frequency + np.asarray(mat.phase)
        unit = (mesh.positions - centre) / np.maximum(half, 1e-9)
        constant = np.concatenate(
            [mat.color_a, mat.color_b, mat.direction, [TEXTURES[mat.texture], mat.detail, slot]]
        )
        chunks.append(np.concatenate([positions, normals, tex, unit, np.broadcast_to(constant, (n, 12))], axis=1))
        index_chunks.append(mesh.triangles + offset)
        offset += n
    return (
        np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32),
        np.ascontiguousarray(np.concatenate(index_chunks), dtype=np.uint32),
    )


# ============================================================================================ random scene pieces
def _color(rng: np.random.Generator, hue: float | None = None, sat=(0.15, 0.8), val=(0.25, 0.9)) -> tuple:
    """A linear-RGB albedo from HSV ranges (hue None = any)."""
    h = rng.uniform() if hue is None else (hue + rng.normal(0, 0.05)) % 1.0
    rgb = colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val))
    return tuple(float(c) ** 2.2 for c in rgb)  # HSV is perceptual; the shader works in linear light


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def random_material(
    rng: np.random.Generator,
    size: float,
    textures: tuple[str, ...] = ("solid", "checker", "stripes", "noise", "gradient", "marble"),
    hue: float | None = None,
    sat=(0.15, 0.8),
    val=(0.25, 0.9),
) -> Material:
    """A random pattern whose period is a fraction of ``size`` (metres), so small and large objects both
    show a few repeats."""
    return Material(
        texture=str(rng.choice(textures)),
        color_a=_color(rng, hue, sat, val),
        color_b=_color(rng, None if rng.uniform() < 0.5 else hue, sat, val),
        direction=tuple(_unit(rng)),
        frequency=float(rng.uniform(1.5, 8.0) / size),
        phase=tuple(rng.uniform(0, 10, 3)),
        detail=float(rng.uniform(0.03, 0.3)),
    )


def _primitive(rng: np.random.Generator, size: float) -> Mesh:
    """A random box, sphere/ellipsoid or cylinder whose largest half extent is about ``size``."""
    shape = rng.choice(["box", "sphere", "cylinder"], p=[0.45, 0.3, 0.25])
    aspect = rng.uniform(0.4, 1.0, 3)
    if shape == "box":
        return box_mesh(size * aspect)
    if shape == "sphere":
        return sphere_mesh(size).scaled(aspect if rng.uniform() < 0.4 else 1.0)
    return cylinder_mesh(size * aspect[0], size * rng.uniform(0.4, 1.6))


def _grounded(mesh: Mesh, x: float, z: float, yaw: float, floor_y: float = 0.0) -> np.ndarray:
    """Transform that stands a mesh on the horizontal plane y = floor_y at (x, z), turned by ``yaw``."""
    centre, half = mesh.bounds
    return rigid(rotation([0, 1, 0], yaw), [x, floor_y + half[1] - centre[1], z])


def enclosure(half_extents, floor: Material, walls: Material, ceiling: Material) -> list[SceneObject]:
    """Six inward quads of a box standing on y = 0: a room, or ground plus sky box.

    Each quad is 1 % larger than its face so the seams overlap outside the box and no crack can show
    the cleared background.
    """
    hx, hy, hz = (float(h) for h in half_extents)
    grow = 1.01
    faces = [  # (rotation taking local +z to the inward normal, centre, quad half sizes, material)
        (rotation([1, 0, 0], -np.pi / 2), [0, 0, 0], (hx, hz), floor),
        (rotation([1, 0, 0], np.pi / 2), [0, 2 * hy, 0], (hx, hz), ceiling),
        (np.eye(3), [0, hy, -hz], (hx, hy), walls),
        (rotation([0, 1, 0], np.pi), [0, hy, hz], (hx, hy), walls),
        (rotation([0, 1, 0], np.pi / 2), [-hx, hy, 0], (hz, hy), walls),
        (rotation([0, 1, 0], -np.pi / 2), [hx, hy, 0], (hz, hy), walls),
    ]
    return [
        SceneObject(quad_mesh(u * grow, v * grow), material, rigid(rot, centre))
        for rot, centre, (u, v), material in faces
    ]


# ============================================================================================ camera paths
@dataclass
class _Layout:
    """What a camera path needs to know about a scene: a safe box for the eye, the start view and scale."""

    free_lo: np.ndarray
    free_hi: np.ndarray
    eye: np.ndarray
    target: np.ndarray
    view_distance: float
    max_speed: float  # metres per second a camera of this kind plausibly moves
    path_weights: dict[str, float]
    structure: list[SceneObject] = field(default_factory=list)  # big objects the camera must not enter


def _yaw_pitch(forward: np.ndarray) -> tuple[float, float]:
    return float(np.arctan2(forward[0], forward[2])), float(np.arcsin(np.clip(forward[1], -1, 1)))


def _direction(yaw, pitch) -> np.ndarray:
    yaw, pitch = np.broadcast_arrays(np.asarray(yaw, dtype=np.float64), np.asarray(pitch, dtype=np.float64))
    return np.stack([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)], axis=-1)


def _wobble(rng: np.random.Generator, times: np.ndarray, amplitude: float, freq=(0.4, 3.0)) -> np.ndarray:
    """[N, 3] smooth random signal (three sinusoids per axis): hand tremor and head sway."""
    f = rng.uniform(*freq, size=(3, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(3, 3))
    weight = rng.uniform(0.3, 1.0, size=(3, 3))
    signal = np.sin(2 * np.pi * f[None] * times[:, None, None] + phase[None]) * weight[None]
    return amplitude * signal.sum(axis=2) / weight.sum(axis=1)


def _camera_path(
    rng: np.random.Generator, name: str, layout: _Layout, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Eyes [N, 3] and forward directions [N, 3] of one path type (before handheld jitter)."""
    duration = max(float(times[-1]), 1e-6)
    centred = times - duration / 2
    eye, view = layout.eye, layout.view_distance
    yaw0, pitch0 = _yaw_pitch((layout.target - eye) / np.linalg.norm(layout.target - eye))
    n = len(times)
    speed = min(rng.uniform(0.15, 0.6) * view, layout.max_speed)
    if name == "orbit":
        rel = eye - layout.target
        angle = np.arctan2(rel[0], rel[2]) + np.radians(rng.uniform(8, 35)) * rng.choice([-1, 1]) * centred
        radius = np.hypot(rel[0], rel[2])
        eyes = layout.target + np.stack([radius * np.sin(angle), np.full(n, rel[1]), radius * np.cos(angle)], 1)
        return eyes, layout.target - eyes
    if name == "dolly":
        heading = yaw0 + rng.choice([0, np.pi / 2, -np.pi / 2, np.pi]) + np.radians(rng.uniform(-30, 30))
        eyes = eye + _direction(heading, 0.0) * speed * centred[:, None]
        return eyes, np.tile(_direction(yaw0, pitch0), (n, 1))
    if name == "walk":
        step_freq, bob = rng.uniform(1.6, 2.2), rng.uniform(0.005, 0.02) * view
        yaw = yaw0 + np.radians(rng.uniform(-8, 8)) * times
        eyes = eye + _direction(yaw0, 0.0) * speed * times[:, None]
        eyes[:, 1] += bob * np.sin(2 * np.pi * step_freq * times + rng.uniform(0, 2 * np.pi))
        return eyes, _direction(yaw, pitch0 + 0.3 * np.radians(rng.uniform(-5, 5)) * np.sin(np.pi * step_freq * times))
    if name == "pan":
        yaw = yaw0 + np.radians(rng.uniform(8, 35)) * rng.choice([-1, 1]) * centred
        pitch = pitch0 + np.radians(rng.uniform(-4, 4)) * centred
        return np.tile(eye, (n, 1)), _direction(yaw, np.clip(pitch, -1.2, 1.2))
    if name == "handheld":
        drift = _unit(rng) * rng.uniform(0.02, 0.08) * view
        return eye + drift * centred[:, None], np.tile(_direction(yaw0, pitch0), (n, 1))
    ease = 0.5 - 0.5 * np.cos(np.pi * times / duration)  # 0 -> 1, starting and stopping smoothly
    if name == "sweep":  # a fast turn of 70-150 degrees: near structure and far views pass through the frame
        turn = np.radians(rng.uniform(70, 150)) * rng.choice([-1, 1])
        yaw = yaw0 - turn / 2 + turn * ease
        return np.tile(eye, (n, 1)), _direction(yaw, np.full(n, pitch0))
    if name == "approach":  # close in on the target until it is 25-45 % as far: the depth range shrinks
        forward = (layout.target - eye) / np.linalg.norm(layout.target - eye)
        travel = rng.uniform(0.55, 0.75) * np.linalg.norm(layout.target - eye)
        return eye + forward * travel * ease[:, None], np.tile(forward, (n, 1))
    raise UserError(f"unknown camera path {name!r}; choose one of {', '.join(CAMERA_PATHS)}")


def _poses_along(
    rng: np.random.Generator, name: str, layout: _Layout, times: np.ndarray
) -> np.ndarray:
    """Camera-to-world poses of a path plus handheld jitter (strong for "handheld", sometimes light)."""
    eyes, forward = _camera_path(rng, name, layout, times)
    poses = look_at(eyes, forward)
    strength = 1.0 if name == "handheld" else (rng.uniform(0.1, 0.4) if rng.uniform() < 0.5 else 0.0)
    if strength > 0:
        angles = _wobble(rng, times, np.radians(2.5) * strength)
        shake = np.stack([rotation([1, 0, 0], a) @ rotation([0, 1, 0], b) @ rotation([0, 0, 1], c) for a, b, c in angles])
        poses[:, :3, :3] = poses[:, :3, :3] @ shake
        poses[:, :3, 3] += _wobble(rng, times, 0.01 * layout.view_distance * strength)
    return poses


def _path_fits(poses: np.ndarray, layout: _Layout, margin: float) -> bool:
    eyes = poses[:, :3, 3]
    if np.any(eyes < layout.free_lo) or np.any(eyes > layout.free_hi):
        return False
    return all(_clearance(obj, eyes) > margin for obj in layout.structure)


def _clearance(obj: SceneObject, eyes: np.ndarray) -> float:
    """Smallest distance from any eye to the object's bounding box over the video."""
    centre, half = obj.mesh.bounds
    return float(box_distance(eyes, _frames_transforms(obj, len(eyes)), centre, half).min())


def _choose_path(rng: np.random.Generator, layout: _Layout, times: np.ndarray, forced: str | None,
                 choices: tuple[str, ...] | None = None) -> tuple[str, np.ndarray]:
    """Draw paths until one stays inside the free space; fall back to a pan, which never moves the eye."""
    names = list(choices or layout.path_weights)
    weights = np.array([1.0 if choices else layout.path_weights[k] for k in names])
    margin = 0.1 * layout.view_distance
    for _ in range(12):
        name = forced or str(rng.choice(names, p=weights / weights.sum()))
        poses = _poses_along(rng, name, layout, times)
        if _path_fits(poses, layout, margin):
            return name, poses
    name = "pan"
    poses = _poses_along(rng, name, layout, times)
    poses[:, :3, 3] = layout.eye  # no positional jitter: the start eye is known to be free
    return name, poses


# ============================================================================================ scene kinds
def _lighting(rng: np.random.Generator, outdoor: bool) -> dict:
    elevation, azimuth = np.radians(rng.uniform(20, 80)), rng.uniform(0, 2 * np.pi)
    warmth = rng.uniform(-0.1, 0.1)
    light = rng.uniform(0.6, 1.0) * np.array([1 + warmth, 1.0, 1 - warmth])
    ambient = rng.uniform(0.15, 0.45) * np.array([1 - warmth / 2, 1.0, 1 + warmth / 2])
    sky_hue = rng.uniform(0.53, 0.64) if rng.uniform() < 0.75 else rng.uniform(0.02, 0.12)
    return dict(
        light_direction=_direction(azimuth, elevation),
        light_color=tuple(light),
        ambient=tuple(ambient),
        sky_top=_color(rng, sky_hue, (0.3, 0.7), (0.6, 0.9)),
        sky_horizon=_color(rng, sky_hue, (0.05, 0.3), (0.8, 1.0)),
        fog_distance=float(rng.uniform(150, 600)) if outdoor and rng.uniform() < 0.6 else 0.0,
        exposure=float(rng.uniform(0.85, 1.25)),
    )


def _room_shell(rng: np.random.Generator, half) -> list[SceneObject]:
    hue = rng.uniform()
    floor = random_material(rng, 1.0, ("checker", "noise", "stripes", "marble"), hue=rng.uniform())
    walls = random_material(rng, 2.0, ("solid", "noise", "stripes", "gradient"), hue=hue, sat=(0.05, 0.4), val=(0.5, 0.95))
    ceiling = random_material(rng, 2.0, ("solid", "noise"), hue=hue, sat=(0.0, 0.15), val=(0.7, 0.95))
    return enclosure(half, floor, walls, ceiling)


def _outdoor_shell(rng: np.random.Generator, half, ground: Material) -> list[SceneObject]:
    sky = Material("sky")
    return enclosure(half, ground, sky, sky)


def _tabletop(rng: np.random.Generator) -> tuple[_Layout, list[SceneObject], list[tuple[Mesh, np.ndarray]]]:
    """A table with small objects in a small room: depths of roughly 0.2-4 m."""
    half = np.array([rng.uniform(1.2, 2.5), rng.uniform(1.2, 1.5), rng.uniform(1.2, 2.5)])
    shell = _room_shell(rng, half)
    top_half = np.array([rng.uniform(0.4, 0.9), rng.uniform(0.015, 0.025), rng.uniform(0.3, 0.5)])
    top_y = rng.uniform(0.6, 0.9)
    yaw = rng.uniform(0, 2 * np.pi)
    table_rot = rotation([0, 1, 0], yaw)
    table_mat = random_material(rng, 0.5, ("noise", "marble", "solid", "stripes"), hue=rng.uniform(0.05, 0.12))
    table = [SceneObject(box_mesh(top_half), table_mat, rigid(table_rot, [0, top_y - top_half[1], 0]))]
    leg = cylinder_mesh(0.03, (top_y - 2 * top_half[1]) / 2)
    for sx, sz in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        foot = table_rot @ np.array([sx * (top_half[0] - 0.06), 0, sz * (top_half[2] - 0.06)])
        table.append(SceneObject(leg, table_mat, _grounded(leg, foot[0], foot[2], 0.0)))
    surface = top_y
    target = np.array([0.0, surface + 0.03, 0.0]) + table_rot @ np.array([rng.uniform(-0.2, 0.2), 0, rng.uniform(-0.1, 0.1)])
    distance, elevation, azimuth = rng.uniform(0.35, 0.9), np.radians(rng.uniform(20, 55)), rng.uniform(0, 2 * np.pi)
    eye = target + distance * _direction(azimuth, elevation) * np.array([1, 1, 1])
    eye = target - distance * _direction(azimuth, -elevation)
    layout = _Layout(
        free_lo=np.array([-half[0] + 0.1, surface + 0.05, -half[2] + 0.1]),
        free_hi=np.array([half[0] - 0.1, 2 * half[1] - 0.1, half[2] - 0.1]),
        eye=eye, target=target, view_distance=distance, max_speed=0.5,
        path_weights={"orbit": 3, "dolly": 2, "pan": 1, "handheld": 2, "walk": 1}, structure=shell + table,
    )
    clutter = []
    for _ in range(rng.integers(5, 16)):
        mesh = _primitive(rng, rng.uniform(0.02, 0.08))
        x, z = rng.uniform(-1, 1, 2) * (top_half[[0, 2]] - 0.05)
        place = _grounded(mesh, 0.0, 0.0, rng.uniform(0, 2 * np.pi), surface)
        place[:3, 3] += table_rot @ np.array([x, 0, z])
        clutter.append((mesh, place))
    for _ in range(rng.integers(2, 7)):
        mesh = box_mesh([rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.5)])
        x, z = rng.uniform(-1, 1, 2) * (half[[0, 2]] - 0.3)
        if np.hypot(x, z) > 1.3:
            clutter.append((mesh, _grounded(mesh, x, z, rng.uniform(0, 2 * np.pi))))
    return layout, shell + table, clutter


def _room(rng: np.random.Generator) -> tuple[_Layout, list[SceneObject], list[tuple[Mesh, np.ndarray]]]:
    """A furnished room: depths of roughly 0.3-15 m."""
    half = np.array([rng.uniform(2.0, 5.0), rng.uniform(1.2, 1.75), rng.uniform(2.0, 5.0)])
    shell = _room_shell(rng, half)
    margin = 0.6
    eye = np.array([rng.uniform(-1, 1) * (half[0] - margin), rng.uniform(1.2, 1.8), rng.uniform(-1, 1) * (half[2] - margin)])
    forward = _direction(rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(-25, 5)))
    layout = _Layout(
        free_lo=np.array([-half[0] + 0.3, 0.3, -half[2] + 0.3]),
        free_hi=np.array([half[0] - 0.3, 2 * half[1] - 0.3, half[2] - 0.3]),
        eye=eye, target=eye + forward * rng.uniform(1.5, 3.0), view_distance=float(min(half[0], half[2])),
        max_speed=1.4, path_weights={"walk": 3, "dolly": 2, "orbit": 2, "pan": 2, "handheld": 2}, structure=shell,
    )
    clutter = []
    for _ in range(rng.integers(6, 18)):
        x, z = rng.uniform(-1, 1, 2) * (half[[0, 2]] - 0.3)
        kind = rng.uniform()
        if kind < 0.5:
            mesh = box_mesh([rng.uniform(0.2, 1.0), rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.6)])
        elif kind < 0.75:
            mesh = cylinder_mesh(rng.uniform(0.08, 0.4), rng.uniform(0.2, 1.2))
        else:
            mesh = sphere_mesh(rng.uniform(0.1, 0.5))
        clutter.append((mesh, _grounded(mesh, x, z, rng.uniform(0, 2 * np.pi))))
    return layout, shell, clutter


def _street(rng: np.random.Generator) -> tuple[_Layout, list[SceneObject], list[tuple[Mesh, np.ndarray]]]:
    """A street between building rows under a sky box: depths of roughly 1-150 m."""
    half = np.array([rng.uniform(50, 90), rng.uniform(35, 60), rng.uniform(90, 140)])
    asphalt = random_material(rng, 2.0, ("noise",), sat=(0.0, 0.1), val=(0.15, 0.35))
    shell = _outdoor_shell(rng, half, asphalt)
    road, walk = rng.uniform(3.5, 8.0), rng.uniform(2.0, 5.0)
    structure = list(shell)
    pavement = random_material(rng, 1.0, ("checker", "noise"), sat=(0.0, 0.2), val=(0.4, 0.7))
    for side in (-1, 1):
        curb = box_mesh([walk / 2, 0.075, half[2]])
        structure.append(SceneObject(curb, pavement, rigid(np.eye(3), [side * (road + walk / 2), 0.075, 0])))
        z = -half[2] * 0.95
        while z < half[2] * 0.95:
            width, depth, height = rng.uniform(6, 25), rng.uniform(8, 20), rng.uniform(5, 45)
            mesh = box_mesh([depth / 2, height / 2, width / 2])
            x = side * (road + walk + rng.uniform(0, 3) + depth / 2)
            facade = random_material(rng, 1.0, ("checker", "stripes", "noise", "solid"), sat=(0.05, 0.5))
            facade = replace(facade, frequency=float(rng.uniform(0.2, 0.6)))
            structure.append(SceneObject(mesh, facade, _grounded(mesh, x, z + width / 2, 0.0)))
            z += width + rng.uniform(0.0, 6.0)
    heading = rng.choice([0.0, np.pi]) + np.radians(rng.uniform(-20, 20))
    eye = np.array([rng.uniform(-0.8, 0.8) * (road + walk), rng.uniform(1.4, 2.5), rng.uniform(-0.4, 0.4) * half[2]])
    layout = _Layout(
        free_lo=np.array([-(road + walk) + 0.5, 0.5, -0.8 * half[2]]),
        free_hi=np.array([road + walk - 0.5, 20.0, 0.8 * half[2]]),
        eye=eye, target=eye + _direction(heading, np.radians(rng.uniform(-8, 4))) * 15.0, view_distance=15.0,
        max_speed=12.0, path_weights={"walk": 4, "dolly": 1, "pan": 2, "handheld": 2, "orbit": 1}, structure=structure,
    )
    clutter = []
    for _ in range(rng.integers(6, 20)):  # parked cars on both road edges
        mesh = box_mesh([rng.uniform(0.85, 0.95), rng.uniform(0.7, 0.85), rng.uniform(1.9, 2.4)])
        x = rng.choice([-1, 1]) * (road - 1.2)
        clutter.append((mesh, _grounded(mesh, x, rng.uniform(-0.9, 0.9) * half[2], rng.normal(0, 0.05))))
    for _ in range(rng.integers(4, 14)):  # poles and trees on the sidewalks
        x, z = rng.choice([-1, 1]) * (road + rng.uniform(0.3, walk - 0.3)), rng.uniform(-0.9, 0.9) * half[2]
        trunk = cylinder_mesh(rng.uniform(0.08, 0.25), rng.uniform(1.5, 4.0))
        clutter.append((trunk, _grounded(trunk, x, z, 0.0, 0.15)))
        if rng.uniform() < 0.5:
            crown = sphere_mesh(rng.uniform(1.0, 2.5))
            top = 0.15 + 2 * trunk.bounds[1][1]
            clutter.append((crown, rigid(np.eye(3), [x, top + 0.6 * crown.bounds[1][1], z])))
    return layout, structure, clutter


def _field(rng: np.random.Generator) -> tuple[_Layout, list[SceneObject], list[tuple[Mesh, np.ndarray]]]:
    """An open field or plaza with scattered objects: depths of roughly 1-100 m."""
    half = np.array([rng.uniform(40, 90), rng.uniform(30, 50), rng.uniform(40, 90)])
    ground = random_material(rng, 2.0, ("noise", "checker", "marble"), hue=rng.uniform(0.08, 0.35), sat=(0.2, 0.6))
    shell = _outdoor_shell(rng, half, ground)
    target = np.array([rng.uniform(-5, 5), rng.uniform(0.5, 2.0), rng.uniform(-5, 5)])
    drone = rng.uniform() < 0.3
    distance = rng.uniform(4, 20)
    elevation = np.radians(rng.uniform(20, 45) if drone else rng.uniform(-5, 10))
    eye = target - distance * _direction(rng.uniform(0, 2 * np.pi), -elevation)
    eye[1] = max(eye[1], 1.5)
    layout = _Layout(
        free_lo=np.array([-0.7 * half[0], 0.5, -0.7 * half[2]]),
        free_hi=np.array([0.7 * half[0], 25.0, 0.7 * half[2]]),
        eye=eye, target=target, view_distance=float(distance), max_speed=8.0,
        path_weights={"orbit": 3, "walk": 2, "dolly": 2, "pan": 1, "handheld": 1}, structure=shell,
    )
    clutter = []
    radius = rng.uniform(10, 40)
    for _ in range(rng.integers(10, 30)):
        mesh = _primitive(rng, rng.uniform(0.3, 4.0))
        x, z = rng.uniform(-radius, radius, 2)
        clutter.append((mesh, _grounded(mesh, x, z, rng.uniform(0, 2 * np.pi))))
    return layout, shell, clutter


_KIND_BUILDERS: dict[str, Callable] = {"room": _room, "tabletop": _tabletop, "street": _street, "field": _field}


# ============================================================================================ moving objects
def _mover(
    rng: np.random.Generator, kind: str, layout: _Layout, times: np.ndarray
) -> tuple[Mesh, np.ndarray]:
    """A mesh and per-frame transforms [N, 4, 4] for one independently moving object of a scene kind."""
    view = layout.view_distance
    n = len(times)
    if kind == "street":
        if rng.uniform() < 0.6:  # a car in a lane
            mesh = box_mesh([0.9, 0.75, 2.2])
            lane, direction = rng.uniform(0.5, 3.0) * rng.choice([-1, 1]), rng.choice([-1, 1])
            start = layout.eye[2] + rng.uniform(-40, 40)
            z = start + direction * rng.uniform(3, 15) * times
            return mesh, rigid(np.eye(3), np.stack([np.full(n, lane), np.full(n, 0.75), z], 1))
        mesh = cylinder_mesh(0.25, 0.85)  # a pedestrian
        side = rng.choice([-1, 1]) * rng.uniform(4.0, 8.0)
        z = layout.eye[2] + rng.uniform(-25, 25) + rng.choice([-1, 1]) * rng.uniform(1.0, 1.7) * times
        return mesh, rigid(np.eye(3), np.stack([np.full(n, side), np.full(n, 1.0), z], 1))
    size = {"tabletop": 0.04, "room": 0.3, "field": 1.0}[kind] * rng.uniform(0.6, 1.5)
    mesh = _primitive(rng, size)
    floor_y = layout.target[1] - 0.03 if kind == "tabletop" else 0.0
    centre = layout.target + rng.uniform(-0.5, 0.5, 3) * view
    centre[1] = floor_y + mesh.bounds[1][1] - mesh.bounds[0][1]
    axis = _unit(rng) * np.array([1, 0, 1])
    amplitude = rng.uniform(0.1, 0.4) * view
    omega = rng.uniform(1.0, 4.0)
    if rng.uniform() < 0.5:  # back and forth, rolling
        offset = np.sin(omega * times + rng.uniform(0, 2 * np.pi))[:, None] * amplitude * axis / np.linalg.norm(axis)
        positions = centre + offset
    else:  # circling
        phase = omega * times + rng.uniform(0, 2 * np.pi)
        positions = centre + amplitude * np.stack([np.cos(phase), np.zeros(n), np.sin(phase)], 1)
    if rng.uniform() < 0.3:  # bouncing
        positions[:, 1] += np.abs(np.sin(rng.uniform(2, 5) * times)) * rng.uniform(0.3, 1.0) * mesh.bounds[1][1] * 2
    spin = np.stack([rotation([0, 1, 0], a) for a in rng.uniform(-2, 2) * times])
    return mesh, rigid(spin, positions)


def _flyby(rng: np.random.Generator, poses: np.ndarray, K: np.ndarray, size: tuple[int, int], layout: _Layout, times: np.ndarray) -> tuple[Mesh, np.ndarray]:
    """An object crossing the view close to the camera around mid-video, on a straight world-space line.

    It moves with the camera's mean velocity plus a sideways crossing, so the camera does not run into it,
    and it makes the nearest depth of the video drop sharply for a while.
    """
    n = len(times)
    mid = n // 2
    duration = max(float(times[-1]), 1e-6)
    close = rng.uniform(0.12, 0.3) * layout.view_distance
    radius = rng.uniform(0.15, 0.35) * close
    mesh = sphere_mesh(radius) if rng.uniform() < 0.5 else box_mesh(radius * rng.uniform(0.5, 1.0, 3))
    half_width = close * (size[0] / 2) / K[0, 0]
    sideways = rng.choice([-1, 1]) * 3 * half_width / duration
    rot_mid, eye_mid = poses[mid, :3, :3], poses[mid, :3, 3]
    velocity = (poses[-1, :3, 3] - poses[0, :3, 3]) / duration
    offset_y = rng.uniform(-0.3, 0.3) * close * (size[1] / 2) / K[1, 1]
    t = times - times[mid]
    positions = eye_mid + (rot_mid @ np.array([0.0, offset_y, close])) + np.outer(t, velocity + rot_mid[:, 0] * sideways)
    spin = np.stack([rotation([0.3, 1, 0.2], a) for a in rng.uniform(-3, 3) * times])
    return mesh, rigid(spin, positions)


# ============================================================================================ sequences
def _check_size(size) -> tuple[int, int]:
    try:
        width, height = (int(s) for s in size)
    except (TypeError, ValueError):
        raise UserError(f"size must be (width, height), got {size!r}") from None
    if not (8 <= width <= 4096 and 8 <= height <= 4096):
        raise UserError(f"image size {width}x{height} is out of range (8..4096 per side)")
    return width, height


def build_sequence_scene(
    seed: int, n_frames: int, size: tuple[int, int], config: SceneConfig
) -> tuple[Scene, np.ndarray, np.ndarray, dict]:
    """The random scene, camera poses [N, 4, 4], intrinsics [3, 3] and a description of one seed.

    Parts are drawn in order: scene kind and structure, camera path (kept clear of the structure), then
    clutter and moving objects, each dropped if it would come too close to any camera position.
    """
    rng = np.random.default_rng(seed)
    kind = config.kind or str(rng.choice(SCENE_KINDS))
    if kind not in _KIND_BUILDERS:
        raise UserError(f"unknown scene kind {kind!r}; choose one of {', '.join(SCENE_KINDS)}")
    for path in (config.camera_path, *(config.camera_paths or ())):
        if path is not None and path not in CAMERA_PATHS:
            raise UserError(f"unknown camera path {path!r}; choose one of {', '.join(CAMERA_PATHS)}")
    width, height = size
    times = np.arange(n_frames) / config.fps
    layout, structure, clutter = _KIND_BUILDERS[kind](rng)
    K = intrinsics_matrix(width, height, rng.uniform(50, 85), rng.uniform(-0.02, 0.02, 2) * [width, height])
    path, poses = _choose_path(rng, layout, times, config.camera_path, config.camera_paths)
    eyes = poses[:, :3, 3]
    margin = 0.1 * layout.view_distance
    objects = list(structure)
    palette_hue = rng.uniform()
    for mesh, place in clutter:
        obj = SceneObject(mesh, random_material(rng, 2 * float(mesh.bounds[1].max()), hue=palette_hue if rng.uniform() < 0.4 else None), place)
        if _clearance(obj, eyes) > margin:
            objects.append(obj)
    n_moving, flyby = 0, False
    if config.moving_objects:
        for _ in range(rng.integers(0, 4) if kind != "street" else rng.integers(1, 6)):
            mesh, transforms = _mover(rng, kind, layout, times)
            obj = SceneObject(mesh, random_material(rng, 2 * float(mesh.bounds[1].max())), transforms)
            if _clearance(obj, eyes) > margin:
                objects.append(obj)
                n_moving += 1
        wants_flyby = config.flyby if config.flyby is not None else bool(rng.uniform() < 0.35)
        if wants_flyby and n_frames > 1:
            mesh, transforms = _flyby(rng, poses, K, size, layout, times)
            obj = SceneObject(mesh, random_material(rng, 2 * float(mesh.bounds[1].max())), transforms)
            if _clearance(obj, eyes) > 0.02 * layout.view_distance:
                objects.append(obj)
                flyby = True
    scene = Scene(objects=objects, **_lighting(rng, outdoor=kind in ("street", "field")))
    meta = {"kind": kind, "camera_path": path, "n_moving": n_moving, "flyby": flyby}
    return scene, poses, K, meta


def render_sequence(
    seed: int, n_frames: int = 48, size: tuple[int, int] = (160, 120), config: SceneConfig | None = None
) -> dict:
    """Render one random synthetic video with exact depth.

    Parameters
    ----------
    seed : int
        Everything random (scene kind, layout, textures, light, path, motion) derives from it; the same
        seed and arguments give bit-identical arrays.
    n_frames : int
    size : (int, int)
        (width, height) in pixels.
    config : SceneConfig or None
        Fixes parts of the scene instead of drawing them.

    Returns
    -------
    dict
        ``frames`` uint8 [N, H, W, 3]; ``depth`` float32 [N, H, W] z-depth in metres, > 0 everywhere;
        ``poses`` float32 [N, 4, 4] camera-to-world in OpenCV axes (x right, y down, z forward) with world
        y up; ``intrinsics`` float32 [3, 3] in pixels; ``fps`` float; ``meta`` dict (seed, size, kind,
        camera path, moving objects, flyby, depth range).
    """
    config = config or SceneConfig()
    width, height = _check_size(size)
    if n_frames < 1:
        raise UserError(f"a sequence needs at least one frame, got {n_frames}")
    scene, poses, K, meta = build_sequence_scene(seed, n_frames, (width, height), config)
    frames, depth = get_renderer(width, height, config.antialias).render(scene, poses, K)
    if not np.all(depth > 0):
        raise RuntimeError(f"seed {seed}: {np.sum(depth <= 0)} pixels saw no geometry (scene is not closed)")
    meta.update(
        seed=int(seed), size=[width, height], n_frames=int(n_frames), fps=float(config.fps),
        min_depth=float(depth.min()), max_depth=float(depth.max()),
    )
    return {
        "frames": frames,
        "depth": depth,
        "poses": poses.astype(np.float32),
        "intrinsics": K.astype(np.float32),
        "fps": float(config.fps),
        "meta": meta,
    }


# ============================================================================================ dataset files
def sequence_seed(dataset_seed: int, index: int) -> int:
    """Seed of sequence ``index``: independent streams per (dataset seed, index), so datasets made with
    different seeds share no scene and a sequence does not depend on how many were requested."""
    return int(np.random.SeedSequence([int(dataset_seed), int(index)]).generate_state(1)[0])


def write_dataset(
    root: str | Path,
    n_sequences: int,
    n_frames: int = 48,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    progress: bool = True,
    config: SceneConfig | None = None,
    workers: int = 1,
) -> Path:
    """Render a dataset to ``root/seq_00000/ ...`` and describe it in ``root/dataset.json``.

    Each sequence is written into a hidden temporary folder and renamed when complete, so an interrupted run
    leaves no half-written sequence; running again skips the complete ones (resume). With ``workers > 1`` the
    sequences are rendered by that many processes, each with its own EGL context; every sequence depends on its
    own seed only, so the files are the same either way.

    Returns
    -------
    Path
        The root folder.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    width, height = _check_size(size)
    if n_sequences < 1 or n_frames < 1:
        raise UserError(f"need at least one sequence and one frame, got {n_sequences} and {n_frames}")
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".seq_*.partial"):
        shutil.rmtree(stale)
    todo, metas = [], {}
    for index in range(n_sequences):
        name, seq_seed = f"seq_{index:05d}", sequence_seed(seed, index)
        folder = root / name
        if folder.is_dir():
            meta = _read_meta(folder)
            if (meta.get("seed"), meta.get("size"), meta.get("n_frames")) != (seq_seed, [width, height], n_frames):
                raise UserError(
                    f"{folder} was rendered with other settings (seed/size/frames); use a new output folder"
                )
            logger.debug("skipping complete %s", folder)
            metas[index] = meta
        else:
            todo.append((str(root), name, seq_seed, n_frames, (width, height), config, index, int(seed)))
    bar = tqdm(total=n_sequences, initial=n_sequences - len(todo), desc="synth", unit="seq", disable=not progress)
    if workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # a fresh process per worker: EGL contexts do not fork
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
            for meta in pool.map(_render_and_write, todo):
                metas[meta["index"]] = meta
                bar.update()
    else:
        for job in todo:
            meta = _render_and_write(job)
            metas[meta["index"]] = meta
            bar.update()
    bar.close()
    entries = [
        {"name": f"seq_{index:05d}", "seed": meta["seed"], "kind": meta["kind"], "n_frames": meta["n_frames"]}
        for index, meta in sorted(metas.items())
    ]
    description = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "seed": int(seed),
        "size": [width, height],
        "n_frames": int(n_frames),
        "conventions": {
            "depth": "z along the optical axis, metres, float32",
            "poses": "camera-to-world 4x4, OpenCV axes (x right, y down, z forward), world y up",
            "intrinsics": "3x3 pixels, pixel centres at integer coordinates",
        },
        "sequences": entries,
    }
    _write_json(root / "dataset.json", description)
    return root


def _render_and_write(job: tuple) -> dict:
    """Render one sequence of a dataset, write it and return its meta (a top-level function: worker processes
    import it)."""
    root, name, seq_seed, n_frames, size, config, index, dataset_seed = job
    sample = render_sequence(seq_seed, n_frames, size, config)
    meta = dict(sample["meta"], index=index, dataset_seed=dataset_seed)
    _write_sequence(Path(root), name, sample, meta)
    return meta


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _write_sequence(root: Path, name: str, sample: dict, meta: dict) -> None:
    tmp = root / f".{name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for key in ("frames", "depth", "poses", "intrinsics"):
        np.save(tmp / f"{key}.npy", sample[key])
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    os.replace(tmp, root / name)


def _read_meta(folder: Path) -> dict:
    path = folder / "meta.json"
    try:
        meta = json.loads(path.read_text())
        float(meta["fps"])
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a valid sequence description ({exc})") from None
    return meta


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path} is missing")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path} is corrupt ({exc})") from None


def load_sequence(folder: str | Path) -> dict:
    """Read one sequence written by :func:`write_dataset`, checking that its arrays fit together.

    Returns
    -------
    dict
        The keys of :func:`render_sequence`: ``frames``, ``depth``, ``poses``, ``intrinsics``, ``fps``,
        ``meta``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"sequence folder {folder} does not exist")
    meta = _read_meta(folder)
    arrays = {key: _load_npy(folder / f"{key}.npy") for key in ("frames", "depth", "poses", "intrinsics")}
    frames, depth, poses, K = (arrays[k] for k in ("frames", "depth", "poses", "intrinsics"))
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise UserError(f"{folder}/frames.npy must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    if depth.dtype != np.float32 or depth.shape != frames.shape[:3]:
        raise UserError(f"{folder}/depth.npy must be float32 {list(frames.shape[:3])}, got {depth.dtype} {depth.shape}")
    if poses.shape != (len(frames), 4, 4):
        raise UserError(f"{folder}/poses.npy must be [{len(frames)}, 4, 4], got {poses.shape}")
    if K.shape != (3, 3):
        raise UserError(f"{folder}/intrinsics.npy must be [3, 3], got {K.shape}")
    return {"frames": frames, "depth": depth, "poses": poses, "intrinsics": K, "fps": float(meta["fps"]), "meta": meta}


# ============================================================================================ command line
def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 160x120, got {text!r}") from None
    return width, height


def _cmd_synth(args: argparse.Namespace) -> int:
    config = SceneConfig(camera_paths=CONSISTENCY_PATHS, flyby=True) if args.consistency else None
    root = write_dataset(args.out, args.sequences, args.frames, args.size, args.seed, progress=not args.quiet,
                         config=config, workers=max(1, args.workers))
    logger.info("wrote %d sequences to %s", args.sequences, root)
    return 0


def register_cli(subparsers) -> None:
    """Add ``rolldepth synth OUT --sequences N --frames N --size WxH --seed S``."""
    p = subparsers.add_parser(
        "synth",
        help="render synthetic videos with exact depth, poses and intrinsics",
        description="Render random procedural scenes into OUT/seq_XXXXX/{frames,depth,poses,intrinsics}.npy "
        "+ meta.json, and OUT/dataset.json. Complete sequences already in OUT are kept (resume).",
    )
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--sequences", type=int, default=100, help="number of videos (default 100)")
    p.add_argument("--frames", type=int, default=48, help="frames per video (default 48)")
    p.add_argument("--size", type=_parse_size, default=(160, 120), help="WIDTHxHEIGHT (default 160x120)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--consistency", action="store_true",
                   help="the consistency split: every shot changes its visible depth range (a camera turning from "
                        "a near wall to a far view, or closing in on the scene) and has an object flying close by")
    p.add_argument("--workers", type=int, default=1, help="rendering processes (default 1)")
    p.set_defaults(func=_cmd_synth)

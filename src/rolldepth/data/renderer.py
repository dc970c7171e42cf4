"""Headless OpenGL renderer of the synthetic scenes: RGB and exact metric depth.

Rendering is moderngl on EGL (Mesa llvmpipe). Depth is not decoded from the z-buffer: the shader writes the
interpolated view-space z into a float32 colour attachment, so it is exact up to float32 rounding; the z-buffer only
decides visibility, with near/far planes fitted to every scene.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import UserError
from .scene import MAX_MOVING, Scene, TEXTURES, clip_range, projection_matrix


EGL_FIX = "apt-get update && apt-get install -y libegl1 libgl1-mesa-dri libgles2"


# ============================================================================================ renderer
_VERTEX_SHADER = """
#version 330
uniform mat4 u_proj;
uniform mat4 u_view;
uniform mat4 u_model[%(slots)d];
in vec3 in_pos; in vec3 in_normal; in vec3 in_tex; in vec3 in_unit;
in vec3 in_color_a; in vec3 in_color_b; in vec3 in_dir; in vec3 in_params;
out vec3 v_world; out vec3 v_normal; out vec3 v_tex; out vec3 v_unit;
out vec3 v_color_a; out vec3 v_color_b; out vec3 v_dir; out vec3 v_params; out float v_z;
void main() {
    mat4 model = u_model[int(in_params.z + 0.5)];
    vec4 world = model * vec4(in_pos, 1.0);
    vec4 cam = u_view * world;
    v_world = world.xyz;
    v_normal = mat3(model) * in_normal;
    v_tex = in_tex; v_unit = in_unit; v_color_a = in_color_a; v_color_b = in_color_b; v_dir = in_dir;
    v_params = in_params;
    v_z = cam.z;
    gl_Position = u_proj * cam;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 u_eye; uniform vec3 u_light_dir; uniform vec3 u_light_color; uniform vec3 u_ambient;
uniform vec3 u_sky_top; uniform vec3 u_sky_horizon; uniform float u_fog_distance; uniform float u_exposure;
in vec3 v_world; in vec3 v_normal; in vec3 v_tex; in vec3 v_unit;
in vec3 v_color_a; in vec3 v_color_b; in vec3 v_dir; in vec3 v_params; in float v_z;
layout(location = 0) out vec4 out_color;
layout(location = 1) out float out_depth;
layout(location = 2) out float out_moving;  // 1 on independently moving objects (model slot > 0)

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
    out_moving = v_params.z > 0.5 ? 1.0 : 0.0;
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
    blends depths across an edge, and a third attachment the moving-object mask at the same centres.
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
        moving = ctx.renderbuffer(self.size, 1, dtype="f1")
        self.fbo = ctx.framebuffer([color, depth_f32, moving], ctx.depth_renderbuffer(self.size))
        if antialias:
            samples = min(4, ctx.max_samples)
            self.msaa_fbo = ctx.framebuffer(
                [ctx.renderbuffer(self.size, 4, samples=samples)], ctx.depth_renderbuffer(self.size, samples=samples)
            )
            self.resolve_fbo = ctx.framebuffer([ctx.renderbuffer(self.size, 4)])

    def render(self, scene: Scene, poses: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        frames, depth, moving : np.ndarray
            uint8 [N, H, W, 3], float32 [N, H, W] z-depth in metres (0 where no geometry was hit) and bool
            [N, H, W], True where the surface seen at the pixel centre belongs to a moving object: the pixels
            that a camera-motion reprojection (TAE) cannot explain.
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
            moving = np.empty((n_frames, height, width), dtype=bool)
            ctx.enable(ctx.DEPTH_TEST)
            models = np.tile(np.eye(4), (MAX_MOVING + 1, 1, 1))
            for i in range(n_frames):
                for slot, obj in enumerate(movers, start=1):
                    models[slot] = obj.transform[i]
                program["u_model"].write(_gl_matrices(models))
                program["u_view"].write(_gl_matrices(np.linalg.inv(poses[i])))
                program["u_eye"].value = tuple(float(c) for c in poses[i][:3, 3])
                frames[i], depth[i], moving[i] = self._draw(vao)
        finally:
            vao.release()
            vbo.release()
            ibo.release()
        return frames, depth, moving

    def _set_scene_uniforms(self, scene: Scene, K: np.ndarray, near: float, far: float) -> None:
        program = self.program
        program["u_proj"].write(_gl_matrices(projection_matrix(K, *self.size, near, far)))
        light = np.asarray(scene.light_direction, dtype=np.float64)
        program["u_light_dir"].value = tuple(float(c) for c in light / np.linalg.norm(light))
        for name in ("light_color", "ambient", "sky_top", "sky_horizon"):
            program[f"u_{name}"].value = tuple(float(c) for c in getattr(scene, name))
        program["u_fog_distance"].value = float(scene.fog_distance)
        program["u_exposure"].value = float(scene.exposure)

    def _draw(self, vao) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ctx = self.ctx
        width, height = self.size
        self.fbo.use()
        self.fbo.clear(0.0, 0.0, 0.0, 0.0)
        self.fbo.clear(depth=1.0)  # the depth attachment separately: the colour clear leaves it stale
        vao.render()
        depth = np.frombuffer(self.fbo.read(components=1, attachment=1, dtype="f4", alignment=1), dtype=np.float32)
        moving = np.frombuffer(self.fbo.read(components=1, attachment=2, alignment=1), dtype=np.uint8) > 127
        source = self.fbo
        if self.antialias:
            self.msaa_fbo.use()
            self.msaa_fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            vao.render()
            ctx.copy_framebuffer(self.resolve_fbo, self.msaa_fbo)
            source = self.resolve_fbo
        color = np.frombuffer(source.read(components=3, attachment=0, alignment=1), dtype=np.uint8)
        return color.reshape(height, width, 3), depth.reshape(height, width), moving.reshape(height, width)


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

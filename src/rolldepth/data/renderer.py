"""Headless OpenGL renderer of the synthetic scenes: RGB and exact metric depth.

Rendering is moderngl on EGL (Mesa llvmpipe). Depth is not decoded from the z-buffer: the shader writes the
interpolated view-space z into a float32 colour attachment, so it is exact up to float32 rounding; the z-buffer only
decides visibility, with near/far planes fitted to every scene.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import UserError
from .scene import MAX_MOVING, Scene, TEXTURES, box_corners, clip_range, projection_matrix


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
#ifdef SHADOWS
uniform sampler2DShadow u_shadow_map; uniform mat4 u_light; uniform float u_shadow_texel;
#endif
in vec3 v_world; in vec3 v_normal; in vec3 v_tex; in vec3 v_unit;
in vec3 v_color_a; in vec3 v_color_b; in vec3 v_dir; in vec3 v_params; in float v_z;
layout(location = 0) out vec4 out_color;
layout(location = 1) out float out_depth;
layout(location = 2) out float out_object;  // the model slot / 255: 0 on the static world, k on moving object k

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

#ifdef RICH_TEXTURES
vec2 along_surface(vec3 p) {  // the two pattern axes that run along the surface (drop the normal's axis)
    vec3 normal = abs(cross(dFdx(p), dFdy(p)));
    if (normal.x >= normal.y && normal.x >= normal.z) return p.zy;
    return normal.y >= normal.z ? p.xz : p.xy;
}

float bricks(vec3 p) {  // running bond, bricks twice as wide as tall: 1 on the mortar, a shade per brick
    vec2 uv = along_surface(p) * vec2(0.5, 1.0);
    float row = floor(uv.y);
    uv.x += 0.5 * mod(row, 2.0);
    vec2 f = fract(uv);
    float mortar = step(min(min(f.x, 1.0 - f.x) * 2.0, min(f.y, 1.0 - f.y)), 0.06);
    return max(mortar, 0.3 * hash(ivec3(floor(uv.x), row, 7)));
}

float tiles(vec3 p) {  // square tiles with grout lines, each tile a slightly different shade
    vec2 uv = along_surface(p);
    vec2 f = fract(uv);
    float grout = step(min(min(f.x, 1.0 - f.x), min(f.y, 1.0 - f.y)), 0.04);
    return max(grout, 0.25 * hash(ivec3(floor(uv), 11)));
}

float wood(vec3 p, vec3 axis) {  // growth rings around an axis, warped by noise, with fine grain
    float radius = length(p - dot(p, axis) * axis);
    float ring = fract(2.0 * radius + 0.8 * fbm(p * 0.7));
    return 0.7 * smoothstep(0.0, 0.9, ring) * (1.0 - smoothstep(0.9, 1.0, ring)) + 0.3 * fbm(p * vec3(9.0, 1.5, 9.0));
}

float cells(vec3 p) {  // Worley cells: shaded by the distance to the nearest seed, dark seams between cells
    ivec3 base = ivec3(floor(p));
    float first = 9.0, second = 9.0;
    for (int z = -1; z <= 1; ++z) for (int y = -1; y <= 1; ++y) for (int x = -1; x <= 1; ++x) {
        ivec3 cell = base + ivec3(x, y, z);
        vec3 seed = vec3(cell) + vec3(hash(cell), hash(cell + ivec3(101, 0, 0)), hash(cell + ivec3(0, 211, 0)));
        float d = length(p - seed);
        second = d < first ? first : min(second, d);
        first = min(first, d);
    }
    return max(0.6 * clamp(first, 0.0, 1.0), 1.0 - smoothstep(0.0, 0.08, second - first));
}

float dots(vec3 p) {  // polka dots on a square lattice
    vec2 f = fract(along_surface(p)) - 0.5;
    return 1.0 - smoothstep(0.22, 0.28, length(f));
}

#endif

#ifdef SHADOWS
float lit_fraction(vec3 world, vec3 n) {  // 3x3 percentage-closer filtering of the light's depth map
    vec4 p = u_light * vec4(world + n * (1.5 * u_shadow_texel), 1.0);  // normal offset against self-shadowing
    vec3 q = p.xyz * 0.5 + 0.5;
    if (any(lessThan(q.xy, vec2(0.0))) || any(greaterThan(q.xy, vec2(1.0)))) return 1.0;  // beyond every caster
    q.z = min(q.z, 1.0);
    vec2 step = 1.0 / vec2(textureSize(u_shadow_map, 0));
    float sum = 0.0;
    for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) sum += texture(u_shadow_map, vec3(q.xy + vec2(dx, dy) * step, q.z));
    return sum / 9.0;
}
#endif

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
#ifdef RICH_TEXTURES
        else if (kind == 7) t = bricks(v_tex);
        else if (kind == 8) t = tiles(v_tex);
        else if (kind == 9) t = wood(v_tex, v_dir);
        else if (kind == 10) t = cells(v_tex);
        else if (kind == 11) t = dots(v_tex);
#endif
        else t = 0.5 + 0.5 * sin(6.2831853 * dot(v_tex, v_dir) + 5.0 * fbm(v_tex));
        if (kind == 1 || kind == 2 || kind == 7 || kind == 8 || kind == 11) t = mix(t, 0.5, blur);
        vec3 albedo = mix(v_color_a, v_color_b, t);
        albedo *= 1.0 + v_params.y * (2.0 * fbm(v_tex * 7.31 + 3.7) - 1.0);
        vec3 n = normalize(v_normal);
        if (dot(n, view) > 0.0) n = -n;  // two-sided: light the side the camera sees
        float direct = max(dot(n, u_light_dir), 0.0);
#ifdef SHADOWS
        if (direct > 0.0) direct *= lit_fraction(v_world, n);
#endif
        color = albedo * (u_ambient + u_light_color * direct);
        if (u_fog_distance > 0.0) color = mix(u_sky_horizon, color, exp(-dist / u_fog_distance));
    }
    out_color = vec4(pow(clamp(color * u_exposure, 0.0, 1.0), vec3(1.0 / 2.2)), 1.0);
    out_depth = v_z;
    out_object = v_params.z / 255.0;
}
"""

# The light's depth pass: only positions (and the model slot) of the objects that cast shadows.
_SHADOW_VERTEX_SHADER = """
#version 330
uniform mat4 u_light;
uniform mat4 u_model[%(slots)d];
in vec3 in_pos; in vec3 in_params;
void main() { gl_Position = u_light * u_model[int(in_params.z + 0.5)] * vec4(in_pos, 1.0); }
"""
_SHADOW_FRAGMENT_SHADER = "#version 330\nvoid main() {}\n"
SHADOW_MAP_SIZE = 2048
RICH_KIND = TEXTURES["bricks"]  # texture kinds from here on need the RICH_TEXTURES build of the shader

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
    blends depths across an edge, and a third attachment the index of the moving object seen at the same centres.
    """

    def __init__(self, size: tuple[int, int], antialias: bool = True):
        self.size = (int(size[0]), int(size[1]))
        self.antialias = antialias
        ctx = self.ctx = _gl_context()
        self._programs = {}  # (rich textures, shadows) -> program; llvmpipe evaluates untaken branches too,
        # so the optional features are compiled in only for the scenes that use them
        color = ctx.renderbuffer(self.size, 4)
        depth_f32 = ctx.renderbuffer(self.size, 1, dtype="f4")
        objects = ctx.renderbuffer(self.size, 1, dtype="f1")
        self.fbo = ctx.framebuffer([color, depth_f32, objects], ctx.depth_renderbuffer(self.size))
        self._shadow = None  # (program, depth texture, framebuffer), made on the first scene with shadows
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
        frames, depth, objects : np.ndarray
            uint8 [N, H, W, 3], float32 [N, H, W] z-depth in metres (0 where no geometry was hit) and uint8
            [N, H, W]: 0 where the surface seen at the pixel centre is static, k where it belongs to the k-th
            moving object of ``scene.objects`` (1-based): the pixels that the camera's motion alone does not
            explain, and which object's motion does.
        """
        width, height = self.size
        n_frames = len(poses)
        movers = [obj for obj in scene.objects if obj.moving]
        if len(movers) > MAX_MOVING:
            raise ValueError(f"at most {MAX_MOVING} moving objects, got {len(movers)}")
        if any(len(obj.transform) != n_frames for obj in movers):
            raise ValueError("every moving object needs one transform per frame")
        near, far = clip_range(scene, poses, K, self.size)
        vertices, indices, caster_indices = _vertex_data(scene)
        ctx = self.ctx
        shadows = scene.shadows and len(caster_indices) > 0
        program = self._program(rich=any(TEXTURES[obj.material.texture] >= RICH_KIND for obj in scene.objects),
                                shadows=shadows)
        vbo, ibo = ctx.buffer(vertices.tobytes()), ctx.buffer(indices.tobytes())
        vao = ctx.vertex_array(program, [(vbo, "3f " * 8, *_ATTRIBUTES)], index_buffer=ibo, index_element_size=4)
        releases = [vao, vbo, ibo]
        try:
            shadow_vao = None
            if shadows:
                shadow_program, shadow_map, _ = self._shadow_pass()
                cibo = ctx.buffer(caster_indices.tobytes())
                releases.append(cibo)
                shadow_vao = ctx.vertex_array(shadow_program, [(vbo, "3f 72x 3f", "in_pos", "in_params")],
                                              index_buffer=cibo, index_element_size=4)
                releases.append(shadow_vao)
                light, texel = light_projection(scene, n_frames, SHADOW_MAP_SIZE)
                shadow_program["u_light"].write(_gl_matrices(light))
                program["u_light"].write(_gl_matrices(light))
                shadow_map.use(location=0)
                program["u_shadow_map"].value = 0
                program["u_shadow_texel"].value = texel
            self._set_scene_uniforms(program, scene, K, near, far)
            frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
            depth = np.empty((n_frames, height, width), dtype=np.float32)
            objects = np.empty((n_frames, height, width), dtype=np.uint8)
            ctx.enable(ctx.DEPTH_TEST)
            models = np.tile(np.eye(4), (MAX_MOVING + 1, 1, 1))
            for i in range(n_frames):
                for slot, obj in enumerate(movers, start=1):
                    models[slot] = obj.transform[i]
                program["u_model"].write(_gl_matrices(models))
                program["u_view"].write(_gl_matrices(np.linalg.inv(poses[i])))
                program["u_eye"].value = tuple(float(c) for c in poses[i][:3, 3])
                if shadow_vao:
                    self._draw_shadow_map(shadow_vao, models)
                frames[i], depth[i], objects[i] = self._draw(vao)
        finally:
            for resource in releases:
                resource.release()
        return frames, depth, objects

    def _program(self, rich: bool, shadows: bool):
        key = (rich, shadows)
        if key not in self._programs:
            defines = "".join(f"#define {name}\n" for name, on in (("RICH_TEXTURES", rich), ("SHADOWS", shadows)) if on)
            self._programs[key] = self.ctx.program(
                vertex_shader=_VERTEX_SHADER % {"slots": MAX_MOVING + 1},
                fragment_shader=_FRAGMENT_SHADER.replace("#version 330\n", "#version 330\n" + defines, 1),
            )
        return self._programs[key]

    def _shadow_pass(self):
        if self._shadow is None:
            ctx = self.ctx
            program = ctx.program(vertex_shader=_SHADOW_VERTEX_SHADER % {"slots": MAX_MOVING + 1},
                                  fragment_shader=_SHADOW_FRAGMENT_SHADER)
            shadow_map = ctx.depth_texture((SHADOW_MAP_SIZE, SHADOW_MAP_SIZE))
            shadow_map.compare_func = "<="  # sampler2DShadow: 1 where the surface is not behind a caster
            shadow_map.repeat_x = shadow_map.repeat_y = False
            self._shadow = (program, shadow_map, ctx.framebuffer(depth_attachment=shadow_map))
        return self._shadow

    def _draw_shadow_map(self, shadow_vao, models: np.ndarray) -> None:
        """The casters' depth seen from the light, for this frame's placement of the moving objects."""
        program, _, fbo = self._shadow
        program["u_model"].write(_gl_matrices(models))
        fbo.use()
        fbo.clear(depth=1.0)
        self.ctx.polygon_offset = (2.0, 4.0)  # slope-scaled bias: a lit surface never shadows itself
        shadow_vao.render()
        self.ctx.polygon_offset = (0.0, 0.0)

    def _set_scene_uniforms(self, program, scene: Scene, K: np.ndarray, near: float, far: float) -> None:
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
        objects = np.frombuffer(self.fbo.read(components=1, attachment=2, alignment=1), dtype=np.uint8)
        source = self.fbo
        if self.antialias:
            self.msaa_fbo.use()
            self.msaa_fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            vao.render()
            ctx.copy_framebuffer(self.resolve_fbo, self.msaa_fbo)
            source = self.resolve_fbo
        color = np.frombuffer(source.read(components=3, attachment=0, alignment=1), dtype=np.uint8)
        return color.reshape(height, width, 3), depth.reshape(height, width), objects.reshape(height, width)


@lru_cache(maxsize=4)
def get_renderer(width: int, height: int, antialias: bool = True) -> Renderer:
    """A cached :class:`Renderer`, so repeated sequences reuse the GL program and framebuffers."""
    return Renderer((width, height), antialias)


def _gl_matrices(matrices: np.ndarray) -> bytes:
    """Row-major numpy matrices as the column-major float32 bytes OpenGL expects."""
    return np.ascontiguousarray(np.swapaxes(np.asarray(matrices), -1, -2), dtype=np.float32).tobytes()


def light_projection(scene: Scene, n_frames: int, map_size: int) -> tuple[np.ndarray, float]:
    """Orthographic view-projection [4, 4] of the directional light, fitted to every caster over the video, and
    the world size of one shadow-map texel.

    The light looks along ``-light_direction``; x and y span the casters' extent across the light, z their extent
    along it, so NDC z grows away from the light and anything beyond the last caster maps to z >= 1 (lit).
    """
    towards = np.asarray(scene.light_direction, dtype=np.float64)
    forward = -towards / np.linalg.norm(towards)
    helper = np.array([0.0, 1.0, 0.0]) if abs(forward[1]) < 0.99 else np.array([1.0, 0.0, 0.0])
    right = np.cross(forward, helper)
    right /= np.linalg.norm(right)
    rot = np.stack([right, np.cross(right, forward), forward])  # rows: the light's x, y, z in world coordinates
    points = [box_corners(obj, n_frames).reshape(-1, 3) for obj in scene.objects if obj.casts_shadow]
    local = np.concatenate(points) @ rot.T
    low, high = local.min(axis=0), local.max(axis=0)
    pad = 0.01 * (high - low) + 1e-3
    low, high = low - pad, high + pad
    scale = 2.0 / (high - low)
    matrix = np.eye(4)
    matrix[:3, :3] = rot * scale[:, None]
    matrix[:3, 3] = -1.0 - low * scale
    return matrix, float(np.max(high[:2] - low[:2]) / map_size)


def _vertex_data(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interleaved float32 vertices (8 x vec3) and uint32 indices for the whole scene, drawn in one call, and
    the indices of the objects that cast shadows.

    Static objects are baked into world coordinates (slot 0, identity model matrix); each moving object keeps
    local coordinates and gets its own slot. Texture coordinates are always the object's local position
    times the pattern frequency, so patterns stick to their surfaces.
    """
    chunks, index_chunks, casters, offset, slot = [], [], [], 0, 0
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
            [mat.color_a, mat.color_b, mat.direction, [TEXTURES[mat.texture], mat.detail, slot if obj.moving else 0]]
        )
        chunks.append(np.concatenate([positions, normals, tex, unit, np.broadcast_to(constant, (n, 12))], axis=1))
        index_chunks.append(mesh.triangles + offset)
        if obj.casts_shadow:
            casters.append(index_chunks[-1])
        offset += n
    return (
        np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32),
        np.ascontiguousarray(np.concatenate(index_chunks), dtype=np.uint32),
        np.ascontiguousarray(np.concatenate(casters) if casters else np.zeros((0, 3)), dtype=np.uint32),
    )

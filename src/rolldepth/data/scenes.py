"""Scene generators of the synthetic videos: random materials and primitives, the four scene kinds (room,
tabletop, street, field) and moving objects, one of which may pass close to the camera."""

from __future__ import annotations

import colorsys
from dataclasses import replace
from typing import Callable

import numpy as np

from .cameras import Layout, view_direction
from .scene import (
    RICH_TEXTURES, Material, Mesh, SceneObject, box_mesh, cylinder_mesh, quad_mesh, random_unit, rigid, rotation,
    sphere_mesh,
)


# ============================================================================================ random scene pieces
def _color(rng: np.random.Generator, hue: float | None = None, sat=(0.15, 0.8), val=(0.25, 0.9)) -> tuple:
    """A linear-RGB albedo from HSV ranges (hue None = any)."""
    h = rng.uniform() if hue is None else (hue + rng.normal(0, 0.05)) % 1.0
    rgb = colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val))
    return tuple(float(c) ** 2.2 for c in rgb)  # HSV is perceptual; the shader works in linear light


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
        direction=tuple(random_unit(rng)),
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
        SceneObject(quad_mesh(u * grow, v * grow), material, rigid(rot, centre), casts_shadow=False)
        for rot, centre, (u, v), material in faces
    ]



# ============================================================================================ scene kinds
def lighting(rng: np.random.Generator, outdoor: bool) -> dict:
    elevation, azimuth = np.radians(rng.uniform(20, 80)), rng.uniform(0, 2 * np.pi)
    warmth = rng.uniform(-0.1, 0.1)
    light = rng.uniform(0.6, 1.0) * np.array([1 + warmth, 1.0, 1 - warmth])
    ambient = rng.uniform(0.15, 0.45) * np.array([1 - warmth / 2, 1.0, 1 + warmth / 2])
    sky_hue = rng.uniform(0.53, 0.64) if rng.uniform() < 0.75 else rng.uniform(0.02, 0.12)
    return dict(
        light_direction=view_direction(azimuth, elevation),
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
    walls = random_material(rng, 2.0, ("solid", "noise", "stripes", "gradient"), hue=hue, sat=(0.05, 0.4),
                            val=(0.5, 0.95))
    ceiling = random_material(rng, 2.0, ("solid", "noise"), hue=hue, sat=(0.0, 0.15), val=(0.7, 0.95))
    return enclosure(half, floor, walls, ceiling)


def _outdoor_shell(rng: np.random.Generator, half, ground: Material) -> list[SceneObject]:
    sky = Material("sky")
    return enclosure(half, ground, sky, sky)


def _tabletop(rng: np.random.Generator) -> tuple[Layout, list[SceneObject], list[tuple[Mesh, np.ndarray]]]:
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
    target = (np.array([0.0, surface + 0.03, 0.0])
              + table_rot @ np.array([rng.uniform(-0.2, 0.2), 0, rng.uniform(-0.1, 0.1)]))
    distance, elevation, azimuth = rng.uniform(0.35, 0.9), np.radians(rng.uniform(20, 55)), rng.uniform(0, 2 * np.pi)
    eye = target + distance * view_direction(azimuth, elevation) * np.array([1, 1, 1])
    eye = target - distance * view_direction(azimuth, -elevation)
    layout = Layout(
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


def _room(rng: np.random.Generator) -> tuple[Layout, list[SceneObject], list[tuple[Mesh, np.ndarray]]]:
    """A furnished room: depths of roughly 0.3-15 m."""
    half = np.array([rng.uniform(2.0, 5.0), rng.uniform(1.2, 1.75), rng.uniform(2.0, 5.0)])
    shell = _room_shell(rng, half)
    margin = 0.6
    eye = np.array([rng.uniform(-1, 1) * (half[0] - margin), rng.uniform(1.2, 1.8),
                    rng.uniform(-1, 1) * (half[2] - margin)])
    forward = view_direction(rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(-25, 5)))
    layout = Layout(
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


def _street(rng: np.random.Generator) -> tuple[Layout, list[SceneObject], list[tuple[Mesh, np.ndarray]]]:
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
    layout = Layout(
        free_lo=np.array([-(road + walk) + 0.5, 0.5, -0.8 * half[2]]),
        free_hi=np.array([road + walk - 0.5, 20.0, 0.8 * half[2]]),
        eye=eye, target=eye + view_direction(heading, np.radians(rng.uniform(-8, 4))) * 15.0, view_distance=15.0,
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


def _field(rng: np.random.Generator) -> tuple[Layout, list[SceneObject], list[tuple[Mesh, np.ndarray]]]:
    """An open field or plaza with scattered objects: depths of roughly 1-100 m."""
    half = np.array([rng.uniform(40, 90), rng.uniform(30, 50), rng.uniform(40, 90)])
    ground = random_material(rng, 2.0, ("noise", "checker", "marble"), hue=rng.uniform(0.08, 0.35), sat=(0.2, 0.6))
    shell = _outdoor_shell(rng, half, ground)
    target = np.array([rng.uniform(-5, 5), rng.uniform(0.5, 2.0), rng.uniform(-5, 5)])
    drone = rng.uniform() < 0.3
    distance = rng.uniform(4, 20)
    elevation = np.radians(rng.uniform(20, 45) if drone else rng.uniform(-5, 10))
    eye = target - distance * view_direction(rng.uniform(0, 2 * np.pi), -elevation)
    eye[1] = max(eye[1], 1.5)
    layout = Layout(
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


KIND_BUILDERS: dict[str, Callable] = {"room": _room, "tabletop": _tabletop, "street": _street, "field": _field}


# ============================================================================================ realism options
def enrich_textures(rng: np.random.Generator, objects: list[SceneObject], share: float = 0.5) -> list[SceneObject]:
    """The objects with about ``share`` of their patterned surfaces redrawn in the rich families (bricks, tiles,
    wood, cells, dots), colours and scale kept. Drawn from its own generator, so the scene stays the same."""
    out = []
    for obj in objects:
        if obj.material.texture != "sky" and rng.uniform() < share:
            obj = replace(obj, material=replace(obj.material, texture=str(rng.choice(RICH_TEXTURES))))
        out.append(obj)
    return out


def rod(start, end, radius: float, sides: int = 8) -> tuple[Mesh, np.ndarray]:
    """A thin cylinder from ``start`` to ``end`` (world points): its mesh and placement."""
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    axis = end - start
    length = float(np.linalg.norm(axis))
    axis /= length
    turn = np.cross([0.0, 1.0, 0.0], axis)  # rotate the cylinder's local y onto the axis
    if np.linalg.norm(turn) > 1e-9:
        rot = rotation(turn, float(np.arctan2(np.linalg.norm(turn), axis[1])))
    else:  # already vertical: upright, or upside down
        rot = np.eye(3) if axis[1] > 0 else rotation([1.0, 0.0, 0.0], np.pi)
    return cylinder_mesh(radius, length / 2, sides), rigid(rot, (start + end) / 2)


def fence(start, direction, length: float, height: float, post_radius: float, spacing: float, rails: int,
          rail_radius: float) -> list[tuple[Mesh, np.ndarray]]:
    """Posts every ``spacing`` metres along a horizontal line and ``rails`` thin rails between the end posts."""
    start, direction = np.asarray(start, dtype=np.float64), np.asarray(direction, dtype=np.float64)
    n_posts = max(2, int(length / spacing) + 1)
    feet = start + np.linspace(0, length, n_posts)[:, None] * direction
    parts = [rod(foot, foot + [0, height, 0], post_radius) for foot in feet]
    for level in np.linspace(0.35, 0.95, rails) if rails > 1 else [0.95]:
        parts.append(rod(feet[0] + [0, level * height, 0], feet[-1] + [0, level * height, 0], rail_radius))
    return parts


def wire(start, end, sag: float, radius: float, segments: int = 6) -> list[tuple[Mesh, np.ndarray]]:
    """A cable hanging ``sag`` metres below the straight line at its middle (a parabola of ``segments`` rods)."""
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    t = np.linspace(0, 1, segments + 1)[:, None]
    points = start + t * (end - start) - sag * 4 * t * (1 - t) * np.array([0.0, 1.0, 0.0])
    return [rod(a, b, radius) for a, b in zip(points[:-1], points[1:])]


def frame(centre, half, radius: float, yaw: float) -> list[tuple[Mesh, np.ndarray]]:
    """The twelve edges of a box as rods: a shelf, a stand, a wire basket."""
    rot = rotation([0, 1, 0], yaw)
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T
    points = np.asarray(centre) + (corners * np.asarray(half)) @ rot.T
    edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if np.sum(corners[a] != corners[b]) == 1]
    return [rod(points[a], points[b], radius) for a, b in edges]


def thin_structures(rng: np.random.Generator, kind: str, layout: Layout) -> list[tuple[Mesh, np.ndarray]]:
    """Structures a few pixels or less across, where depth models fail: wires, railings, fences, rod frames,
    pencils. Placed around the view target of each scene kind; the caller drops any too close to the camera."""
    target = layout.target
    parts: list[tuple[Mesh, np.ndarray]] = []
    heading = rng.uniform(0, 2 * np.pi)
    along = np.array([np.sin(heading), 0.0, np.cos(heading)])
    if kind == "street":
        width = float(layout.free_hi[0]) + 0.5  # the road plus one sidewalk
        for _ in range(rng.integers(1, 4)):  # cables across the street between two poles
            z, height = target[2] + rng.uniform(-25, 25), rng.uniform(5.0, 9.0)
            ends = [np.array([side * width, 0.0, z]) for side in (-1, 1)]
            parts += [rod(end, end + [0, height + 0.5, 0], rng.uniform(0.08, 0.15)) for end in ends]
            sag, radius = rng.uniform(0.2, 0.8), rng.uniform(0.01, 0.03)
            parts += wire(ends[0] + [0, height, 0], ends[1] + [0, height, 0], sag, radius)
        side = rng.choice([-1, 1])
        start = np.array([side * (width - 0.3), 0.15, target[2] + rng.uniform(-15, 5)])
        parts += fence(start, [0, 0, 1], rng.uniform(6, 20), 1.0, rng.uniform(0.012, 0.025), rng.uniform(0.15, 0.3),
                       1, 0.03)  # a railing of balusters
    elif kind == "field":
        for _ in range(rng.integers(1, 3)):
            start = target + np.array([rng.uniform(-15, 15), 0.0, rng.uniform(-15, 15)])
            start[1] = 0.0
            parts += fence(start, along, rng.uniform(10, 40), rng.uniform(1.0, 1.5), rng.uniform(0.04, 0.07),
                           rng.uniform(2.0, 3.0), int(rng.integers(2, 4)), rng.uniform(0.006, 0.015))
            along = np.array([along[2], 0.0, -along[0]])  # the next fence runs across the first
    elif kind == "room":
        for _ in range(rng.integers(1, 4)):  # shelves and stands of rods
            half = np.array([rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.9), rng.uniform(0.15, 0.4)])
            x, z = rng.uniform(layout.free_lo[[0, 2]], layout.free_hi[[0, 2]])
            parts += frame([x, half[1], z], half, rng.uniform(0.008, 0.02), rng.uniform(0, 2 * np.pi))
        for _ in range(rng.integers(0, 3)):  # floor lamps
            x, z = rng.uniform(layout.free_lo[[0, 2]], layout.free_hi[[0, 2]])
            parts.append(rod([x, 0.0, z], [x, rng.uniform(1.2, 1.8), z], rng.uniform(0.008, 0.015)))
    else:  # tabletop: pencils lying on the table and a wire basket
        surface = target[1] - 0.03
        for _ in range(rng.integers(2, 7)):
            radius, length = rng.uniform(0.003, 0.006), rng.uniform(0.08, 0.2)
            centre = target + np.array([rng.uniform(-0.15, 0.15), 0.0, rng.uniform(-0.15, 0.15)])
            centre[1] = surface + radius
            turn = rng.uniform(0, 2 * np.pi)
            offset = 0.5 * length * np.array([np.sin(turn), 0.0, np.cos(turn)])
            parts.append(rod(centre - offset, centre + offset, radius))
        if rng.uniform() < 0.6:
            half = np.array([rng.uniform(0.03, 0.08), rng.uniform(0.03, 0.06), rng.uniform(0.03, 0.08)])
            centre = target + np.array([rng.uniform(-0.15, 0.15), 0.0, rng.uniform(-0.15, 0.15)])
            centre[1] = surface + half[1]
            parts += frame(centre, half, rng.uniform(0.002, 0.004), rng.uniform(0, 2 * np.pi))
    return parts


# ============================================================================================ moving objects
def mover(
    rng: np.random.Generator, kind: str, layout: Layout, times: np.ndarray
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
    axis = random_unit(rng) * np.array([1, 0, 1])
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


# The fly-by object's distance at its closest, as a fraction of the layout's view distance. Its size and its
# texture's period scale with that distance, so one frame shows the same picture for any value in this range.
FLYBY_CLOSE = (0.12, 0.3)


def flyby_object(rng: np.random.Generator, poses: np.ndarray, K: np.ndarray, size: tuple[int, int], layout: Layout,
                 times: np.ndarray, blur: int = 1) -> tuple[Mesh, np.ndarray]:
    """An object crossing the view close to the camera around mid-video, on a straight world-space line.

    It moves with the camera's mean velocity plus a sideways crossing, so the camera does not run into it,
    and it makes the nearest depth of the video drop sharply for a while. ``times`` and ``poses`` hold ``blur``
    instants per frame, the frame's own in the middle.
    """
    first, last = blur // 2, len(times) - 1 - blur // 2  # the instants of the first and the last frame
    mid = (len(times) // blur) // 2 * blur + blur // 2
    duration = max(float(times[last] - times[first]), 1e-6)
    close = rng.uniform(*FLYBY_CLOSE) * layout.view_distance
    radius = rng.uniform(0.15, 0.35) * close
    mesh = sphere_mesh(radius) if rng.uniform() < 0.5 else box_mesh(radius * rng.uniform(0.5, 1.0, 3))
    half_width = close * (size[0] / 2) / K[0, 0]
    sideways = rng.choice([-1, 1]) * 3 * half_width / duration
    rot_mid, eye_mid = poses[mid, :3, :3], poses[mid, :3, 3]
    velocity = (poses[last, :3, 3] - poses[first, :3, 3]) / duration
    offset_y = rng.uniform(-0.3, 0.3) * close * (size[1] / 2) / K[1, 1]
    t = times - times[mid]
    positions = (eye_mid + (rot_mid @ np.array([0.0, offset_y, close]))
                 + np.outer(t, velocity + rot_mid[:, 0] * sideways))
    spin = np.stack([rotation([0.3, 1, 0.2], a) for a in rng.uniform(-3, 3) * times])
    return mesh, rigid(spin, positions)

"""Camera paths of the synthetic videos (dolly, orbit, pan, handheld, walk, sweep, approach), kept inside a
scene's free space."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from .scene import CAMERA_PATHS, SceneObject, box_distance, frames_transforms, look_at, random_unit, rotation


# ============================================================================================ camera paths
@dataclass
class Layout:
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


def view_direction(yaw, pitch) -> np.ndarray:
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
    rng: np.random.Generator, name: str, layout: Layout, times: np.ndarray, duration: float
) -> tuple[np.ndarray, np.ndarray]:
    """Eyes [N, 3] and forward directions [N, 3] of one path type (before handheld jitter) at ``times``; the path
    runs over ``duration`` seconds (from the first frame's time to the last's: sub-frame instants lie just beyond)."""
    duration = max(duration, 1e-6)
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
        eyes = eye + view_direction(heading, 0.0) * speed * centred[:, None]
        return eyes, np.tile(view_direction(yaw0, pitch0), (n, 1))
    if name == "walk":
        step_freq, bob = rng.uniform(1.6, 2.2), rng.uniform(0.005, 0.02) * view
        yaw = yaw0 + np.radians(rng.uniform(-8, 8)) * times
        eyes = eye + view_direction(yaw0, 0.0) * speed * times[:, None]
        eyes[:, 1] += bob * np.sin(2 * np.pi * step_freq * times + rng.uniform(0, 2 * np.pi))
        bob = 0.3 * np.radians(rng.uniform(-5, 5)) * np.sin(np.pi * step_freq * times)
        return eyes, view_direction(yaw, pitch0 + bob)
    if name == "pan":
        yaw = yaw0 + np.radians(rng.uniform(8, 35)) * rng.choice([-1, 1]) * centred
        pitch = pitch0 + np.radians(rng.uniform(-4, 4)) * centred
        return np.tile(eye, (n, 1)), view_direction(yaw, np.clip(pitch, -1.2, 1.2))
    if name == "handheld":
        drift = random_unit(rng) * rng.uniform(0.02, 0.08) * view
        return eye + drift * centred[:, None], np.tile(view_direction(yaw0, pitch0), (n, 1))
    ease = 0.5 - 0.5 * np.cos(np.pi * times / duration)  # 0 -> 1, starting and stopping smoothly
    if name == "sweep":  # a fast turn of 70-150 degrees: near structure and far views pass through the frame
        turn = np.radians(rng.uniform(70, 150)) * rng.choice([-1, 1])
        yaw = yaw0 - turn / 2 + turn * ease
        return np.tile(eye, (n, 1)), view_direction(yaw, np.full(n, pitch0))
    if name == "approach":  # close in on the target until it is 25-45 % as far: the depth range shrinks
        forward = (layout.target - eye) / np.linalg.norm(layout.target - eye)
        travel = rng.uniform(0.55, 0.75) * np.linalg.norm(layout.target - eye)
        return eye + forward * travel * ease[:, None], np.tile(forward, (n, 1))
    raise UserError(f"unknown camera path {name!r}; choose one of {', '.join(CAMERA_PATHS)}")


def _poses_along(
    rng: np.random.Generator, name: str, layout: Layout, times: np.ndarray, duration: float
) -> np.ndarray:
    """Camera-to-world poses of a path plus handheld jitter (strong for "handheld", sometimes light)."""
    eyes, forward = _camera_path(rng, name, layout, times, duration)
    poses = look_at(eyes, forward)
    strength = 1.0 if name == "handheld" else (rng.uniform(0.1, 0.4) if rng.uniform() < 0.5 else 0.0)
    if strength > 0:
        angles = _wobble(rng, times, np.radians(2.5) * strength)
        shake = np.stack([rotation([1, 0, 0], a) @ rotation([0, 1, 0], b) @ rotation([0, 0, 1], c)
                          for a, b, c in angles])
        poses[:, :3, :3] = poses[:, :3, :3] @ shake
        poses[:, :3, 3] += _wobble(rng, times, 0.01 * layout.view_distance * strength)
    return poses


def _path_fits(poses: np.ndarray, layout: Layout, margin: float) -> bool:
    eyes = poses[:, :3, 3]
    if np.any(eyes < layout.free_lo) or np.any(eyes > layout.free_hi):
        return False
    return all(clearance(obj, eyes) > margin for obj in layout.structure)


def clearance(obj: SceneObject, eyes: np.ndarray) -> float:
    """Smallest distance from any eye to the object's bounding box over the video."""
    centre, half = obj.mesh.bounds
    return float(box_distance(eyes, frames_transforms(obj, len(eyes)), centre, half).min())


def choose_path(rng: np.random.Generator, layout: Layout, times: np.ndarray, duration: float, forced: str | None,
                 choices: tuple[str, ...] | None = None) -> tuple[str, np.ndarray]:
    """Draw paths until one stays inside the free space; fall back to a pan, which never moves the eye."""
    names = list(choices or layout.path_weights)
    weights = np.array([1.0 if choices else layout.path_weights[k] for k in names])
    margin = 0.1 * layout.view_distance
    for _ in range(12):
        name = forced or str(rng.choice(names, p=weights / weights.sum()))
        poses = _poses_along(rng, name, layout, times, duration)
        if _path_fits(poses, layout, margin):
            return name, poses
    name = "pan"
    poses = _poses_along(rng, name, layout, times, duration)
    poses[:, :3, 3] = layout.eye  # no positional jitter: the start eye is known to be free
    return name, poses

"""Synthetic renderer: depth against closed forms, multi-view consistency of depth, poses and intrinsics,
determinism, resumable datasets and the ``rolldepth synth`` command."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

from rolldepth.errors import UserError
from rolldepth.data.renderer import get_renderer
from rolldepth.data.scene import (
    Material, Scene, SceneConfig, SceneObject, box_mesh, intrinsics_matrix, look_at, quad_mesh, rigid, rotation,
)
from rolldepth.data.synth import load_sequence, render_sequence, write_dataset
from rolldepth.evaluate.metrics import tae

WIDTH, HEIGHT = 64, 48


def pixel_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """K^-1 [u, v, 1] for every pixel centre (integer coordinates), float64 [H, W, 3]."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    return pix @ np.linalg.inv(K).T


def render_one(scene: Scene, pose: np.ndarray, K: np.ndarray, antialias: bool = False):
    frames, depth, _ = get_renderer(WIDTH, HEIGHT, antialias).render(scene, pose[None], K)
    return frames[0], depth[0]


def test_intrinsics_closed_form():
    K = intrinsics_matrix(100, 50, 90.0, principal_offset=(1.5, -2.0))
    np.testing.assert_allclose(K, [[50, 0, 49.5 + 1.5], [0, 50, 24.5 - 2.0], [0, 0, 1]], atol=1e-12)


def test_look_at_is_opencv_camera_to_world():
    pose = look_at([1.0, 2.0, 3.0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(pose[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(pose[:3, 2], [0, 0, 1], atol=1e-12)  # z forward
    np.testing.assert_allclose(pose[:3, 1], [0, -1, 0], atol=1e-12)  # y down (world y up)
    np.testing.assert_allclose(pose[:3, 0], [-1, 0, 0], atol=1e-12)  # x right when looking along +z with y up
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)


@pytest.mark.parametrize("antialias", [False, True])
def test_depth_of_tilted_plane_is_exact(antialias):
    """A large plane, tilted and seen from an arbitrary camera pose: z = d / (n . K^-1 [u, v, 1]) per pixel."""
    K = intrinsics_matrix(WIDTH, HEIGHT, 60.0, principal_offset=(2.0, -1.5))
    camera_rot = rotation([0.2, 1.0, 0.1], 0.4)
    pose = rigid(camera_rot, [0.5, 1.2, -0.3])
    plane_rot = rotation([0.0, 1.0, 0.0], np.radians(35)) @ rotation([1.0, 0.0, 0.0], np.radians(-20))
    plane_cam = rigid(plane_rot, [0.1, -0.2, 3.0])  # plane placement in camera coordinates
    world = pose @ plane_cam
    scene = Scene(objects=[SceneObject(quad_mesh(40.0, 40.0), Material("checker", frequency=2.0), world)])
    frame, depth = render_one(scene, pose, K, antialias)

    normal = plane_rot[:, 2]  # camera-space plane: normal . X = normal . centre
    offset = normal @ plane_cam[:3, 3]
    expected = offset / (pixel_rays(K, WIDTH, HEIGHT) @ normal)
    assert np.all(expected > 0)
    assert np.all(depth > 0)  # the plane covers the whole view
    np.testing.assert_allclose(depth, expected, rtol=1e-4)
    assert expected.max() / expected.min() > 1.3  # the tilt really varies depth across the image
    assert frame.std() > 5  # the checker is visible


def test_fronto_parallel_coverage_and_depth():
    """A quad facing the camera: depth is the constant z (not the ray length) and exactly the pixels whose
    centre ray hits the quad are covered (pixel centres at integer coordinates)."""
    K = intrinsics_matrix(WIDTH, HEIGHT, 70.0, principal_offset=(0.3, 0.7))
    pose = np.eye(4)
    distance, half_u, half_v = 2.5, 0.61, 0.37
    quad = SceneObject(quad_mesh(half_u, half_v), Material(), rigid(np.eye(3), [0.13, -0.05, distance]))
    scene = Scene(objects=[quad])
    _, depth = render_one(scene, pose, K)

    hit = pixel_rays(K, WIDTH, HEIGHT) * distance  # where each centre ray meets z = distance
    dx, dy = np.abs(hit[..., 0] - 0.13) - half_u, np.abs(hit[..., 1] + 0.05) - half_v
    inside = (dx < 0) & (dy < 0)
    margin_px = np.minimum(np.abs(dx), np.abs(dy)) * K[0, 0] / distance
    clear = margin_px > 0.02  # pixels not straddling an edge
    assert 0.1 < inside.mean() < 0.9
    np.testing.assert_array_equal(depth[clear] > 0, inside[clear])
    np.testing.assert_allclose(depth[inside], distance, rtol=1e-5)
    assert np.all(depth[~inside & clear] == 0)


def test_nearer_object_occludes_and_moves_per_frame():
    """Two frames with a moving box in front of a wall: each frame's depth is the box face where it is."""
    K = intrinsics_matrix(WIDTH, HEIGHT, 60.0)
    poses = np.stack([np.eye(4), np.eye(4)])
    wall = SceneObject(quad_mesh(50, 50), Material(), rigid(np.eye(3), [0, 0, 10.0]))
    box_transforms = rigid(np.eye(3)[None].repeat(2, 0), [[-0.5, 0, 3.0], [0.5, 0, 3.0]])
    box = SceneObject(box_mesh([0.3, 0.3, 0.2]), Material(), box_transforms)
    _, depth, _ = get_renderer(WIDTH, HEIGHT, False).render(Scene(objects=[wall, box]), poses, K)
    for i, x in enumerate([-0.5, 0.5]):
        hit = pixel_rays(K, WIDTH, HEIGHT) * 2.8  # front face at z = 3.0 - 0.2
        on_box = (np.abs(hit[..., 0] - x) < 0.3 - 0.02) & (np.abs(hit[..., 1]) < 0.3 - 0.02)
        off_box = (np.abs(hit[..., 0] - x) > 0.3 + 0.05) | (np.abs(hit[..., 1]) > 0.3 + 0.05)
        assert on_box.sum() > 20
        np.testing.assert_allclose(depth[i][on_box], 2.8, rtol=1e-5)
        np.testing.assert_allclose(depth[i][off_box], 10.0, rtol=1e-5)


def test_object_indices_mark_exactly_each_moving_objects_pixels():
    """Two moving boxes and a static one before a wall: each moving box's face carries its 1-based index among the
    scene's moving objects, every other pixel 0."""
    K = intrinsics_matrix(WIDTH, HEIGHT, 60.0)
    poses = np.stack([np.eye(4), np.eye(4)])
    wall = SceneObject(quad_mesh(50, 50), Material(), rigid(np.eye(3), [0, 0, 10.0]))
    still = SceneObject(box_mesh([0.3, 0.3, 0.2]), Material(), rigid(np.eye(3), [0, 1.0, 5.0]))
    near = SceneObject(box_mesh([0.3, 0.3, 0.2]), Material(),
                       rigid(np.eye(3)[None].repeat(2, 0), [[-0.5, 0, 3.0], [0.5, 0, 3.0]]))
    far = SceneObject(box_mesh([0.3, 0.3, 0.2]), Material(), rigid(np.eye(3)[None].repeat(2, 0), [[0, -1.0, 7.0]] * 2))
    _, depth, objects = get_renderer(WIDTH, HEIGHT, False).render(Scene(objects=[wall, near, still, far]), poses, K)
    assert objects.dtype == np.uint8 and objects.shape == depth.shape
    near_face, far_face = depth < 3.5, (depth > 6.5) & (depth < 7.5)
    assert near_face.sum() > 40 and far_face.sum() > 10 and ((depth > 4.5) & (depth < 5.5)).sum() > 20  # all in view
    np.testing.assert_array_equal(objects, np.where(near_face, 1, np.where(far_face, 2, 0)))


def bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - u0, v - v0
    return (
        image[v0, u0] * (1 - fu) * (1 - fv) + image[v0, u0 + 1] * fu * (1 - fv)
        + image[v0 + 1, u0] * (1 - fu) * fv + image[v0 + 1, u0 + 1] * fu * fv
    )


@pytest.mark.parametrize("seed, path", [(11, "dolly"), (12, "orbit")])
def test_multi_view_consistency_static_scene(seed, path):
    """Unproject frame 0 with K and its pose, project into the last frame: the predicted z matches that frame's
    depth where the point is visible (inverse depth interpolated bilinearly, exact on planar patches)."""
    config = SceneConfig(moving_objects=False, camera_path=path, antialias=False)
    sample = render_sequence(seed, 8, (WIDTH, HEIGHT), config)
    assert sample["meta"]["n_moving"] == 0 and sample["meta"]["flyby"] is False
    depth, poses = sample["depth"].astype(np.float64), sample["poses"].astype(np.float64)
    K = sample["intrinsics"].astype(np.float64)
    j = len(depth) - 1
    moved = np.linalg.norm(poses[j, :3, 3] - poses[0, :3, 3])
    assert moved > 0.01 * np.median(depth[0])  # the camera really moved

    cam0 = pixel_rays(K, WIDTH, HEIGHT) * depth[0][..., None]
    world = cam0 @ poses[0, :3, :3].T + poses[0, :3, 3]
    w2c = np.linalg.inv(poses[j])
    camj = world @ w2c[:3, :3].T + w2c[:3, 3]
    z = camj[..., 2]
    u, v = (camj @ K.T)[..., 0] / z, (camj @ K.T)[..., 1] / z
    inside = (z > 0) & (u >= 0) & (u <= WIDTH - 1.001) & (v >= 0) & (v <= HEIGHT - 1.001)
    assert inside.mean() > 0.5
    sampled = 1.0 / bilinear(1.0 / depth[j], u[inside], v[inside])
    rel = np.abs(sampled - z[inside]) / z[inside]
    assert np.median(rel) < 1e-3
    assert np.mean(rel < 1e-2) > 0.8  # the rest are occlusions and depth edges

    # Control: the same check with the poses read as world-to-camera fails, so the check has teeth.
    world_wrong = cam0 @ np.linalg.inv(poses[0])[:3, :3].T + np.linalg.inv(poses[0])[:3, 3]
    camj_wrong = world_wrong @ poses[j][:3, :3].T + poses[j][:3, 3]
    zw = camj_wrong[..., 2]
    uw, vw = (camj_wrong @ K.T)[..., 0] / zw, (camj_wrong @ K.T)[..., 1] / zw
    ok = (zw > 0) & (uw >= 0) & (uw <= WIDTH - 1.001) & (vw >= 0) & (vw <= HEIGHT - 1.001)
    assert ok.sum() > 50
    rel_w = np.abs(1.0 / bilinear(1.0 / depth[j], uw[ok], vw[ok]) - zw[ok]) / zw[ok]
    assert np.median(rel_w) > 10 * max(np.median(rel), 1e-4)


def test_same_seed_identical_different_seed_differs():
    config = SceneConfig(antialias=False)
    a = render_sequence(5, 3, (48, 32), config)
    b = render_sequence(5, 3, (48, 32), config)
    c = render_sequence(6, 3, (48, 32), config)
    for key in ("frames", "depth", "poses", "intrinsics"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["meta"] == b["meta"]
    assert not np.array_equal(a["depth"], c["depth"])
    assert not np.array_equal(a["frames"], c["frames"])
    assert a["frames"].dtype == np.uint8 and a["frames"].shape == (3, 32, 48, 3)
    assert a["depth"].dtype == np.float32 and a["depth"].shape == (3, 32, 48)
    assert np.all(a["depth"] > 0)
    assert a["meta"]["min_depth"] == float(a["depth"].min()) and a["meta"]["max_depth"] == float(a["depth"].max())
    np.testing.assert_allclose(a["poses"][:, 3], np.tile([0, 0, 0, 1], (3, 1)))


def test_bad_arguments_raise_user_error():
    with pytest.raises(UserError):
        render_sequence(0, 0, (32, 32))
    with pytest.raises(UserError):
        render_sequence(0, 2, (4, 32))
    with pytest.raises(UserError, match="kind"):
        render_sequence(0, 2, (32, 32), SceneConfig(kind="moon"))
    with pytest.raises(UserError, match="camera path"):
        render_sequence(0, 2, (32, 32), SceneConfig(camera_path="teleport"))


def test_write_dataset_resume_and_settings(tmp_path):
    root = tmp_path / "data"
    write_dataset(root, 2, n_frames=2, size=(32, 24), seed=3, progress=False)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "dataset.json")
    assert {p.parent.name for p in files} == {"seq_00000", "seq_00001"}
    stamps = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    first = {name: load_sequence(root / name) for name in ("seq_00000", "seq_00001")}

    stale = root / ".seq_00001.partial"
    stale.mkdir()
    (stale / "frames.npy").write_bytes(b"half")
    redo = root / "seq_00001"
    shutil.rmtree(redo)  # as if the run had been interrupted while writing it
    write_dataset(root, 2, n_frames=2, size=(32, 24), seed=3, progress=False)
    assert not stale.exists()
    for p, (mtime, data) in stamps.items():
        assert p.read_bytes() == data
        if p.parent.name == "seq_00000":
            assert p.stat().st_mtime_ns == mtime  # skipped, not rewritten
    again = load_sequence(redo)
    assert again["moving"].dtype == bool and again["moving"].shape == again["depth"].shape
    np.testing.assert_array_equal(again["moving"], again["objects"] > 0)
    for key in ("frames", "depth", "objects", "object_poses", "poses", "intrinsics"):
        np.testing.assert_array_equal(again[key], first["seq_00001"][key])

    description = json.loads((root / "dataset.json").read_text())
    assert description["format"] == "rolldepth-synth" and description["size"] == [32, 24]
    assert [s["name"] for s in description["sequences"]] == ["seq_00000", "seq_00001"]
    assert description["sequences"][0]["seed"] == first["seq_00000"]["meta"]["seed"]
    assert not list(root.glob(".*"))

    for kwargs in (dict(n_frames=3, size=(32, 24), seed=3), dict(n_frames=2, size=(40, 24), seed=3),
                   dict(n_frames=2, size=(32, 24), seed=4)):
        with pytest.raises(UserError, match="other settings"):
            write_dataset(root, 2, progress=False, **kwargs)

    with pytest.raises(UserError):
        write_dataset(tmp_path / "x", 0, n_frames=2, size=(32, 24))


def test_load_sequence_rejects_broken(tmp_path):
    root = write_dataset(tmp_path / "d", 1, n_frames=2, size=(32, 24), seed=0, progress=False)
    seq = root / "seq_00000"
    loaded = load_sequence(seq)
    assert loaded["frames"].shape == (2, 24, 32, 3) and loaded["fps"] == 30.0
    objects = np.load(seq / "objects.npy")
    np.save(seq / "object_poses.npy", np.zeros((2, 0, 4, 4)))
    if objects.any():  # fewer poses than objects
        with pytest.raises(UserError, match="object_poses.npy"):
            load_sequence(seq)
    np.save(seq / "objects.npy", objects.astype(bool))
    with pytest.raises(UserError, match="objects.npy must be uint8"):
        load_sequence(seq)
    (seq / "objects.npy").unlink()  # a sequence written before the object indices: its bool mask still counts
    assert load_sequence(seq)["moving"] is None and load_sequence(seq)["objects"] is None
    np.save(seq / "moving.npy", objects > 0)
    loaded = load_sequence(seq)
    np.testing.assert_array_equal(loaded["moving"], objects > 0)
    assert loaded["objects"] is None and loaded["object_poses"] is None
    np.save(seq / "moving.npy", np.zeros((2, 24, 32), dtype=np.uint8))
    with pytest.raises(UserError, match="moving.npy"):
        load_sequence(seq)
    np.save(seq / "depth.npy", np.zeros((2, 24, 31), dtype=np.float32))
    with pytest.raises(UserError, match="depth.npy"):
        load_sequence(seq)
    (seq / "poses.npy").write_bytes(b"garbage")
    with pytest.raises(UserError, match="poses.npy"):
        load_sequence(seq)
    (seq / "meta.json").write_text("{")
    with pytest.raises(UserError, match="meta.json"):
        load_sequence(seq)
    with pytest.raises(UserError, match="does not exist"):
        load_sequence(tmp_path / "none")


def test_cli_writes_dataset_and_quiet_hides_progress(tmp_path, capfd):
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    from rolldepth.apps.cli import main

    saved = os.environ.pop("TQDM_DISABLE", None)
    try:
        args = ["synth", "--sequences", "1", "--frames", "2", "--size", "32x24", "--seed", "1"]
        assert main([*args, str(tmp_path / "loud")]) == 0
        loud = capfd.readouterr()
        assert "synth" in loud.err and "1/1" in loud.err  # control: the bar is shown without -q
        assert main(["-q", *args, str(tmp_path / "quiet")]) == 0
        quiet = capfd.readouterr()
        assert quiet.err == "" and quiet.out == ""
    finally:
        os.environ.pop("TQDM_DISABLE", None)
        if saved is not None:
            os.environ["TQDM_DISABLE"] = saved
        dlog.enable_progress_bar()
        tlog.enable_progress_bar()
    for name in ("loud", "quiet"):
        description = json.loads((tmp_path / name / "dataset.json").read_text())
        assert description["size"] == [32, 24] and description["n_frames"] == 2 and description["seed"] == 1
        assert load_sequence(tmp_path / name / "seq_00000")["depth"].shape == (2, 24, 32)
    np.testing.assert_array_equal(
        np.load(tmp_path / "loud" / "seq_00000" / "depth.npy"), np.load(tmp_path / "quiet" / "seq_00000" / "depth.npy")
    )
    assert main(["-q", "synth", str(tmp_path / "bad"), "--sequences", "1", "--frames", "2", "--size", "4x4"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("rolldepth: error:") and err.count("\n") == 1
    # --workers -1 used to render the whole dataset in one process; a file as the folder was a FileExistsError
    (tmp_path / "afile").write_text("x")
    for argv, message in (
        ([str(tmp_path / "w"), "--workers", "-1"], "--workers must be at least 1 (rendering processes), got -1"),
        ([str(tmp_path / "afile")], f"{tmp_path / 'afile'} is a file: the dataset needs a folder"),
    ):
        assert main(["-q", "synth", *argv, "--sequences", "1", "--frames", "2", "--size", "32x24"]) == 2
        assert capfd.readouterr().err == f"rolldepth: error: {message}\n"
    assert not (tmp_path / "w").exists()


def _yaw(pose: np.ndarray) -> float:
    forward = pose[:3, 2]  # camera z axis in the world
    return float(np.degrees(np.arctan2(forward[0], forward[2])))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sweep_turns_in_place_and_approach_closes_in(seed):
    from rolldepth.data.synth import build_sequence_scene

    _, poses, _, meta = build_sequence_scene(seed, 24, (32, 24), SceneConfig(camera_path="sweep", moving_objects=False))
    assert meta["camera_path"] == "sweep"
    eyes = poses[:, :3, 3]
    assert np.abs(eyes - eyes[0]).max() < 0.05 * max(1.0, np.abs(eyes[0]).max())  # turns where it stands
    turn = np.unwrap(np.radians([_yaw(p) for p in poses]))
    assert np.degrees(np.abs(turn[-1] - turn[0])) > 60  # 70..150 degrees minus handheld wobble

    config = SceneConfig(camera_path="approach", moving_objects=False)
    _, poses, _, meta = build_sequence_scene(seed, 24, (32, 24), config)
    if meta["camera_path"] == "approach":  # a path that would hit the structure falls back to a pan
        step = poses[-1, :3, 3] - poses[0, :3, 3]
        assert np.dot(step, poses[0, :3, 2]) > 0.9 * np.linalg.norm(step) > 0  # straight ahead, towards the view


def test_consistency_split_changes_the_depth_range_and_workers_change_nothing(tmp_path):
    """The consistency split draws its paths from the given ones and always has a fly-by; 2 rendering processes
    write bit-identical files to 1."""
    config = SceneConfig(camera_paths=("sweep", "approach"), flyby=True)
    one = write_dataset(tmp_path / "one", 3, n_frames=8, size=(32, 24), seed=5, progress=False, config=config)
    two = write_dataset(tmp_path / "two", 3, n_frames=8, size=(32, 24), seed=5, progress=False, config=config,
                        workers=2)
    for name in ("seq_00000", "seq_00001", "seq_00002"):
        a, b = load_sequence(one / name), load_sequence(two / name)
        for key in ("frames", "depth", "poses", "intrinsics"):
            np.testing.assert_array_equal(a[key], b[key])
        assert a["meta"]["camera_path"] in ("sweep", "approach", "pan")
    metas = [load_sequence(one / name)["meta"] for name in ("seq_00000", "seq_00001", "seq_00002")]
    assert any(m["camera_path"] in ("sweep", "approach") for m in metas)
    assert all(m["flyby"] for m in metas)  # forced in this split


def test_cli_consistency_flag(tmp_path):
    from rolldepth.apps.cli import main

    assert main(["-q", "synth", str(tmp_path / "c"), "--sequences", "1", "--frames", "3", "--size", "32x24",
                 "--consistency"]) == 0
    assert load_sequence(tmp_path / "c" / "seq_00000")["meta"]["camera_path"] in ("sweep", "approach", "pan")


@pytest.mark.parametrize("seed", [0, 2])  # seed 2 has a fly-by, placed from the middle frame's pose
def test_motion_blur_averages_the_instants_around_each_frame(seed):
    """With 3 instants over a 2-frame shutter, instant j of frame i is frame i-1+j of the unblurred render: the
    blurred frame is the rounded mean of three unblurred neighbours, and depth and pose stay the frame's own."""
    sharp = render_sequence(seed, 8, (48, 32))
    blurred = render_sequence(seed, 8, (48, 32), SceneConfig(motion_blur=3, shutter=2.0))
    np.testing.assert_array_equal(blurred["poses"], sharp["poses"])
    np.testing.assert_allclose(blurred["depth"], sharp["depth"], rtol=1e-6)  # the clip range may move a ulp
    neighbours = sharp["frames"].astype(np.float64)
    expected = np.round((neighbours[:-2] + neighbours[1:-1] + neighbours[2:]) / 3)
    off = np.abs(blurred["frames"][1:-1] - expected)
    assert (off > 0).mean() < 1e-3 and off.mean() < 0.01  # exact but for rare depth ties at edges
    assert np.abs(blurred["frames"].astype(np.float64) - sharp["frames"]).mean() > 1.0  # the camera moves
    assert (blurred["meta"]["motion_blur"], blurred["meta"]["shutter"]) == (3, 2.0)
    np.testing.assert_allclose(blurred["object_poses"], sharp["object_poses"], atol=1e-6)  # the middle instants'
    assert (blurred["objects"] != sharp["objects"]).mean() < 1e-3


@pytest.mark.parametrize("blur", [1, 3])
def test_flow_tae_of_the_true_depth_follows_every_rendered_object(blur):
    """Seed 2's fly-by fills a third of the view: reprojected with the camera's motion alone even the true depth
    is off by hundreds of percent; moved with the written object poses it agrees like the static scene does,
    and with the objects frozen at their first pose it does not."""
    sample = render_sequence(2, 8, (48, 32), SceneConfig(motion_blur=blur, shutter=2.0))
    objects, object_poses = sample["objects"], sample["object_poses"]
    assert sample["meta"]["flyby"] and object_poses.shape == (8, 1, 4, 4) and (objects == 1).mean() > 0.2
    truth = (sample["depth"], sample["depth"], None, sample["poses"].astype(np.float64),
             sample["intrinsics"].astype(np.float64), float(sample["depth"].max()) + 1)
    camera_only, static = tae(*truth), tae(*truth, moving=sample["moving"])
    flow = tae(*truth, motion=(objects, object_poses))
    frozen = tae(*truth, motion=(objects, np.broadcast_to(object_poses[:1], object_poses.shape)))
    assert camera_only > 100 and static < 2 and flow < 2 and frozen > 3 * flow


def test_motion_blur_options_are_checked(tmp_path, capfd):
    from rolldepth.apps.cli import main

    for blur, shutter in ((2, 0.5), (0, 0.5), (3, 0.0), (3, 2.5)):
        with pytest.raises(UserError, match="motion blur"):
            render_sequence(0, 2, (32, 24), SceneConfig(motion_blur=blur, shutter=shutter))
    args = ["-q", "synth", str(tmp_path / "d"), "--sequences", "1", "--frames", "2", "--size", "32x24"]
    assert main([*args, "--motion-blur", "3"]) == 0
    assert load_sequence(tmp_path / "d" / "seq_00000")["meta"]["motion_blur"] == 3
    assert main(args) == 2  # resuming without the blur would mix two kinds of frames
    assert main([*args, "--motion-blur", "4"]) == 2
    err = capfd.readouterr().err
    assert "other settings" in err and "odd number" in err and err.count("\n") == 2


def test_shadow_of_a_floating_box_lands_where_the_light_projects_it():
    """Camera looking down into a closed room; light from (1, 1, 0): a box at height 0.7..1.3 shades the floor
    points (x, 0, z) with x + y in the box for some y in that range, i.e. x in [-1.6, -0.4], |z| < 0.3. In the
    shadow the floor gets the ambient term only; the ceiling, part of the enclosure, casts nothing."""
    from rolldepth.data.scenes import enclosure

    size = (96, 96)
    K = intrinsics_matrix(*size, 70.0)
    pose = look_at([0.0, 4.0, 0.0], [0.0, -1.0, 0.0], up=(0.0, 0.0, 1.0))[None]
    plain = Material("solid", color_a=(0.5, 0.5, 0.5))
    box = SceneObject(box_mesh([0.3, 0.3, 0.3]), plain, rigid(np.eye(3), [0.0, 1.0, 0.0]))
    light = dict(light_direction=np.array([1.0, 1.0, 0.0]) / np.sqrt(2), light_color=(0.8, 0.8, 0.8),
                 ambient=(0.2, 0.2, 0.2))
    objects = enclosure([4.0, 2.5, 4.0], plain, plain, plain) + [box]
    renderer = get_renderer(*size, False)
    shaded, depth, _ = renderer.render(Scene(objects=objects, shadows=True, **light), pose, K)
    unshaded, depth_off, _ = renderer.render(Scene(objects=objects, **light), pose, K)
    np.testing.assert_array_equal(depth, depth_off)  # shadows change colour only

    v, u = np.mgrid[0:size[1], 0:size[0]].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    world = (rays * depth[0][..., None]) @ pose[0, :3, :3].T + pose[0, :3, 3]
    floor = np.abs(world[..., 1]) < 1e-3
    inside = floor & (world[..., 0] > -1.5) & (world[..., 0] < -0.5) & (np.abs(world[..., 2]) < 0.2)
    outside = floor & ((world[..., 0] < -1.75) | (world[..., 0] > -0.25) | (np.abs(world[..., 2]) > 0.45))
    assert inside.sum() > 30 and outside.sum() > 1000

    def encoded(term):  # what the shader writes for a plain surface with this irradiance
        return np.round(255 * (0.5 * term) ** (1 / 2.2))

    lit, dark = encoded(0.2 + 0.8 * np.sqrt(0.5)), encoded(0.2)  # floor normal (0, 1, 0) against the light
    np.testing.assert_allclose(shaded[0][inside], dark, atol=1)
    np.testing.assert_allclose(shaded[0][outside], lit, atol=1)
    np.testing.assert_allclose(unshaded[0][floor], lit, atol=1)


@pytest.mark.parametrize("texture", ["bricks", "tiles", "wood", "cells", "dots"])
def test_rich_texture_families_draw_a_pattern(texture):
    K = intrinsics_matrix(WIDTH, HEIGHT, 60.0)
    wall = SceneObject(quad_mesh(5, 5), Material(texture, color_a=(0.8, 0.3, 0.2), color_b=(0.1, 0.1, 0.1),
                                                  frequency=1.5), rigid(np.eye(3), [0, 0, 4.0]))
    frame, depth = render_one(Scene(objects=[wall]), np.eye(4), K)
    np.testing.assert_allclose(depth, 4.0, rtol=1e-6)
    assert frame.std() > 10 and len(np.unique(frame[..., 0])) > 5  # both colours, and shades between


def test_rod_runs_between_its_end_points():
    from rolldepth.data.scenes import fence, frame, rod, wire

    start, end = np.array([1.0, 0.5, -2.0]), np.array([-0.5, 2.0, 1.0])
    for a, b in ((start, end), (start, start + [0, -3.0, 0]), (start, start + [0, 3.0, 0])):
        mesh, place = rod(a, b, 0.02)
        tips = np.array([[0, -1, 0], [0, 1, 0]]) * mesh.bounds[1][1]
        np.testing.assert_allclose(tips @ place[:3, :3].T + place[:3, 3], [a, b], atol=1e-12)
    assert len(frame([0, 0, 0], [1, 2, 3], 0.01, 0.3)) == 12
    parts = fence([0, 0, 0], [1, 0, 0], 10.0, 1.2, 0.05, 2.5, 2, 0.01)
    assert len(parts) == 5 + 2  # five posts, two rails
    hanging = wire([0, 5, 0], [10, 5, 0], 0.5, 0.01, segments=4)
    joints = [place[:3, 3] + place[:3, 1] * mesh.bounds[1][1] for mesh, place in hanging]  # each segment's end
    np.testing.assert_allclose(joints, [[2.5, 4.625, 0], [5, 4.5, 0], [7.5, 4.625, 0], [10, 5, 0]], atol=1e-12)


@pytest.mark.parametrize("kind", ["room", "tabletop", "street", "field"])
def test_realism_options_keep_the_scene_and_change_the_pictures(kind):
    changed = {"shadows": 0.0, "rich_textures": 0.0, "thin_structures": 0.0}
    for seed in (4, 5, 6):  # one view may show no shadow or no thin structure; three of each kind do
        config = SceneConfig(kind=kind)
        base = render_sequence(seed, 3, (64, 48), config)
        for option in changed:
            real = render_sequence(seed, 3, (64, 48), replace(config, **{option: True}))
            np.testing.assert_array_equal(real["poses"], base["poses"])  # the same camera and scene
            same = ("kind", "camera_path", "n_moving", "flyby", "seed")
            assert {k: real["meta"][k] for k in same} == {k: base["meta"][k] for k in same}
            assert real["meta"][option] is True
            changed[option] = max(changed[option], np.abs(real["frames"].astype(int) - base["frames"]).mean())
            if option != "thin_structures":  # only thin structures add geometry
                np.testing.assert_allclose(real["depth"], base["depth"], rtol=1e-6)
    assert min(changed.values()) > 0.05, changed


def test_cli_realism_flags_and_resume_check(tmp_path, capfd):
    from rolldepth.apps.cli import main

    args = ["-q", "synth", str(tmp_path / "r"), "--sequences", "1", "--frames", "2", "--size", "32x24"]
    assert main([*args, "--realism"]) == 0
    meta = load_sequence(tmp_path / "r" / "seq_00000")["meta"]
    assert meta["shadows"] and meta["rich_textures"] and meta["thin_structures"]
    assert main([*args, "--shadows", "--rich-textures", "--thin-structures"]) == 0  # the same settings: resumes
    assert main([*args, "--shadows"]) == 2
    assert "other settings" in capfd.readouterr().err


def test_loader_names_the_object_that_flies_by(tmp_path):
    """The synth loader says which rendered object is the fly-by: the nearest thing in view, before the static scene
    and the other movers, whatever their number; a shot without one says 0."""
    from rolldepth.data.benchmarks import load_dataset

    root = write_dataset(tmp_path / "f", 4, n_frames=8, size=(48, 36), seed=5, progress=False,
                         config=SceneConfig(flyby=True))
    samples = list(load_dataset("synth", root))
    assert any(s.flyby_object > 1 for s in samples)  # some shots have movers rendered before it
    for sample in samples:
        flyby = sample.objects == sample.flyby_object
        rest = sample.valid & ~flyby
        assert sample.flyby_object > 0 and flyby.any()
        assert np.median(sample.depth[flyby]) < np.percentile(sample.depth[rest], 10)
    plain = write_dataset(tmp_path / "p", 1, n_frames=8, size=(48, 36), seed=5, progress=False,
                          config=SceneConfig(flyby=False))
    assert next(iter(load_dataset("synth", plain))).flyby_object == 0

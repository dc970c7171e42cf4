"""Each loader reads a tiny dataset written here in that benchmark's own on-disk format; values must round-trip."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from rolldepth.data import benchmarks as datasets
from rolldepth.data.benchmarks import DATASETS, bonn_camera_pose, load_dataset, read_cam, read_dpt, tum_to_matrix
from rolldepth.errors import UserError

H, W = 6, 8


def write_png16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)


def write_rgb(path: Path, color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W, 3), color, dtype=np.uint8)).save(path, quality=100)


def colors(n: int) -> list[tuple[int, int, int]]:
    return [(40 * i + 20, 200 - 50 * i, 90) for i in range(n)]


def random_pose(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_rotvec(rng.normal(0, 0.5, 3)).as_matrix()
    pose[:3, 3] = rng.normal(0, 1, 3)
    return pose


def assert_frames(sample, expected_colors, atol=0) -> None:
    frames = sample.frames
    assert frames.dtype == np.uint8 and frames.shape == (len(expected_colors), H, W, 3)
    for frame, color in zip(frames, expected_colors):
        np.testing.assert_allclose(frame.reshape(-1, 3).mean(axis=0), color, atol=atol + 1e-9)


# --------------------------------------------------------------------------------------------- ScanNet


def make_scannet(root: Path, stems=(0, 2, 10, 11)) -> dict:
    scene = root / "scene0707_00"
    truth = {"depth": {}, "pose": {}}
    for n, (stem, color) in enumerate(zip(stems, colors(len(stems)))):
        write_rgb(scene / "color" / f"{stem}.jpg", color)
        raw = np.full((H, W), 1000 + 250 * n)
        raw[0, 0] = 0
        write_png16(scene / "depth" / f"{stem}.png", raw)
        pose = random_pose(n) if stem != 10 else np.full((4, 4), -np.inf)
        (scene / "pose").mkdir(exist_ok=True)
        np.savetxt(scene / "pose" / f"{stem}.txt", pose)
        truth["depth"][stem], truth["pose"][stem] = (1000 + 250 * n) / 1000, pose
    k = np.array([[577.6, 0, 319.5, 0], [0, 578.7, 239.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    (scene / "intrinsic").mkdir()
    np.savetxt(scene / "intrinsic" / "intrinsic_depth.txt", k)
    truth["K"] = k[:3, :3]
    return truth


def test_scannet_round_trip_numeric_order_and_protocol_stride(tmp_path):
    truth = make_scannet(tmp_path)
    (sample,) = load_dataset("scannet", tmp_path, stride=1)
    assert sample.name == "scannet/scene0707_00"
    assert [p.stem for p in sample.frame_paths] == ["0", "2", "10", "11"]  # numeric, not lexicographic
    np.testing.assert_allclose(sample.depth[:, 1, 1], [truth["depth"][s] for s in (0, 2, 10, 11)], rtol=1e-6)
    assert not sample.valid[:, 0, 0].any() and sample.valid[:, 1:, 1:].all()
    assert np.all(np.isneginf(sample.poses[2])) and sample.poses.dtype == np.float64
    np.testing.assert_allclose(sample.poses[3], truth["pose"][11], atol=1e-12)
    np.testing.assert_allclose(sample.K, truth["K"])
    assert sample.max_depth == 10.0 and sample.fps == 30.0
    assert_frames(sample, colors(4), atol=3)  # JPEG
    (protocol,) = load_dataset("scannet", tmp_path)  # DepthCrafter protocol: every 3rd frame
    assert [p.stem for p in protocol.frame_paths] == ["0", "11"] and protocol.fps == 10.0
    (limited,) = load_dataset("scannet", tmp_path / "scene0707_00", max_frames=2, stride=1)
    assert len(limited.depth) == 2


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    make_scannet(tmp_path)
    missing = tmp_path / "scene0707_00" / "depth" / "2.png"
    missing.unlink()
    with pytest.raises(UserError, match="missing file .*2.png"):
        next(load_dataset("scannet", tmp_path, stride=1))
    Image.fromarray(np.zeros((H, W), np.uint8)).save(missing)  # 8-bit: not a depth map
    with pytest.raises(UserError, match="2.png is not a single-channel 16-bit"):
        next(load_dataset("scannet", tmp_path, stride=1))
    missing.write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read depth PNG .*2.png"):
        next(load_dataset("scannet", tmp_path, stride=1))
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("nyu", tmp_path)
    with pytest.raises(UserError, match="no sequences"):
        next(load_dataset("bonn", tmp_path))


# ------------------------------------------------------------------------------------------------ Bonn


def make_bonn(root: Path) -> list[np.ndarray]:
    sequence = root / "rgbd_bonn_balloon"
    rgb_lines, depth_lines, gt_lines = ["# color images"], ["# depth maps"], ["# timestamp tx ty tz qx qy qz qw"]
    tum = []
    for i, color in enumerate(colors(4)):
        t = 1548266469.0 + i / 30
        write_rgb(sequence / "rgb" / f"{t:.6f}.png", color)
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        if i == 2:
            continue  # this colour image has no depth within 20 ms: it must be dropped
        depth_t = t + 0.004
        write_png16(sequence / "depth" / f"{depth_t:.6f}.png", np.full((H, W), 2500 + 500 * i))
        depth_lines.append(f"{depth_t:.6f} depth/{depth_t:.6f}.png")
        values = np.r_[np.random.default_rng(i).normal(0, 1, 3), Rotation.random(random_state=i).as_quat()]
        gt_lines.append(f"{t + 0.001:.6f} " + " ".join(f"{v:.9f}" for v in values))
        tum.append(values)
    for name, lines in (("rgb.txt", rgb_lines), ("depth.txt", depth_lines), ("groundtruth.txt", gt_lines)):
        (sequence / name).write_text("\n".join(lines) + "\n")
    return tum


def test_bonn_association_depth_factor_and_poses(tmp_path):
    tum = make_bonn(tmp_path)
    (sample,) = load_dataset("bonn", tmp_path, start=0)
    np.testing.assert_allclose(sample.depth[:, 0, 0], [0.5, 0.6, 0.8], rtol=1e-6)  # 2500 / 5000 = 0.5 m
    assert sample.valid.all()
    assert_frames(sample, [colors(4)[i] for i in (0, 1, 3)])
    for pose, values in zip(sample.poses, tum):
        marker = np.eye(4)
        marker[:3, :3] = Rotation.from_quat(values[3:]).as_matrix()  # scipy: scalar-last, like TUM
        marker[:3, 3] = values[:3]
        np.testing.assert_allclose(pose, bonn_camera_pose(marker), atol=1e-7)
    np.testing.assert_allclose(sample.K, [[542.822841, 0, 315.593520], [0, 542.576870, 237.756098], [0, 0, 1]])
    with pytest.raises(UserError, match="none at or after the split's start frame 30"):
        next(load_dataset("bonn", tmp_path))


def test_tum_quaternion_matches_independent_rotation():
    rng = np.random.default_rng(7)
    for _ in range(5):
        values = np.r_[rng.normal(size=3), rng.normal(size=4)]  # unnormalised quaternion on purpose
        expected = Rotation.from_quat(values[3:]).as_matrix()
        pose = tum_to_matrix(values)
        np.testing.assert_allclose(pose[:3, :3], expected, atol=1e-12)
        np.testing.assert_allclose(pose[:3, 3], values[:3])
    # 90 degrees about z, written out by hand: x -> y.
    np.testing.assert_allclose(tum_to_matrix(np.r_[0, 0, 0, 0, 0, np.sqrt(0.5), np.sqrt(0.5)])[:3, :3],
                               [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)


def test_bonn_camera_pose_is_rigid_and_maps_marker_motion_through_ros_axes():
    base = bonn_camera_pose(np.eye(4))
    rotation = base[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    moved = np.eye(4)
    moved[:3, 3] = (1.0, 2.0, 3.0)
    # T_ros swaps y/z and flips x: a marker translation (1, 2, 3) moves the camera centre by (-1, 3, 2).
    np.testing.assert_allclose(bonn_camera_pose(moved)[:3, 3] - base[:3, 3], [-1.0, 3.0, 2.0], atol=1e-12)


# ---------------------------------------------------------------------------------------------- Sintel


def write_dpt(path: Path, depth: np.ndarray, tag: float = 202021.25) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<fii", tag, depth.shape[1], depth.shape[0]) + depth.astype("<f4").tobytes())


def write_cam(path: Path, k: np.ndarray, world_to_camera: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<f", 202021.25) + k.astype("<f8").tobytes() + world_to_camera.astype("<f8").tobytes())


def make_sintel(root: Path) -> dict:
    rng = np.random.default_rng(3)
    truth = {"depth": [], "K": [], "w2c": []}
    for i, color in enumerate(colors(3)):
        name = f"frame_{i + 1:04d}"
        write_rgb(root / "final" / "alley_1" / f"{name}.png", color)
        write_rgb(root / "clean" / "alley_1" / f"{name}.png", color[::-1])
        depth = rng.uniform(1, 60, (H, W)).astype(np.float32)
        write_dpt(root / "depth" / "alley_1" / f"{name}.dpt", depth)
        k = np.array([[1120.0 + i, 0, 511.5], [0, 1120.0 + i, 217.5], [0, 0, 1]])
        w2c = random_pose(10 + i)[:3]
        write_cam(root / "camdata_left" / "alley_1" / f"{name}.cam", k, w2c)
        truth["depth"].append(depth), truth["K"].append(k), truth["w2c"].append(w2c)
    return truth


def test_sintel_dpt_cam_round_trip(tmp_path):
    truth = make_sintel(tmp_path)
    (sample,) = load_dataset("sintel", tmp_path)
    np.testing.assert_array_equal(sample.depth, np.stack(truth["depth"]))
    np.testing.assert_allclose(sample.K, np.stack(truth["K"]))
    for pose, w2c in zip(sample.poses, truth["w2c"]):
        r, t = w2c[:, :3], w2c[:, 3]
        np.testing.assert_allclose(pose[:3, :3], r.T, atol=1e-12)  # camera-to-world = [R^T | -R^T t]
        np.testing.assert_allclose(pose[:3, 3], -r.T @ t, atol=1e-12)
    assert sample.max_depth == 70.0 and sample.fps == 24.0
    assert_frames(sample, colors(3))
    (clean,) = load_dataset("sintel_clean", tmp_path)
    assert_frames(clean, [c[::-1] for c in colors(3)])


def test_sintel_rejects_bad_tag_and_truncation(tmp_path):
    good = np.ones((H, W), np.float32)
    write_dpt(tmp_path / "bad.dpt", good, tag=1.0)
    with pytest.raises(UserError, match="bad.dpt is not a Sintel file"):
        read_dpt(tmp_path / "bad.dpt")
    write_dpt(tmp_path / "short.dpt", good)
    (tmp_path / "short.dpt").write_bytes((tmp_path / "short.dpt").read_bytes()[:-4])
    with pytest.raises(UserError, match="short.dpt is truncated"):
        read_dpt(tmp_path / "short.dpt")
    write_cam(tmp_path / "c.cam", np.eye(3), np.zeros((3, 4)))
    (tmp_path / "c.cam").write_bytes((tmp_path / "c.cam").read_bytes()[:-8])
    with pytest.raises(UserError, match="c.cam is truncated"):
        read_cam(tmp_path / "c.cam")


# ----------------------------------------------------------------------------------------------- KITTI


def test_kitti_annotated_depth_with_raw_rgb_and_calibration(tmp_path):
    drive = "2011_09_26_drive_0002_sync"
    names = ["0000000005", "0000000006", "0000000007"]
    for i, (name, color) in enumerate(zip(names, colors(3))):
        write_rgb(tmp_path / "2011_09_26" / drive / "image_02" / "data" / f"{name}.png", color)
        raw = np.zeros((H, W))
        raw[2:, :] = 256 * (10.5 + i)  # sparse LiDAR: only some pixels carry depth
        write_png16(tmp_path / "val" / drive / "proj_depth" / "groundtruth" / "image_02" / f"{name}.png", raw)
    p_rect = "7.215377e+02 0 6.095593e+02 4.485728e+01 0 7.215377e+02 1.728540e+02 2.163791e-01 0 0 1 2.745884e-03"
    calib = f"P_rect_01: 1 0 0 0 0 1 0 0 0 0 1 0\nP_rect_02: {p_rect}\n"
    (tmp_path / "2011_09_26" / "calib_cam_to_cam.txt").write_text(calib)
    (sample,) = load_dataset("kitti", tmp_path)
    assert sample.name == f"kitti/{drive}"
    np.testing.assert_allclose(sample.depth[:, 3, 3], [10.5, 11.5, 12.5])  # uint16 / 256
    assert not sample.valid[:, :2].any() and sample.valid[:, 2:].all()
    np.testing.assert_allclose(sample.K, [[721.5377, 0, 609.5593], [0, 721.5377, 172.854], [0, 0, 1]])
    assert sample.poses is None and sample.max_depth == 80.0
    assert_frames(sample, colors(3))


# ----------------------------------------------------------------------------------------- PointOdyssey


def test_pointodyssey_depth_scale_invalid_codes_and_cameras(tmp_path):
    scene = tmp_path / "val" / "cnb_dlab_0215_3rd"
    n = 3
    intrinsics = np.stack([np.array([[640.0 + i, 0, 480], [0, 640.0 + i, 270], [0, 0, 1]]) for i in range(n)])
    extrinsics = np.stack([random_pose(20 + i) for i in range(n)])  # world-to-camera
    for i, color in enumerate(colors(n)):
        write_rgb(scene / "rgbs" / f"rgb_{i:05d}.jpg", color)
        raw = np.full((H, W), 655 * (i + 1))
        raw[0, 0], raw[0, 1] = 0, 65535  # no depth / saturated sky
        write_png16(scene / "depths" / f"depth_{i:05d}.png", raw)
    np.savez(scene / "anno.npz", intrinsics=intrinsics, extrinsics=extrinsics, trajs_2d=np.zeros((n, 4, 2)))
    (sample,) = load_dataset("pointodyssey", tmp_path)
    np.testing.assert_allclose(sample.depth[:, 2, 2], [655 * (i + 1) / 65535 * 1000 for i in range(n)], rtol=1e-6)
    assert not sample.valid[:, 0, :2].any() and sample.valid[:, 1:].all()
    assert np.all(sample.depth[:, 0, :2] == 0)
    np.testing.assert_allclose(sample.K, intrinsics)
    identity = np.broadcast_to(np.eye(4), (n, 4, 4))
    np.testing.assert_allclose(np.einsum("nij,njk->nik", sample.poses, extrinsics), identity, atol=1e-12)
    assert sample.max_depth == DATASETS["pointodyssey"].max_depth and len(sample.frame_paths) == n
    assert_frames(sample, colors(n), atol=3)


# ----------------------------------------------------------------------------------------------- synth


def test_synth_format_round_trip(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"sequences": 2}))
    rng = np.random.default_rng(5)
    truth = []
    for index, meta in enumerate([{"fps": 12}, {"fps": 25, "max_depth": 40.0}]):
        folder = tmp_path / f"seq_{index:05d}"
        folder.mkdir()
        frames = rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8)
        depth = rng.uniform(0.5, 30, (3, H, W)).astype(np.float32)
        depth[1, 2, 2] = np.inf
        poses = np.stack([random_pose(30 + i) for i in range(3)]).astype(np.float32)
        k = np.array([[60.0, 0, 3.5], [0, 60.0, 2.5], [0, 0, 1]], dtype=np.float32)
        for name, array in (("frames", frames), ("depth", depth), ("poses", poses), ("intrinsics", k)):
            np.save(folder / f"{name}.npy", array)
        (folder / "meta.json").write_text(json.dumps(meta))
        truth.append((frames, depth, poses, k))
    moving = rng.uniform(size=(3, H, W)) < 0.2  # only the first sequence marks its moving objects
    np.save(tmp_path / "seq_00000" / "moving.npy", moving)
    samples = list(load_dataset("synth", tmp_path))
    assert [s.name for s in samples] == ["synth/seq_00000", "synth/seq_00001"]
    assert (samples[0].fps, samples[0].max_depth) == (12.0, DATASETS["synth"].max_depth)
    assert (samples[1].fps, samples[1].max_depth) == (25.0, 40.0)
    frames, depth, poses, k = truth[0]
    np.testing.assert_array_equal(samples[0].frames, frames)
    assert not samples[0].valid[1, 2, 2] and samples[0].depth[1, 2, 2] == 0
    np.testing.assert_array_equal(samples[0].depth[samples[0].valid], depth[np.isfinite(depth)])
    np.testing.assert_allclose(samples[0].poses, poses)
    np.testing.assert_allclose(samples[0].K, k)
    np.testing.assert_array_equal(samples[0].moving, moving)
    assert samples[1].moving is None
    one = next(load_dataset("synth", tmp_path, max_frames=2, start=1))
    np.testing.assert_array_equal(one.frames, frames[1:3])
    np.testing.assert_array_equal(one.moving, moving[1:3])
    np.save(tmp_path / "seq_00000" / "moving.npy", moving[:, :, :-1])
    with pytest.raises(UserError, match="moving.npy must be bool"):
        list(load_dataset("synth", tmp_path))
    np.save(tmp_path / "seq_00000" / "moving.npy", moving)
    # The second sequence gives each moving object's index and poses (what `rolldepth synth` writes now).
    objects = rng.integers(0, 3, (3, H, W), dtype=np.uint8)
    object_poses = np.stack([[random_pose(40 + 2 * i + j) for j in range(2)] for i in range(3)]).astype(np.float32)
    np.save(tmp_path / "seq_00001" / "objects.npy", objects)
    np.save(tmp_path / "seq_00001" / "object_poses.npy", object_poses)
    second = list(load_dataset("synth", tmp_path, max_frames=2, start=1))[1]
    np.testing.assert_array_equal(second.objects, objects[1:3])
    np.testing.assert_array_equal(second.object_poses, object_poses[1:3])
    np.testing.assert_array_equal(second.moving, objects[1:3] > 0)
    assert samples[0].objects is None and samples[0].object_poses is None
    np.save(tmp_path / "seq_00001" / "object_poses.npy", object_poses[:, :1])  # object 2 has no poses
    with pytest.raises(UserError, match="object_poses.npy must be"):
        list(load_dataset("synth", tmp_path))
    (tmp_path / "seq_00001" / "meta.json").write_text("{}")
    with pytest.raises(UserError, match="meta.json lacks a valid 'fps'"):
        list(load_dataset("synth", tmp_path))


def test_registry_caps_and_override_validation(tmp_path):
    assert {k: DATASETS[k].max_depth for k in ("scannet", "bonn", "kitti", "sintel")} == {
        "scannet": 10.0, "bonn": 10.0, "kitti": 80.0, "sintel": 70.0}
    assert (DATASETS["scannet"].frames, DATASETS["bonn"].frames, DATASETS["pointodyssey"].frames) == (90, 110, 250)
    with pytest.raises(UserError, match="invalid split override"):
        load_dataset("scannet", tmp_path, stride=0)
    with pytest.raises(UserError, match="is not a folder"):
        load_dataset("scannet", tmp_path / "nope")
    assert datasets.nearest(np.array([0.9, 2.6]), np.array([3.0, 1.0, 2.0]))[0].tolist() == [1, 0]


def test_own_videos_wrong_layouts_are_one_line_each(tmp_path):
    """--kind video: every way the pairs can be wrong names the file and what was expected."""
    from conftest import encode_video, pattern_frames

    def expect(message):
        with pytest.raises(UserError, match=message):
            list(load_dataset("video", tmp_path))

    expect("no NAME_depth.npy files")
    depth = np.full((6, 36, 52), 2.0, dtype=np.float32)
    np.save(tmp_path / "shot_depth.npy", depth)
    expect("needs exactly one input named shot .* found none")
    encode_video(tmp_path / "shot.mp4", pattern_frames(6))
    encode_video(tmp_path / "shot.mkv", pattern_frames(6))
    expect("found shot.mkv, shot.mp4")
    (tmp_path / "shot.mkv").unlink()
    np.save(tmp_path / "shot_depth.npy", depth[:5])
    expect(r"shot_depth.npy is \[5, 36, 52\]: expected \[6, H, W\]")
    np.save(tmp_path / "shot_depth.npy", np.zeros_like(depth))
    expect("no depth above")
    np.save(tmp_path / "shot_depth.npy", depth)
    np.save(tmp_path / "shot_K.npy", np.eye(3))
    expect("missing file .*shot_poses.npy")
    np.save(tmp_path / "shot_poses.npy", np.tile(np.eye(4), (5, 1, 1)))
    expect(r"shot_poses.npy must be \[6, 4, 4\]")
    np.save(tmp_path / "shot_poses.npy", np.tile(np.eye(4), (6, 1, 1)))
    (sample,) = load_dataset("video", tmp_path, max_frames=4)
    assert sample.depth.shape == (4, 36, 52) and sample.poses.shape == (4, 4, 4) and sample.max_depth == 2.0


def test_own_videos_depth_as_an_image_folder(tmp_path):
    """NAME_depth/ holds one depth image per frame: a 16-bit PNG's integers as they are (millimetres stay
    millimetres: the scores align scale anyway), an OpenEXR render pass's Z channel; only the evaluated frames are
    read."""
    import OpenEXR

    from conftest import encode_video, pattern_frames

    rng = np.random.default_rng(3)
    millimetres = rng.integers(0, 9000, (6, 36, 52), dtype=np.uint16)
    encode_video(tmp_path / "phone.mp4", pattern_frames(6))
    (tmp_path / "phone_depth").mkdir()
    for i, frame in enumerate(millimetres):
        Image.fromarray(frame).save(tmp_path / "phone_depth" / f"depth{i}.png")
    metres = rng.uniform(0.5, 30.0, (6, 36, 52)).astype(np.float32)
    metres[2, 0, 0] = np.inf  # the sky
    encode_video(tmp_path / "render.mp4", pattern_frames(6, seed=1))
    (tmp_path / "render_depth").mkdir()
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    for i, frame in enumerate(metres):
        channels = {"R": np.zeros_like(frame), "Z": frame}
        with OpenEXR.File(header, channels) as image:
            image.write(str(tmp_path / "render_depth" / f"render.{1001 + i}.exr"))
    phone, render = load_dataset("video", tmp_path, max_frames=4)
    assert (phone.name, render.name) == ("video/phone", "video/render")
    np.testing.assert_array_equal(phone.depth, np.where(millimetres[:4] > 0, millimetres[:4], 0))
    assert phone.max_depth == millimetres[:4].max() and not phone.valid[millimetres[:4] == 0].any()
    np.testing.assert_array_equal(render.depth[render.valid], metres[:4][np.isfinite(metres[:4])])
    assert not render.valid[2, 0, 0]

    Image.fromarray(millimetres[0, :, :50]).save(tmp_path / "phone_depth" / "depth3.png")
    with pytest.raises(UserError, match="depth3.png is not the size of"):
        list(load_dataset("video", tmp_path))
    (tmp_path / "phone_depth" / "depth3.png").unlink()
    with pytest.raises(UserError, match="phone_depth/ holds 5 depth images: expected 6"):
        list(load_dataset("video", tmp_path))
    Image.fromarray(millimetres[3]).save(tmp_path / "phone_depth" / "depth3.png")
    np.save(tmp_path / "phone_depth.npy", millimetres.astype(np.float32))
    with pytest.raises(UserError, match="phone_depth.npy and phone_depth/ both"):
        list(load_dataset("video", tmp_path))

"""Point clouds: intrinsics from a field of view or a file, scaled to the depth's size; a rendered plane comes back
planar at the right distance (metric from anchors, and still planar under an assumed range); binary PLY files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from plyfile import PlyData

from rolldepth.errors import UserError
from rolldepth.method.metric_scale import Anchor, apply_metric, assumed_range_map, fit_metric_scale, to_depth_pixels
from rolldepth.video.pointcloud import (
    backproject,
    fit_plane,
    frame_points,
    intrinsics_from_fov,
    read_intrinsics,
    scale_intrinsics,
    write_ply,
)
from rolldepth.data.renderer import get_renderer
from rolldepth.data.scene import Material, Scene, SceneObject, intrinsics_matrix, quad_mesh, rigid, rotation

WIDTH, HEIGHT = 64, 48


@pytest.fixture(scope="module")
def rendered_plane():
    """A large textured plane, tilted 35 and 20 degrees, 3 m in front of the camera: depth, RGB, K and the plane."""
    K = intrinsics_matrix(WIDTH, HEIGHT, 70.0)
    pose = np.eye(4)
    plane_rot = rotation([0.0, 1.0, 0.0], np.radians(35)) @ rotation([1.0, 0.0, 0.0], np.radians(-20))
    plane = rigid(plane_rot, [0.2, -0.1, 3.0])
    scene = Scene(objects=[SceneObject(quad_mesh(40.0, 40.0), Material("checker", frequency=2.0), plane)])
    frames, depth, _ = get_renderer(WIDTH, HEIGHT, False).render(scene, pose[None], K)
    normal = plane_rot[:, 2]
    offset = float(normal @ plane[:3, 3])
    if offset < 0:
        normal, offset = -normal, -offset
    return depth.astype(np.float64), frames, K, normal, offset


def test_fov_intrinsics_match_the_renderer():
    np.testing.assert_allclose(intrinsics_from_fov(WIDTH, HEIGHT, 70.0), intrinsics_matrix(WIDTH, HEIGHT, 70.0))
    for bad in (0, 180, -5):
        with pytest.raises(UserError, match="--fov"):
            intrinsics_from_fov(WIDTH, HEIGHT, bad)


def test_scaled_intrinsics_project_to_the_mapped_pixel():
    """A 3-D point projects, with K scaled to the depth's size, where its input pixel maps on the depth grid."""
    K = np.array([[50.0, 0, 30.2], [0, 52.0, 25.7], [0, 0, 1]])
    small = scale_intrinsics(K, (64, 48), (40, 30))
    point = np.array([0.4, -0.3, 2.5])
    u, v = (K @ point)[:2] / point[2]
    us, vs = (small @ point)[:2] / point[2]
    np.testing.assert_allclose(to_depth_pixels(u, v, (64, 48), (40, 30)), (us, vs), atol=1e-12)


def test_intrinsics_files(tmp_path):
    K = [[500.0, 0, 319.5], [0, 505.0, 239.5], [0, 0, 1]]
    files = {
        "k.json": json.dumps({"K": K}),
        "bare.json": json.dumps(K),
        "f.json": json.dumps({"fx": 500, "fy": 505, "cx": 319.5, "cy": 239.5, "width": 640, "height": 480}),
        "four.txt": "500 505 319.5 239.5\n",
        "nine.txt": "500, 0, 319.5\n0, 505, 239.5\n0, 0, 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        got, size = read_intrinsics(tmp_path / name)
        np.testing.assert_array_equal(got, K, err_msg=name)
        assert size == ((640, 480) if name == "f.json" else None)
    for text, message in [("500 505 319.5", "expected fx fy cx cy"), ("-5 5 1 1", "focal lengths"),
                          ("500 3 319.5 0 505 239.5 0 0 1", "pinhole K"), ('{"f": 3}', '"K"'),
                          ("a b c d", "must be numbers")]:
        (tmp_path / "bad.txt").write_text(text)
        with pytest.raises(UserError, match=message):
            read_intrinsics(tmp_path / "bad.txt")
    with pytest.raises(UserError, match="does not exist"):
        read_intrinsics(tmp_path / "none.json")


def test_rendered_plane_comes_back_planar_at_its_distance(rendered_plane):
    """Anchors on the rendered plane, a prediction that is an affine map of its inverse depth: the exported points
    lie on the true plane."""
    depth, frames, K, normal, offset = rendered_plane
    inverse = 1 / depth
    pred = ((inverse - inverse.min()) / np.ptp(inverse) * 2 - 1)  # the model's normalisation
    anchors = [Anchor(0, x, y, float(depth[0, y, x])) for x, y in [(5, 5), (60, 40), (30, 20), (10, 44)]]
    fit = fit_metric_scale(pred, anchors)
    points, colours = frame_points(fit.depth(pred)[0], frames[0], K)
    assert points.shape == (WIDTH * HEIGHT, 3) and points.dtype == np.float32
    np.testing.assert_array_equal(colours, frames[0].reshape(-1, 3))
    got_normal, got_offset, distances = fit_plane(points)
    assert np.max(np.abs(distances)) < 1e-5  # metres; float32 points of a plane 2.4 m from the camera centre
    assert got_offset == pytest.approx(offset, rel=1e-5)
    np.testing.assert_allclose(got_normal, normal, atol=1e-6)
    assert np.ptp(points[:, 2]) > 1.0  # the tilt spans a real range of depth


def test_assumed_range_keeps_the_plane_planar(rendered_plane):
    """An affine map of inverse depth keeps planes planar (1/z = n.r/d is linear in the ray r = K^-1 [u, v, 1], and
    so is any a/z + b): without anchors the plane is still a plane, at an assumed distance."""
    depth, frames, K, normal, offset = rendered_plane
    pred = 0.7 / depth + 0.05
    a, b = assumed_range_map(pred.min(), pred.max(), near=1.0, far=10.0)
    metres = apply_metric(pred, a, b)[0]
    assert metres.min() == pytest.approx(1.0, rel=1e-5) and metres.max() == pytest.approx(10.0, rel=1e-5)
    points, _ = frame_points(metres, None, K)
    _, got_offset, distances = fit_plane(points)
    assert np.max(np.abs(distances)) < 1e-5
    assert not got_offset == pytest.approx(offset, rel=0.05)  # planar, but not at the true distance


def test_backprojection_inverts_projection():
    K = intrinsics_matrix(8, 6, 60.0, principal_offset=(0.3, -0.2))
    depth = np.random.default_rng(0).uniform(1, 5, (6, 8))
    depth[2, 3] = np.nan
    points = backproject(depth, K)
    projected = points @ K.T
    v, u = np.mgrid[0:6, 0:8]
    ok = np.isfinite(depth)
    np.testing.assert_allclose(projected[ok][:, 0] / projected[ok][:, 2], u[ok], atol=1e-9)
    np.testing.assert_allclose(projected[ok][:, 1] / projected[ok][:, 2], v[ok], atol=1e-9)
    kept, _ = frame_points(depth, None, K)
    assert len(kept) == 47  # the NaN pixel is left out


def test_ply_is_binary_with_colours_and_comments(tmp_path):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(50, 3)).astype(np.float32)
    colours = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    path = write_ply(tmp_path / "a.ply", points, colours, ("metric depth in metres", "second line"))
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    ply = PlyData.read(str(path))
    vertex = ply["vertex"]
    np.testing.assert_array_equal(np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1), points)
    np.testing.assert_array_equal(np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1), colours)
    assert ply.comments == ["metric depth in metres", "second line"]
    assert [p.name for p in vertex.properties] == ["x", "y", "z", "red", "green", "blue"]
    assert list(tmp_path.iterdir()) == [path]  # no partial file left

"""Stereo 3-D rendering from depth: parallax affine in inverse depth, the nearer pixel in front, holes filled from
the background, the layouts, and `rolldepth run --save-stereo` end to end."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import encode_video, pattern_frames
from rolldepth.apps.cli import main
from rolldepth.video.stereo import StereoOptions, compose, stereo_pair

HEIGHT, WIDTH = 20, 100


def square_scene():
    """A far background whose red channel is its column, and a white square nearer than everything (x 40-59)."""
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rgb[..., 0] = np.arange(WIDTH)
    rgb[..., 2] = 50
    depth = np.full((HEIGHT, WIDTH), -1.0)
    depth[5:15, 40:60] = 1.0
    rgb[5:15, 40:60] = 255
    return rgb, depth


def white_columns(view):
    return np.flatnonzero((view[10] == 255).all(-1))


@pytest.mark.parametrize("convergence", [0.0, 0.5, 1.0])
def test_each_eye_moves_a_point_half_its_parallax_and_the_screen_plane_stays(convergence):
    rgb, depth = square_scene()
    left, right = stereo_pair(rgb, depth, -1.0, 1.0, StereoOptions(parallax=10, convergence=convergence))
    # parallax = 10 % of 100 px x (nearness - convergence): the square (nearness 1) and the background (0)
    square, background = 10 * (1 - convergence), 10 * (0 - convergence)
    half_up = lambda shift: int(np.floor(shift + 0.5))  # noqa: E731
    np.testing.assert_array_equal(white_columns(left), np.arange(40, 60) + half_up(square / 2))
    np.testing.assert_array_equal(white_columns(right), np.arange(40, 60) + half_up(-square / 2))
    inner = slice(10, 90)  # a row without the square: the background moved by its own parallax, in one piece
    np.testing.assert_array_equal(left[0, inner, 0], np.arange(WIDTH)[inner] - half_up(background / 2))
    np.testing.assert_array_equal(right[0, inner, 0], np.arange(WIDTH)[inner] - half_up(-background / 2))


def test_the_nearer_pixel_covers_and_what_it_uncovers_comes_from_the_background_side():
    rgb, depth = square_scene()
    left, right = stereo_pair(rgb, depth, -1.0, 1.0, StereoOptions(parallax=10, convergence=0.0))
    # the square moved 5 px right in the left eye: it covers the background at 60-64 and uncovers 40-44, which
    # takes the background just left of the hole (column 39), never the square's white
    np.testing.assert_array_equal(left[10, 40:45, 0], 39)
    np.testing.assert_array_equal(right[10, 55:60, 0], 60)  # and mirrored in the right eye
    np.testing.assert_array_equal(left[10, 65:, 0], np.arange(65, WIDTH))  # the background beyond is untouched


def test_a_middle_layer_gets_the_parallax_of_its_inverse_depth():
    rgb, depth = square_scene()
    depth[5:15, 40:60] = 0.0  # half way between the background (-1) and the nearest point (1)
    depth[0:3, 0:10] = 1.0  # the video's nearest point, so the range stays [-1, 1]
    left, right = stereo_pair(rgb, depth, -1.0, 1.0, StereoOptions(parallax=20, convergence=0.0))
    # parallax 20 % x 100 px x 0.5 = 10 px: 5 each way
    np.testing.assert_array_equal(white_columns(left), np.arange(45, 65))
    np.testing.assert_array_equal(white_columns(right), np.arange(35, 55))


def test_a_depth_smaller_than_the_frame_is_resized_to_it():
    rgb, depth = square_scene()
    small = depth[::2, ::2]  # 50 x 10: the square at 20-29 there, 40-59 once resized
    left, _ = stereo_pair(rgb, small, -1.0, 1.0, StereoOptions(parallax=10, convergence=0.0))
    assert left.shape == rgb.shape
    assert abs(int(white_columns(left)[0]) - 45) <= 1


def reference_pair(rgb, depth, low, high, options):
    """stereo_pair pixel by pixel, in float64: a z-buffer of nearness per row, then each hole filled from the nearest
    landed pixel on the background's side of its row (the other side where that one has none)."""
    height, width = depth.shape
    nearness = np.clip((depth.astype(np.float64) - low) / (high - low), 0, 1)
    views = []
    for sign, background_left in ((1, True), (-1, False)):
        view = np.zeros_like(rgb)
        for y in range(height):
            best, landed = np.full(width, -np.inf), np.zeros(width, bool)
            for x in range(width):
                shift = sign * options.parallax / 100 * width * (nearness[y, x] - options.convergence) / 2
                t = int(np.floor(x + shift + 0.5))
                if 0 <= t < width and nearness[y, x] > best[t]:
                    best[t], landed[t], view[y, t] = nearness[y, x], True, rgb[y, x]
            columns = np.flatnonzero(landed)
            for x in np.flatnonzero(~landed):
                before, after = columns[columns < x], columns[columns > x]
                sides = (before[-1:], after[:1]) if background_left else (after[:1], before[-1:])
                source = next((side[0] for side in sides if len(side)), None)
                if source is not None:
                    view[y, x] = view[y, source]
        views.append(view)
    return views


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_views_equal_a_pixel_by_pixel_z_buffer(seed):
    """Random depth (steps and noise, so pixels collide and tear at every row) and colours: both views equal the
    loop above, pixel for pixel."""
    rng = np.random.default_rng(seed)
    height, width = 9, 64
    depth = np.repeat(rng.uniform(-1, 1, (height, 8)), 8, axis=1) + rng.normal(0, 0.05, (height, width))
    depth = depth.astype(np.float32)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    options = StereoOptions(parallax=[5, 12, 20][seed], convergence=[0.5, 0.0, 0.8][seed])
    low, high = float(depth.min()), float(depth.max())
    for view, expected in zip(stereo_pair(rgb, depth, low, high, options),
                              reference_pair(rgb, depth, low, high, options)):
        np.testing.assert_array_equal(view, expected)


def test_layouts():
    rgb, depth = square_scene()
    left, right = stereo_pair(rgb, depth, -1.0, 1.0, StereoOptions(parallax=10))
    sbs = compose(left, right, "sbs")
    assert sbs.shape == (HEIGHT, 2 * WIDTH, 3)
    np.testing.assert_array_equal(sbs[:, :WIDTH], left)
    np.testing.assert_array_equal(sbs[:, WIDTH:], right)
    half = compose(left, right, "half-sbs")
    assert half.shape == rgb.shape
    np.testing.assert_array_equal(half[:, : WIDTH // 2], np.asarray(Image.fromarray(left).resize(
        (WIDTH // 2, HEIGHT), Image.Resampling.LANCZOS)))
    anaglyph = compose(left, right, "anaglyph")
    np.testing.assert_array_equal(anaglyph[..., 0], left[..., 0])
    np.testing.assert_array_equal(anaglyph[..., 1:], right[..., 1:])


def test_run_writes_a_stereo_video_and_a_photo_a_stereo_image(tmp_path, tiny_checkpoint, capsys):
    import av

    video = encode_video(tmp_path / "clip.mp4", pattern_frames(9))
    common = ["-q", "run", "--model", str(tiny_checkpoint), "--res", "26", "--cmap", "--no-save-sbs"]
    assert main([*common, str(video), "-o", str(tmp_path / "v"), "--save-stereo", "half-sbs"]) == 0
    with av.open(str(tmp_path / "v" / "clip_stereo_half-sbs.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 9 and frames[0].shape == (36, 52, 3)  # the input's size, not the depth's 26 px

    photo = tmp_path / "photo.png"
    Image.fromarray(pattern_frames(1)[0]).save(photo)
    assert main([*common, str(photo), "-o", str(tmp_path / "p"), "--save-stereo", "--stereo-parallax", "8",
                 "--stereo-convergence", "0.25"]) == 0, capsys.readouterr().err
    depth = np.load(tmp_path / "p" / "photo_pred.npy")[0]
    expected = compose(*stereo_pair(np.asarray(Image.open(photo).convert("RGB")), depth, float(depth.min()),
                                    float(depth.max()), StereoOptions("sbs", 8, 0.25)), "sbs")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "p" / "photo_stereo_sbs.png")), expected)


@pytest.mark.parametrize("extra, message", [
    (["--stereo-parallax", "0"], "--stereo-parallax"),
    (["--save-stereo", "--stereo-convergence", "1.5"], "--stereo-convergence"),
])
def test_impossible_stereo_options_are_one_line(tmp_path, tiny_checkpoint, capsys, extra, message):
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(6))
    assert main(["-q", "run", str(video), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rolldepth: error:") and "\n" not in err and message in err
    assert not (tmp_path / "o").exists()


def test_eyes_match_the_views_of_two_true_cameras_beside_the_centre_one():
    """A synthetic scene rendered from two parallel cameras left and right of its camera: the eyes rendered from the
    centre frame and its exact depth must match those views where the centre camera sees the point (the renderer's
    anti-aliased edges and the texture's sub-pixel position are all that remain), and the disoccluded pixels must
    come closer than the unshifted frame (benchmarks/stereo_views.py measures it on more scenes)."""
    import importlib.util
    from pathlib import Path

    from rolldepth.data.renderer import get_renderer
    from rolldepth.data.scene import SceneConfig
    from rolldepth.data.synth import build_sequence_scene
    from rolldepth.video.stereo import render_eye

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "stereo_views.py"
    spec = importlib.util.spec_from_file_location("stereo_views", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    width, height = 192, 144
    scene, poses, K, _ = build_sequence_scene(3, 1, (width, height), SceneConfig(flyby=False))
    renderer = get_renderer(width, height)
    rgb, depth, _ = renderer.render(scene, poses, K)
    f = float(K[0, 0])
    baseline = bench.baseline_for(3, width, f, depth)  # 3 % of the width, nearest to farthest
    for sign, truth, true_depth in bench.true_eyes(renderer, scene, poses, K, baseline):
        eye = render_eye(rgb[0], sign * f * baseline / (2 * depth[0]), nearer_right=sign > 0).astype(float)
        hidden = bench.disoccluded(true_depth[0], depth[0], sign * f * baseline / (2 * true_depth[0]))
        error, unshifted = np.abs(eye - truth[0]).mean(-1), np.abs(rgb[0].astype(float) - truth[0]).mean(-1)
        assert 0 < hidden.mean() < 0.05
        # here 0.38 of the unshifted frame's error, and nine pixels in ten within 2.4 of 255; an eye moved the wrong
        # way scores 1.4 times the unshifted frame's, and 9 at the ninth decile
        assert error[~hidden].mean() < 0.5 * unshifted[~hidden].mean()
        assert np.quantile(error[~hidden], 0.9) <= 4
        assert error[hidden].mean() < unshifted[hidden].mean()

"""How close ``--save-stereo``'s eyes come to true stereo views, on synthetic scenes with exact depth.

Each scene is rendered from its camera and from two cameras a baseline ``B`` apart, left and right of it (parallel,
so a point at depth ``Z`` lies ``f B / (2 Z)`` pixels right of its centre position in the left view and as far left
in the right one). The eyes are synthesised from the centre frame and its exact depth with those shifts, so what is
measured is the view synthesis alone, not the depth model. ``B`` is chosen so that the parallax between the nearest
and the farthest point of a video is ``--parallax`` % of the frame width, like ``--stereo-parallax``.

Mean absolute error of the 8-bit RGB against the true view, over the pixels the centre camera sees too and over the
disoccluded ones (which it does not: a point of the true view whose depth the centre frame, at the position it
projects to there, does not have within 1 %), for each way of rendering an eye:

    python benchmarks/stereo_views.py --seeds 0 1 2 3 4 5 --size 384x288 --frames 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from rolldepth.data.renderer import get_renderer
from rolldepth.data.scene import SceneConfig
from rolldepth.data.synth import build_sequence_scene
from rolldepth.video.stereo import render_eye


def sideways(poses: np.ndarray, offset: float) -> np.ndarray:
    """Camera-to-world poses moved ``offset`` along each camera's own x axis (right)."""
    moved = poses.copy()
    moved[:, :3, 3] += offset * poses[:, :3, 0]
    return moved


def supersampled_eye(rgb: np.ndarray, shift: np.ndarray, nearer_right: bool, factor: int = 4) -> np.ndarray:
    """``render_eye`` on columns ``factor`` times finer (shifts to 1 / factor of a pixel), then averaged back."""
    height, width = shift.shape
    fine_rgb = np.repeat(rgb, factor, axis=1)
    fine_shift = np.asarray(Image.fromarray(shift.astype(np.float32)).resize((width * factor, height),
                                                                             Image.Resampling.BILINEAR)) * factor
    fine = render_eye(fine_rgb, fine_shift, nearer_right).astype(np.float32)
    return fine.reshape(height, width, factor, 3).mean(axis=2).round().astype(np.uint8)


RENDERERS = {
    "none: the centre frame as it is": lambda rgb, shift, nearer_right: rgb,
    "whole pixels (rolldepth)": render_eye,
    "quarter pixels (4x columns)": supersampled_eye,
}


def disoccluded(depth_eye: np.ndarray, depth_centre: np.ndarray, shift_eye: np.ndarray) -> np.ndarray:
    """Pixels of an eye's true view that the centre camera does not see: its depth there, moved back by the eye's
    shift, finds another depth in the centre frame (beyond 1 %)."""
    height, width = depth_eye.shape
    x_centre = np.round(np.arange(width)[None, :] - shift_eye).astype(int)
    inside = (x_centre >= 0) & (x_centre < width)
    found = depth_centre[np.arange(height)[:, None], np.clip(x_centre, 0, width - 1)]
    return ~inside | (np.abs(found - depth_eye) > 0.01 * depth_eye)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--size", default="384x288", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--parallax", type=float, default=2.0, help="%% of the width, nearest to farthest")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    renderer = get_renderer(width, height)
    errors = {name: {"seen": [], "disoccluded": []} for name in RENDERERS}
    seconds = dict.fromkeys(RENDERERS, 0.0)
    shares = []
    for seed in args.seeds:
        scene, poses, K, _ = build_sequence_scene(seed, args.frames, (width, height), SceneConfig(flyby=False))
        rgb, depth, _ = renderer.render(scene, poses, K)
        f = float(K[0, 0])
        baseline = args.parallax / 100 * width / (f * (1 / depth.min() - 1 / depth.max()))
        for eye, offset, nearer_right in (("left", -baseline / 2, True), ("right", baseline / 2, False)):
            true_rgb, true_depth, _ = renderer.render(scene, sideways(poses, offset), K)
            sign = 1 if nearer_right else -1
            for i in range(args.frames):
                shift = sign * f * baseline / (2 * depth[i])
                hidden = disoccluded(true_depth[i], depth[i], sign * f * baseline / (2 * true_depth[i]))
                shares.append(hidden.mean())
                for name, render in RENDERERS.items():
                    tic = time.perf_counter()
                    view = render(rgb[i], shift, nearer_right)
                    seconds[name] += time.perf_counter() - tic
                    error = np.abs(view.astype(np.float64) - true_rgb[i]).mean(axis=-1)
                    errors[name]["seen"].append(error[~hidden].mean())
                    if hidden.any():
                        errors[name]["disoccluded"].append(error[hidden].mean())
    n_views = 2 * len(args.seeds) * args.frames
    print(f"{len(args.seeds)} scenes x {args.frames} frames x 2 eyes at {width}x{height}, parallax "
          f"{args.parallax} % of the width; disoccluded: {100 * np.mean(shares):.2f} % of the pixels")
    print("| eye rendered with | MAE, pixels the centre sees | MAE, disoccluded pixels | ms per eye |")
    print("|---|---|---|---|")
    for name in RENDERERS:
        seen, hidden = errors[name]["seen"], errors[name]["disoccluded"]
        print(f"| {name} | {np.mean(seen):.2f} | {np.mean(hidden):.2f} | {1000 * seconds[name] / n_views:.1f} |")


if __name__ == "__main__":
    main()

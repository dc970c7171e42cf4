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

With ``--model`` and ``--data`` (a split of ``rolldepth synth``, its scenes rebuilt from each sequence's seed and
checked against its frames), the eyes are made from depth the model predicts instead, each variant aligned to the
true inverse depth with one scale and shift per video as ``rolldepth eval`` aligns it: what a user's stereo video
gains from RollingDepth's snippets over per-frame depth.

    python benchmarks/stereo_views.py --model src/rolldepth/weights/default --data /work/data/consistency_test \
        --consistency --videos 4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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


def baseline_for(parallax: float, width: int, f: float, depth: np.ndarray) -> float:
    """The baseline that puts ``parallax`` % of the width between the nearest and the farthest point of ``depth``."""
    return parallax / 100 * width / (f * (1 / depth.min() - 1 / depth.max()))


def true_eyes(renderer, scene, poses: np.ndarray, K: np.ndarray, baseline: float):
    """``(sign, rgb, depth)`` of the left (sign 1: nearer points move right) and the right eye (-1), rendered from
    cameras ``baseline / 2`` left and right of ``poses``; a point at depth ``Z`` moves ``sign f B / (2 Z)`` pixels."""
    for offset, sign in ((-baseline / 2, 1), (baseline / 2, -1)):
        rgb, depth, _ = renderer.render(scene, sideways(poses, offset), K)
        yield sign, rgb, depth


def add_error(errors: dict, view: np.ndarray, truth: np.ndarray, hidden: np.ndarray) -> None:
    """The mean absolute 8-bit error of ``view`` against ``truth``, where the centre camera sees the point and
    where it does not (``hidden``), appended to ``errors["seen"]`` and ``errors["disoccluded"]``."""
    error = np.abs(view.astype(np.float64) - truth).mean(axis=-1)
    errors["seen"].append(error[~hidden].mean())
    if hidden.any():
        errors["disoccluded"].append(error[hidden].mean())


def predicted(args) -> None:
    """The eyes of a split's videos made from the true depth and from each variant's prediction, aligned."""
    from rolldepth.data.scene import CONSISTENCY_PATHS
    from rolldepth.data.synth import load_sequence
    from rolldepth.evaluate.metrics import fit_scale_shift
    from rolldepth.evaluate.runner import VARIANTS
    from rolldepth.model.pipeline import RollingDepthPipeline

    pipe = RollingDepthPipeline.from_pretrained(args.model)
    config = SceneConfig(camera_paths=CONSISTENCY_PATHS, flyby=True) if args.consistency else SceneConfig()
    sources = ["true depth", *args.variants]
    errors = {name: {"seen": [], "disoccluded": []} for name in sources}
    folders = sorted(p for p in Path(args.data).iterdir() if p.is_dir())[: args.videos]
    for folder in folders:
        sample = load_sequence(folder)
        meta, rgb, depth = sample["meta"], sample["frames"], sample["depth"]
        height, width = depth.shape[1:]
        scene, poses, K, _ = build_sequence_scene(meta["seed"], len(depth), (width, height), config)
        renderer = get_renderer(width, height)
        if not np.array_equal(renderer.render(scene, poses, K)[0], rgb):
            raise SystemExit(f"{folder}: its scene rebuilt from the seed renders other frames (--consistency?)")
        disparity = {"true depth": 1 / depth}
        for name in args.variants:
            pred = pipe(rgb, **VARIANTS[name], generator=0, progress=False).depth
            a, b = fit_scale_shift(pred, 1 / depth, np.ones(depth.shape, bool))
            disparity[name] = np.maximum(a * pred + b, 1 / depth.max())  # nothing beyond the farthest point
        f = float(K[0, 0])
        baseline = baseline_for(args.parallax, width, f, depth)
        for sign, true_rgb, true_depth in true_eyes(renderer, scene, poses, K, baseline):
            for i in range(len(depth)):
                hidden = disoccluded(true_depth[i], depth[i], sign * f * baseline / (2 * true_depth[i]))
                for name in sources:
                    view = render_eye(rgb[i], sign * f * baseline / 2 * disparity[name][i], nearer_right=sign > 0)
                    add_error(errors[name], view, true_rgb[i], hidden)
        print(f"  {folder.name}: " + ", ".join(f"{name} {np.mean(errors[name]['seen'][-2 * len(depth):]):.2f}"
                                               for name in sources), flush=True)
    print(f"{len(folders)} videos of {args.data}, 2 eyes, parallax {args.parallax} % of the width")
    print("| eye made from | MAE, pixels the centre sees | MAE, disoccluded pixels |")
    print("|---|---|---|")
    for name in sources:
        print(f"| {name} | {np.mean(errors[name]['seen']):.2f} | {np.mean(errors[name]['disoccluded']):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--size", default="384x288", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--parallax", type=float, default=2.0, help="%% of the width, nearest to farthest")
    parser.add_argument("--model", help="a checkpoint: make the eyes from its depth (with --data)")
    parser.add_argument("--data", help="a rolldepth synth split whose videos to use (with --model)")
    parser.add_argument("--consistency", action="store_true", help="the split was made with --consistency")
    parser.add_argument("--videos", type=int, default=4, help="the split's first N videos")
    parser.add_argument("--variants", nargs="+", default=["per-frame", "{1,10,25}"])
    args = parser.parse_args()
    if args.model:
        predicted(args)
        return
    width, height = (int(v) for v in args.size.split("x"))
    renderer = get_renderer(width, height)
    errors = {name: {"seen": [], "disoccluded": []} for name in RENDERERS}
    seconds = dict.fromkeys(RENDERERS, 0.0)
    shares = []
    for seed in args.seeds:
        scene, poses, K, _ = build_sequence_scene(seed, args.frames, (width, height), SceneConfig(flyby=False))
        rgb, depth, _ = renderer.render(scene, poses, K)
        f = float(K[0, 0])
        baseline = baseline_for(args.parallax, width, f, depth)
        for sign, true_rgb, true_depth in true_eyes(renderer, scene, poses, K, baseline):
            for i in range(args.frames):
                shift = sign * f * baseline / (2 * depth[i])
                hidden = disoccluded(true_depth[i], depth[i], sign * f * baseline / (2 * true_depth[i]))
                shares.append(hidden.mean())
                for name, render in RENDERERS.items():
                    tic = time.perf_counter()
                    view = render(rgb[i], shift, sign > 0)
                    seconds[name] += time.perf_counter() - tic
                    add_error(errors[name], view, true_rgb[i], hidden)
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

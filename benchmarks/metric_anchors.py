"""Metric depth and point clouds from a few anchors, on a synthetic video whose true metric depth is known.

Takes one sequence written by ``rolldepth synth``, saves its frames as an image sequence, draws ``--anchors`` known
distances from its TRUE depth (``--outliers`` of them made wrong on purpose, x2.5), writes its intrinsics, and runs

    rolldepth run SEQ -o OUT --metric-anchors anchors.csv --save-ply --intrinsics camera.json --ply-every 16

with the given model. Then it scores the metric depth against the truth (AbsRel, delta1 < 1.25, over every pixel),
next to the best any affine map of this prediction could do (the least-squares fit of 1/z on ALL pixels, the
"oracle"), and optionally draws a figure: one frame's RGB, true and metric depth, and a top view of the exported
point cloud over the true one.

    python benchmarks/metric_anchors.py --sequence /work/data/test/seq_00000 -o /tmp/metric_demo \\
        --anchors 24 --outliers 3 --figure docs/metric_3d.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from rolldepth.apps.cli import main as rolldepth_main
from rolldepth.method.metric_scale import fit_metric_scale
from rolldepth.data.synth import load_sequence


def scores(depth: np.ndarray, truth: np.ndarray) -> dict:
    """AbsRel and delta1 (%) of a metric depth against the truth, over the pixels where it is finite."""
    valid = np.isfinite(depth) & (depth > 0)
    ratio = depth[valid] / truth[valid]
    return {"abs_rel": float(np.mean(np.abs(ratio - 1))), "delta1": float(np.mean(np.maximum(ratio, 1 / ratio) < 1.25))
            * 100, "valid_fraction": float(valid.mean())}


def oracle_depth(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The least-squares affine map of the prediction to the true inverse depth over all pixels, inverted."""
    design = np.stack([pred.ravel(), np.ones(pred.size)], axis=1).astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(design, 1 / truth.ravel().astype(np.float64), rcond=None)
    inverse = a * pred.astype(np.float64) + b
    with np.errstate(divide="ignore"):
        return np.where(inverse > 0, 1 / np.where(inverse > 0, inverse, 1), np.nan)


def truth_check(truth: np.ndarray, anchors: Path) -> dict:
    """The same anchors on a perfect prediction (an affine map of the true inverse depth, renormalised to [-1, 1]
    like the model's): what the fit itself loses, the model left out."""
    inverse = 2.7 / truth.astype(np.float64) - 0.35
    pred = (inverse - inverse.min()) / np.ptp(inverse) * 2 - 1
    fit = fit_metric_scale(pred, anchors)
    return scores(fit.depth(pred).astype(np.float64), truth) | {"n_inliers": int(fit.inliers.sum())}


def draw(path: Path, sample: dict, depth_m: np.ndarray, ply: Path, frame: int, K: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from plyfile import PlyData

    from rolldepth.video.pointcloud import backproject

    truth = sample["depth"][frame]
    vertex = PlyData.read(str(ply))["vertex"]
    points = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    colours = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1) / 255
    true_points = backproject(truth, K).reshape(-1, 3)
    lo, hi = float(truth.min()), float(truth.max())
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.1]})
    axes[0].imshow(sample["frames"][frame])
    axes[0].set_title(f"frame {frame}")
    panels = ((axes[1], truth, "true depth (m)"), (axes[2], depth_m[frame], "metric depth from anchors (m)"))
    for ax, image, title in panels:
        shown = ax.imshow(image, cmap="Spectral", vmin=lo, vmax=hi)
        ax.set_title(title)
        fig.colorbar(shown, ax=ax, fraction=0.035)
    for ax in axes[:3]:
        ax.axis("off")
    step = max(1, len(points) // 6000)
    axes[3].scatter(true_points[::step, 0], true_points[::step, 2], s=1, c="0.75", label="true geometry")
    axes[3].scatter(points[::step, 0], points[::step, 2], s=1, c=colours[::step], label=f"{ply.name} (PLY)")
    axes[3].set_xlabel("x (m)")
    axes[3].set_ylabel("z, forward (m)")
    axes[3].set_title("top view of the point cloud")
    axes[3].set_aspect("equal")
    axes[3].legend(loc="upper right", markerscale=6, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence", required=True, type=Path, help="a sequence folder written by rolldepth synth")
    parser.add_argument("-o", "--output", required=True, type=Path)
    parser.add_argument("--anchors", type=int, default=24)
    parser.add_argument("--outliers", type=int, default=3, help="anchors made wrong on purpose (x2.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="checkpoint (default: the embedded model)")
    parser.add_argument("--figure", type=Path, help="draw one frame and its point cloud into this PNG")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    sample = load_sequence(args.sequence)
    truth, frames, K = sample["depth"], sample["frames"], sample["intrinsics"].astype(np.float64)
    n, height, width = truth.shape
    name = args.sequence.name
    images = args.output / "input" / name
    images.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        if not (images / f"{index:05d}.png").exists():  # rewritten images would be a new input: no resume
            Image.fromarray(frame).save(images / f"{index:05d}.png")

    rng = np.random.default_rng(args.seed)
    picks = np.stack([rng.integers(0, n, args.anchors), rng.integers(0, width, args.anchors),
                      rng.integers(0, height, args.anchors)], axis=1)
    metres = truth[picks[:, 0], picks[:, 2], picks[:, 1]].astype(np.float64)
    metres[: args.outliers] *= 2.5
    anchors = args.output / "anchors.csv"
    anchors.write_text("frame,x,y,metres\n" + "".join(f"{f},{x},{y},{m:.4f}\n" for (f, x, y), m in zip(picks, metres)))
    camera = args.output / "camera.json"
    camera.write_text(json.dumps({"K": K.tolist(), "width": width, "height": height}))

    out = args.output / "out"
    argv = ["run", str(images), "-o", str(out), "--metric-anchors", str(anchors), "--save-ply", "--intrinsics",
            str(camera), "--ply-every", "16", "--cmap", "--no-save-png"]
    argv += ["--model", args.model] if args.model else []
    print("rolldepth", " ".join(argv))
    if rolldepth_main(argv) != 0:
        raise SystemExit("rolldepth run failed")

    pred = np.load(out / f"{name}_pred.npy")
    depth_m = np.load(out / f"{name}_depth_m.npy")
    if depth_m.shape != truth.shape:
        raise SystemExit(f"depth is {depth_m.shape}, truth {truth.shape}: run at the sequence's size")
    report = json.loads((out / f"{name}_metric.json").read_text())
    result = {
        "sequence": str(args.sequence), "anchors": args.anchors, "outliers": args.outliers,
        "fit": {k: report[k] for k in ("a", "b", "n_inliers", "rmse_m", "max_abs_residual_m", "invalid_pixels")},
        "outliers_found": [i for i, a in enumerate(report["anchors"]) if not a["inlier"]],
        "anchors_fit": scores(depth_m, truth),
        "oracle_fit": scores(oracle_depth(pred, truth), truth),
        "same_anchors_on_distorted_truth": truth_check(truth, anchors),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.figure:
        draw(args.figure, sample, depth_m, out / f"{name}_ply" / "frame_000032.ply", 32,
             K)  # K at the depth's size: the sequence runs at its own size


if __name__ == "__main__":
    main()

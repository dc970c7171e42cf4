"""Where a prediction's error lies: in each frame's shape, or in its affine frame drifting from frame to frame.

`rolldepth eval` aligns one scale and shift per video (disparity space). Aligning every frame on its own instead
forgives what a per-frame model's changing normalisation costs and leaves the error of each frame's shape; the
difference between the two is the drift. Both are also scored on the static scene and on the moving objects alone
(the renderer's masks), and grouped by the shots where an object flies past the camera (``"flyby"`` in
``meta.json``). Beside the model, the same for the perfect per-frame target (each frame's true inverse depth
normalised as training does, ``benchmarks/target_ceiling.py``): the drift that even exact per-frame depth pays.

    rolldepth eval --data D --kind synth -o EVAL --variants per-frame --save-predictions
    python benchmarks/error_decomposition.py --data D --predictions EVAL/predictions [--label v2.3] [--json FILE]

``benchmarks/codec_ceiling.py --per-frame --save-predictions DIR`` writes the codec's round trips of the per-frame
targets in the same layout, so the codec's share of each column is measured the same way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rolldepth.data.benchmarks import load_dataset
from rolldepth.evaluate.metrics import abs_rel, align_depth, eval_mask
from rolldepth.train.trainer import normalise_snippet

COLUMNS = ("video", "frame", "video_static", "frame_static", "video_moving", "frame_moving")


def decompose(pred_inv: np.ndarray, depth: np.ndarray, valid: np.ndarray | None, moving: np.ndarray | None,
              min_depth: float, max_depth: float) -> dict[str, float]:
    """AbsRel (x100) of an [N, H, W] inverse-depth prediction aligned once per video and once per frame, over all
    pixels, the static scene and the moving objects (NaN where a set of pixels is empty)."""
    range_ = dict(min_depth=min_depth, max_depth=max_depth)
    per_video = align_depth(pred_inv, depth, valid, **range_)
    per_frame = np.stack([align_depth(pred_inv[i], depth[i], None if valid is None else valid[i], **range_)
                          for i in range(len(depth))])
    mask = eval_mask(depth, valid, min_depth, max_depth)
    moving = np.zeros_like(mask) if moving is None else moving.astype(bool)
    out = {}
    for suffix, pixels in (("", mask), ("_static", mask & ~moving), ("_moving", mask & moving)):
        for name, aligned in (("video", per_video), ("frame", per_frame)):
            out[name + suffix] = abs_rel(aligned, depth, pixels) * 100 if pixels.any() else float("nan")
    return out


def perfect_target(depth: np.ndarray) -> np.ndarray:
    """What a per-frame model is taught for each frame: its true inverse depth normalised alone."""
    return np.stack([normalise_snippet(frame[None])[0] for frame in depth])


def group_means(rows: list[dict], key: str) -> dict[str, dict[str, float]]:
    """Mean of each column of ``rows[i][key]`` over the fly-by shots, the others and all, each video once."""
    groups = {"fly-by": [r for r in rows if r["flyby"]], "other": [r for r in rows if not r["flyby"]], "all": rows}
    return {name: {c: float(np.nanmean([r[key][c] for r in group])) if group else float("nan") for c in COLUMNS}
            for name, group in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `rolldepth synth` split")
    parser.add_argument("--predictions", type=Path, required=True, help="`rolldepth eval --save-predictions`'s folder")
    parser.add_argument("--variant", default="per-frame")
    parser.add_argument("--label", default="model", help="what made the predictions, for the table (model)")
    parser.add_argument("--json", type=Path, help="write the per-video and mean figures here too")
    args = parser.parse_args()
    rows = []
    for sample in load_dataset("synth", args.data):
        path = args.predictions / sample.name / f"{args.variant}.npy"
        if not path.is_file():
            raise SystemExit(f"{path}: no prediction (run `rolldepth eval --save-predictions` on {args.data} first)")
        pred = np.load(path)
        common = (sample.depth, sample.valid, sample.moving, sample.min_depth, sample.max_depth)
        row = dict(name=sample.name, flyby=bool(sample.flyby_object), model=decompose(pred, *common),
                   target=decompose(perfect_target(sample.depth), *common))
        rows.append(row)
        kind = "fly-by" if row["flyby"] else "other "
        print(f"{row['name']} {kind} {args.label} per video {row['model']['video']:.2f}, "
              f"per frame {row['model']['frame']:.2f}; target {row['target']['video']:.2f}, "
              f"{row['target']['frame']:.2f}", flush=True)
    print("\n| shots | source | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    summary = {key: group_means(rows, key) for key in ("model", "target")}
    counts = {"fly-by": sum(r["flyby"] for r in rows), "other": sum(not r["flyby"] for r in rows), "all": len(rows)}
    for group, count in counts.items():
        for key, label in (("model", args.label), ("target", "perfect target")):
            cells = " | ".join(f"{summary[key][group][c]:.2f}" for c in COLUMNS)
            print(f"| {group} ({count}) | {label} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps({"videos": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()

"""Co-alignment benchmark: our Gauss-Newton solver against the official 2000-step Adam, same inputs.

The inputs imitate what the model produces: a depth video (a slanted, textured backdrop and a nearer object
moving across it), cut into dilated snippets; every snippet is normalised on its own to [-1, 1] with its
2nd/98th percentiles (the model's affine-invariant output), then gets its own small affine inconsistency, a
smooth low-frequency error field and pixel noise; the global minimum is subtracted as the pipeline does.
Predictions are generated directly at the co-alignment grid (what ``subsample`` keeps of a full frame).

Both solvers are scored with ``official_objective`` (float64). As a second, solver-independent figure we merge
the aligned snippets and report the relative error of the merged video against the true inverse depth after
one least-squares scale and shift for the whole video (lower = the alignment recovered the video better).

Run: ``python benchmarks/coalign.py --frames 100 300 --dilations 1 10 25``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rolldepth.method.coalign import adam_coalign, coalign, official_objective
from rolldepth.method.merge import merge_frames
from rolldepth.method.snippets import build_snippet_groups


def inverse_depth_video(n_frames: int, size: tuple[int, int]) -> np.ndarray:
    """``[N, h, w]`` positive inverse depth: a slanted wavy wall and a nearer disc sliding across it."""
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    t = np.arange(n_frames)[:, None, None]
    wall = 0.3 + 0.25 * yy + 0.05 * np.sin(6 * xx + 0.07 * t) + 0.05 * np.sin(0.013 * t)
    cx = 0.5 * width / max(height, width) * (1 + 0.8 * np.sin(0.03 * t))
    disc = (xx - cx) ** 2 + (yy - 0.5 * height / max(height, width)) ** 2 < 0.04
    return np.where(disc, 0.9 + 0.05 * np.cos(0.05 * t), wall)


def realistic_snippet_predictions(truth: np.ndarray, groups, seed: int, noise: float = 0.01) -> list[np.ndarray]:
    """Snippet predictions ``[K, L, h, w]`` float32 per group, as the model would give them (see module doc)."""
    rng = np.random.default_rng(seed)
    _, height, width = truth.shape
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    preds = []
    for group in groups:
        x = truth[group.indices]  # [K, L, h, w]
        low, high = np.percentile(x.reshape(len(x), -1), [2, 98], axis=1)
        x = 2 * (x - low[:, None, None, None]) / (high - low)[:, None, None, None] - 1
        n = len(x)
        x = x * np.exp(rng.uniform(-0.1, 0.1, (n, 1, 1, 1))) + rng.uniform(-0.05, 0.05, (n, 1, 1, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, x.shape[1], 2, 1, 1))
        field = np.sin(3 * xx + phase[:, :, 0]) * np.cos(2 * yy + phase[:, :, 1])
        x = x + 0.03 * field + noise * rng.standard_normal(x.shape)
        preds.append(x.astype(np.float32))
    low = min(float(p.min()) for p in preds)
    return [p - low for p in preds]


def merged_error(preds, groups, truth, scales, shifts) -> float:
    """Mean |merged - truth| / truth after one least-squares scale and shift of the merged video."""
    merged = merge_frames(preds, groups, len(truth), scales, shifts, 0.0).astype(np.float64).ravel()
    design = np.stack([merged, np.ones_like(merged)], axis=1)
    coef, *_ = np.linalg.lstsq(design, truth.ravel(), rcond=None)
    return float(np.mean(np.abs(design @ coef - truth.ravel()) / truth.ravel()))


def run_coalign_benchmark(
    n_frames: int = 100,
    dilations=(1, 10, 25),
    seed: int = 0,
    size: tuple[int, int] = (24, 32),
    adam_iterations: int = 2000,
) -> dict:
    """Time both solvers on one synthetic video and score them; returns one row of figures."""
    groups = build_snippet_groups(n_frames, dilations, (3,), cap=True)
    truth = inverse_depth_video(n_frames, size)
    preds = realistic_snippet_predictions(truth, groups, seed)
    row = dict(frames=n_frames, dilations=[g.dilation for g in groups], snippets=sum(len(g) for g in groups),
               pixels=size[0] * size[1], threads=torch.get_num_threads())
    for name, solve in (("ours", lambda: coalign(preds, groups, n_frames)),
                        ("adam", lambda: adam_coalign(preds, groups, n_frames, iterations=adam_iterations))):
        tic = time.perf_counter()
        result = solve()
        row[f"{name}_seconds"] = time.perf_counter() - tic
        row[f"{name}_iterations"] = result.iterations
        row[f"{name}_objective"] = official_objective(preds, groups, n_frames, result.scales, result.shifts)
        row[f"{name}_merged_error"] = merged_error(preds, groups, truth, result.scales, result.shifts)
    identity = [np.ones(len(g)) for g in groups], [np.zeros(len(g)) for g in groups]
    row["start_objective"] = official_objective(preds, groups, n_frames, *identity)
    row["unaligned_merged_error"] = merged_error(preds, groups, truth, *identity)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--dilations", type=int, nargs="+", default=[1, 10, 25])
    parser.add_argument("--size", type=int, nargs=2, default=[24, 32], help="co-alignment grid (h w)")
    parser.add_argument("--adam-iterations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"co-alignment, dilations {args.dilations}, grid {args.size[0]}x{args.size[1]}, "
          f"{torch.get_num_threads()} torch threads; objective = official loss in float64")
    header = ("frames", "snippets", "ours s", "adam s", "ours obj", "adam obj", "start obj",
              "ours err", "adam err", "raw err")
    print(" ".join(f"{h:>10}" for h in header))
    for n_frames in args.frames:
        r = run_coalign_benchmark(n_frames, args.dilations, args.seed, tuple(args.size), args.adam_iterations)
        print(f"{r['frames']:>10} {r['snippets']:>10} {r['ours_seconds']:>10.2f} {r['adam_seconds']:>10.2f} "
              f"{r['ours_objective']:>10.6f} {r['adam_objective']:>10.6f} {r['start_objective']:>10.6f} "
              f"{r['ours_merged_error']:>10.5f} {r['adam_merged_error']:>10.5f} {r['unaligned_merged_error']:>10.5f}")


if __name__ == "__main__":
    main()

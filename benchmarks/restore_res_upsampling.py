"""Does an edge-aware upsampling of the depth beat bilinear for `--restore-res`? Measured, not adopted.

Renders of the held-out recipe at twice the model's size (384x288) are estimated at `--res 192` (dilations 1 and
3) and brought back to 384x288 bilinearly, as `--restore-res` does, or by He et al.'s guided filter with the grey
frame as guide (radius r, regularisation eps), then scored against the true inverse depth (one scale and shift per
video): AbsRel over all pixels, over a 5-px band around depth edges, and elsewhere.

    rolldepth synth /tmp/hires --sequences 6 --frames 12 --size 384x288 --seed 1
    python benchmarks/restore_res_upsampling.py /tmp/hires
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rolldepth import RollingDepthPipeline
from rolldepth.video.reading import resize_depth


def box(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)


def guided(p: torch.Tensor, guide: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter with a grey guide; p, guide [N, 1, H, W]."""
    mean_i, mean_p = box(guide, r), box(p, r)
    a = (box(guide * p, r) - mean_i * mean_p) / (box(guide * guide, r) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    return box(a, r) * guide + box(b, r)


def aligned(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``pred`` with the least-squares scale and shift onto ``target`` over ``mask``."""
    x = pred[mask].astype(np.float64)
    scale, shift = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), target[mask].astype(np.float64), rcond=None)[0]
    return scale * pred + shift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a `rolldepth synth` folder rendered at 384x288")
    args = parser.parse_args()
    pipe = RollingDepthPipeline.from_pretrained()
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for seq in sorted(args.data.glob("seq_*")):
        frames, z = np.load(seq / "frames.npy"), np.load(seq / "depth.npy")
        depth = pipe(frames, dilations=(1, 3), processing_res=192, generator=0, progress=False).depth
        valid = np.isfinite(z) & (z > 0)
        truth = 1.0 / np.where(valid, z, 1.0)
        log_z = np.log(np.where(valid, z, 1.0))
        edges = (np.abs(np.diff(log_z, axis=1, prepend=log_z[:, :1])) > 0.05) | (
            np.abs(np.diff(log_z, axis=2, prepend=log_z[:, :, :1])) > 0.05)
        band = F.max_pool2d(torch.from_numpy(edges.astype(np.float32))[:, None], 5, 1, 2)[:, 0].numpy() > 0
        bilinear = resize_depth(depth, z.shape[1:])
        grey = torch.from_numpy(frames.astype(np.float32).mean(-1) / 255)[:, None]
        candidates = {"bilinear": bilinear}
        for r in (2, 4, 8):
            for eps in (1e-3, 1e-2):
                candidates[f"guided r={r} eps={eps:g}"] = guided(
                    torch.from_numpy(bilinear)[:, None], grey, r, eps)[:, 0].numpy()
        for name, pred in candidates.items():
            error = np.abs(aligned(pred, truth, valid) - truth) / truth
            rows.setdefault(name, []).append(
                (error[valid].mean(), error[valid & band].mean(), error[valid & ~band].mean()))
    print("| upsampling | AbsRel all | edge band | elsewhere |\n|---|---|---|---|")
    for name, values in rows.items():
        mean = 100 * np.array(values).mean(axis=0)
        print(f"| {name} | {mean[0]:.2f} | {mean[1]:.2f} | {mean[2]:.2f} |")


if __name__ == "__main__":
    main()

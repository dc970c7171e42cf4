"""Is the per-frame error a tone curve? What a cubic of the prediction gains over a scale and shift.

`rolldepth eval` fits one scale and shift per video to the prediction (disparity space). If the model's output were
a fixed, distorted function of the truth (squeezed ends, a bent middle), a polynomial of the prediction would take
that out, and so would a codec decoder fine-tuned on the UNet's outputs. Three figures per video: AbsRel with one
scale and shift (the eval's), with one cubic per video (an upper bound for any video-wide curve), and with one
scale and shift per video after a global curve ``f(p) = p + c2 p^2 + c3 p^3`` shared by all videos, chosen on the
other half of the videos (even/odd), on a grid of 0.1, from 40,000 of each video's pixels.

    rolldepth eval --data D --kind synth -o EVAL --variants per-frame --save-predictions
    python benchmarks/tone_curve.py --data D --predictions EVAL/predictions
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rolldepth.data.benchmarks import load_dataset
from rolldepth.evaluate.metrics import abs_rel, eval_mask

GRID = np.round(np.arange(-1.0, 1.0001, 0.1), 10)


def polynomial_fit(pred: np.ndarray, depth: np.ndarray, degree: int, lo: float, hi: float) -> np.ndarray:
    """Depth from the least-squares polynomial of ``pred`` that best fits the true disparity ``1 / depth``."""
    basis = np.stack([pred**k for k in range(degree + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, 1.0 / depth, rcond=None)
    return 1.0 / np.clip(basis @ coef, lo, hi)


def curve(pred: np.ndarray, c2: float, c3: float) -> np.ndarray:
    return pred + c2 * pred**2 + c3 * pred**3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `rolldepth synth` split")
    parser.add_argument("--predictions", type=Path, required=True, help="`rolldepth eval --save-predictions`'s folder")
    parser.add_argument("--variant", default="per-frame")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    videos = []
    for sample in load_dataset("synth", args.data):
        mask = eval_mask(sample.depth, sample.valid, sample.min_depth, sample.max_depth)
        pred = np.load(args.predictions / sample.name / f"{args.variant}.npy").astype(np.float64)[mask]
        depth = sample.depth[mask].astype(np.float64)
        pick = rng.choice(len(depth), size=min(40_000, len(depth)), replace=False)
        videos.append(dict(flyby=bool(sample.flyby_object), pred=pred, depth=depth, pick=pick,
                           lo=1.0 / sample.max_depth, hi=1.0 / sample.min_depth, scores={}))

    def score(video, c2=0.0, c3=0.0, degree=1, pick=slice(None)):
        depth = video["depth"][pick]
        fitted = polynomial_fit(curve(video["pred"][pick], c2, c3), depth, degree, video["lo"], video["hi"])
        return abs_rel(fitted, depth, np.ones(depth.shape, dtype=bool)) * 100  # the pixels are the masked ones

    for video in videos:
        video["scores"].update({"degree 1": score(video), "degree 3": score(video, degree=3)})
    for half in (0, 1):
        chooser, scored = videos[half::2], videos[1 - half::2]
        c2, c3 = min(((a, b) for a in GRID for b in GRID),
                     key=lambda c: np.mean([score(v, *c, pick=v["pick"]) for v in chooser]))
        chooser_half = "even" if half == 0 else "odd"
        print(f"curve chosen on the {chooser_half} videos: c2 {c2 + 0:+.1f}, c3 {c3 + 0:+.1f}", flush=True)
        for video in scored:
            video["scores"]["global curve"] = score(video, c2, c3)
    columns = ("degree 1", "degree 3", "global curve")
    print(f"\n| shots | {' | '.join(['scale and shift (eval)', 'cubic per video', 'global curve, other half'])} |")
    print("|---|---|---|---|")
    for group, rows in (("fly-by", [v for v in videos if v["flyby"]]), ("other", [v for v in videos if not v["flyby"]]),
                        ("all", videos)):
        if rows:
            cells = " | ".join(f"{np.mean([v['scores'][c] for v in rows]):.2f}" for c in columns)
            print(f"| {group} ({len(rows)}) | {cells} |")


if __name__ == "__main__":
    main()

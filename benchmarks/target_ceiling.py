"""The training target's ceiling: what a PERFECT model of what `rolldepth train` teaches would score.

The UNet learns, for each snippet, the true inverse depth normalised jointly over the snippet's frames (2nd/98th
percentiles to [-1, 1], clipped; `rolldepth.train.trainer.normalise_snippet`). This script gives every snippet of
every variant exactly that target as its prediction, merges the snippets with the pipeline's own co-alignment and
merge, and scores the video as `rolldepth eval` does (one scale and shift per video). No model is involved: the
figures are the best any model trained on that target can reach under that protocol, and the gap between a
model's figures and these is what training can still win.

The per-frame baseline's snippets are single frames, so each frame keeps its own normalisation: where the depth
range changes over the shot (an object flies close past the camera), no single scale and shift per video fits
every frame, even with perfect predictions.

    python benchmarks/target_ceiling.py --data /work/data/test [--variants "per-frame,{1,10,25}"] [--json FILE]

A fly-by object's distance cannot be told from one frame: the renderer draws it in a range (``FLYBY_CLOSE``, 2.5x
wide) and scales its size and texture with it. ``--flyby-guess G`` scores what a model that is perfect in every
other respect pays for that: on each fly-by video it places the object at distance G (a fraction of the view
distance, as ``FLYBY_CLOSE``) while the truth lies at each of 5 evenly spaced quantiles of the range, and averages
the 5 scores.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from rolldepth.data.benchmarks import load_dataset
from rolldepth.data.scenes import FLYBY_CLOSE
from rolldepth.evaluate.metrics import mean_over_videos
from rolldepth.evaluate.runner import VARIANTS, parse_variants, score
from rolldepth.method.coalign import DEFAULT_COALIGN
from rolldepth.method.snippets import build_snippet_groups
from rolldepth.model.stages import align_and_merge
from rolldepth.storage.workdir import MemoryStore
from rolldepth.train.trainer import normalise_snippet


def target_video(depth: np.ndarray, variant: str, coalign: str = DEFAULT_COALIGN) -> np.ndarray:
    """The merged video [N, H, W] of one variant when every snippet is predicted exactly as trained."""
    kernels = VARIANTS[variant]
    groups = build_snippet_groups(len(depth), kernels["dilations"], kernels["snippet_lengths"])
    snippets = [np.stack([normalise_snippet(depth[idx]) for idx in group.indices]) for group in groups]
    return align_and_merge(MemoryStore(), snippets, groups, len(depth), depth.shape[1:], coalign)[0]


def flyby_factors(guess: float, n: int = 5) -> np.ndarray:
    """Predicted / true disparity of the fly-by object when its distance is guessed as ``guess`` and the truth is
    each of ``n`` evenly spaced quantiles (the bins' middles) of the renderer's uniform range."""
    low, high = FLYBY_CLOSE
    return (low + (np.arange(n) + 0.5) / n * (high - low)) / guess


def misjudged(depth: np.ndarray, flyby: np.ndarray, factor: float) -> np.ndarray:
    """``depth`` with the pixels of the fly-by object (mask ``flyby``) seen ``factor`` times nearer."""
    out = np.array(depth, dtype=np.float32)
    out[flyby] /= factor
    return out


def mean_metrics(results: list[dict]) -> dict:
    """The mean of each metric over several scorings of one video (None where a metric is missing)."""
    return {key: (float(np.mean([r[key] for r in results])) if results[0].get(key) is not None else None)
            for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a `rolldepth synth` split")
    parser.add_argument("--variants", help='comma-separated, e.g. "per-frame,{1,10,25}" (default: all)')
    parser.add_argument("--json", help="write the per-video and mean figures here too")
    parser.add_argument("--flyby-guess", type=float, metavar="G",
                        help=f"place every fly-by object at distance G, a fraction of the view distance (the "
                             f"renderer draws it in {FLYBY_CLOSE[0]}-{FLYBY_CLOSE[1]}), and average over its truth")
    args = parser.parse_args()
    if args.flyby_guess is not None and not 0 < args.flyby_guess <= 1:
        parser.error("--flyby-guess is a fraction of the view distance, in (0, 1]")
    variants = parse_variants(args.variants)
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    videos = []
    for sample in load_dataset("synth", args.data):
        depth = np.asarray(sample.depth, dtype=np.float32)
        entry = {"name": sample.name}
        depths = [depth]
        if args.flyby_guess and sample.flyby_object:
            flyby = sample.objects == sample.flyby_object
            depths = [misjudged(depth, flyby, f) for f in flyby_factors(args.flyby_guess)]
        for variant in variants:
            metrics = mean_metrics([score(target_video(d, variant), sample)["disparity"] for d in depths])
            rows[variant].append(metrics)
            entry[variant] = metrics
        videos.append(entry)
        print(sample.name, "  ".join(f"{v}: AbsRel {e['abs_rel'] * 100:.2f} d1 {e['delta1']:.2f}"
                                     for v, e in entry.items() if v != "name"), flush=True)
    summary = {v: mean_over_videos(rows[v]) for v in variants}
    guess = f", fly-by objects placed at {args.flyby_guess:g}" if args.flyby_guess else ""
    print(f"\nperfect-target ceiling{guess}, {len(videos)} videos of {args.data} (disparity; AbsRel and TAE x100)")
    print("| variant | AbsRel | delta1 | TAE | TAE static | TAE flow |\n|---|---|---|---|---|---|")
    for v, s in summary.items():
        extra = ["" if s.get(key) is None else f"{s[key]:.2f}" for key in ("tae_static", "tae_flow")]
        print(f"| {v} | {s['abs_rel'] * 100:.2f} | {s['delta1']:.2f} | {s['tae']:.2f} | " + " | ".join(extra) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "videos": videos}, f, indent=1)


if __name__ == "__main__":
    main()

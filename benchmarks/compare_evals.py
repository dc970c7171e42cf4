"""Two `rolldepth eval` reports of the same videos, compared video by video: is the difference beyond the noise?

With a dozen test videos the spread between videos dwarfs most differences between two models: the mean of each
metric moves by several points if one video is swapped for another. Both reports score the SAME videos, so the
right test is paired: per video, the difference B - A; its mean, a bootstrap 95 % interval (videos resampled with
replacement) and how many videos moved each way. An interval that excludes 0 is a difference the test set shows.

    python benchmarks/compare_evals.py A/eval.json B/eval.json [--space disparity] [--samples 10000]

`--data DIR --flyby yes|no` keeps only the videos of a `rolldepth synth` folder in which an object flies past the
camera (yes) or none does (no), as the synth loader marks them: where a model's error sits.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

METRICS = {"abs_rel": ("AbsRel", 100.0, "lower"), "delta1": ("δ1", 1.0, "higher"), "tae": ("TAE", 1.0, "lower"),
           "tae_static": ("TAE static", 1.0, "lower"), "tae_flow": ("TAE flow", 1.0, "lower")}


def paired_bootstrap(a: np.ndarray, b: np.ndarray, samples: int = 10000, seed: int = 0) -> dict:
    """Mean of ``b - a`` over videos, its bootstrap 95 % interval (percentiles of the resampled means), and the
    number of videos where ``b`` is above and below ``a``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two equal, non-empty lists of per-video values, got {a.shape} and {b.shape}")
    diff = b - a
    picks = np.random.default_rng(seed).integers(0, len(diff), size=(samples, len(diff)))
    low, high = np.percentile(diff[picks].mean(axis=1), [2.5, 97.5])
    return dict(mean=float(diff.mean()), low=float(low), high=float(high), up=int((diff > 0).sum()),
                down=int((diff < 0).sum()), n=len(diff))


def compare(report_a: dict, report_b: dict, space: str = "disparity", samples: int = 10000) -> list[dict]:
    """One row per (variant, metric) that both reports have for every shared video."""
    videos_a = {v["name"]: v for v in report_a["videos"]}
    videos_b = {v["name"]: v for v in report_b["videos"]}
    if set(videos_a) != set(videos_b):
        raise SystemExit(f"the reports score different videos: {sorted(set(videos_a) ^ set(videos_b))}")
    names = sorted(videos_a)
    rows = []
    for variant in report_a["summary"]:
        if variant not in report_b["summary"]:
            continue
        for key in METRICS:
            pairs = [(videos_a[n]["variants"][variant][space].get(key), videos_b[n]["variants"][variant][space].get(key))
                     for n in names]
            if any(x is None or y is None or not (np.isfinite(x) and np.isfinite(y)) for x, y in pairs):
                continue
            a, b = np.array(pairs).T
            rows.append(dict(variant=variant, metric=key, a=float(a.mean()), b=float(b.mean()),
                             **paired_bootstrap(a, b, samples)))
    return rows


def keep_videos(report: dict, names: set[str]) -> dict:
    """``report`` with only the videos named in ``names``."""
    return {**report, "videos": [v for v in report["videos"] if v["name"] in names]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="eval.json of model A")
    parser.add_argument("b", help="eval.json of model B")
    parser.add_argument("--space", choices=("disparity", "depth"), default="disparity")
    parser.add_argument("--samples", type=int, default=10000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--data", help="the `rolldepth synth` folder both reports scored (for --flyby)")
    parser.add_argument("--flyby", choices=("yes", "no"), help="only the videos with (yes) or without (no) a fly-by")
    args = parser.parse_args()
    if (args.data is None) != (args.flyby is None):
        parser.error("--data and --flyby go together")
    with open(args.a) as fa, open(args.b) as fb:
        report_a, report_b = json.load(fa), json.load(fb)
    which = ""
    if args.flyby:
        from rolldepth.data.benchmarks import load_dataset

        names = {s.name for s in load_dataset("synth", args.data) if bool(s.flyby_object) == (args.flyby == "yes")}
        report_a, report_b = keep_videos(report_a, names), keep_videos(report_b, names)
        side = "with" if args.flyby == "yes" else "without"
        if not report_a["videos"] or not report_b["videos"]:
            raise SystemExit(f"no video of the reports is one of the {len(names)} in {args.data} {side} a fly-by")
        which = f"; the {len(report_a['videos'])} videos {side} a fly-by"
    rows = compare(report_a, report_b, args.space, args.samples)
    print(f"B - A per video, {args.space} space; AbsRel x100; 95 % bootstrap interval over videos{which}\n")
    print("| variant | metric | A | B | B - A | 95 % interval | videos up / down |\n|---|---|---|---|---|---|---|")
    for r in rows:
        label, scale, better = METRICS[r["metric"]]
        shown = "**" if r["low"] > 0 or r["high"] < 0 else ""  # the interval excludes 0
        print(f"| {r['variant']} | {label} ({better} is better) | {r['a'] * scale:.2f} | {r['b'] * scale:.2f} | "
              f"{shown}{r['mean'] * scale:+.2f}{shown} | [{r['low'] * scale:+.2f}, {r['high'] * scale:+.2f}] | "
              f"{r['up']} / {r['down']} |")


if __name__ == "__main__":
    main()

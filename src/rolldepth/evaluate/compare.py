"""``rolldepth compare``: two ``rolldepth eval`` reports of the same videos, video by video, with a paired interval.

With a dozen test videos the spread between videos dwarfs most differences between two models: the mean of each
metric moves by several points if one video is swapped for another. Both reports score the SAME videos, so the
right test is paired: per video, the difference B - A; its mean, a bootstrap 95 % interval (videos resampled with
replacement) and how many videos moved each way. An interval that excludes 0 is a difference the test set shows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import UserError

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


def compare(report_a: dict, report_b: dict, space: str = "disparity", samples: int = 10000,
            pairs: list[tuple[str, str]] | None = None) -> list[dict]:
    """One row per (variant pair, metric) that both reports have for every shared video.

    ``pairs`` names the variants to set side by side, ``(variant of A, variant of B)``: by default every variant
    the two reports share, each with itself; another tool's predictions (``rolldepth eval --predictions``) are one
    variant named after their folder, so comparing them with a model's per-frame depth takes a pair.
    """
    videos_a = {v["name"]: v for v in report_a["videos"]}
    videos_b = {v["name"]: v for v in report_b["videos"]}
    if set(videos_a) != set(videos_b):
        raise UserError(f"the reports score different videos: {', '.join(sorted(set(videos_a) ^ set(videos_b)))}")
    if pairs is None:
        pairs = [(name, name) for name in report_a["summary"] if name in report_b["summary"]]
    for variant_a, variant_b in pairs:
        for variant, report, label in ((variant_a, report_a, "A"), (variant_b, report_b, "B")):
            if variant not in report["summary"]:
                raise UserError(f"report {label} has no variant {variant!r}: it has {', '.join(report['summary'])}")
    names = sorted(videos_a)
    rows = []
    for variant_a, variant_b in pairs:
        for key in METRICS:
            values = [(videos_a[n]["variants"][variant_a][space].get(key),
                       videos_b[n]["variants"][variant_b][space].get(key)) for n in names]
            if any(x is None or y is None or not (np.isfinite(x) and np.isfinite(y)) for x, y in values):
                continue
            a, b = np.array(values).T
            variant = variant_a if variant_a == variant_b else f"{variant_a} vs {variant_b}"
            rows.append(dict(variant=variant, metric=key, a=float(a.mean()), b=float(b.mean()),
                             **paired_bootstrap(a, b, samples)))
    return rows


def keep_videos(report: dict, names: set[str]) -> dict:
    """``report`` with only the videos named in ``names``."""
    return {**report, "videos": [v for v in report["videos"] if v["name"] in names]}


def markdown_rows(rows: list[dict]) -> str:
    """The comparison as a markdown table; a difference whose interval excludes 0 is bold."""
    lines = ["| variant | metric | A | B | B - A | 95 % interval | videos up / down |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        label, scale, better = METRICS[r["metric"]]
        shown = "**" if r["low"] > 0 or r["high"] < 0 else ""
        lines.append(f"| {r['variant']} | {label} ({better} is better) | {r['a'] * scale:.2f} | {r['b'] * scale:.2f} "
                     f"| {shown}{r['mean'] * scale:+.2f}{shown} | [{r['low'] * scale:+.2f}, {r['high'] * scale:+.2f}] "
                     f"| {r['up']} / {r['down']} |")
    return "\n".join(lines) + "\n"


def read_report(path: str | Path) -> dict:
    """An ``eval.json``, given as the file or the folder ``rolldepth eval -o`` wrote it to."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval.json"
    try:
        report = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"{path} is not an eval report: {exc}") from None
    if not isinstance(report, dict) or not {"videos", "summary"} <= report.keys():
        raise UserError(f"{path} is not an eval report (rolldepth eval's eval.json)")
    return report


def parse_pair(text: str) -> tuple[str, str]:
    variant_a, sep, variant_b = text.partition("=")
    if not sep or not variant_a or not variant_b:
        raise UserError(f"--pair takes VARIANT_OF_A=VARIANT_OF_B (e.g. per-frame=vda), got {text!r}")
    return variant_a, variant_b


def _cmd_compare(args: argparse.Namespace) -> int:
    if args.samples < 100:
        raise UserError(f"--samples must be at least 100, got {args.samples}")
    pairs = [parse_pair(p) for p in args.pair] if args.pair else None
    rows = compare(read_report(args.a), read_report(args.b), args.space, args.samples, pairs)
    if not rows:
        raise UserError("the reports share no variant with a metric for every video: name the variants to compare "
                        "with --pair A_VARIANT=B_VARIANT")
    print(f"B - A per video, {args.space} space; AbsRel x100; 95 % bootstrap interval over the "
          f"{rows[0]['n']} videos\n")
    print(markdown_rows(rows), end="")
    return 0


def register_cli(subparsers) -> None:
    """Add ``rolldepth compare A B``."""
    p = subparsers.add_parser(
        "compare", help="compare two eval reports of the same videos, video by video",
        description="Compare two rolldepth eval reports of the same videos: per video the difference B - A, its "
        "mean and a bootstrap 95 %% interval over the videos (bold where it excludes 0), and how many videos moved "
        "each way. A difference the interval does not exclude is within the spread between videos.")
    p.add_argument("a", help="eval.json of A (or the folder rolldepth eval wrote it to)")
    p.add_argument("b", help="eval.json of B (or its folder)")
    p.add_argument("--pair", action="append", metavar="A_VARIANT=B_VARIANT",
                   help="compare variant A_VARIANT of A with B_VARIANT of B (repeatable; default: the variants both "
                        "have, each with itself), e.g. per-frame=vda for a model against scored predictions")
    p.add_argument("--space", choices=("disparity", "depth"), default="disparity",
                   help="alignment space (default disparity)")
    p.add_argument("--samples", type=int, default=10000, help="bootstrap resamples (default 10000)")
    p.set_defaults(func=_cmd_compare)

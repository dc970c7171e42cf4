"""`rolldepth compare`, plus a filter for `rolldepth synth` folders: the videos with or without a fly-by.

    python benchmarks/compare_evals.py A/eval.json B/eval.json [--space disparity] [--samples 10000]
        [--data DIR --flyby yes|no]

`--data DIR --flyby yes|no` keeps only the videos of a `rolldepth synth` folder in which an object flies past the
camera (yes) or none does (no), as the synth loader marks them: where a model's error sits. The comparison itself
(paired per-video differences, a bootstrap 95 % interval) is `rolldepth.evaluate.compare`'s.
"""

from __future__ import annotations

import argparse

from rolldepth.errors import UserError
from rolldepth.evaluate.compare import compare, keep_videos, markdown_rows, read_report


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
    try:
        report_a, report_b = read_report(args.a), read_report(args.b)
        which = ""
        if args.flyby:
            from rolldepth.data.benchmarks import load_dataset

            names = {s.name for s in load_dataset("synth", args.data) if bool(s.flyby_object) == (args.flyby == "yes")}
            report_a, report_b = keep_videos(report_a, names), keep_videos(report_b, names)
            side = "with" if args.flyby == "yes" else "without"
            if not report_a["videos"] or not report_b["videos"]:
                raise UserError(f"no video of the reports is one of the {len(names)} in {args.data} {side} a fly-by")
            which = f"; the {len(report_a['videos'])} videos {side} a fly-by"
        rows = compare(report_a, report_b, args.space, args.samples)
    except UserError as exc:
        raise SystemExit(str(exc)) from None
    print(f"B - A per video, {args.space} space; AbsRel x100; 95 % bootstrap interval over videos{which}\n")
    print(markdown_rows(rows), end="")


if __name__ == "__main__":
    main()

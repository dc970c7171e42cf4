"""Which point of the line between a model and its continuation to adopt, by a rule fixed before any score is read.

The rule v2.3 was chosen by (``results/weight_interpolation/``): on validation shots that no run trained on, one set
of the ordinary training recipe and one of the consistency recipe, scored per frame, adopt the largest alpha whose
AbsRel on the ordinary shots is no worse than the start's (alpha 0) and whose AbsRel on the consistency shots is
lower than the start's; keep the start if no alpha is. The test splits never take part, so they still measure the
result. ``benchmarks/train_v2_gpu.sh`` runs this after a continuation, in the same accelerator call.

    python benchmarks/choose_alpha.py VAL_DIR     # VAL_DIR/a<ALPHA>_{ordinary,consistency}/eval.json

It prints a markdown table of the scores (an alpha whose evaluations did not both finish is a row that says so),
then the chosen alpha alone on the last line.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

VARIANT = "per-frame"
_NAME = re.compile(r"^a(\d+(?:\.\d+)?)_ordinary$")
_ANY = re.compile(r"^a(\d+(?:\.\d+)?)_(?:ordinary|consistency)$")


def choose_alpha(scores: dict[float, tuple[float, float]]) -> float:
    """The adopted alpha; ``scores[alpha] = (ordinary AbsRel, consistency AbsRel)``, and alpha 0 is the start."""
    if 0.0 not in scores:
        raise ValueError("the start (alpha 0) was not scored")
    ordinary0, consistency0 = scores[0.0]
    better = [a for a, (o, c) in scores.items() if a > 0 and o <= ordinary0 and c < consistency0]
    return max(better, default=0.0)


def read_scores(root: Path) -> dict[float, tuple[float, float]]:
    """Per-frame disparity AbsRel of every alpha whose two validation evaluations are both complete in ``root``."""
    scores = {}
    for folder in sorted(root.iterdir()):
        match = _NAME.match(folder.name)
        if not match:
            continue
        pair = []
        for path in (folder / "eval.json", root / f"a{match.group(1)}_consistency" / "eval.json"):
            try:
                pair.append(json.loads(path.read_text())["summary"][VARIANT]["disparity"]["abs_rel"])
            except (OSError, ValueError, KeyError):
                break  # an evaluation cut by its time-out: this alpha is not a candidate
        if len(pair) == 2:
            scores[float(match.group(1))] = (pair[0], pair[1])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder of a<ALPHA>_ordinary and a<ALPHA>_consistency evaluations")
    args = parser.parse_args()
    scores = read_scores(args.root)
    chosen = choose_alpha(scores)
    print(f"| alpha | ordinary shots, {VARIANT} AbsRel | consistency shots, {VARIANT} AbsRel |\n|---|---|---|")
    for alpha, (ordinary, consistency) in sorted(scores.items()):
        mark = "**" if alpha == chosen else ""
        print(f"| {mark}{alpha:g}{mark} | {ordinary * 100:.2f} | {consistency * 100:.2f} |")
    # an alpha whose evaluations were started but not both finished (cut by a time-out) says so, not nothing
    started = {float(m.group(1)) for folder in args.root.iterdir() if (m := _ANY.match(folder.name))}
    for alpha in sorted(started - set(scores)):
        print(f"| {alpha:g} | not finished, not a candidate | |")
    print(f"{chosen:g}")


if __name__ == "__main__":
    main()

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
_FOLDER = re.compile(r"^a(\d+(?:\.\d+)?)_(?:ordinary|consistency)$")
RECIPES = ("ordinary", "consistency")


def choose_alpha(scores: dict[float, tuple[float, float]]) -> float:
    """The adopted alpha; ``scores[alpha] = (ordinary AbsRel, consistency AbsRel)``, and alpha 0 is the start."""
    if 0.0 not in scores:
        raise ValueError("the start (alpha 0) was not scored")
    ordinary0, consistency0 = scores[0.0]
    better = [a for a, (o, c) in scores.items() if a > 0 and o <= ordinary0 and c < consistency0]
    return max(better, default=0.0)


def started_alphas(root: Path) -> list[str]:
    """The alphas, as their folders spell them, with a validation evaluation of either recipe started in ``root``."""
    return sorted({m.group(1) for folder in root.iterdir() if (m := _FOLDER.match(folder.name))}, key=float)


def read_scores(root: Path) -> dict[float, tuple[float, float]]:
    """Per-frame disparity AbsRel of every alpha whose two validation evaluations are both complete in ``root``."""
    scores = {}
    for alpha in started_alphas(root):
        pair = []
        for recipe in RECIPES:
            try:
                summary = json.loads((root / f"a{alpha}_{recipe}" / "eval.json").read_text())["summary"]
                pair.append(summary[VARIANT]["disparity"]["abs_rel"])
            except (OSError, ValueError, KeyError):
                break  # an evaluation cut by its time-out: this alpha is not a candidate
        if len(pair) == 2:
            scores[float(alpha)] = (pair[0], pair[1])
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
    for alpha in started_alphas(args.root):  # one started but cut by its time-out says so, not nothing
        if float(alpha) not in scores:
            print(f"| {float(alpha):g} | not finished, not a candidate | |")
    print(f"{chosen:g}")


if __name__ == "__main__":
    main()

"""How much the one-step prediction depends on its noise map: per-frame depth of several noise seeds, scored alone
and averaged (Marigold's test-time ensemble, which the RollingDepth pipeline does not run).

At t=999 of the zero-terminal-SNR schedule the UNet's depth input is pure noise; a model that learned to ignore
it predicts the same depth for every seed, and averaging seeds gains nothing. Each seed's frame is aligned to the
first seed's frame by least squares before the mean, as an ensemble of affine-invariant predictions must be.

    for s in 0 1 2 3; do
        rolldepth eval --data D --kind synth -o EVAL$s --variants per-frame --seed $s --save-predictions
    done
    python benchmarks/noise_seeds.py --data D --evals EVAL0 EVAL1 EVAL2 EVAL3 [--json FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rolldepth.data.benchmarks import load_dataset
from rolldepth.evaluate.metrics import fit_scale_shift
from rolldepth.evaluate.runner import score


def ensemble(predictions: list[np.ndarray]) -> np.ndarray:
    """Mean of [N, H, W] predictions after fitting each one's frames to the first's (scale and shift per frame)."""
    reference = predictions[0].astype(np.float64)
    aligned = [reference]
    for pred in predictions[1:]:
        pred = pred.astype(np.float64)
        out = np.empty_like(pred)
        for i, (x, y) in enumerate(zip(pred, reference)):
            a, b = fit_scale_shift(x, y, np.ones(x.shape, bool))
            out[i] = a * x + b
        aligned.append(out)
    return np.mean(aligned, axis=0).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `rolldepth synth` split")
    parser.add_argument("--evals", type=Path, nargs="+", required=True,
                        help="`rolldepth eval --variants per-frame --save-predictions` folders, one per seed")
    parser.add_argument("--json", type=Path, help="write the per-video figures here too")
    args = parser.parse_args()
    labels = [e.name for e in args.evals] + ["ensemble"]
    rows = []
    for sample in load_dataset("synth", args.data):
        paths = [e / "predictions" / sample.name / "per-frame.npy" for e in args.evals]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise SystemExit(f"{missing[0]}: no prediction (run `rolldepth eval --save-predictions` first)")
        preds = [np.load(p) for p in paths]
        scores = [score(p, sample)["disparity"] for p in preds + [ensemble(preds)]]
        rows.append(dict(name=sample.name, flyby=bool(sample.flyby_object),
                         abs_rel=[s["abs_rel"] * 100 for s in scores], delta1=[s["delta1"] for s in scores]))
        print(sample.name, " ".join(f"{a:.2f}" for a in rows[-1]["abs_rel"]), flush=True)
    flyby = np.array([r["flyby"] for r in rows])
    abs_rel, delta1 = (np.array([r[k] for r in rows]) for k in ("abs_rel", "delta1"))
    print("\n| predictions | AbsRel↓ | δ1↑ | AbsRel fly-by | AbsRel other |\n|---|---|---|---|---|")
    for j, label in enumerate(labels):
        print(f"| {label} | {abs_rel[:, j].mean():.2f} | {delta1[:, j].mean():.2f} | "
              f"{abs_rel[flyby, j].mean():.2f} | {abs_rel[~flyby, j].mean():.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"labels": labels, "videos": rows}, indent=1))


if __name__ == "__main__":
    main()

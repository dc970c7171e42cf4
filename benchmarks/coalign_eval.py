"""Co-alignment modes scored on real model predictions: `official` (the official Adam's fixed point) against
`objective` (the minimum of the same loss), as `rolldepth eval` scores them.

Each video's snippets are predicted ONCE (kernel {1,10,25}, the model's resolution, seed 0), then co-aligned and
merged by both modes, so the figures differ by the co-alignment alone. Reported per mode: disparity AbsRel, delta1
and TAE (x100 / %), the official objective reached and the solver's seconds, averaged over videos.

    python benchmarks/coalign_eval.py --data /work/data/test [--model DIR] [--max-videos N]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from rolldepth.method.coalign import COALIGN_SOLVERS, official_objective
from rolldepth.data.benchmarks import load_dataset
from rolldepth.evaluate.runner import VARIANTS, score
from rolldepth.method.merge import global_min, merge_frames, renormalise
from rolldepth.method.coalign import subsampled
from rolldepth.model.pipeline import RollingDepthPipeline
from rolldepth.weights import default_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--kind", default="synth")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the embedded model)")
    parser.add_argument("--max-videos", type=int, default=None)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    pipe = RollingDepthPipeline.from_pretrained(args.model or default_model(), torch_dtype=torch.float32)
    rows = {mode: [] for mode in COALIGN_SOLVERS}
    for sample in list(load_dataset(args.kind, args.data))[: args.max_videos]:
        out = pipe(np.asarray(sample.frames), **VARIANTS["{1,10,25}"], generator=0, return_snippets=True,
                   progress=False)
        n_frames = len(out.depth)
        offset = global_min(out.snippets)
        small = [subsampled(p, offset) for p in out.snippets]
        for mode, solve in COALIGN_SOLVERS.items():
            result = solve(small, out.groups, n_frames)
            merged = merge_frames(out.snippets, out.groups, n_frames, result.scales, result.shifts, offset)
            metrics = score(renormalise(merged), sample)["disparity"]
            rows[mode].append(dict(abs_rel=metrics["abs_rel"], delta1=metrics["delta1"], tae=metrics["tae"],
                                   objective=official_objective(small, out.groups, n_frames, result.scales,
                                                                result.shifts),
                                   seconds=result.seconds))
        print(sample.name, {m: round(r[-1]["abs_rel"] * 100, 3) for m, r in rows.items()}, flush=True)
    summary = {m: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for m, rs in rows.items()}
    print("| co-alignment | AbsRel↓ disp | δ1↑ disp | TAE↓ disp | objective | solver s |")
    print("|---|---|---|---|---|---|")
    for mode, m in summary.items():
        print(f"| {mode} | {m['abs_rel'] * 100:.2f} | {m['delta1']:.2f} | {m['tae']:.3f} | {m['objective']:.5f} "
              f"| {m['seconds']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(summary=summary, videos=len(rows["official"])), f, indent=1)


if __name__ == "__main__":
    main()

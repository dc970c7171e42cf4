"""Does the snippets' disagreement say where the depth is wrong? Sparsification curves on benchmark data.

Every frame of a RollingDepth run is the mean of the co-aligned predictions of the several snippets that hold it;
``rolldepth run --save-uncertainty`` writes their standard deviation at every pixel. This script runs the pipeline
on each video of a split, aligns the depth to the truth as ``rolldepth eval`` does (one scale and shift per video,
disparity space) and scores the error that is left when the most uncertain pixels are removed, a tenth
at a time (the sparsification curve of Ilg et al., 2018), against two rankings:

- the oracle, which removes the pixels with the largest error first (the best any ranking can do);
- the depth's own edges (the magnitude of its spatial gradient), a ranking any depth map gives for free, since
  errors gather at depth edges.

AUSE is the mean gap between a ranking's curve and the oracle's (lower is better; a ranking no better than chance
has the gap of a flat curve); the share of that gap a ranking closes is free of the video's disparity scale.
Means are over videos. The scoring is ``rolldepth.evaluate.uncertainty``'s, which ``rolldepth eval --uncertainty``
reports too; this script prints the whole curves and the video counts.

    python benchmarks/uncertainty.py --data /work/data/test [--kind synth] [--variant "{1,10,25}"] [--json FILE]
    python benchmarks/uncertainty.py --summary FILE
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from rolldepth.data.benchmarks import load_dataset
from rolldepth.evaluate.runner import VARIANTS
from rolldepth.evaluate.uncertainty import FRACTIONS, score_uncertainty
from rolldepth.model.pipeline import RollingDepthPipeline


def summarise(videos: list[dict], data: str, variant: str) -> None:
    """Print the mean curves, AUSE and the share of chance's gap to the oracle each ranking closes (per video, so
    videos whose disparities are large do not outweigh the others)."""
    print(f"\n{len(videos)} videos of {data}, {variant}; errors x100, means over videos")
    for space in ("disparity", "abs_rel"):
        title = "aligned disparity's absolute error" if space == "disparity" else "per-pixel AbsRel of the depth"
        print(f"\n{title}, left after removing the pixels ranked first\n")
        print("| ranking | " + " | ".join(f"{f:.0%}" for f in FRACTIONS) + " | AUSE | gap closed |")
        print("|---|" + "---|" * (len(FRACTIONS) + 2))
        for name in ("spread", "edges", "oracle", "chance"):
            if name == "chance":
                curve = np.full(len(FRACTIONS), np.mean([v[space]["mean"] for v in videos]))
            else:
                curve = np.mean([v[space][name]["curve"] for v in videos], axis=0)
            ause = np.mean([v[space][name]["ause"] for v in videos])
            closed = np.mean([1 - v[space][name]["ause"] / v[space]["chance"]["ause"] for v in videos])
            print(f"| {name} | " + " | ".join(f"{100 * c:.2f}" for c in curve)
                  + f" | {100 * ause:.2f} | {100 * closed:.0f} % |")
        better = sum(v[space]["spread"]["ause"] < v[space]["edges"]["ause"] for v in videos)
        chance = sum(v[space]["spread"]["ause"] < v[space]["chance"]["ause"] for v in videos)
        print(f"\nthe spread ranks better than the edges on {better} of {len(videos)} videos, than chance on {chance}; "
              f"mean Spearman of ranking and error {np.mean([v[space]['spearman'] for v in videos]):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the split to run on (not with --summary)")
    parser.add_argument("--kind", default="synth")
    parser.add_argument("--model", default=None, help="checkpoint (default: the embedded model)")
    parser.add_argument("--variant", default="{1,10,25}", choices=[v for v in VARIANTS if v != "per-frame"])
    parser.add_argument("--videos", type=int, default=0, help="only the first N videos (0: all)")
    parser.add_argument("--json", default=None, help="write every video's curves here")
    parser.add_argument("--summary", default=None, help="only print the tables of a --json file written before")
    args = parser.parse_args()
    if args.summary:
        with open(args.summary) as f:
            saved = json.load(f)
        summarise(saved["videos"], saved["data"], saved["variant"])
        return
    if not args.data:
        parser.error("give --data, or --summary FILE")

    pipe = RollingDepthPipeline.from_pretrained(args.model)
    videos = []
    for i, sample in enumerate(load_dataset(args.kind, args.data)):
        if args.videos and i >= args.videos:
            break
        tic = time.perf_counter()
        out = pipe(np.asarray(sample.frames), **VARIANTS[args.variant], output_uncertainty=True,
                   generator=0, progress=False)  # the noise seed rolldepth run and eval use
        result = score_uncertainty(np.asarray(out.depth), np.asarray(out.uncertainty), sample)
        videos.append({"name": sample.name, "seconds": time.perf_counter() - tic, **result})
        print(f"{sample.name}: " + "; ".join(
            f"{space} {100 * r['mean']:.2f}, AUSE spread {100 * r['spread']['ause']:.2f} edges "
            f"{100 * r['edges']['ause']:.2f} chance {100 * r['chance']['ause']:.2f}, Spearman {r['spearman']:.3f}"
            for space, r in result.items()), flush=True)

    summarise(videos, args.data, args.variant)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"data": args.data, "variant": args.variant, "videos": videos}, f, indent=1)


if __name__ == "__main__":
    main()

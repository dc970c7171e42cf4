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
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from rolldepth.data.benchmarks import load_dataset
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a `rolldepth synth` split")
    parser.add_argument("--variants", help='comma-separated, e.g. "per-frame,{1,10,25}" (default: all)')
    parser.add_argument("--json", help="write the per-video and mean figures here too")
    args = parser.parse_args()
    variants = parse_variants(args.variants)
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    videos = []
    for sample in load_dataset("synth", args.data):
        depth = np.asarray(sample.depth, dtype=np.float32)
        entry = {"name": sample.name}
        for variant in variants:
            metrics = score(target_video(depth, variant), sample)["disparity"]
            rows[variant].append(metrics)
            entry[variant] = metrics
        videos.append(entry)
        print(sample.name, "  ".join(f"{v}: AbsRel {e['abs_rel'] * 100:.2f} d1 {e['delta1']:.2f}"
                                     for v, e in entry.items() if v != "name"), flush=True)
    summary = {v: mean_over_videos(rows[v]) for v in variants}
    print(f"\nperfect-target ceiling, {len(videos)} videos of {args.data} (disparity; AbsRel and TAE x100)")
    print("| variant | AbsRel | delta1 | TAE | TAE static | TAE flow |\n|---|---|---|---|---|---|")
    for v, s in summary.items():
        extra = ["" if s.get(key) is None else f"{s[key]:.2f}" for key in ("tae_static", "tae_flow")]
        print(f"| {v} | {s['abs_rel'] * 100:.2f} | {s['delta1']:.2f} | {s['tae']:.2f} | " + " | ".join(extra) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "videos": videos}, f, indent=1)


if __name__ == "__main__":
    main()

"""How much better a model fits the scenes it was trained on than new scenes of the same recipe.

The UNet's training loss (``unet_loss``: v-prediction MSE, the trainer's snippet sampling, timesteps and noise) on
the same number of fixed batches from two groups of ``rolldepth synth`` datasets: scenes the model was trained on
(``--seen``) and new ones (``--unseen``). Batch ``i`` of both groups draws from the same generators, so the groups
differ only in their scenes. A model that only learned the recipe scores both alike; a ratio well above 1 says it
fitted its training scenes, and that more scenes, rather than more passes over them, is what it needs.

    python benchmarks/generalisation_gap.py --model src/rolldepth/weights/default \\
        --seen SEEN_ORDINARY SEEN_CONSISTENCY --unseen /work/data/test /work/data/consistency_test
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from rolldepth.model.attention import enable_multi_frame_attention
from rolldepth.model.checkpoint import encode_empty_prompt, load_components
from rolldepth.train.trainer import SyntheticVideos, TrainConfig, step_rng, unet_loss


def training_parts(model: str) -> dict:
    """The checkpoint's components as training uses them: eval mode, attention across a snippet's frames, and the
    empty prompt's embedding under ``"context"``."""
    parts = load_components(model)
    parts["unet"].eval()
    parts["vae"].eval()
    enable_multi_frame_attention(parts["unet"])
    parts["context"] = encode_empty_prompt(parts["tokenizer"], parts["text_encoder"])
    return parts


@torch.no_grad()
def batch_losses(parts: dict, data: SyntheticVideos, cfg: TrainConfig, n_batches: int, seed: int = 0) -> np.ndarray:
    """The loss of each of ``n_batches`` fixed batches drawn from ``data``."""
    losses = []
    for i in range(n_batches):
        rng, generator = step_rng(seed, i)
        length, rgb, target, _ = data.snippet_batch(rng, cfg)
        losses.append(float(unet_loss(parts["unet"], parts["vae"], parts["scheduler"], parts["context"], rgb, target,
                                      length, generator, cfg.one_step_fraction)))
    return np.asarray(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["src/rolldepth/weights/default"])
    parser.add_argument("--seen", nargs="+", required=True, help="dataset folders the model was trained on")
    parser.add_argument("--unseen", nargs="+", required=True, help="dataset folders of the same recipe, not trained on")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--frames-per-batch", type=int, default=24)
    parser.add_argument("--max-dilation", type=int, default=25)
    parser.add_argument("--one-step-fraction", type=float, default=0.7)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    groups = [SyntheticVideos(args.seen), SyntheticVideos(args.unseen)]
    cfg = TrainConfig(data="", crop=groups[0].frame_size(), frames_per_batch=args.frames_per_batch,
                      max_dilation=args.max_dilation, one_step_fraction=args.one_step_fraction)
    results = []
    for model in args.model:
        parts = training_parts(model)
        seen, unseen = (batch_losses(parts, data, cfg, args.batches) for data in groups)
        ratio = unseen / seen
        results.append({"model": model, "seen": round(seen.mean(), 4), "unseen": round(unseen.mean(), 4),
                        "ratio_of_means": round(unseen.mean() / seen.mean(), 3),
                        "batches_worse_unseen": int((ratio > 1).sum()), "batches": args.batches})
        print(json.dumps(results[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seen": args.seen, "unseen": args.unseen, "config": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

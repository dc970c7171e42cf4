"""The codec's ceiling: how much depth accuracy the VAE alone loses, before any UNet.

Each test video's TRUE inverse depth is normalised jointly over the video to [-1, 1] (2nd/98th percentiles, as in
training), encoded to latents and decoded (mean of the 3 channels, as the pipeline decodes), then scored exactly
as `rolldepth eval` scores a prediction (one scale and shift per video, disparity space). RGB frames are round-
tripped too (PSNR). A perfect codec gives AbsRel 0 and delta1 100: whatever the UNet does, the model cannot beat
these figures.

With --per-frame, each frame is normalised alone (a per-frame prediction's target), its round trip aligned to
that frame alone, and AbsRel reported per video and for the videos where a moving object fills more than 5 % of
the view on average (fly-bys, which squeeze the rest of the frame into a narrow band of the range) and the others.

    python benchmarks/codec_ceiling.py --data /work/data/test [--model DIR] [--per-frame [--save-predictions DIR]]

``--save-predictions DIR`` keeps the per-frame round trips as ``rolldepth eval --save-predictions`` keeps a
model's (``DIR/<video>/per-frame.npy``), so ``benchmarks/error_decomposition.py`` can split the codec's loss into
the static scene and the moving objects as it does a model's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from rolldepth.model.checkpoint import load_components
from rolldepth.data.benchmarks import DATASETS, load_dataset
from rolldepth.evaluate.metrics import abs_rel, align_depth, eval_mask, evaluate_video, mean_over_videos
from rolldepth.train.trainer import normalise_snippet
from rolldepth.weights import default_model


@torch.no_grad()
def round_trip(vae, images: torch.Tensor, batch: int = 16) -> torch.Tensor:
    out = []
    for first in range(0, len(images), batch):
        chunk = images[first : first + batch]
        latents = vae.encode(chunk.to(vae.device)).latent_dist.mean
        out.append(vae.decode(latents).sample.clamp(-1, 1).cpu())
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the embedded model)")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--per-frame", action="store_true", help="normalise and align each frame alone")
    parser.add_argument("--save-predictions", type=Path, metavar="DIR",
                        help="with --per-frame: write each video's round trips to DIR/<video>/per-frame.npy")
    args = parser.parse_args()
    if args.save_predictions and not args.per_frame:
        parser.error("--save-predictions needs --per-frame")
    vae = load_components(args.model or default_model())["vae"].to(args.device)
    if args.per_frame:
        return per_frame(vae, args)
    depth_rows, psnrs = [], []
    for sample in load_dataset("synth", args.data):
        gt = np.asarray(sample.depth, dtype=np.float32)
        target = torch.from_numpy(normalise_snippet(gt))[:, None].expand(-1, 3, -1, -1)
        decoded = round_trip(vae, target).mean(1).numpy()
        depth_rows.append(evaluate_video(decoded, gt, sample.valid, DATASETS["synth"].max_depth))
        rgb = torch.from_numpy(np.asarray(sample.frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
        mse = float(((round_trip(vae, rgb) - rgb) ** 2).mean())
        psnrs.append(10 * np.log10(4.0 / mse))
    summary = mean_over_videos(depth_rows)
    result = dict(inverse_depth_abs_rel=summary["abs_rel"] * 100, inverse_depth_delta1=summary["delta1"],
                  rgb_psnr_db=float(np.mean(psnrs)), videos=len(depth_rows))
    print(f"codec round trip of true inverse depth: AbsRel {result['inverse_depth_abs_rel']:.2f} (x100), "
          f"delta1 {result['inverse_depth_delta1']:.2f} %; RGB PSNR {result['rgb_psnr_db']:.2f} dB "
          f"({len(depth_rows)} videos)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def per_frame(vae, args) -> None:
    """The codec's loss on per-frame targets, each frame aligned alone, split into fly-by and other videos."""
    groups: dict[str, list[float]] = {"fly-by": [], "other": []}
    rows = []
    for sample in load_dataset("synth", args.data):
        gt = np.asarray(sample.depth, dtype=np.float32)
        target = np.stack([normalise_snippet(gt[i : i + 1])[0] for i in range(len(gt))])
        decoded = round_trip(vae, torch.from_numpy(target)[:, None].expand(-1, 3, -1, -1)).mean(1).numpy()
        if args.save_predictions:
            (args.save_predictions / sample.name).mkdir(parents=True, exist_ok=True)
            np.save(args.save_predictions / sample.name / "per-frame.npy", decoded.astype(np.float32))
        mask = eval_mask(gt, sample.valid, sample.min_depth, sample.max_depth)
        aligned = np.stack([align_depth(decoded[i : i + 1], gt[i : i + 1], mask[i : i + 1], "disparity",
                                        sample.min_depth, sample.max_depth)[0] for i in range(len(gt))])
        error = 100 * abs_rel(aligned, gt, mask)
        cover = (sample.objects > 0).mean(axis=(1, 2)) if sample.objects is not None else np.zeros(len(gt))
        flyby, covered = float(cover.mean()) > 0.05, int((cover > 0.05).sum())  # frames a mover fills > 5 % of
        groups["fly-by" if flyby else "other"].append(error)
        rows.append(dict(name=sample.name, flyby=flyby, abs_rel=error, frames_over_5_percent=covered))
        print(f"{sample.name} {'fly-by' if flyby else 'other '} AbsRel {error:.2f}; moving objects fill > 5 % of "
              f"the view in {covered} of {len(gt)} frames", flush=True)
    means = {name: float(np.mean(values)) for name, values in groups.items() if values}
    print("codec round trip of per-frame targets, each frame aligned alone (AbsRel x100): "
          + ", ".join(f"{name} {value:.2f} ({len(groups[name])} videos)" for name, value in means.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"per_frame_abs_rel": means, "videos": rows}, f, indent=1)


if __name__ == "__main__":
    main()

"""``rolldepth train``: its options and the command. The training code (torch) loads only when the command runs."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ..data.synth import size_argument
from .config import TrainConfig

log = logging.getLogger(__name__)


def register_cli(subparsers) -> None:
    """``rolldepth train --data SYNTH_DIR -o OUT [--init MODEL] ...``"""
    d = TrainConfig(data="")
    p = subparsers.add_parser(
        "train", help="train the small model from scratch, or fine-tune a checkpoint, on synthetic videos",
        description="Multi-frame training on a `rolldepth synth` dataset. Re-running the same command resumes from "
        "the last saved state; the model is written to OUT/model (diffusers layout, loadable with --model).",
    )
    p.add_argument("--data", required=True, nargs="+",
                   help="dataset folder(s) written by `rolldepth synth`, sampled as one")
    p.add_argument("-o", "--output-dir", required=True, type=Path, help="run folder (state, loss log, model)")
    p.add_argument("--init", help="checkpoint folder or hub id to fine-tune (default: the small model from scratch)")
    p.add_argument("--vae-steps", type=int, default=d.vae_steps, help=f"codec steps from scratch ({d.vae_steps})")
    p.add_argument("--unet-steps", type=int, default=d.unet_steps, help=f"UNet steps ({d.unet_steps})")
    p.add_argument("--lr", type=float, help=f"UNet learning rate ({d.unet_lr} from scratch, 3e-5 with --init)")
    p.add_argument("--frames-per-batch", type=int, default=d.frames_per_batch,
                   help=f"frames per UNet batch ({d.frames_per_batch})")
    p.add_argument("--accumulate", type=int, default=d.accumulate, metavar="K",
                   help="UNet stage: average the gradients of K batches of --frames-per-batch frames in each step "
                   "(K times the batch at the memory of one; on a CPU small batches are faster per frame) (1)")
    p.add_argument("--vae-batch", type=int, default=d.vae_batch, help=f"images per codec batch ({d.vae_batch})")
    p.add_argument("--codec-loss", choices=("l1", "relative"), default=d.codec_loss,
                   help="codec stage: plain L1, or L1 relative to disparity on depth images (default l1)")
    p.add_argument("--one-step-fraction", type=float, default=d.one_step_fraction,
                   help=f"share of UNet snippets trained at t=999, the one-step regime of inference "
                   f"({d.one_step_fraction})")
    p.add_argument("--crop", type=size_argument("128x96"), default=d.crop, help="training crop WIDTHxHEIGHT (128x96)")
    p.add_argument("--max-dilation", type=int, default=d.max_dilation,
                   help=f"largest snippet dilation drawn ({d.max_dilation}); inference uses up to 25, which needs "
                   "sequences of at least 51 frames")
    p.add_argument("--processing-res", type=int, default=d.processing_res,
                   help=f"inference resolution recommended in the saved model ({d.processing_res})")
    p.add_argument("--save-every", type=int, default=d.save_every, help=f"steps between saved states ({d.save_every})")
    p.add_argument("--save-fp16", action="store_true", help="write the final weights in half precision")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=d.workers, help="processes drawing batches (default 0)")
    p.add_argument("--vae-minutes", type=float, help="codec stage: as many steps as fit in this time "
                   "(at most --vae-steps)")
    p.add_argument("--unet-minutes", type=float, help="UNet stage: as many steps as fit in this time "
                   "(at most --unet-steps)")
    p.add_argument("--cache-latents", action="store_true",
                   help="UNet stage: encode each RGB frame (and its mirror image) once and keep its latent; needs "
                   "--crop equal to the data's frame size")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    cfg = TrainConfig(
        data=";".join(args.data), init=args.init, vae_steps=args.vae_steps, unet_steps=args.unet_steps,
        unet_lr=args.lr if args.lr is not None else (3e-5 if args.init else TrainConfig.unet_lr),
        frames_per_batch=args.frames_per_batch,
        crop=tuple(args.crop), processing_res=args.processing_res, save_every=args.save_every, seed=args.seed,
        save_fp16=args.save_fp16, workers=args.workers, vae_minutes=args.vae_minutes,
        unet_minutes=args.unet_minutes, codec_loss=args.codec_loss, vae_batch=args.vae_batch,
        one_step_fraction=args.one_step_fraction, max_dilation=args.max_dilation, accumulate=args.accumulate,
    )
    cfg.check()  # before the trainer's import loads torch
    from .trainer import train

    tic = time.perf_counter()
    path = train(cfg, args.output_dir, progress=os.environ.get("TQDM_DISABLE") != "1", cache_latents=args.cache_latents)
    log.info("model written to %s in %.0f s", path, time.perf_counter() - tic)
    return 0

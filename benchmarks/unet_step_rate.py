"""Training throughput of the UNet stage for a few batch sizes: frames per second of one full training step.

The step is the trainer's own (codec encoding, ``unet_loss``, backward, AdamW), on random images of the crop size,
so data loading is left out. ``--cache-latents`` runs it through the trainer's ``LatentCache`` as ``rolldepth train
--cache-latents`` does, with each step's frames drawn from a pool of 20 batches' worth of images, so the number of
new frames to encode changes from step to step as in a real run (``--no-pad``: without the GPU padding of those
encodes, to show what it saves). On a GPU a small UNet is bound by launch overhead long before arithmetic, so a
larger batch can be nearly free; this measures it instead of guessing. Prints one line per batch size and, last, the
batch size to use: going up in size, a batch replaces the one kept so far when its frames/s beats that one's by at
least ``--min-gain``.

``--profile FILE`` then runs a few more steps of that batch size under torch's profiler and writes where a step's
time goes: the wall time of a step, how much of it the device's kernels were busy, and the operators that took the
most (device time on a GPU, CPU time on the CPU). The throughput figures never include the profiler's overhead.

    python benchmarks/unet_step_rate.py --model src/rolldepth/weights/default --crop 192x144 --batches 192 384 576
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

from rolldepth.data.synth import size_argument
from rolldepth.model.attention import enable_multi_frame_attention
from rolldepth.model.checkpoint import encode_empty_prompt, load_components
from rolldepth.train.trainer import LatentCache, unet_loss


def frames_per_second(parts, device, crop, frames, steps, warmup=5, length=3, cache=None, profile: Path | None = None
                      ) -> float:
    """``cache``: None, or whether a ``LatentCache`` pads its encodes; ``profile``: profile the timed steps and
    write the summary there (:func:`write_profile`)."""
    unet = parts["unet"].to(device).train().requires_grad_(True)
    vae = parts["vae"].to(device).eval().requires_grad_(False)
    context = encode_empty_prompt(parts["tokenizer"], parts["text_encoder"]).to(device)
    cuda = device.type == "cuda"
    if cuda:
        unet.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-5)
    frames -= frames % length
    width, height = crop
    rgb = torch.rand(frames, 3, height, width, device=device) * 2 - 1
    target = torch.rand(frames, 1, height, width, device=device) * 2 - 1
    generator = torch.Generator().manual_seed(0)
    latent_cache = None if cache is None else LatentCache(20 * frames, pad_batches=cache)
    profiler = None
    with contextlib.ExitStack() as profiling:  # the profiler, if any, stops at the end of the timed steps
        for step in range(warmup + steps):
            if step == warmup:
                if cuda:
                    torch.cuda.synchronize()
                if profile:
                    activities = [torch.profiler.ProfilerActivity.CPU] + [torch.profiler.ProfilerActivity.CUDA] * cuda
                    profiler = profiling.enter_context(torch.profiler.profile(activities=activities))
                tic = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                latents = None
                if latent_cache is not None:
                    keys = torch.randint(0, latent_cache.n_images, (frames,), generator=generator)
                    latents = latent_cache(vae, rgb, keys)
                loss = unet_loss(unet, vae, parts["scheduler"], context, rgb, target, length, generator, 0.7, latents)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - tic
    if profiler is not None:
        write_profile(profiler, profile, frames, steps, seconds, cuda)
    return frames * steps / seconds


def write_profile(profiler, path: Path, frames: int, steps: int, seconds: float, cuda: bool, rows: int = 40) -> None:
    """The profiled steps' summary: per step, the wall time and the time the device's kernels (on the CPU, the
    operators' own CPU time) add up to, then the operators sorted by that time."""
    events = profiler.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    busy = sum(getattr(event, key) for event in events) / 1e3 / steps  # microseconds -> ms per step
    wall = seconds * 1e3 / steps
    lines = [f"{frames} frames per batch, {steps} steps profiled on {'cuda' if cuda else 'cpu'}",
             f"wall {wall:.1f} ms a step (with the profiler's overhead); {'device kernels' if cuda else 'operators'} "
             f"busy {busy:.1f} ms ({100 * busy / wall:.0f} %)", "",
             events.table(sort_by=key, row_limit=rows)]
    Path(path).write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="src/rolldepth/weights/default")
    parser.add_argument("--crop", type=size_argument("192x144"), default=(192, 144))
    parser.add_argument("--batches", type=int, nargs="+", default=[192, 384, 576])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--min-gain", type=float, default=1.25)
    parser.add_argument("--cache-latents", action="store_true", help="encode RGB frames through the latent cache")
    parser.add_argument("--no-pad", action="store_true", help="with --cache-latents: do not pad the encodes")
    parser.add_argument("--profile", type=Path, help="profile a few steps of the chosen batch size, summary to FILE")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parts = load_components(args.model)
    enable_multi_frame_attention(parts["unet"])
    cache = (not args.no_pad and device.type == "cuda") if args.cache_latents else None
    best, best_rate = None, 0.0
    for frames in sorted(args.batches):
        rate = frames_per_second(parts, device, args.crop, frames, args.steps, cache=cache)
        print(json.dumps({"frames_per_batch": frames, "crop": list(args.crop), "frames_per_s": round(rate, 1),
                          "steps_per_s": round(rate / frames, 2), "device": device.type,
                          "latent_cache": "off" if cache is None else "padded" if cache else "unpadded"}), flush=True)
        if best is None or rate >= args.min_gain * best_rate:
            best, best_rate = frames, rate
    print(best, flush=True)  # the only line that is a bare number (the profiler may log to stderr after it)
    if args.profile:
        frames_per_second(parts, device, args.crop, best, 3, cache=cache, profile=args.profile)


if __name__ == "__main__":
    main()

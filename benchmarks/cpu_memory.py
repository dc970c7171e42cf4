"""Peak memory of each model call on the CPU, per pixel, against the rates the batch planner assumes.

The CPU allocator keeps no statistics, so each measurement runs in a fresh process that samples its own resident
memory every millisecond around one call. glibc's dynamic mmap threshold is pinned (``MALLOC_MMAP_THRESHOLD_``), so
every large tensor is mapped on allocation and unmapped when freed and the resident size follows the live tensors.
Each call runs with one and with two items (frames for the VAE, 3-frame snippets for the UNet), on the embedded
model and on a random-init model of prs-eth/rollingdepth-v1-0's shapes (SD2; the weights' values do not change the
memory). Rates are bytes per pixel (image pixels for the VAE, latent pixels of each frame for the UNet) per channel
of the model's first block; ``rolldepth.model.vram.CPU_BYTES_PER_PIXEL`` must be at least every measured rate.

    python benchmarks/cpu_memory.py [--size 256x384] [--models embedded,sd2,tiny]   # about 6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

SNIPPET = 3


def measure(model: str, op: str, items: int, height: int, width: int) -> dict:
    """Peak resident bytes above the level before one ``op`` call on ``items`` items (run in this process), and
    the model's widths that the planner's rates are per channel of."""
    import torch

    torch.set_num_threads(2)
    if model == "embedded":
        from rolldepth.model.pipeline import RollingDepthPipeline

        pipe = RollingDepthPipeline.from_pretrained(None)
    else:
        from rolldepth.apps.bench_gpu import build_pipeline

        pipe = build_pipeline(model, "cpu")
    factor = pipe.vae_factor
    channels = int(pipe.vae.config.latent_channels)

    @torch.no_grad()
    def call(n: int, h: int, w: int):
        if op == "encode":
            pipe.vae.encode(torch.zeros(n, 3, h, w))
        elif op == "decode":
            pipe.vae.decode(torch.zeros(n, channels, h // factor, w // factor))
        else:
            x = torch.zeros(n * SNIPPET, 2 * channels, h // factor, w // factor)
            context = pipe.empty_embedding.expand(len(x), -1, -1)
            pipe.unet(x, torch.tensor(999), encoder_hidden_states=context,
                      cross_attention_kwargs={"num_frames": SNIPPET})

    page = os.sysconf("SC_PAGE_SIZE")

    def resident() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    call(1, 8 * factor, 8 * factor)  # first-call set-up (thread pools, kernels) is not the op's cost
    base, peak, done = resident(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    call(items, height, width)
    done.set()
    sampler.join()
    from rolldepth.process.runner import ModelShape

    shape = ModelShape.of_pipe(pipe)
    return {"peak": max(peak[0], resident()) - base, "vae_width": shape.vae_width, "unet_width": shape.unet_width,
            "vae_factor": shape.vae_factor}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="256x384", help="image HxW of the measured calls (256x384)")
    parser.add_argument("--models", default="embedded,sd2,tiny", help="any of embedded, sd2, tiny (the tests' shapes)")
    parser.add_argument("--one", nargs=4, metavar=("MODEL", "OP", "ITEMS", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # the child process: one measurement, printed as one JSON line
        model, op, items, size = args.one
        height, width = (int(v) for v in size.split("x"))
        print(json.dumps(measure(model, op, int(items), height, width)))
        return 0

    from rolldepth.model.vram import CPU_BYTES_PER_PIXEL

    height, width = (int(v) for v in args.size.split("x"))
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072", OMP_NUM_THREADS="2")
    print(f"image {height}x{width}; bytes per pixel per channel of the first block (planner: "
          f"{CPU_BYTES_PER_PIXEL})")
    print("| model | call | 1 item GB | 2 items GB | rate, 1 item | rate, each further item | planner's rate |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for model in args.models.split(","):
        for op in ("encode", "decode", "unet"):
            runs = []
            for items in (1, 2):
                out = subprocess.run([sys.executable, __file__, "--one", model, op, str(items), args.size], env=env,
                                     capture_output=True, text=True, check=True)
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            peaks = [run["peak"] for run in runs]
            factor = runs[0]["vae_factor"]
            if op == "unet":
                per = SNIPPET * (height // factor) * (width // factor) * runs[0]["unet_width"]
            else:
                per = height * width * runs[0]["vae_width"]
            one, further = peaks[0] / per, (peaks[1] - peaks[0]) / per
            worst = max(worst, one / CPU_BYTES_PER_PIXEL[op], further / CPU_BYTES_PER_PIXEL[op])
            print(f"| {model} | {op} | {peaks[0] / 1e9:.3f} | {peaks[1] / 1e9:.3f} | {one:.1f} | {further:.1f} | "
                  f"{CPU_BYTES_PER_PIXEL[op]} |", flush=True)
    print(f"largest measured / planned: {worst:.2f} (must be <= 1)")
    return 0 if worst <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())

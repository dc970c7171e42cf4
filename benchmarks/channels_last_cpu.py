"""Seconds per item of the VAE's encode and decode and of the UNet on the CPU, with the weights and activations
in PyTorch's default layout (NCHW) and in channels-last (NHWC), for the embedded model and a random-init model of
prs-eth/rollingdepth-v1-0's shapes (SD2; the weights' values do not change the time).

    python benchmarks/channels_last_cpu.py [--size 144x192] [--models embedded,sd2] [--repeats 3]

Each model is loaded once; each call runs once to warm up, then ``--repeats`` times (the mean is printed), with 4
frames (VAE) or 4 snippets of 3 frames (UNet) per call as ``rolldepth run`` batches them on the CPU.
"""

from __future__ import annotations

import argparse
import time

import torch

SNIPPET, BATCH = 3, 4


def load(model: str):
    if model == "embedded":
        from rolldepth.model.pipeline import RollingDepthPipeline

        return RollingDepthPipeline.from_pretrained(None)
    from rolldepth.apps.bench_gpu import build_pipeline

    return build_pipeline(model, "cpu")


@torch.inference_mode()
def seconds(pipe, op: str, height: int, width: int, repeats: int, layout: torch.memory_format) -> float:
    factor, channels = pipe.vae_factor, int(pipe.vae.config.latent_channels)
    h, w = height // factor, width // factor
    if op == "encode":
        x = torch.rand(BATCH, 3, height, width)
        call = lambda: pipe.vae.encode(x.contiguous(memory_format=layout))  # noqa: E731
    elif op == "decode":
        z = torch.randn(BATCH, channels, h, w)
        call = lambda: pipe.vae.decode(z.contiguous(memory_format=layout))  # noqa: E731
    else:
        x = torch.randn(BATCH * SNIPPET, 2 * channels, h, w)
        context = pipe.empty_embedding.expand(len(x), -1, -1)
        call = lambda: pipe.unet(x.contiguous(memory_format=layout), torch.tensor(999),  # noqa: E731
                                 encoder_hidden_states=context, cross_attention_kwargs={"num_frames": SNIPPET})
    call()
    tic = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - tic) / repeats / BATCH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="144x192", help="HxW of the frames (default 144x192: the embedded model's)")
    parser.add_argument("--models", default="embedded,sd2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    print(f"seconds per item on the CPU ({torch.get_num_threads()} threads), {height}x{width}; UNet: a snippet of 3")
    print("| model | call | NCHW s | channels-last s | speed-up |\n|---|---|---|---|---|")
    for model in args.models.split(","):
        pipe = load(model)
        for op in ("encode", "decode", "unet"):
            times = {}
            for layout in (torch.contiguous_format, torch.channels_last):
                for part in (pipe.vae, pipe.unet):
                    part.to(memory_format=layout)
                times[layout] = seconds(pipe, op, height, width, args.repeats, layout)
            base, last = times[torch.contiguous_format], times[torch.channels_last]
            print(f"| {model} | {op} | {base:.3f} | {last:.3f} | {base / last:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

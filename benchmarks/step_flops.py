"""Floating-point work of one UNet training step, per frame: the codec's encoder (run for every depth target, and
for RGB frames not yet in the latent cache) against the UNet's forward and backward pass.

Divided into a measured step rate it says how much of an accelerator the training uses: the eighth run's 1624
frames/s (`benchmarks/results/v2_gpu_run9/`) is about 43 TFLOP/s, a few per cent of an H200's bf16 peak.

    python benchmarks/step_flops.py [--model DIR] [--size 192x144]
"""

from __future__ import annotations

import argparse

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from rolldepth.model.pipeline import RollingDepthPipeline
from rolldepth.train.trainer import encode_mean
from rolldepth.weights import default_model


def flops_per_frame(fn, frames: int) -> float:
    """GFLOP of one call of ``fn``, per frame (torch's counter: 2 per multiply-add). Attention runs on the math
    backend, whose matrix products the counter sees (it counts no fused CPU attention kernel)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / frames / 1e9


def step_flops(pipe, width: int, height: int, backward: bool = True) -> tuple[float, float]:
    """GFLOP per frame of the codec's encoder and of the UNet's forward (and, with ``backward``, backward) pass on
    snippets of three ``width`` x ``height`` frames, as most training snippets are."""
    frames, length = 6, 3
    rgb = torch.rand(frames, 3, height, width) * 2 - 1
    with torch.no_grad():
        encode = flops_per_frame(lambda: encode_mean(pipe.vae, rgb), frames)
        latents = encode_mean(pipe.vae, rgb)
    unet = pipe.unet.train().requires_grad_(True)
    x, steps = torch.cat([latents, latents], dim=1), torch.full((frames,), 999)
    context = pipe.empty_embedding.expand(frames, -1, -1)

    def unet_pass():
        out = unet(x, steps, encoder_hidden_states=context, cross_attention_kwargs={"num_frames": length}).sample
        if backward:
            out.square().mean().backward()

    return encode, flops_per_frame(unet_pass, frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(default_model()), help="checkpoint folder (default: the embedded model)")
    parser.add_argument("--size", default="192x144", help="frame size WxH (default 192x144, the training size)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    encode, unet_flops = step_flops(RollingDepthPipeline.from_pretrained(args.model), width, height)
    print(f"per frame at {width}x{height}: codec encoder {encode:.2f} GFLOP, UNet forward + backward {unet_flops:.2f} GFLOP")
    for cached in (1.0, 0.54, 0.0):
        total = unet_flops + encode * (2 - cached)
        print(f"RGB latents {cached:.0%} cached: {total:.1f} GFLOP a frame, {encode * (2 - cached) / total:.0%} of it the "
              f"encoder; at 1624 frames/s {total * 1624 / 1e3:.0f} TFLOP/s")


if __name__ == "__main__":
    main()

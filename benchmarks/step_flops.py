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

from rolldepth.data.synth import size_argument
from rolldepth.model.attention import enable_multi_frame_attention
from rolldepth.model.checkpoint import encode_empty_prompt, load_components
from rolldepth.train.trainer import encode_mean, unet_loss
from rolldepth.weights import default_model


def flops_per_frame(fn, frames: int) -> float:
    """GFLOP of one call of ``fn``, per frame (torch's counter: 2 per multiply-add). Attention runs on the math
    backend, whose matrix products the counter sees (it counts no fused CPU attention kernel)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / frames / 1e9


def step_flops(parts, width: int, height: int, backward: bool = True) -> tuple[float, float]:
    """GFLOP per frame of the codec's encoder and of the UNet's forward (and, with ``backward``, backward) pass in
    the trainer's own step (``unet_loss`` with the RGB latents given), on snippets of three ``width`` x ``height``
    frames, as most training snippets are. The step's count less one encode (its depth target's) is the UNet's."""
    unet, vae = parts["unet"].train().requires_grad_(True), parts["vae"].eval().requires_grad_(False)
    context = encode_empty_prompt(parts["tokenizer"], parts["text_encoder"])
    frames, length = 6, 3
    rgb = torch.rand(frames, 3, height, width) * 2 - 1
    target = torch.rand(frames, 1, height, width) * 2 - 1
    with torch.no_grad():
        encode = flops_per_frame(lambda: encode_mean(vae, rgb), frames)
        latents = encode_mean(vae, rgb)

    def step():
        loss = unet_loss(unet, vae, parts["scheduler"], context, rgb, target, length, torch.Generator().manual_seed(0),
                         0.7, latents)
        if backward:
            loss.backward()

    return encode, flops_per_frame(step, frames) - encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(default_model()), help="checkpoint folder (default: the embedded model)")
    parser.add_argument("--size", type=size_argument("192x144"), default=(192, 144),
                        help="frame size WxH (default 192x144, the training size)")
    args = parser.parse_args()
    width, height = args.size
    parts = load_components(args.model)
    enable_multi_frame_attention(parts["unet"])
    encode, unet_flops = step_flops(parts, width, height)
    print(f"per frame at {width}x{height}: codec encoder {encode:.2f} GFLOP, UNet forward + backward "
          f"{unet_flops:.2f} GFLOP")
    for cached in (1.0, 0.54, 0.0):
        total = unet_flops + encode * (2 - cached)
        print(f"RGB latents {cached:.0%} cached: {total:.1f} GFLOP a frame, {encode * (2 - cached) / total:.0%} of it "
              f"the encoder; at 1624 frames/s {total * 1624 / 1e3:.0f} TFLOP/s")


if __name__ == "__main__":
    main()

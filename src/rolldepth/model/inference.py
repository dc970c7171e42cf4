"""The UNet side of the pipeline: one DDIM step of whole snippets, and one-step prediction of a snippet group."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from .codec import gather
from .progress import progress_bar


def shared_noise(pipe, shape, generator: torch.Generator | None) -> torch.Tensor:
    """The one noise map of a latent's ``shape`` that every frame shares (drawn on the CPU in float32)."""
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    return noise.to(pipe.device, pipe.unet.dtype)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a stage's seconds are its own."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def denoise(pipe, rgb_latents, depth_latents, timestep, n_frames: int) -> torch.Tensor:
    """One DDIM step of the depth latents of whole snippets ([(B*L), 4, h, w], frames of a snippet consecutive)."""
    unet_in = torch.cat([rgb_latents, depth_latents], dim=1).to(pipe.unet.dtype)
    context = pipe.empty_embedding.expand(len(unet_in), -1, -1)
    v_pred = pipe.unet(
        unet_in, timestep, encoder_hidden_states=context, cross_attention_kwargs={"num_frames": n_frames}
    ).sample
    return pipe.scheduler.step(v_pred, timestep, depth_latents).prev_sample


def predict_snippets(
    pipe, rgb_latents, noise, indices, batch, vae_batch, size, progress, *, out=None, start: int = 0,
    on_batch: Callable[[int], None] | None = None, timings: dict[str, float] | None = None,
) -> np.ndarray:
    """One-step prediction at t=999 for every snippet of a group: [K, L, H, W] float32 inverse depth.

    Written into ``out`` (any array indexed by row slices) from snippet ``start`` on, which must be a multiple
    of ``batch`` (a resumed run starts at the batch after the last one recorded); ``on_batch`` is called with
    the number of snippets done after each batch. ``timings`` (if given) accumulates the seconds of the UNet
    (``snippets_unet``) and of decoding (``snippets_decode``).
    """
    n_snippets, length = indices.shape
    pipe.scheduler.set_timesteps(1, device=pipe.device)
    timestep = pipe.scheduler.timesteps[0]
    if out is None:
        out = np.empty((n_snippets, length, *size), dtype=np.float32)
    desc = f"Snippets ({length} frames)"
    bar = progress_bar(progress, n_snippets, desc, start)
    for first in range(start, n_snippets, batch):
        idx = indices[first : first + batch].reshape(-1)
        tic = time.perf_counter()
        latents = pipe.denoise(gather(pipe, rgb_latents, idx), noise.expand(len(idx), -1, -1, -1), timestep, length)
        sync(pipe.device)
        toc = time.perf_counter()
        out[first : first + batch] = pipe.decode(latents, size, vae_batch).reshape(-1, length, *size)
        if timings is not None:
            timings["snippets_unet"] = timings.get("snippets_unet", 0.0) + toc - tic
            timings["snippets_decode"] = timings.get("snippets_decode", 0.0) + time.perf_counter() - toc
        bar.update(len(idx) // length)
        if on_batch:
            on_batch(min(first + batch, n_snippets))
    bar.close()
    return out

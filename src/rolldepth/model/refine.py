"""Partial-diffusion refinement of the merged video (the official RollingDepth refinement)."""

from __future__ import annotations

import numpy as np
import torch
from ..errors import UserError
from ..method.snippets import refine_dilations, snippet_indices
from .codec import encode_depth, gather
from .progress import progress_bar

REFINE_SKIP_RATIO = 0.5  # refinement starts half-way down the noise schedule (t=499 of 1000)


def refine(pipe, depth, rgb_latents, noise, steps, length, start_dilation, cap, batch, vae_batch, progress,
           out=None):
    """Partial diffusion from t=499 with snippet dilations shrinking to 1; after EVERY step each frame's latent
    is the mean over all snippets that contain it (the official refinement).

    ``depth`` is read and ``out`` written one VAE batch at a time, but the latents of the whole video stay in
    memory while refining (every step touches all of them).
    """
    n_frames, height, width = depth.shape
    total = int(steps / REFINE_SKIP_RATIO)
    if total > pipe.scheduler.config.num_train_timesteps:
        raise UserError(f"too many refinement steps: {steps}")
    pipe.scheduler.set_timesteps(total, device=pipe.device)
    timesteps = pipe.scheduler.timesteps[int(total * REFINE_SKIP_RATIO) :]
    schedule = refine_dilations(len(timesteps), start_dilation, n_frames, length, cap=cap)

    rgb_all = gather(pipe, rgb_latents, np.arange(n_frames))
    clean = encode_depth(pipe, depth, vae_batch, progress)
    noise_all = noise.expand(n_frames, -1, -1, -1)
    latents = pipe.scheduler.add_noise(clean, noise_all.to(clean.dtype), timesteps[:1])

    with progress_bar(progress, len(schedule), "Refining") as bar:
        for timestep, dilation in zip(timesteps, schedule):
            latents = snippet_mean_step(pipe, rgb_all, latents, timestep, dilation, length, batch)
            bar.update()
    if out is None:
        out = np.empty((n_frames, height, width), dtype=np.float32)
    for first in range(0, n_frames, vae_batch):
        out[first : first + vae_batch] = pipe.decode(latents[first : first + vae_batch], (height, width), vae_batch)
    return out


def snippet_mean_step(pipe, rgb_all, latents, timestep, dilation: int, length: int, batch: int) -> torch.Tensor:
    """One refinement step: every snippet of ``dilation`` denoised, each frame's latent the mean of its snippets'."""
    n_frames = len(latents)
    indices = snippet_indices(n_frames, dilation, min(length, n_frames))
    total_latents = torch.zeros_like(latents)
    counts = torch.zeros(n_frames, dtype=latents.dtype, device=latents.device)
    for start in range(0, len(indices), batch):
        idx = torch.from_numpy(indices[start : start + batch].reshape(-1)).to(latents.device)
        stepped = pipe.denoise(rgb_all[idx], latents[idx], timestep, indices.shape[1])
        total_latents.index_add_(0, idx, stepped.to(latents.dtype))
        counts.index_add_(0, idx, torch.ones(len(idx), dtype=latents.dtype, device=latents.device))
    return total_latents / counts[:, None, None, None]

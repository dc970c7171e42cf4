"""Batch sizes from the accelerator's free memory, so the same command fits a 6 GB card and fills an 80 GB one.

The memory one more snippet (UNet) or one more frame (VAE) costs is measured, not guessed: a probe runs each model
on one and on two items and reads the allocator's peak, which gives a fixed part (workspaces) and a part per item.
The largest batch whose predicted peak fits the budget is then used. On the CPU nothing is probed and the given
defaults apply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import UserError

log = logging.getLogger(__name__)

CPU_BATCH = 4  # snippets per UNet call and frames per VAE call when nothing is measured
MAX_BATCH = 32  # beyond this a bigger batch no longer speeds anything up, only holds memory
HEADROOM = 0.9  # share of the budget planned for: the allocator rounds and fragments


@dataclass(frozen=True)
class BatchPlan:
    """Snippets per UNet call and frames per VAE call, and the peak memory predicted for them (bytes)."""

    batch_size: int
    vae_batch_size: int
    predicted_peak: int | None = None


def largest_batch(available: float, fixed: float, per_item: float, cap: int = MAX_BATCH) -> int:
    """The largest ``b`` in ``1..cap`` with ``fixed + b * per_item <= available``; 0 if not even one fits."""
    if fixed + per_item > available:
        return 0
    if per_item <= 0:
        return cap
    return int(max(1, min(cap, (available - fixed) // per_item)))


def linear_cost(peak_one: int, peak_two: int) -> tuple[int, int]:
    """(fixed, per item) bytes from the peaks measured with one and with two items."""
    per_item = max(peak_two - peak_one, 0)
    return max(peak_one - per_item, 0), per_item


def measure_peak(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated by ``fn`` above what was allocated before it."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def vram_budget(device: torch.device, max_vram_gb: float | None) -> tuple[int, int]:
    """(budget, in use now) in bytes: what this process may hold in all, and what its tensors already take."""
    free, total = torch.cuda.mem_get_info(device)
    in_use = torch.cuda.memory_allocated(device)
    reserved = torch.cuda.memory_reserved(device)
    budget = free + reserved  # what the card can still give us, counting our own cache
    if max_vram_gb is not None:
        budget = min(budget, int(max_vram_gb * 2**30))
    return budget, in_use


@torch.no_grad()
def plan_batches(pipe, latent_hw: tuple[int, int], snippet_len: int, batch_size: int | None,
                 vae_batch_size: int | None, max_vram_gb: float | None = None) -> BatchPlan:
    """Batch sizes for one run: the given ones, else measured to fit the device's memory (``max_vram_gb`` caps it).

    Raises
    ------
    UserError
        When even one snippet cannot fit under the cap.
    """
    device = pipe.device
    if device.type != "cuda" or (batch_size and vae_batch_size):  # nothing to measure, or nothing left to choose
        return BatchPlan(batch_size or CPU_BATCH, vae_batch_size or CPU_BATCH)
    budget, in_use = vram_budget(device, max_vram_gb)
    available = HEADROOM * budget - in_use
    h, w = latent_hw
    channels = int(pipe.vae.config.latent_channels)
    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    dtype = pipe.unet.dtype
    timestep = torch.tensor(999, device=device)

    def unet(n):
        x = torch.zeros(n * snippet_len, 2 * channels, h, w, device=device, dtype=dtype)
        context = pipe.empty_embedding.expand(len(x), -1, -1)
        return lambda: pipe.unet(x, timestep, encoder_hidden_states=context,
                                 cross_attention_kwargs={"num_frames": snippet_len})

    def decode(n):
        z = torch.zeros(n, channels, h, w, device=device, dtype=pipe.vae.dtype)
        return lambda: pipe.vae.decode(z)

    def encode(n):
        x = torch.zeros(n, 3, h * scale, w * scale, device=device, dtype=pipe.vae.dtype)
        return lambda: pipe.vae.encode(x)

    sizes = {}
    for name, make, given in (("unet", unet, batch_size), ("decode", decode, vae_batch_size),
                              ("encode", encode, vae_batch_size)):
        fixed, per_item = linear_cost(measure_peak(make(1), device), measure_peak(make(2), device))
        fit = largest_batch(available, fixed, per_item)
        if fit == 0:
            need = (in_use + fixed + per_item) / HEADROOM / 2**30
            raise UserError(f"not enough GPU memory: one {'snippet' if name == 'unet' else 'frame'} at this "
                            f"resolution needs about {need:.1f} GB in all, the budget is {budget / 2**30:.1f} GB"
                            + (" (--max-vram)" if max_vram_gb else "") + "; lower --res")
        sizes[name] = (given or fit, in_use + fixed + (given or fit) * per_item)
    plan = BatchPlan(sizes["unet"][0], min(sizes["decode"][0], sizes["encode"][0]),
                     max(peak for _, peak in sizes.values()))
    torch.cuda.empty_cache()
    log.info("GPU batches: %d snippets per UNet call, %d frames per VAE call (budget %.1f GB, predicted peak %.1f GB)",
             plan.batch_size, plan.vae_batch_size, budget / 2**30, plan.predicted_peak / 2**30)
    return plan

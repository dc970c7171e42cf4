"""Batch sizes from the memory at hand, so the same command fits a 6 GB card and fills an 80 GB one, and a big frame
on a small CPU machine runs in smaller batches instead of being killed by the OS.

On a GPU the memory one more snippet (UNet) or one more frame (VAE) costs is measured, not guessed: a probe runs each
model on one and on two items and reads the allocator's peak, which gives a fixed part (workspaces) and a part per
item. The largest batch whose predicted peak fits the budget is then used. The CPU has no allocator statistics to
read, so there the cost per item comes from :func:`cpu_item_bytes`, per-pixel rates measured once on the model
shapes this project runs (``python benchmarks/cpu_memory.py``), and the batches are the largest up to
:data:`CPU_BATCH` that fit the memory the OS can give.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError

log = logging.getLogger(__name__)

CPU_BATCH = 4  # most snippets per UNet call and frames per VAE call on the CPU, where larger batches are no faster
MAX_BATCH = 32  # beyond this a bigger batch no longer speeds anything up, only holds memory
HEADROOM = 0.9  # share of the budget planned for: the allocator rounds and fragments
# Bytes one item holds at its peak on the CPU, per pixel and per channel of the model's first block
# (``block_out_channels[0]``): a VAE encode and decode per image pixel of one frame, the UNet per latent pixel of each
# frame of a snippet. The largest rate for one item of the three model shapes measured, rounded up, since a further
# item costs no more (embedded / SD2-sized / the tests' tiny one at 256x384, in PyTorch's default layout: encode
# 17.4 / 20.2 / 22.0, decode 30.4 / 30.4 / 33.5, UNet 60.6 / 114.2 / 103.2; in the channels-last layout the pipeline
# now uses, at most these: encode 16.2 / 20.1 / 21.4, decode 24.1 / 24.2 / 29.9, UNet 60.0 / 116.2 / 103.1;
# ``python benchmarks/cpu_memory.py``, whose sampling of the resident size varies by a few per cent between runs).
CPU_BYTES_PER_PIXEL = {"encode": 23, "decode": 34, "unet": 120}


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


def cpu_item_bytes(image_hw: tuple[int, int], vae_factor: int, vae_width: int, unet_width: int,
                   snippet_len: int) -> dict[str, int]:
    """Peak bytes on the CPU of one item of each model at an image size: a frame for ``"vae"`` (the costlier of its
    encode and decode, which share one batch size), a snippet of ``snippet_len`` frames for ``"unet"``."""
    pixels = image_hw[0] * image_hw[1]
    rate = CPU_BYTES_PER_PIXEL
    return {"vae": max(rate["encode"], rate["decode"]) * vae_width * pixels,
            "unet": rate["unet"] * unet_width * snippet_len * (pixels // vae_factor**2)}


def available_memory() -> int | None:
    """Memory the OS can give this process without swapping (``MemAvailable``), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def plan_cpu_batches(costs: dict[str, int], batch_size: int | None, vae_batch_size: int | None,
                     available: int | None) -> BatchPlan:
    """The given batch sizes, else the largest up to :data:`CPU_BATCH` whose items (``costs``, from
    :func:`cpu_item_bytes`) fit ``available`` bytes; :data:`CPU_BATCH` where the memory is unknown.

    Raises
    ------
    UserError
        When a batch left to choose cannot hold even one item.
    """
    if available is None:
        return BatchPlan(batch_size or CPU_BATCH, vae_batch_size or CPU_BATCH)
    fit = {op: largest_batch(HEADROOM * available, 0, cost, cap=CPU_BATCH) for op, cost in costs.items()}
    batch = batch_size or fit["unet"]
    vae_batch = vae_batch_size or fit["vae"]
    if not batch or not vae_batch:
        need = costs["unet"] if not batch else costs["vae"]
        raise UserError(f"not enough memory: one {'snippet' if not batch else 'frame'} at this resolution needs "
                        f"about {need / 1e9:.1f} GB, {available / 1e9:.1f} GB is available; lower --res")
    peak = max(batch * costs["unet"], vae_batch * costs["vae"])
    if (batch, vae_batch) != (batch_size or CPU_BATCH, vae_batch_size or CPU_BATCH):
        log.info("CPU batches lowered to fit the memory: %d snippet(s) per UNet call, %d frame(s) per VAE call "
                 "(%.1f GB available, predicted peak %.1f GB)", batch, vae_batch, available / 1e9, peak / 1e9)
    return BatchPlan(batch, vae_batch, peak)


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
    """Batch sizes for one run: the given ones, else measured to fit the GPU's memory (``max_vram_gb`` caps it), or
    on the CPU the largest that :func:`plan_cpu_batches` finds fit the memory available.

    Raises
    ------
    UserError
        When even one snippet or frame cannot fit.
    """
    device = pipe.device
    h, w = latent_hw
    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    if batch_size and vae_batch_size:  # nothing left to choose
        return BatchPlan(batch_size, vae_batch_size)
    if device.type != "cuda":
        costs = cpu_item_bytes((h * scale, w * scale), scale, int(pipe.vae.config.block_out_channels[0]),
                               int(pipe.unet.config.block_out_channels[0]), snippet_len)
        return plan_cpu_batches(costs, batch_size, vae_batch_size, available_memory())
    budget, in_use = vram_budget(device, max_vram_gb)
    available = HEADROOM * budget - in_use
    channels = int(pipe.vae.config.latent_channels)
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

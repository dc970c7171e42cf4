"""The stages of :meth:`RollingDepthPipeline.run` with their storage and resume bookkeeping.

Every stage keeps its arrays in the run's store and records its progress there (frames encoded, snippets predicted
per group, the alignment, finished arrays); a stage already recorded is skipped, so an interrupted run resumes
where it stopped and computes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..method.coalign import COALIGN_SOLVERS, subsampled
from ..method.merge import global_min, merge_frames, renormalise, snippet_spread, video_range
from ..method.snippets import SnippetGroup, build_snippet_groups, check_refine_coverage
from ..storage.workdir import rows_in_blocks
from ..video.reading import resize_depth
from .progress import Report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kernels:
    """The rolling kernels of a run: snippet dilations and lengths, and those of the refinement."""

    dilations: tuple
    snippet_lengths: tuple
    cap: bool
    refine_steps: int
    refine_length: int
    refine_start: int

    def groups(self, n_frames: int) -> list[SnippetGroup]:
        """The snippet groups of a video of ``n_frames``; a refinement the video is too short for is refused."""
        groups = build_snippet_groups(n_frames, self.dilations, self.snippet_lengths, cap=self.cap)
        if self.refine_steps > 0:
            check_refine_coverage(self.refine_steps, self.refine_start, n_frames, self.refine_length, self.cap)
        return groups

    @property
    def longest_snippet(self) -> int:
        """Frames in the longest snippet any model call of the run takes (the refinement's included)."""
        return max([*self.snippet_lengths, self.refine_length if self.refine_steps > 0 else 1])


@contextmanager
def timed(timings: dict[str, float], key: str):
    """Record the seconds the block takes as ``timings[key]``."""
    tic = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - tic


def batch_sizes(pipe, store, kernels: Kernels, size, batch_size, vae_batch_size, max_vram) -> tuple[int, int]:
    """Snippets per UNet call and frames per VAE call: planned once per run and recorded, so a resumed run
    batches exactly as the first one did."""
    from .vram import plan_batches  # torch-free import of Kernels: the CLI checks them before torch loads

    batches = store.get("batches")
    if batches is None:
        plan = plan_batches(pipe, pipe.latent_shape(*size)[1:], kernels.longest_snippet, batch_size, vae_batch_size,
                            max_vram)
        batches = [plan.batch_size, plan.vae_batch_size]
        store.set("batches", batches)
    batch_size, vae_batch_size = (int(b) for b in batches)
    return batch_size, vae_batch_size


def encode_video(pipe, source, store, res: int, size, n_frames: int, groups, kernels: Kernels, vae_batch: int,
                 progress: bool | Report):
    """Stage 1: every frame encoded once, streamed in VAE batches. Returns the latents, the number of frames and
    the snippet groups (both smaller than planned when a damaged file stops decoding early)."""
    latents = store.array("latents", (source.n_frames, *pipe.latent_shape(*size)))
    done = int(store.get("encoded", 0))
    if done < n_frames:
        encoded = pipe.encode_frames(
            source.frames(done), res, latents, start=done, batch=vae_batch, progress=progress,
            on_chunk=lambda k: store.set("encoded", k),
        )
        if encoded == 0:
            raise UserError(f"none of the {n_frames} frames could be decoded (damaged data)")
        if encoded < n_frames:  # a damaged file: decoding stopped early
            log.warning("only %d of %d frames could be decoded; estimating depth for those", encoded, n_frames)
            n_frames = encoded
            groups = kernels.groups(n_frames)
            store.set("frames", n_frames)
    if len(latents) != n_frames:
        latents = latents[:n_frames] if isinstance(latents, np.ndarray) else latents.head(n_frames)
    return latents, n_frames, groups


def predict_groups(pipe, store, latents, noise, groups, size, batch: int, vae_batch: int, progress: bool | Report,
                   timings: dict[str, float]) -> list:
    """Stage 2: the one-step prediction of every snippet of every group, [K, L, h, w] per group."""
    snippets = []
    for g, group in enumerate(groups):
        key = f"snippets{g}"
        preds = store.array(key, (len(group), group.snippet_len, *size))
        done = int(store.get(key, 0))
        if done < len(group):
            pipe.predict_snippets(
                latents, noise, group.indices, batch, vae_batch, size, progress,
                out=preds, start=done, on_batch=lambda k, key=key: store.set(key, k), timings=timings,
            )
        snippets.append(preds)
    return snippets


def align_and_merge(store, snippets, groups, n_frames: int, size, coalign_mode: str):
    """Stages 3 and 4: co-alignment on subsampled, min-shifted predictions, then the merge frame by frame,
    renormalised in place. Returns the merged video and every group's scales and shifts."""
    alignment = store.get("alignment")
    if alignment is None:
        offset = global_min(snippets)
        result = COALIGN_SOLVERS[coalign_mode]([subsampled(p, offset) for p in snippets], groups, n_frames)
        log.info("co-alignment: objective %.5f after %d iterations", result.objective, result.iterations)
        alignment = dict(offset=offset, scales=[s.tolist() for s in result.scales],
                         shifts=[t.tolist() for t in result.shifts])
        store.set("alignment", alignment)
    offset, scales, shifts = _recorded_alignment(store)
    coaligned = store.array("merged", (n_frames, *size))
    if not store.get("merged") or store.get("merged_range") is None:
        merge_frames(snippets, groups, n_frames, scales, shifts, offset, out=coaligned)
        bounds = video_range(coaligned)
        store.set("merged_range", list(bounds))  # the renormalisation, which the uncertainty needs too
        renormalise(coaligned, out=coaligned, bounds=bounds)
        store.set("merged", True)
    return coaligned, scales, shifts


def _recorded_alignment(store) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """The co-alignment the store recorded: the offset, and every group's scales and shifts."""
    alignment = store.get("alignment")
    return (float(alignment["offset"]), [np.asarray(s, dtype=np.float64) for s in alignment["scales"]],
            [np.asarray(t, dtype=np.float64) for t in alignment["shifts"]])


def snippet_uncertainty(store, snippets, groups, n_frames: int, size):
    """Stage 4b: how much the co-aligned snippets disagree at every pixel, their standard deviation, in the units
    of the renormalised merge (see :func:`~rolldepth.method.merge.snippet_spread`)."""
    spread = store.array("uncertainty", (n_frames, *size))
    if not store.get("uncertainty"):
        offset, scales, shifts = _recorded_alignment(store)
        low, high = store.get("merged_range")
        factor = 2 / (high - low) if high > low else 0.0  # renormalise's factor, folded into every snippet's map
        snippet_spread(snippets, groups, n_frames, [s * factor for s in scales], [t * factor for t in shifts],
                       offset, out=spread)
        store.set("uncertainty", True)
    return spread


def refine_video(pipe, store, coaligned, latents, noise, kernels: Kernels, n_frames: int, size, batch: int,
                 vae_batch: int, progress: bool | Report):
    """Stage 5: the merged video re-noised half-way and denoised with shrinking snippets."""
    depth = store.array("refined", (n_frames, *size))
    if not store.get("refined"):
        pipe.refine(
            coaligned, latents, noise, kernels.refine_steps, kernels.refine_length, kernels.refine_start,
            kernels.cap, batch, vae_batch, progress, out=depth,
        )
        store.set("refined", True)
    return depth


def restore_size(store, depth, n_frames: int, size, key: str = "restored"):
    """The depth (or another [N, h, w] map) resized back to the input's ``size``, block by block, kept as ``key``."""
    restored = store.array(key, (n_frames, *size))
    if not store.get(key):
        for first, block in rows_in_blocks(depth):
            restored[first : first + len(block)] = resize_depth(block, size)
        store.set(key, True)
    return restored

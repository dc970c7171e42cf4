"""The VAE side of the pipeline: frames and depth maps to latents, and depth latents back to depth maps."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from ..video.reading import resize_frames
from .progress import Report, progress_bar


def pad(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad [N, C, h, w] on the bottom/right to multiples of ``multiple`` (the VAE's factor; a no-op for
    the multiples of 8 that most processing sizes are)."""
    pad_h, pad_w = -images.shape[-2] % multiple, -images.shape[-1] % multiple
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
    return images


def encode_batch(pipe, images: torch.Tensor) -> torch.Tensor:
    """One VAE call: [B, 3, H, W] in [-1, 1] -> scaled latent means (posterior mean, as in Marigold)."""
    images = images.to(pipe.device, pipe.vae.dtype)
    return pipe.vae.encode(images).latent_dist.mean * pipe.vae.config.scaling_factor


def encode(pipe, images: torch.Tensor, batch: int, progress: bool | Report, desc: str) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> scaled latent means [N, 4, H/f, W/f], ``batch`` images per VAE call."""
    out = []
    with progress_bar(progress, len(images), desc) as bar:
        for start in range(0, len(images), batch):
            out.append(encode_batch(pipe, images[start : start + batch]))
            bar.update(len(out[-1]))
    return torch.cat(out)


def encode_frames(
    pipe, frames: Iterable[np.ndarray], res: int, out, start: int = 0, batch: int = 4, progress: bool | Report = True,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Encode streamed uint8 RGB frames into ``out[start:]`` (float32 latents), ``batch`` frames per VAE call.

    Only one batch of frames is held at a time. ``on_chunk`` is called with the number of frames done after
    each batch (resumable runs record it). Returns the index after the last frame encoded.
    """
    index, chunk = start, []
    bar = progress_bar(progress, len(out), "Encoding frames", start)

    def flush() -> None:
        nonlocal index
        latents = encode_batch(pipe, pad(resize_frames(np.stack(chunk), res), pipe.size_multiple))
        out[index : index + len(chunk)] = latents.float().cpu().numpy()
        index += len(chunk)
        bar.update(len(chunk))
        chunk.clear()
        if on_chunk:
            on_chunk(index)

    for frame in frames:
        if index + len(chunk) >= len(out):
            break
        chunk.append(frame)
        if len(chunk) == batch:
            flush()
    if chunk:
        flush()
    bar.close()
    return index


def encode_depth(pipe, depth, batch: int, progress: bool | Report) -> torch.Tensor:
    """Depth maps [N, H, W] (any array indexed by row slices) -> latents of the depth repeated as RGB, read and
    encoded ``batch`` maps at a time."""
    clean = []
    with progress_bar(progress, len(depth), "Encoding depth") as bar:
        for first in range(0, len(depth), batch):
            image = torch.from_numpy(np.asarray(depth[first : first + batch], dtype=np.float32))
            clean.append(encode_batch(pipe, pad(image[:, None].expand(-1, 3, -1, -1), pipe.size_multiple)))
            bar.update(len(image))
    return torch.cat(clean)


def decode(pipe, latents: torch.Tensor, size: tuple[int, int], batch: int) -> np.ndarray:
    """Depth latents [M, 4, h, w] -> depth [M, H, W] float32: mean of the 3 decoded channels, padding cropped."""
    out = []
    for start in range(0, len(latents), batch):
        chunk = latents[start : start + batch] / pipe.vae.config.scaling_factor
        image = pipe.vae.decode(chunk.to(pipe.vae.dtype)).sample.float().mean(dim=1)
        out.append(image[:, : size[0], : size[1]].cpu().numpy())
    return np.concatenate(out)


def gather(pipe, latents, index: np.ndarray) -> torch.Tensor:
    """Rows ``index`` of stored latents (ndarray, NpyArray or tensor) as a tensor on the device."""
    if isinstance(latents, torch.Tensor):
        return latents[torch.from_numpy(np.asarray(index)).to(latents.device)]
    return torch.from_numpy(np.ascontiguousarray(latents[np.asarray(index)])).to(pipe.device, pipe.vae.dtype)

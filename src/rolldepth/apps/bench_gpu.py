"""``rolldepth bench --what gpu``: the real-size pipeline on an accelerator — seconds per stage, frames/s, peak
VRAM and the fp16-vs-fp32 difference — on a random-init model with the exact shapes of prs-eth/rollingdepth-v1-0.

Timings do not depend on the weights' values, so no download is needed: the SD2 UNet (8 input channels), the SD
VAE and a CLIP-H-wide text encoder are built from their configs. ``--shape tiny`` runs the same code on the tiny test
architecture (a rehearsal on the CPU).
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .bench import moving_pattern_video
from ..model.checkpoint import TINY_TEXT, TINY_UNET, TINY_VAE, build_components

# prs-eth/rollingdepth-v1-0 (Marigold = SD2): unet/, vae/ and text_encoder/ configs, shapes only.
SD2_UNET = dict(
    sample_size=96,
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    attention_head_dim=(5, 10, 20, 20),
    cross_attention_dim=1024,
    use_linear_projection=True,
    norm_num_groups=32,
)
SD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=768,
    scaling_factor=0.18215,
)
CLIP_H_TEXT = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                   projection_dim=512, hidden_act="gelu", vocab_size=49408)
SHAPES = {"sd2": (SD2_UNET, SD_VAE, CLIP_H_TEXT), "tiny": (TINY_UNET, TINY_VAE, TINY_TEXT)}


def build_pipeline(shape: str, device: str, dtype: torch.dtype = torch.float32, seed: int = 0):
    """A random-init :class:`RollingDepthPipeline` of ``shape``, built directly on ``device``."""
    from ..model.pipeline import RollingDepthPipeline

    with torch.device(device):
        parts = build_components(*SHAPES[shape], seed=seed)
    for name in ("unet", "vae", "text_encoder"):
        parts[name] = parts[name].to(device, dtype)
    return RollingDepthPipeline(**parts)


def as_dtype(pipe, dtype: torch.dtype):
    """A copy of ``pipe`` with its models in ``dtype`` (same weights, rounded)."""
    from ..model.pipeline import RollingDepthPipeline

    parts = {name: copy.deepcopy(getattr(pipe, name)).to(dtype=dtype) for name in ("unet", "vae", "text_encoder")}
    return RollingDepthPipeline(**parts, scheduler=pipe.scheduler, tokenizer=pipe.tokenizer)


def _write_outputs(depth: np.ndarray, fps: float) -> tuple[float, bool]:
    """Seconds to write what ``rolldepth run`` writes by default, and whether that included the mp4s (only where
    PyAV is installed)."""
    from ..video import writers

    cmaps = ("Spectral_r", "Greys_r") if writers.av is not None else ()
    with tempfile.TemporaryDirectory(prefix="rolldepth-gpu-bench-") as tmp:
        tic = time.perf_counter()
        writers.save_outputs(tmp, "bench", depth, None, fps, save_npy=True, save_png=True, cmaps=cmaps,
                             save_sbs=False)
        return time.perf_counter() - tic, bool(cmaps)


def timed_run(pipe, frames: np.ndarray, label: str, **kwargs) -> dict:
    """One pipeline call with peak-VRAM accounting; the row of figures it gives."""
    device = pipe.device
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    tic = time.perf_counter()
    out = pipe(frames, generator=0, progress=False, **kwargs)
    pipeline_seconds = time.perf_counter() - tic
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan")
    write, mp4 = _write_outputs(np.asarray(out.depth), 30.0)
    total = pipeline_seconds + write
    row = dict(label=label, frames=len(frames), size=list(out.depth.shape[1:]), dtype=str(pipe.unet.dtype),
               seconds=total, frames_per_second=len(frames) / total, peak_vram_gb=peak, **out.timings,
               write=write, mp4_written=mp4, settings=dict(kwargs))
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in out.timings.items())
    print(f"{label}: {len(frames)} frames at {row['size'][1]}x{row['size'][0]}, {row['dtype']}: {total:.1f} s "
          f"({row['frames_per_second']:.2f} frames/s), peak VRAM {peak:.2f} GB\n  stages: {stages}, "
          f"write {write:.1f} s", flush=True)
    row["depth"] = np.asarray(out.depth)
    return row


def bench_gpu(shape: str = "sd2", device: str = "cuda", fast_frames: int = 250, paper_frames: int = 100,
              capped_frames: int = 60, parity_frames: int = 12, res: int = 768, max_vram: float = 6.0,
              json_path: str | Path | None = None) -> list[dict]:
    """The GPU figures of the README: fast preset, fast preset under a VRAM cap, paper preset, fp16 vs fp32.

    The video is 16:9 at ``res`` (768x432 by default), a generated pattern with parallax. The paper preset runs in
    fp32 with TF32 matrix products (what PyTorch allows cuDNN's convolutions by default); the fp16-vs-fp32
    comparison runs in strict fp32 on ``parity_frames`` frames, same input and noise.
    """
    cuda = torch.device(device).type == "cuda"
    tic = time.perf_counter()
    pipe32 = build_pipeline(shape, device, torch.float32)
    pipe16 = as_dtype(pipe32, torch.float16) if cuda else pipe32
    if cuda:  # one model on the GPU at a time: the VRAM figures are the fp16 model's alone
        pipe32.to("cpu")
        torch.cuda.empty_cache()
    params = sum(p.numel() for p in pipe32.unet.parameters())
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"device {name}; {shape} shapes (UNet {params / 1e6:.0f} M parameters), built in "
          f"{time.perf_counter() - tic:.1f} s; torch {torch.__version__}", flush=True)
    height = int(round(res * 9 / 16 / 8)) * 8
    rows = []
    fast = dict(dilations=(1, 25), refine_steps=0, processing_res=res)

    frames = moving_pattern_video(max(fast_frames, paper_frames, capped_frames, parity_frames), height, res)
    timed_run(pipe16, frames[:8], "warm-up", **fast)  # kernels, allocator and cuDNN plans; not reported
    rows.append(timed_run(pipe16, frames[:fast_frames], "fast", **fast))
    if cuda:
        rows.append(timed_run(pipe16, frames[:capped_frames], f"fast, --max-vram {max_vram:g}", max_vram=max_vram,
                              **fast))
    strict = torch.backends.cuda.matmul.allow_tf32
    a = timed_run(pipe16, frames[:parity_frames], "parity fp16", **fast)
    if cuda:
        pipe16.to("cpu")
        pipe32.to(device)
    b = timed_run(pipe32, frames[:parity_frames], "parity fp32", **fast)
    diff = np.abs(a["depth"] - b["depth"])
    print(f"fp16 vs fp32 on the same {parity_frames} frames and noise: max |diff| {diff.max():.4f}, mean "
          f"{diff.mean():.5f} (depth in [-1, 1])", flush=True)
    rows.append(dict(label="fp16 vs fp32", frames=parity_frames, max_abs_diff=float(diff.max()),
                     mean_abs_diff=float(diff.mean())))
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        rows.append(timed_run(pipe32, frames[:paper_frames], "paper (fp32, TF32 matmul)", dilations=(1, 10, 25),
                              cap_dilation=False, refine_steps=10, processing_res=res))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = strict
    for row in rows:
        row.pop("depth", None)
    if json_path:
        Path(json_path).write_text(json.dumps(dict(device=name, shape=shape, rows=rows), indent=1, default=str))
    return rows

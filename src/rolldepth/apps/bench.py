"""``rolldepth bench``: figures anyone can rerun — co-alignment speed/objective against the official 2000-step
Adam, end-to-end seconds per frame and peak memory of the pipeline on a generated video, and how peak memory of
``rolldepth run`` grows with the length of the video."""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def moving_pattern_video(n_frames: int, height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    """A cheap textured video with parallax: a near square sliding over a far striped backdrop."""
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(moving_pattern_frames(n_frames, height, width, seed)):
        frames[i] = frame
    return frames


def moving_pattern_frames(n_frames: int, height: int = 240, width: int = 320, seed: int = 0):
    """The frames of :func:`moving_pattern_video` one at a time (a long bench video never sits in memory)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    for i in range(n_frames):
        far = 0.5 + 0.5 * np.sin((xx + 0.5 * i) / 9.0)
        image = base * (0.6 + 0.4 * far[..., None])
        x0 = int((width - height // 3) * (0.5 + 0.45 * np.sin(i / 15.0)))
        image[height // 3 : 2 * height // 3, x0 : x0 + height // 3] = (230, 80 + 120 * ((i // 8) % 2), 40)
        yield image.clip(0, 255).astype(np.uint8)


def bench_coalign(frame_counts, dilations, seed: int = 0) -> list[dict]:
    """Print and return, per video length, seconds and objective of both co-alignment modes and of the official
    2000-step Adam, and how far the official mode's parameters land from Adam's."""
    from ..method.coalign import adam_coalign, coalign, official_coalign, official_objective
    from ..method.snippets import build_snippet_groups

    rows = []
    print(f"co-alignment, dilations {list(dilations)}: both modes vs the official Adam (2000 it.), same inputs")
    print(f"{'frames':>7} {'snippets':>9} {'objective s':>12} {'official s':>11} {'adam s':>8} "
          f"{'loss: objective':>16} {'official':>9} {'adam':>9} {'max |official-adam|':>20}")
    for n_frames in frame_counts:
        groups = build_snippet_groups(n_frames, dilations, (3,), cap=True)
        preds = synthetic_snippet_predictions(groups, n_frames, seed)
        results, seconds = {}, {}
        for name, solve in (("objective", coalign), ("official", official_coalign), ("adam", adam_coalign)):
            tic = time.perf_counter()
            results[name] = solve(preds, groups, n_frames)
            seconds[name] = time.perf_counter() - tic
        loss = {name: official_objective(preds, groups, n_frames, r.scales, r.shifts) for name, r in results.items()}
        gap = max(float(np.abs(np.concatenate(getattr(results["official"], k)) -
                               np.concatenate(getattr(results["adam"], k))).max()) for k in ("scales", "shifts"))
        row = dict(frames=n_frames, snippets=sum(len(g.indices) for g in groups),
                   **{f"{name}_seconds": t for name, t in seconds.items()},
                   **{f"{name}_objective": v for name, v in loss.items()}, official_adam_gap=gap)
        rows.append(row)
        print(f"{n_frames:>7} {row['snippets']:>9} {seconds['objective']:>12.2f} {seconds['official']:>11.2f} "
              f"{seconds['adam']:>8.2f} {loss['objective']:>16.6f} {loss['official']:>9.6f} {loss['adam']:>9.6f} "
              f"{gap:>20.2e}")
    return rows


def synthetic_snippet_predictions(groups, n_frames: int, seed: int, size=(22, 30), noise=0.01) -> list[np.ndarray]:
    """Subsampled snippet predictions as the model makes them: a smooth inverse-depth video, each snippet under its
    own unknown positive scale and shift (normalised to about [0, 2] like min-shifted model output), plus noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    t = np.arange(n_frames)[:, None, None]
    truth = 1.0 + 0.5 * np.sin(3 * xx + 0.05 * t) * np.cos(2 * yy - 0.03 * t) + 0.3 * np.sin(0.02 * t)
    preds = []
    for group in groups:
        x = truth[group.indices]  # [K, L, h, w]
        lo = x.min(axis=(1, 2, 3), keepdims=True)
        hi = x.max(axis=(1, 2, 3), keepdims=True)
        x = (x - lo) / (hi - lo) * 2  # each snippet normalised on its own, as the model does
        x = x * rng.uniform(0.8, 1.2, size=(len(x), 1, 1, 1)) + rng.uniform(-0.1, 0.1, size=(len(x), 1, 1, 1))
        preds.append((x + noise * rng.standard_normal(x.shape)).astype(np.float32))
    low = min(p.min() for p in preds)
    return [p - low for p in preds]


def bench_pipeline(model: str | Path, n_frames: int, res: int | None, dilations, seed: int = 0) -> dict:
    """End-to-end seconds per frame (by stage) and peak RSS for one generated video."""
    import torch

    from ..model.pipeline import RollingDepthPipeline

    tic = time.perf_counter()
    pipe = RollingDepthPipeline.from_pretrained(model, dtype=torch.float32, device="cpu")
    load_seconds = time.perf_counter() - tic
    frames = moving_pattern_video(n_frames, seed=seed)
    tic = time.perf_counter()
    out = pipe(frames, dilations=tuple(dilations), processing_res=res, generator=seed, progress=False)
    seconds = time.perf_counter() - tic
    row = dict(frames=n_frames, size=list(out.depth.shape[1:]), seconds=seconds, seconds_per_frame=seconds / n_frames,
               load_seconds=load_seconds, peak_rss_mib=peak_rss_mib(),
               **{f"{k}_seconds": v for k, v in out.timings.items()})
    print(f"pipeline: {model}, {n_frames} frames at {out.depth.shape[2]}x{out.depth.shape[1]}, "
          f"dilations {list(dilations)}, {torch.get_num_threads()} threads")
    print(f"  {seconds:.1f} s total, {seconds / n_frames:.3f} s/frame, model load {load_seconds:.1f} s, "
          f"peak RSS {row['peak_rss_mib']:.0f} MiB")
    print("  stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in out.timings.items()))
    return row


# Runs a command and prints its peak RSS in KiB. A child's ru_maxrss also counts the pages it had right after fork
# (a copy of its parent's) until its exec, so the benchmark's own large process must not be the parent: this small
# launcher is.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str]) -> tuple[int, float, float]:
    """Run a command; its exit code, wall seconds and peak resident memory in MiB (of that process alone).

    Linux and macOS report ``ru_maxrss`` differently (KiB vs bytes); this reads it as KiB (Linux).
    """
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if lines[:-1]:
        print("\n".join(lines[:-1]))
    return done.returncode, time.perf_counter() - tic, int(lines[-1]) / 1024


def bench_memory(
    model: str | Path | None = None,
    frame_counts=(100, 1000),
    res: int = 64,
    size: tuple[int, int] = (192, 256),
    dilations=(1, 10, 25),
    seed: int = 0,
) -> list[dict]:
    """Peak RSS of ``rolldepth run`` (every default output) on generated videos of different lengths at one size.

    Each run is a fresh process measured on its own, so the figures are what a user sees. The video is written
    first (streamed, lossless-ish H.264). Without ``model`` a tiny random-init checkpoint of the real architecture
    is written and used: memory is about data, not about the weights' values. Next to each figure: the size of the
    intermediate arrays the run kept on disk (an in-memory run would hold them).
    """
    from ..model.checkpoint import write_tiny_checkpoint
    from ..process.presets import resolve_settings
    from ..process.runner import ModelShape, RunOptions, estimate_resources
    from ..video.reading import probe
    from ..video.writers import write_video

    rows = []
    with tempfile.TemporaryDirectory(prefix="rolldepth-bench-") as tmp:
        tmp = Path(tmp)
        model = model or write_tiny_checkpoint(tmp / "tiny", seed=seed)
        print(f"peak memory of rolldepth run: {Path(model).name if Path(model).exists() else model}, "
              f"{size[1]}x{size[0]} video processed at --res {res}, dilations {list(dilations)}")
        print(f"{'frames':>7} {'seconds':>8} {'peak RSS MiB':>13} {'work data MiB':>14}")
        settings = resolve_settings("fast", res=res, dilations=list(dilations))
        for n_frames in frame_counts:
            video = write_video(tmp / f"bench{n_frames}.mp4", moving_pattern_frames(n_frames, *size, seed), 30)
            options = RunOptions(settings=settings, save_png=False)
            work = estimate_resources(probe(video), options, ModelShape.of_folder(model)).disk / 2**20
            command = [sys.executable, "-m", "rolldepth.cli", "-q", "run", str(video), "-o", str(tmp / "out"),
                       "--model", str(model), "--res", str(res), "-d", *map(str, dilations), "--seed", str(seed)]
            code, seconds, peak = run_measured(command)
            if code != 0:
                raise RuntimeError(f"the benchmark run failed (exit code {code}): {' '.join(command)}")
            rows.append(dict(frames=n_frames, seconds=seconds, peak_rss_mib=peak, work_data_mib=work))
            print(f"{n_frames:>7} {seconds:>8.1f} {peak:>13.0f} {work:>14.0f}")
    if len(rows) > 1:
        ratio = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
        print(f"ratio {rows[-1]['frames']} / {rows[0]['frames']} frames: {ratio:.3f}")
    return rows

"""One video in, every output file out: the unit of work shared by the CLI, the Ray mode and the web page.

``check_input`` runs before any model is loaded, so a bad input in a long list fails in seconds;
``process_video`` runs the pipeline on one input and writes its outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

from .errors import UserError
from .presets import Settings
from .video_io import VideoInfo

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """What to compute and write for each video (the ``rolldepth run`` options other than inputs and model)."""

    settings: Settings
    start: int = 0
    count: int = 0
    fps: float = 0.0  # output frame rate; 0 = the input's
    input_fps: float = 30.0  # frame rate of image sequences
    restore_res: bool = False
    cmaps: tuple[str, ...] = ("Spectral_r", "Greys_r")
    save_npy: bool = True
    save_png: bool = True
    save_sbs: bool = True
    save_snippets: bool = False
    batch_size: int = 4
    vae_batch_size: int = 4
    seed: int = 0
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        """Option values that no input can satisfy."""
        from .writers import get_colormap

        if self.start < 0 or self.count < 0 or self.fps < 0 or self.input_fps <= 0:
            raise UserError("--from, --frames and --fps must be >= 0 and --input-fps > 0")
        if self.batch_size < 1 or self.vae_batch_size < 1:
            raise UserError("--batch-size and --vae-batch-size must be >= 1")
        for name in self.cmaps:
            get_colormap(name)


def output_stem(path: Path) -> str:
    """``clip.mp4`` -> ``clip``; an image-sequence folder keeps its name."""
    return path.stem if path.is_file() else path.name


def check_input(path: Path, options: RunOptions) -> VideoInfo:
    """Probe one input and check that its frame window can be processed with these options."""
    from .snippets import build_snippet_groups
    from .video_io import probe

    info = probe(path, fps=Fraction(options.input_fps).limit_denominator(1001))
    if options.start >= info.n_frames:
        raise UserError(f"--from {options.start} is past the end of {path} ({info.n_frames} frames)")
    available = info.n_frames - options.start
    n_frames = available if options.count == 0 else min(options.count, available)
    s = options.settings
    try:
        build_snippet_groups(n_frames, s.dilations, s.snippet_lengths, cap=s.cap_dilation)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    return info


def processing_res(pipe, settings: Settings) -> int | None:
    """The preset's resolution unless the checkpoint recommends its own and the user did not ask for one."""
    return settings.res if (settings.res_explicit or pipe.default_res is None) else pipe.default_res


def process_video(
    pipe,
    path: Path,
    output_dir: Path,
    options: RunOptions,
    info: VideoInfo | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Estimate depth for one input and write its outputs; returns them keyed like ``writers.save_outputs``."""
    from .video_io import read_frames, resize_frames
    from .writers import save_outputs

    info = info or check_input(path, options)
    s = options.settings
    res = processing_res(pipe, s)
    if on_stage:
        on_stage("reading frames")
    frames = read_frames(path, options.start, options.count)
    if on_stage:
        on_stage("estimating depth")
    out = pipe(
        frames, dilations=s.dilations, snippet_lengths=s.snippet_lengths, cap_dilation=s.cap_dilation,
        refine_steps=s.refine_steps, refine_snippet_length=s.refine_snippet_length,
        refine_start_dilation=s.refine_start_dilation, processing_res=res, restore_res=options.restore_res,
        batch_size=options.batch_size, vae_batch_size=options.vae_batch_size, generator=options.seed,
        return_snippets=options.save_snippets, progress=options.progress,
    )
    if on_stage:
        on_stage("writing outputs")
    rgb = frames if options.restore_res else resize_frames(frames, res)
    if not options.restore_res:
        rgb = ((rgb.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype("uint8")
    snippets = None
    if options.save_snippets:
        snippets = {f"dilation{g.dilation}_{k}": a for k, (g, a) in enumerate(zip(out.groups, out.snippets))}
        snippets |= {f"dilation{g.dilation}_{k}_indices": g.indices for k, g in enumerate(out.groups)}
    fps = Fraction(options.fps).limit_denominator(1001) if options.fps else info.fps
    written = save_outputs(
        output_dir, output_stem(path), out.depth, rgb, fps, save_npy=options.save_npy, save_png=options.save_png,
        cmaps=tuple(options.cmaps), save_sbs=options.save_sbs, snippets=snippets,
    )
    seconds = sum(out.timings.values())
    log.info("%d frames in %.1f s (%.2f s/frame): %s", len(frames), seconds, seconds / len(frames),
             ", ".join(p.name for p in written.values()))
    return written

"""One video in, every output file out: the unit of work shared by the CLI, the Ray mode and the web page.

``check_input`` runs before any model is loaded, so a bad input in a long list fails in seconds;
``process_video`` runs the pipeline on one input and writes its outputs.

Long videos and interrupted runs: ``process_video`` streams frames from the input and keeps the intermediate arrays
(RGB latents, every snippet prediction, the merged depth) in a work folder ``<output_dir>/.<stem>.rolldepth-work/``
instead of memory, so memory does not grow with the video's length. The folder records how far the run got and
for what (input file, model weights, options); running the same command again after a crash or ``kill -9``
continues from the last finished batch and gives the same result, while a run with other inputs, model or options
starts over. It is deleted once every output is written; outputs only ever appear under their final names complete.

A finished input leaves ``<output_dir>/.<stem>.rolldepth-done.json``: what its outputs were computed from (the work
folder's record plus the output options) and their names. Running the same command again, say after a batch of
videos was interrupted at its 57th, skips every input whose record matches and whose outputs are all there, instead
of computing it again; any change (input, model, options, a deleted output) computes it anew. The done file also
says how the model was loaded (its folder's files, precision and device): where that is unchanged, the command
line finishes such an input, or writes other outputs from its depth, without loading the model (``without_model``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from ..errors import UserError, first_line
from ..method.metric_scale import AnchorError
from ..method.snippets import PER_FRAME_KERNELS, snippets_share_frames
from .presets import Settings, with_checkpoint_defaults
from ..video.reading import VideoInfo
from ..video.stereo import StereoOptions
from ..model.loading import pick_dtype, read_model_defaults

log = logging.getLogger(__name__)

WORK_SUFFIX = ".rolldepth-work"
DONE_SUFFIX = ".rolldepth-done.json"


@dataclass
class RunOptions:
    """What to compute and write for each video (the ``rolldepth run`` options other than inputs and model)."""

    settings: Settings
    start: int = 0
    count: int = 0
    fps: float = 0.0  # output frame rate; 0 = the input's
    input_fps: float = 30.0  # frame rate of image sequences
    autorotate: bool = True  # phone videos upright (False: the stored pixels, as the official code reads them)
    shots: str = "auto"  # "auto" (detect cuts), "none" (one shot) or a shots file (see rolldepth.shots)
    restore_res: bool = False
    cmaps: tuple[str, ...] = ("Spectral_r", "Greys_r")
    save_npy: bool = True
    save_png: bool = True
    save_exr: bool = False
    save_depth16: bool = False  # the 16-bit PNGs' values as one lossless FFV1 video, <stem>_depth16.mkv
    save_sbs: bool = True
    audio: bool = True  # the input's sound, cut to the frames processed, in the MP4 outputs
    save_snippets: bool = False
    save_uncertainty: bool = False  # the snippets' disagreement at every pixel, <stem>_uncertainty.npy
    batch_size: int | None = None  # None: planned from the free memory (GPU: measured; CPU: up to 4 that fit)
    vae_batch_size: int | None = None
    max_vram: float | None = None  # GB the planned batches may use
    seed: int = 0
    progress: bool = True
    # metric depth and 3-D export (see export3d)
    metric_anchors: Path | None = None  # CSV/JSON of frame, x, y, metres
    anchor_tolerance: float = 0.25  # relative depth error within which an anchor agrees with the fit
    save_ply: bool = False
    ply_every: int = 10
    save_rrd: bool = False
    fov: float | None = None  # horizontal field of view in degrees, or
    intrinsics: Path | None = None  # a file with K in the input's pixels
    assumed_range: tuple[float, float] = (1.0, 10.0)  # near, far metres of the 3-D export without anchors
    stereo: StereoOptions | None = None  # a stereo 3-D video rendered from the frames and the depth

    def check(self) -> None:
        """Option values that no input can satisfy."""
        from ..video.writers import get_colormap

        if self.start < 0 or self.count < 0 or self.fps < 0 or self.input_fps <= 0:
            raise UserError("--from, --frames and --fps must be >= 0 and --input-fps > 0")
        if any(b is not None and b < 1 for b in (self.batch_size, self.vae_batch_size)):
            raise UserError("--batch-size and --vae-batch-size must be >= 1")
        if self.max_vram is not None and self.max_vram <= 0:
            raise UserError(f"--max-vram must be a positive number of GB, got {self.max_vram}")
        for name in self.cmaps:
            get_colormap(name)
        if self.shots not in ("auto", "none") and not Path(self.shots).is_file():
            raise UserError(f"--shots takes auto, none or a shots file; {self.shots} is not a file")
        if self.save_uncertainty and not snippets_share_frames(self.settings.snippet_lengths):
            raise UserError("--save-uncertainty writes how much the snippets that hold a frame disagree, and snippets "
                            "of one frame never share one: give --snippet-lengths of 2 or more")
        if self.stereo is not None:
            self.stereo.check()
        self.check_3d()

    def check_3d(self) -> None:
        """The metric and 3-D options: files readable and well-formed, a camera for the 3-D outputs."""
        from ..method.metric_scale import assumed_range_map, read_anchors
        from ..video.pointcloud import intrinsics_from_fov, read_intrinsics

        if self.metric_anchors is not None:
            read_anchors(self.metric_anchors)
        if not self.anchor_tolerance > 0:  # also without anchors: a wrong value is a mistake wherever it is given
            raise UserError(f"--anchor-tolerance must be > 0, got {self.anchor_tolerance}")
        if self.ply_every < 1:
            raise UserError(f"--ply-every must be >= 1, got {self.ply_every}")
        assumed_range_map(0.0, 1.0, *self.assumed_range)
        if self.fov is not None:
            intrinsics_from_fov(2, 2, self.fov)
        if self.intrinsics is not None:
            read_intrinsics(self.intrinsics)
        if self.fov is not None and self.intrinsics is not None:
            raise UserError("give either --fov or --intrinsics, not both")
        if (self.save_ply or self.save_rrd) and self.fov is None and self.intrinsics is None:
            what = "--save-ply" if self.save_ply else "--save-rrd"
            raise UserError(f"{what} needs the camera: give --fov DEG (horizontal field of view) or --intrinsics FILE")
        if self.save_rrd:
            from ..video.rrd import import_rerun

            import_rerun()

    def export3d(self):
        """The 3-D part of the options, for ``export3d.write_3d_outputs``."""
        from ..video.export3d import Export3D

        return Export3D(save_npy=self.save_npy, save_exr=self.save_exr, save_ply=self.save_ply,
                        ply_every=self.ply_every, save_rrd=self.save_rrd, fov=self.fov, intrinsics=self.intrinsics,
                        assumed_range=tuple(self.assumed_range))


@dataclass(frozen=True)
class ModelShape:
    """What the resource estimate needs to know about a model, readable from its folder before loading it.

    Defaults are those of the Stable Diffusion 2 UNet and VAE that RollingDepth uses (the most demanding case).
    """

    default_res: int | None = None
    default_refine_steps: int | None = None
    vae_width: int = 128  # channels of the VAE's full-resolution blocks
    vae_factor: int = 8  # image pixels per latent pixel along each side
    latent_channels: int = 4
    unet_width: int = 320  # channels of the UNet's first block

    @classmethod
    def of_folder(cls, folder: str | Path | None) -> ModelShape:
        """From a local checkpoint folder's configs; the SD defaults for anything unreadable (a hub id, say)."""
        if folder is None or not Path(folder).is_dir():
            return cls()
        folder = Path(folder)
        try:
            vae = json.loads((folder / "vae" / "config.json").read_text())
            widths = list(vae.get("block_out_channels", [128]))
            unet = json.loads((folder / "unet" / "config.json").read_text())
            shape = cls(vae_width=int(widths[0]), vae_factor=2 ** (len(widths) - 1),
                        latent_channels=int(vae.get("latent_channels", 4)),
                        unet_width=int(list(unet.get("block_out_channels", [320]))[0]))
        except (OSError, ValueError, TypeError, IndexError, AttributeError):
            shape = cls()
        try:
            defaults = read_model_defaults(folder)
        except UserError:  # reported when the model loads
            defaults = {}
        res = defaults.get("processing_res")
        return replace(shape, default_res=res if isinstance(res, int) else None,
                       default_refine_steps=defaults.get("refine_steps"))

    @classmethod
    def of_pipe(cls, pipe) -> ModelShape:
        config = pipe.vae.config
        return cls(pipe.default_res, pipe.default_refine_steps, int(config.block_out_channels[0]), pipe.vae_factor,
                   int(config.latent_channels), int(pipe.unet.config.block_out_channels[0]))


def with_model_defaults(options: RunOptions, model: ModelShape) -> RunOptions:
    """``options`` with the checkpoint's recommended resolution and refinement (its ``rolldepth.json``) in place of
    the preset's, except where the user set them (``--res``, ``--refine-steps``)."""
    settings = with_checkpoint_defaults(options.settings, model.default_res, model.default_refine_steps)
    return options if settings == options.settings else replace(options, settings=settings)


def for_input(path: Path, options: RunOptions) -> RunOptions:
    """``options`` as they apply to ``path``: a still (one image) gets per-frame depth, one snippet of its one frame,
    whatever kernels were asked for (they need several frames), and so no uncertainty; nor a 16-bit video (its
    16-bit PNG holds the values)."""
    from ..video.reading import is_still

    if not is_still(path):
        return options
    return replace(options, settings=replace(options.settings, **PER_FRAME_KERNELS), save_uncertainty=False,
                   save_depth16=False)


def options_for(path: Path, options: RunOptions, model: ModelShape) -> RunOptions:
    """``options`` as this model runs them on ``path`` (:func:`for_input`, then :func:`with_model_defaults`)."""
    return with_model_defaults(for_input(path, options), model)


def output_stem(path: Path) -> str:
    """``clip.mp4`` -> ``clip``; an image-sequence folder keeps its name."""
    return path.stem if path.is_file() else path.name


def frame_window(info: VideoInfo, options: RunOptions) -> int:
    """How many frames of the input the options select."""
    available = info.n_frames - options.start
    return available if options.count == 0 else min(options.count, available)


def check_input(
    path: Path,
    options: RunOptions,
    *,
    output_dir: Path | None = None,
    model: ModelShape | None = None,
    device_type: str = "cpu",
) -> VideoInfo:
    """Probe one input and check that its frame window can be processed with these options.

    Image sequences have every header of the window read (unreadable files and mixed sizes fail here). With
    ``output_dir`` the disk and memory the run needs are estimated (for ``model``, by default an SD-sized one)
    and a run that cannot fit is refused with the estimate in the message.
    """
    from ..method.coalign import check_coalign_size
    from ..video.reading import check_sequence, check_start, is_still, probe, processing_size

    if options.save_uncertainty and is_still(path):
        log.warning("%s: a single image gets one snippet of its one frame, with nothing to disagree with: no "
                    "uncertainty is written for it", path)
    if options.save_depth16 and is_still(path):
        log.warning("%s: a single image gets no 16-bit video; its 16-bit PNG (--save-png) holds the same values",
                    path)
    options = for_input(path, options) if model is None else options_for(path, options, model)
    info = probe(path, fps=Fraction(options.input_fps).limit_denominator(1001), autorotate=options.autorotate)
    check_start(path, info, options.start, "--from")
    if info.pixel_aspect != 1 and options.autorotate:
        sar = info.pixel_aspect
        log.info("%s: its pixels are not square (sample aspect ratio %d:%d): the frames are read, and the depth "
                 "written, at the shape they are shown in, %dx%d (--no-autorotate keeps the stored pixels)", path,
                 sar.numerator, sar.denominator, info.width, info.height)
    if info.interlaced and options.autorotate:
        log.info("%s: its frames are interlaced: they are deinterlaced (FFmpeg's yadif, a frame for each frame) "
                 "before depth is estimated (--no-autorotate keeps them as stored)", path)
    if info.hdr and options.autorotate:
        log.info("%s: an HDR video (%s): its frames are converted to SDR (BT.709, its diffuse white near SDR "
                 "white) before depth is estimated, as the model was trained on SDR pictures (--no-autorotate reads "
                 "the stored code values as SDR)", path, info.hdr)
    n_frames = frame_window(info, options)
    if path.is_dir():  # first: a folder of photos of different sizes is no sequence, however many there are
        check_sequence(path, options.start, n_frames, options.autorotate)
    s = options.settings
    try:
        check_coalign_size(*processing_size(info.height, info.width, s.res))
    except UserError as exc:
        raise UserError(f"{path}: {info.width}x{info.height} frames at --res {s.res}: {exc}; a larger --res keeps "
                        "more") from None
    shots = shots_from_file(options, info, n_frames) if options.shots not in ("auto", "none") else [(0, n_frames)]
    for first, stop in shots:
        try:
            check_shot(stop - first, s)
        except UserError as exc:
            where = f" (shot of frames {options.start + first}-{options.start + stop - 1})" if len(shots) > 1 else ""
            raise UserError(f"{path}{where}: {exc}") from None
    check_3d_input(path, info, options, n_frames)
    if output_dir is not None:
        model = model or ModelShape()
        check_resources(path, info, options, output_dir, model, device_type)
    return info


def kernels_of(s: Settings):
    """The :class:`rolldepth.model.stages.Kernels` these settings run."""
    from ..model.stages import Kernels

    return Kernels(s.dilations, s.snippet_lengths, s.cap_dilation, s.refine_steps, s.refine_snippet_length,
                   s.refine_start_dilation)


def check_shot(n_frames: int, s: Settings) -> None:
    """Refuse a video (or shot) of ``n_frames`` that these kernels or this refinement cannot process."""
    kernels_of(s).groups(n_frames)


def shots_from_file(options: RunOptions, info: VideoInfo, n_frames: int) -> list[tuple[int, int]]:
    """The shots ``--shots FILE`` names, as ranges inside the frame window."""
    from ..video.shots import read_shots_file, shot_ranges

    return shot_ranges(read_shots_file(options.shots), options.start, n_frames, info.n_frames, options.shots)


def shortest_shot(s: Settings) -> int:
    """Frames the shortest processable shot has (detected shots shorter than that are merged into a neighbour)."""
    for n_frames in range(1, 10_000):
        try:
            check_shot(n_frames, s)
            return n_frames
        except UserError:
            continue
    return 10_000


def check_3d_input(path: Path, info: VideoInfo, options: RunOptions, n_frames: int) -> None:
    """Anchors on the frame and in the processed frames, intrinsics of this video's shape (before the model)."""
    from ..video.export3d import check_aspect
    from ..method.metric_scale import check_anchors, read_anchors
    from ..video.pointcloud import read_intrinsics

    try:
        if options.metric_anchors is not None:
            check_anchors(read_anchors(options.metric_anchors), (info.width, info.height), n_frames, options.start)
        if options.intrinsics is not None:
            size = read_intrinsics(options.intrinsics)[1]
            if size is not None:
                check_aspect(size, (info.width, info.height), Path(options.intrinsics).name)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


# ------------------------------------------------------------------------------------------------------------------
# Resource estimate
@dataclass(frozen=True)
class Estimate:
    """Bytes a run needs: on disk (work files and outputs) and in memory beyond the model itself."""

    disk: int
    memory: int
    size: tuple[int, int]  # processing (height, width)


def estimate_resources(info: VideoInfo, options: RunOptions, model: ModelShape) -> Estimate:
    """What processing one input costs, from its size and the options alone (with the model's defaults applied,
    see :func:`with_model_defaults`).

    Disk: RGB latents, every snippet prediction (float32 at the processing size), the merged depth (and the refined
    and restored ones, and the uncertainty, when asked for) and the 16-bit and EXR outputs. Memory: the model call
    that needs most at the smallest batches the run may use (the given batch sizes, else one item: on the CPU the
    pipeline then takes the largest batches that fit, see :func:`rolldepth.model.vram.plan_cpu_batches`), the
    subsampled co-alignment data and, with refinement, the video's latents (kept in memory while refining). The
    model's own weights come on top.
    """
    from ..model.vram import cpu_item_bytes
    from ..video.reading import processing_size

    s = options.settings
    n_frames = frame_window(info, options)
    height, width = processing_size(info.height, info.width, s.res)
    pixels, in_pixels = height * width, info.height * info.width
    kernels = kernels_of(s)
    groups = kernels.groups(n_frames)
    slots = sum(g.indices.size for g in groups)
    latent_bytes = n_frames * model.latent_channels * pixels // model.vae_factor**2 * 4
    depth_arrays = 1 + (s.refine_steps > 0) + options.save_uncertainty
    disk = latent_bytes + slots * pixels * 4 + depth_arrays * n_frames * pixels * 4
    if options.restore_res:
        disk += (1 + options.save_uncertainty) * n_frames * in_pixels * 4
    # PNG and FFV1 at most 2 bytes, EXR at most 4 (uncompressed)
    per_pixel = 2 * options.save_png + 2 * options.save_depth16 + 4 * options.save_exr
    disk += n_frames * (in_pixels if options.restore_res else pixels) * per_pixel
    costs = cpu_item_bytes((height, width), model.vae_factor, model.vae_width, model.unet_width,
                           kernels.longest_snippet)
    memory = max((options.vae_batch_size or 1) * costs["vae"], (options.batch_size or 1) * costs["unet"])
    memory += slots * pixels // 100 * 4 * 3  # subsampled predictions, float32 plus float64 working copies
    if s.refine_steps > 0:
        memory += 4 * latent_bytes  # RGB, clean, noisy and summed latents
    return Estimate(disk=disk, memory=memory, size=(height, width))


def free_disk(folder: Path) -> int:
    """Free bytes on the file system that holds ``folder`` (or would, once created)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def check_resources(
    path: Path, info: VideoInfo, options: RunOptions, output_dir: Path, model: ModelShape,
    device_type: str | None = "cpu",
) -> Estimate:
    """Refuse a run that cannot fit on the disk of ``output_dir`` or (on the CPU) in the available memory; a
    ``device_type`` of None (Ray's workers, on other machines) checks the disk only."""
    from ..model.vram import HEADROOM, available_memory

    estimate = estimate_resources(info, options, model)
    res = options.settings.res
    height, width = estimate.size
    what = (f"{path}: {frame_window(info, options)} frames at {width}x{height} "
            f"({'--res 0 keeps the native size' if res == 0 else f'--res {res}'})")
    free = free_disk(output_dir)
    if estimate.disk > free:
        raise UserError(
            f"{what} need about {human_bytes(estimate.disk)} of disk for work files and outputs, but "
            f"{output_dir} has {human_bytes(free)} free; lower --res or process fewer frames (--from/--frames)"
        )
    memory = available_memory() if device_type == "cpu" else None
    if memory is not None and estimate.memory > HEADROOM * memory:  # the batch planner's margin
        raise UserError(
            f"{what} need about {human_bytes(estimate.memory)} of memory besides the model, but "
            f"{human_bytes(memory)} is available; lower --res"
            + (" or the batch sizes" if options.batch_size or options.vae_batch_size else "")
        )
    return estimate


# ------------------------------------------------------------------------------------------------------------------
# Resumable runs
def input_signature(path: Path) -> dict:
    """Path, size and modification time of the input (of every image, for a sequence): a changed input is a new
    input."""
    from ..video.reading import image_files

    path = Path(path).resolve()
    if path.is_dir():
        digest = hashlib.sha1()
        for image in image_files(path):
            stat = image.stat()
            digest.update(f"{image.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return {"path": str(path), "images": digest.hexdigest()}
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


MODEL_KEYS = ("model", "dtype", "device")  # the parts of a run's fingerprint that need the loaded model


def run_fingerprint(pipe, path: Path, options: RunOptions, res: int, n_frames: int) -> dict:
    """Everything the work folder's arrays depend on; a resumed run must match it exactly. With ``pipe`` None, all
    but the :data:`MODEL_KEYS` (see :func:`without_model`)."""
    from .. import __version__
    from ..video.shots import file_digest

    settings = asdict(options.settings)
    settings.pop("res_explicit", None)
    settings.pop("refine_explicit", None)
    settings.pop("dtype", None)  # the dtype really used is the model's, below
    model = {} if pipe is None else dict(zip(MODEL_KEYS, (pipe.weights_digest(), str(pipe.unet.dtype),
                                                           pipe.device.type)))
    return {
        "rolldepth": __version__,
        "input": input_signature(path),
        "window": [options.start, n_frames],
        **model,
        "settings": settings,
        "res": res,
        "restore_res": options.restore_res,
        "autorotate": options.autorotate,
        "shots": options.shots if options.shots in ("auto", "none") else file_digest(options.shots),
        "batch_size": options.batch_size,
        "vae_batch_size": options.vae_batch_size,
        "max_vram": options.max_vram,
        "seed": options.seed,
    }


def find_shots(path: Path, info: VideoInfo, options: RunOptions, n_frames: int,
               on_stage: Callable[[str], None] | None = None) -> list[list[int]]:
    """The shots of the frame window as ``[start, stop)`` ranges inside it (see :mod:`rolldepth.shots`)."""
    from ..video.shots import detect_cuts, drop_short_shots, shot_ranges
    from ..video.reading import iter_frames

    if options.shots == "none" or n_frames == 1:  # one frame (a photo) has no cut: not decoded for nothing
        return [[0, n_frames]]
    if options.shots != "auto":
        return [list(r) for r in shots_from_file(options, info, n_frames)]
    if on_stage:
        on_stage("finding shots")
    try:
        found = detect_cuts(iter_frames(path, options.start, n_frames, options.autorotate), float(info.fps))
    except ImportError as exc:  # OpenCV needs the system's libGL/GLib; a missing one must not stop the run
        log.warning("cut detection is unavailable (%s): %s is processed as one shot; install libgl1 and "
                    "libglib2.0-0 for it, or give --shots none or a shots file", exc, path)
        return [[0, n_frames]]
    shots = shot_ranges([options.start + c for c in found], options.start, n_frames, info.n_frames)
    merged = drop_short_shots(shots, shortest_shot(options.settings))
    if len(merged) < len(shots):
        log.warning("%s: %d detected cut(s) would leave a shot too short to process; ignored", path,
                    len(shots) - len(merged))
    if len(merged) > 1:
        log.info("%s: %d shots, cuts at frames %s", path, len(merged),
                 ", ".join(str(options.start + a) for a, _ in merged[1:]))
    return [list(r) for r in merged]


def write_shots_json(path: Path, shots, depth, options: RunOptions) -> Path:
    """``<stem>_shots.json``: every shot's frame range and the range of its written values."""
    from ..storage.workdir import rows_in_blocks

    low, high = [np.inf] * len(shots), [-np.inf] * len(shots)
    owner = np.zeros(len(depth), dtype=np.int64)
    for k, (first, stop) in enumerate(shots):
        owner[first:stop] = k
    for offset, block in rows_in_blocks(depth):
        for k in np.unique(owner[offset : offset + len(block)]):
            rows = block[owner[offset : offset + len(block)] == k]
            low[k], high[k] = min(low[k], float(np.nanmin(rows))), max(high[k], float(np.nanmax(rows)))
    report = {
        "shots_from": options.shots,
        "note": "frames: [start, stop) indices into the outputs; input_frames: the same in the input's numbering; "
        "each shot is co-aligned and normalised on its own, so values are comparable within a shot only",
        "shots": [
            {"frames": [first, stop], "input_frames": [options.start + first, options.start + stop],
             "range": [low[k], high[k]]}
            for k, (first, stop) in enumerate(shots)
        ],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def work_folder(output_dir: Path, stem: str) -> Path:
    return Path(output_dir) / f".{stem}{WORK_SUFFIX}"


def done_record(fingerprint: dict, options: RunOptions) -> dict:
    """What a finished input's outputs depend on: the work folder's record and the output options (files named by
    their content), as JSON values."""
    from ..video.shots import file_digest

    outputs = asdict(options)
    for key in ("settings", "progress"):  # the settings are in the fingerprint; progress bars change no output
        outputs.pop(key)
    for key in ("metric_anchors", "intrinsics"):
        if outputs[key] is not None:
            outputs[key] = file_digest(outputs[key])
    return json.loads(json.dumps({"run": fingerprint, "outputs": outputs}, default=str))


def _folder_digest(folder: Path, times: bool):
    """A digest of the names and sizes of every file under ``folder`` (and their modification times, with
    ``times``): cheap to take again, it changes when a file is added, removed or rewritten at another size."""
    digest = hashlib.sha1()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(folder)}\0{stat.st_size}".encode())
        digest.update(f"\0{stat.st_mtime_ns}\n".encode() if times else b"\n")
    return digest


def output_contents(path: Path) -> str:
    """What an output holds, in a short digest that is cheap to take again: a file's size, or the names and sizes
    of a folder's files, so that a frame deleted from a PNG folder, or a folder copied half-way, shows. Times are
    left out: an output folder copied elsewhere is still done."""
    if path.is_dir():
        return _folder_digest(path, times=False).hexdigest()[:16]
    return hashlib.sha1(f"{path.stat().st_size}".encode()).hexdigest()[:16]


class DoneFile(NamedTuple):
    """A finished input's done file: what its outputs were computed from, those still as the run left them, how the
    model was loaded (:func:`load_key`), and whether every output it names is still there as it was."""

    record: dict
    files: dict[str, Path]
    load: dict | None
    complete: bool


def _done_file(output_dir: Path, stem: str) -> DoneFile | None:
    """The done file of ``stem`` in ``output_dir``, if it is readable. An output that is gone, or whose contents
    changed (:func:`output_contents`), is left out of its files."""
    try:
        done = json.loads((Path(output_dir) / f".{stem}{DONE_SUFFIX}").read_text())
        named = {key: Path(output_dir) / name for key, name in done["files"].items()}
        record, load, contents = done["record"], done.get("load"), done.get("contents", {})
        files = {key: path for key, path in named.items() if path.exists()
                 and (key not in contents or output_contents(path) == contents[key])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not (isinstance(record, dict) and {"run", "outputs"} <= record.keys()):
        return None
    return DoneFile(record, files, load, bool(named) and len(files) == len(named))


@dataclass
class FinishedDepth:
    """The depth an earlier run of an input wrote, which a run with other output options can reuse."""

    pred: Path  # its <stem>_pred.npy
    shots: list  # [start, stop) frames of each shot
    kept: dict[str, Path]  # outputs that needed the run's work folder, asked for again and still there


def reusable_depth(done: DoneFile, fingerprint: dict, options: RunOptions) -> FinishedDepth | None:
    """The depth of an earlier run of this input (its ``done`` file) that these options would compute again: the same
    run ``fingerprint`` (input, frame window, model, settings; as JSON values, see :func:`done_record`), its
    ``<stem>_pred.npy`` and shots file still there as it left them. Outputs that need the work folder it removed, the
    snippets and the uncertainty, must have been written by it and be there too."""
    if not options.save_npy:
        return None
    record, files = done.record, done.files  # only the outputs still as the run left them
    if record["run"] != fingerprint or "pred" not in files:
        return None
    kept = {}
    for flag, key in (("save_snippets", "snippets"), ("save_uncertainty", "uncertainty")):
        if getattr(options, flag):
            if not (record["outputs"].get(flag) and key in files):
                return None
            kept[key] = files[key]
    if "shots" in files:
        try:
            shots = [list(s["frames"]) for s in json.loads(files["shots"].read_text())["shots"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
    else:
        shots = None  # one shot: the whole depth
    return FinishedDepth(files["pred"], shots, kept)


def likely_done(path: Path, output_dir: Path) -> bool:
    """Whether an earlier run finished this very input (same file, size and time) into ``output_dir`` and its
    outputs are all there: the command line then skips its disk and memory estimate, made before the model loads.
    Whether the model and options were the same is only known once the model is loaded; :func:`process_video` checks
    it, and estimates again for an input that turns out not to be done."""
    done = _done_file(output_dir, output_stem(path))
    try:
        return done is not None and done.complete and done.record["run"]["input"] == input_signature(path)
    except (KeyError, TypeError):
        return False


def load_key(model: str | Path, dtype: str, device) -> dict | None:
    """What decides the model a run loads, known before loading it: the checkpoint folder and its files' names,
    sizes and times, the device and the precision the model runs in there (fp16 asked for on the CPU runs in fp32,
    so it loads the same model as fp32). ``None`` for a hub id, whose files are only known once fetched."""
    folder = Path(model)
    if not folder.is_dir():
        return None
    return {"model": str(folder.resolve()), "files": _folder_digest(folder, times=True).hexdigest(),
            "dtype": str(pick_dtype(dtype, device, asked=False)).removeprefix("torch."), "device": str(device)}


def without_model(path: Path, info: VideoInfo, output_dir: Path, options: RunOptions, model: ModelShape,
                  key: dict | None) -> Callable[[], dict[str, Path]] | None:
    """How to finish an input with no model loaded, if an earlier run of it into ``output_dir``, with the same
    settings and a model loaded the same way (``key``, see :func:`load_key`), left every output asked for (nothing to
    do) or its depth (the outputs are written from it, see :func:`write_from_finished`); ``None`` when the model is
    needed."""
    if key is None:
        return None
    stem = output_stem(path)
    done = _done_file(output_dir, stem)
    if done is None or done.load != key:
        return None
    options = options_for(path, options, model)
    res = options.settings.res
    expected = done_record(run_fingerprint(None, path, options, res, frame_window(info, options)), options)
    earlier = done.record["run"]
    if not isinstance(earlier, dict) or {k: v for k, v in earlier.items() if k not in MODEL_KEYS} != expected["run"]:
        return None
    record = dict(expected, run=earlier)  # the model as the earlier run recorded it: it was loaded the same way
    return _from_earlier_run(path, info, output_dir, options, res, record, None, key, done)


def _from_earlier_run(path: Path, info: VideoInfo, output_dir: Path, options: RunOptions, res: int, record: dict,
                      on_stage, load: dict | None, done: DoneFile | None = None
                      ) -> Callable[[], dict[str, Path]] | None:
    """How to finish an input from what an earlier run with this ``record`` left (its ``done`` file, read here unless
    given): nothing to do when every output is there as it left them (the done file then records ``load``, how the
    model was loaded this time, where it differs), the outputs written from its depth when only that is
    (:func:`write_from_finished`); ``None`` when neither is."""
    stem = output_stem(path)
    done = done or _done_file(output_dir, stem)
    if done is None:
        return None
    if done.complete and done.record == record:
        written = done.files

        def report() -> dict[str, Path]:
            if load is not None and done.load != load:  # the same weights, from new files
                write_done(output_dir, stem, record, written, load)
            log.info("%s: done already, by an earlier run with the same input, model and options (%s); delete an "
                     "output to compute it again", path, ", ".join(p.name for p in written.values()))
            return written

        return report
    if finished := reusable_depth(done, record["run"], options):
        return partial(write_from_finished, path, output_dir, stem, finished, info, options, res, record, on_stage,
                       load)
    return None


def write_done(output_dir: Path, stem: str, record: dict, written: dict[str, Path], load: dict | None = None) -> None:
    """Record a finished input (see :func:`_from_earlier_run`), and how its model was loaded (``load``, see
    :func:`load_key`), written under a temporary name and renamed."""
    from ..video.writers import atomic_path

    content = {"record": record, "files": {key: Path(p).name for key, p in written.items()}, "load": load,
               "contents": {key: output_contents(Path(p)) for key, p in written.items()}}
    with atomic_path(Path(output_dir) / f".{stem}{DONE_SUFFIX}") as tmp:
        tmp.write_text(json.dumps(content, indent=1))


def _rgb_frames(path: Path, start: int, n_frames: int, res: int, native: bool, autorotate: bool):
    """The input frames again, one at a time, at the depth's size (for the side-by-side video)."""
    from ..video.reading import iter_frames, resize_frames

    for frame in iter_frames(path, start, n_frames, autorotate):
        if native:
            yield frame
        else:
            rgb = resize_frames(frame, res)[0].permute(1, 2, 0).numpy()
            yield ((rgb + 1) * 127.5).round().clip(0, 255).astype("uint8")


def process_video(
    pipe,
    path: Path,
    output_dir: Path,
    options: RunOptions,
    info: VideoInfo | None = None,
    on_stage: Callable[[str], None] | None = None,
    *,
    resume: bool = True,
    load: dict | None = None,
) -> dict[str, Path]:
    """Estimate depth for one input and write its outputs; returns them keyed like ``writers.save_outputs``.

    Frames are streamed and intermediate arrays kept in the work folder (see the module notes), so memory stays
    bounded for long videos and an interrupted call resumes when called again (``resume=False`` starts over).
    ``load``: how ``pipe`` was loaded (:func:`load_key`), kept in the done file so that a rerun of a finished input
    can tell before loading the model (:func:`without_model`).
    """
    from ..storage.workdir import DiskStore

    path, output_dir = Path(path), Path(output_dir)
    shape = ModelShape.of_pipe(pipe)
    refine_asked = options.settings.refine_steps
    options = options_for(path, options, shape)
    info = info or check_input(path, options)
    res = options.settings.res
    n_frames = frame_window(info, options)
    stem = output_stem(path)
    fingerprint = run_fingerprint(pipe, path, options, res, n_frames)
    done = done_record(fingerprint, options)
    if resume and (finish := _from_earlier_run(path, info, output_dir, options, res, done, on_stage, load)):
        return finish()  # before the estimate: no new depth is needed
    if options.settings.refine_steps != refine_asked:
        log.info("refinement: %d steps, as the model recommends (its rolldepth.json) instead of the preset's %d; "
                 "--refine-steps N sets them", options.settings.refine_steps, refine_asked)
    check_resources(path, info, options, output_dir, shape, pipe.device.type)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {output_dir}: {exc.strerror or exc}") from None
    store = DiskStore(work_folder(output_dir, stem), fingerprint, resume)
    try:
        shots = store.get("shots")
        if shots is None:
            shots = find_shots(path, info, options, n_frames, on_stage)
            store.set("shots", shots)
        maps, outs, shots = estimate_shots(pipe, path, info, options, store, shots, n_frames, res, on_stage)
        depth = maps["depth"]
        n_done = len(depth)
        fit = fit_anchors(depth, shots, info, options)  # before any output: wrong anchors keep the work for a rerun
        if on_stage:
            on_stage("writing outputs")
        written = write_outputs(path, output_dir, stem, maps, outs, shots, info, options, res, fit, store)
    except AnchorError as exc:  # the depth is fine, the anchors are not: keep it for a rerun with other anchors
        raise UserError(f"{path}: {exc}; the computed depth is kept in {store.folder}: run again with corrected "
                        f"anchors to finish without recomputing it") from None
    except UserError:  # the input is at fault (e.g. a frame that cannot be decoded): nothing worth resuming
        store.remove()
        raise
    finally:
        store.close()
    store.remove()
    write_done(output_dir, stem, done, written, load)
    # stage seconds; snippets_unet and snippets_decode are parts of snippets, not stages of their own
    seconds = sum(v for out in outs for k, v in out.timings.items() if not k.startswith("snippets_"))
    log.info("%d frames in %.1f s (%.2f s/frame): %s", n_done, seconds, seconds / n_done,
             ", ".join(p.name for p in written.values()))
    return written


def write_from_finished(path: Path, output_dir: Path, stem: str, finished: FinishedDepth, info: VideoInfo,
                        options: RunOptions, res: int, done: dict, on_stage, load: dict | None = None
                        ) -> dict[str, Path]:
    """The outputs of ``options`` written from the depth an earlier run left (see :func:`reusable_depth`): asking for
    another output of a finished video (a stereo video, EXRs, another colormap) costs no model call."""
    from ..storage.workdir import NpyArray

    log.info("%s: its depth is done already, by an earlier run with the same input, model and settings (%s): "
             "writing the outputs asked for from it", path, finished.pred.name)
    maps = {"depth": NpyArray(finished.pred)}
    if "uncertainty" in finished.kept:  # its EXRs may be asked for now
        maps["uncertainty"] = NpyArray(finished.kept["uncertainty"])
    depth = maps["depth"]
    try:
        shots = finished.shots or [[0, len(depth)]]
        try:
            fit = fit_anchors(depth, shots, info, options)
        except AnchorError as exc:
            raise UserError(f"{path}: {exc}; run again with corrected anchors: the depth in {finished.pred.name} is "
                            "reused") from None
        if on_stage:
            on_stage("writing outputs")
        outputs = replace(options, save_snippets=False)  # kept from the earlier run
        written = write_outputs(path, output_dir, stem, maps, [], shots, info, outputs, res, fit, None)
    finally:
        for array in maps.values():
            array.close()
    written |= finished.kept
    write_done(output_dir, stem, done, written, load)
    return written


def run_arguments(options: RunOptions, res: int, on_stage: Callable[[str], None] | None) -> dict:
    """The keyword arguments of :meth:`RollingDepthPipeline.run` for ``options``."""
    s = options.settings
    return dict(
        dilations=s.dilations, snippet_lengths=s.snippet_lengths, cap_dilation=s.cap_dilation,
        refine_steps=s.refine_steps, refine_snippet_length=s.refine_snippet_length,
        refine_start_dilation=s.refine_start_dilation, coalign_mode=s.coalign, processing_res=res,
        restore_res=options.restore_res,
        batch_size=options.batch_size, vae_batch_size=options.vae_batch_size, max_vram=options.max_vram,
        generator=options.seed,
        return_snippets=options.save_snippets, output_uncertainty=options.save_uncertainty,
        progress=options.progress, on_stage=on_stage,
    )


def estimate_shots(pipe, path: Path, info: VideoInfo, options: RunOptions, store, shots, n_frames: int, res: int,
                   on_stage):
    """The depth of every shot, each run on its own and copied into the video's depth.

    Returns the video's maps (``"depth"``, and ``"uncertainty"`` when asked for), the pipeline's outputs (one per
    shot) and the shots (fewer when a damaged file stops early).
    """
    from ..model.pipeline import FrameSource
    from ..storage.workdir import PrefixedStore, rows_in_blocks
    from ..video.reading import iter_frames

    def frames(first: int, stop: int = n_frames):
        if first >= stop:
            return iter(())
        return iter_frames(path, options.start + first, stop - first, options.autorotate)

    def shot_maps(out) -> dict:
        return {"depth": out.depth} | ({"uncertainty": out.uncertainty} if out.uncertainty is not None else {})

    kwargs = run_arguments(options, res, on_stage)
    if len(shots) == 1:  # one shot: exactly the single-run path, nothing assembled
        out = pipe.run(FrameSource(n_frames, info.height, info.width, frames), store, **kwargs)
        return shot_maps(out), [out], shots
    maps, outs = {}, []
    for k, (first, stop) in enumerate(shots):
        log.info("shot %d of %d: frames %d-%d", k + 1, len(shots), options.start + first, options.start + stop - 1)
        source = FrameSource(stop - first, info.height, info.width,
                             lambda offset, first=first, stop=stop: frames(first + offset, stop))
        out = pipe.run(source, PrefixedStore(store, f"shot{k}_"), **kwargs)
        outs.append(out)
        for name, shot_map in shot_maps(out).items():
            if name not in maps:
                maps[name] = store.array(name, (n_frames, *shot_map.shape[1:]))
            if not store.get(f"shot{k}_copied_{name}"):
                for offset, block in rows_in_blocks(shot_map):
                    maps[name][first + offset : first + offset + len(block)] = block
                store.set(f"shot{k}_copied_{name}", True)
        if len(out.depth) < stop - first:  # a damaged file: decoding stopped inside this shot
            shots = shots[:k] + [[first, first + len(out.depth)]]
            for name, whole in maps.items():
                trimmed = store.array(f"{name}_trimmed", (first + len(out.depth), *whole.shape[1:]))
                for offset, block in rows_in_blocks(whole.head(len(trimmed))):
                    trimmed[offset : offset + len(block)] = block
                maps[name] = trimmed
            return maps, outs, shots
    return maps, outs, shots


def fit_anchors(depth, shots, info: VideoInfo, options: RunOptions):
    """The metric scale fitted to ``--metric-anchors`` (``None`` without them)."""
    if options.metric_anchors is None:
        return None
    from ..method.metric_scale import fit_metric_scale

    if len(shots) > 1:  # every shot has its own normalisation: one map for the video would be wrong
        raise AnchorError(
            f"--metric-anchors fits one scale for the whole video, but it has {len(shots)} shots (cuts at "
            f"frames {', '.join(str(options.start + a) for a, _ in shots[1:])}); run each shot on its own "
            "(--from/--frames) with its anchors, or --shots none if the cuts are not real"
        )
    return fit_metric_scale(depth, options.metric_anchors, (info.width, info.height), options.start,
                            options.anchor_tolerance)


def add_sound(path: Path, info: VideoInfo, options: RunOptions, n_done: int, start: Fraction | None, times,
              outputs) -> None:
    """The input's sound, cut to the frames written (the first shown at ``start`` seconds, the others ``times``
    after it, see :func:`rolldepth.video.reading.frame_clock`), into each MP4 output (see
    :mod:`rolldepth.video.audio`)."""
    import av

    from ..video.audio import add_audio, has_audio, mp4_sound

    videos = [p for p in outputs if p.suffix == ".mp4"]
    if not videos or not has_audio(path):
        return
    if options.fps:
        log.info("%s: --fps %g retimes the depth videos, so they are written without the input's sound", path,
                 options.fps)
        return
    duration = (times[-1] if times else Fraction(n_done - 1) / info.fps) + 1 / info.fps
    try:
        with mp4_sound(path, start, duration, videos[0].parent) as (sound, sound_start):
            for video in videos:
                try:
                    add_audio(video, sound, sound_start, duration)
                except av.FFmpegError as exc:  # the depth is done: a damaged sound track must not lose it
                    log.warning("%s: its sound could not be added to %s (%s); the video is written without it",
                                path, video.name, first_line(exc))
    except av.FFmpegError as exc:
        log.warning("%s: its sound could not be encoded (%s); the videos are written without it", path,
                    first_line(exc))


def write_outputs(path: Path, output_dir: Path, stem: str, maps, outs, shots, info: VideoInfo, options: RunOptions,
                  res: int, fit, store) -> dict[str, Path]:
    """Every output of one input; the finished depth file in the work folder becomes ``<stem>_pred.npy``, and the
    uncertainty's ``<stem>_uncertainty.npy``."""
    from ..video.reading import frame_clock, frame_names, is_still
    from ..video.timecode import shift_timecode
    from ..video.writers import save_outputs

    depth = maps["depth"]
    n_done = len(depth)
    rgb = _rgb_frames(path, options.start, n_done, res, native=options.restore_res,
                      autorotate=options.autorotate) if options.save_sbs else None
    snippets = None
    if options.save_snippets:
        snippets = {}
        for k, out in enumerate(outs):
            prefix = f"shot{k}_" if len(outs) > 1 else ""
            snippets |= {f"{prefix}dilation{g.dilation}_{i}": a
                         for i, (g, a) in enumerate(zip(out.groups, out.snippets))}
            snippets |= {f"{prefix}dilation{g.dilation}_{i}_indices": g.indices for i, g in enumerate(out.groups)}
    fps = Fraction(options.fps).limit_denominator(1001) if options.fps else info.fps
    # a variable rate's frame times, and when the first is shown (for the sound); --fps retimes every frame
    start, times = (None, None) if options.fps else frame_clock(info, options.start, options.start + n_done)
    names = frame_names(path, options.start, n_done)  # plate.1001 stays plate.1001, --from 100 starts at 100
    timecode = None  # the videos start at the timecode of the first frame processed; --fps retimes the frames
    if info.timecode and not options.fps:
        timecode = shift_timecode(info.timecode, options.start, info.fps)
    uncertainty = maps.get("uncertainty")
    stereo_rgb = _rgb_frames(path, options.start, n_done, res, native=True,
                             autorotate=options.autorotate) if options.stereo else None  # at the input's size
    written = save_outputs(
        output_dir, stem, depth, rgb, fps, save_npy=False, save_png=options.save_png,
        save_exr=options.save_exr, save_depth16=options.save_depth16, cmaps=tuple(options.cmaps),
        save_sbs=options.save_sbs, snippets=snippets,
        times=times, names=names, still=is_still(path), timecode=timecode, stereo=options.stereo,
        stereo_rgb=stereo_rgb, uncertainty=uncertainty,
    )
    if options.audio:
        add_sound(path, info, options, n_done, start, times, written.values())
    if len(shots) > 1:  # a video without cuts gets exactly the outputs it always got
        written["shots"] = write_shots_json(output_dir / f"{stem}_shots.json", shots, depth, options)
    if fit is not None or options.save_ply or options.save_rrd:
        from ..video.export3d import write_3d_outputs

        rgb = _rgb_frames(path, options.start, n_done, res, native=options.restore_res,
                          autorotate=options.autorotate) if (options.save_ply or options.save_rrd) else None
        written |= write_3d_outputs(output_dir, stem, depth, rgb, options.export3d(), fit,
                                    (info.width, info.height), options.start, names)
    if store is not None:
        store.close()  # the finished files become the outputs: a rename, not a copy
    # an earlier run's files (write_from_finished) are in place already
    if uncertainty is not None:
        written["uncertainty"] = output_dir / f"{stem}_uncertainty.npy"
        if Path(uncertainty.path) != written["uncertainty"]:
            os.replace(uncertainty.path, written["uncertainty"])
    if options.save_npy:
        final = output_dir / f"{stem}_pred.npy"
        if Path(depth.path) != final:
            os.replace(depth.path, final)
        written = {"pred": final, **written}
    return written

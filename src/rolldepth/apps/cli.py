"""The ``rolldepth`` command line: run, bench, web, and the data/model commands (synth, train, eval).

User mistakes (``UserError``) become one line on stderr and exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import tempfile
from pathlib import Path

from ..errors import UserError
from ..process.presets import PRESETS
from ..model.loading import load_pipeline, pick_device
from ..weights import default_model

log = logging.getLogger("rolldepth")


def check_writable(folder: Path) -> None:
    """Fail now, not after the checks and the model load, if ``folder`` cannot be created or written; create
    nothing (a run refused for bad input leaves no output folder behind)."""
    base = folder.absolute()
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise UserError(f"cannot create the output folder {folder}: {base} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=base, prefix=".rolldepth-probe-").cleanup()
    except OSError as exc:
        raise UserError(f"cannot write the output folder {folder}: {exc.strerror or exc}") from None


def check_distinct_stems(inputs: list[Path]) -> None:
    """Two inputs named alike (``a/clip.mp4``, ``b/clip.mp4``) would write the same ``clip_*`` outputs."""
    from ..process.runner import output_stem

    seen: dict[str, Path] = {}
    for path in inputs:
        other = seen.setdefault(output_stem(path), path)
        if other != path:
            raise UserError(
                f"{other} and {path} would both write {output_stem(path)}_* outputs; run them into different -o folders"
            )


# ------------------------------------------------------------------------------------------------------------------
def add_run_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="estimate depth for videos, image-sequence folders, folders of videos or .txt lists",
        description="Estimate a temporally consistent depth video (relative inverse depth: larger = nearer).",
    )
    p.add_argument("inputs", nargs="+",
                   help="video file, image-sequence folder, single image, folder of videos, or .txt list")
    p.add_argument("-o", "--output-dir", required=True, type=Path, help="folder for the outputs (created)")
    p.add_argument("-p", "--preset", default="fast", choices=list(PRESETS), help="inference preset (default fast)")
    p.add_argument("-m", "--model", help="checkpoint folder or hub id (default: the embedded small model)")
    p.add_argument("--res", type=int, help="processing max side in px, 0 = native (default: preset/model)")
    p.add_argument("-d", "--dilations", type=int, nargs="+", help="snippet dilations, must include 1")
    p.add_argument("--snippet-lengths", "--snip-len", type=int, nargs="+", dest="snippet_lengths",
                   help="frames per snippet: one value, or one per dilation (default 3)")
    p.add_argument("--cap-dilation", action=argparse.BooleanOptionalAction, default=None,
                   help="shrink dilations that do not fit short videos (default: preset)")
    p.add_argument("--refine-steps", "--refine-step", type=int, dest="refine_steps",
                   help="refinement steps, 0 = off (default: the model's recommendation, else the preset's)")
    p.add_argument("--refine-snippet-length", type=int, help="snippet length during refinement (default 3)")
    p.add_argument("--refine-start-dilation", type=int, help="first refinement dilation (default 6)")
    p.add_argument("--coalign", choices=("official", "objective"),
                   help="co-alignment: the official procedure's fixed point, or the minimum of its loss (default "
                   "objective, which scored at least as well on the synthetic splits; the paper preset uses official)")
    p.add_argument("--dtype", choices=["fp32", "fp16"], help="precision (default: preset; fp32 on the CPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument("--from", "--start-frame", type=int, default=0, dest="start", help="first frame (default 0)")
    p.add_argument("--frames", "--frame-count", type=int, default=0, dest="count",
                   help="number of frames, 0 = to the end (default 0)")
    p.add_argument("--fps", type=float, default=0, help="output fps, 0 = input fps (default 0)")
    p.add_argument("--input-fps", type=float, default=30, help="frame rate of image sequences (default 30)")
    p.add_argument("--shots", default="auto", metavar="auto|none|FILE",
                   help="shot cuts: detected (auto, default), none, or read from FILE (frame numbers or "
                   "PySceneDetect's CSV); snippets never span a cut and each shot is aligned and normalised on its own")
    p.add_argument("--no-autorotate", dest="autorotate", action="store_false",
                   help="ignore a video's display rotation, pixel shape, interlacing and HDR transfer (and an image's "
                   "EXIF orientation) and process the stored pixels as they are, as the official RollingDepth does "
                   "(default: phone videos and photos are turned upright, non-square pixels resampled to the shown "
                   "shape, interlaced frames deinterlaced and HDR (PQ, HLG) frames converted to SDR, first)")
    p.add_argument("--restore-res", action="store_true", help="resize the depth back to the input resolution")
    p.add_argument("--cmap", nargs="*", default=["Spectral_r", "Greys_r"],
                   help="colormaps of the depth videos; none given = no videos (default Spectral_r Greys_r)")
    p.add_argument("--save-npy", action=argparse.BooleanOptionalAction, default=True,
                   help="write <stem>_pred.npy float32 [N,H,W] (default on)")
    p.add_argument("--save-png", action=argparse.BooleanOptionalAction, default=True,
                   help="write a 16-bit PNG sequence <stem>_png16/ (default on)")
    p.add_argument("--save-exr", action=argparse.BooleanOptionalAction, default=False,
                   help="write a float32 OpenEXR sequence <stem>_exr/, the exact values of the .npy (default off)")
    p.add_argument("--save-depth16", action=argparse.BooleanOptionalAction, default=False,
                   help="write <stem>_depth16.mkv: the 16-bit PNGs' values, bit for bit, as one lossless video "
                   "(FFV1, 16-bit gray), smaller than they are; the range is in its tags (default off)")
    p.add_argument("--save-sbs", action=argparse.BooleanOptionalAction, default=True,
                   help="write the RGB|depth side-by-side video (default on)")
    p.add_argument("--audio", action=argparse.BooleanOptionalAction, default=True,
                   help="put the input video's sound, cut to the frames processed, in the depth and side-by-side "
                   "videos (default on)")
    p.add_argument("--save-snippets", action="store_true", help="write the raw snippet predictions <stem>_snippets.npz")
    p.add_argument("--save-uncertainty", action="store_true",
                   help="write <stem>_uncertainty.npy float32 [N,H,W]: at every pixel, the standard deviation of the "
                   "co-aligned predictions of the snippets that hold the frame, in the depth's units (where they "
                   "disagree, the depth is less sure); with --save-exr also <stem>_uncertainty_exr/")
    p.add_argument("--batch-size", type=int, help="snippets per UNet call (default: as many as fit the GPU's "
                   "free memory; on the CPU up to 4 that fit its memory)")
    p.add_argument("--vae-batch-size", "--max-vae-bs", type=int, dest="vae_batch_size",
                   help="frames per VAE call (default: as many as fit the GPU's free memory; on the CPU up to 4 "
                   "that fit its memory)")
    p.add_argument("--max-vram", type=float, metavar="GB",
                   help="GPU memory the automatic batch sizes may plan for, in GB (default: what is free)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shared noise map (default 0)")
    p.add_argument("--ray", metavar="ADDRESS", help="spread the videos over a Ray cluster (auto, host:port, "
                   "ray://host:10001, or local to start one here); OUT must be shared storage")
    p.add_argument("--ray-cpus", type=float, default=1, help="Ray CPUs per video (default 1)")
    p.add_argument("--ray-gpus", type=float, help="Ray GPUs per video, each video on GPUs of its own (0.5: two share "
                   "one; default 1 where the cluster has GPUs and --device is not cpu, else 0)")
    add_3d_arguments(p)
    p.set_defaults(func=cmd_run)


def add_3d_arguments(p) -> None:
    g = p.add_argument_group("metric depth and 3-D export")
    g.add_argument("--metric-anchors", type=Path, metavar="FILE",
                   help="CSV/JSON of known distances (frame, x, y, metres; pixels of the input frame): fit the video's "
                   "metric scale robustly and write <stem>_depth_m.npy (metres; not with --no-save-npy; EXR too with "
                   "--save-exr) and <stem>_metric.json (fit, residuals); one input only")
    g.add_argument("--anchor-tolerance", type=float, default=0.25, metavar="FRACTION",
                   help="relative depth error within which an anchor agrees with the fit; the others are outliers "
                   "(default 0.25)")
    g.add_argument("--save-ply", action="store_true",
                   help="write coloured point clouds <stem>_ply/frame_000000.ply, ... (binary PLY, camera "
                   "coordinates, metres) every --ply-every frames; needs --fov or --intrinsics")
    g.add_argument("--ply-every", type=int, default=10, metavar="N",
                   help="export every N-th frame as a point cloud (default 10)")
    g.add_argument("--fov", type=float, metavar="DEG", help="horizontal field of view of the camera, degrees")
    g.add_argument("--intrinsics", type=Path, metavar="FILE",
                   help="camera intrinsics in the input's pixels: JSON {\"K\": 3x3} or {\"fx\",\"fy\",\"cx\",\"cy\"} "
                   "(optionally \"width\", \"height\"), or text fx fy cx cy")
    g.add_argument("--assumed-range", type=float, nargs=2, default=(1.0, 10.0), metavar=("NEAR", "FAR"),
                   help="without anchors, the 3-D export maps the relative depth to this range in metres: NOT metric "
                   "(default 1 10)")
    g.add_argument("--save-rrd", action="store_true",
                   help="log RGB, depth and points of every --ply-every-th frame to <stem>.rrd for the Rerun viewer "
                   "(pip install 'rolldepth[rrd]'); needs --fov or --intrinsics")
    add_stereo_arguments(p)


def add_stereo_arguments(p) -> None:
    from ..video.stereo import STEREO_LAYOUTS, StereoOptions

    default = StereoOptions()
    g = p.add_argument_group("stereo 3-D video")
    g.add_argument("--save-stereo", nargs="?", const="sbs", choices=STEREO_LAYOUTS, metavar="LAYOUT",
                   help="write a stereo 3-D video <stem>_stereo_<LAYOUT>.mp4 rendered from the input frames and the "
                   "depth: sbs (left | right, full width each; the default), half-sbs (each eye half width, for 3-D "
                   "TVs) or anaglyph (red-cyan glasses)")
    g.add_argument("--stereo-parallax", type=float, default=default.parallax, metavar="PERCENT",
                   help="parallax between the nearest and the farthest point, in %% of the frame width (default "
                   f"{default.parallax:g}; more is a stronger effect, and harder on the eyes)")
    g.add_argument("--stereo-convergence", type=float, default=default.convergence, metavar="FRACTION",
                   help="which depth lies on the screen plane: 0 the farthest point (the scene comes out of the "
                   f"screen), 1 the nearest (it lies behind) (default {default.convergence:g})")


def stereo_options(args):
    """The stereo options of the command line: None without --save-stereo (their values are checked either way)."""
    from ..video.stereo import StereoOptions

    stereo = StereoOptions(args.save_stereo or "sbs", args.stereo_parallax, args.stereo_convergence)
    stereo.check()
    return stereo if args.save_stereo else None


def cmd_run(args) -> int:
    from ..model.layout import check_model_name
    from ..process.presets import resolve_settings
    from ..process.runner import (
        ModelShape, RunOptions, check_input, check_resources, likely_done, load_key, options_for, process_video,
        without_model,
    )
    from ..video.reading import list_inputs

    settings = resolve_settings(
        args.preset, res=args.res, dilations=args.dilations, snippet_lengths=args.snippet_lengths,
        cap_dilation=args.cap_dilation, dtype=args.dtype, refine_steps=args.refine_steps,
        refine_snippet_length=args.refine_snippet_length, refine_start_dilation=args.refine_start_dilation,
        coalign=args.coalign,
    )
    options = RunOptions(
        settings=settings, start=args.start, count=args.count, fps=args.fps, input_fps=args.input_fps,
        autorotate=args.autorotate, shots=args.shots,
        restore_res=args.restore_res, cmaps=tuple(args.cmap), save_npy=args.save_npy, save_png=args.save_png,
        save_exr=args.save_exr, save_depth16=args.save_depth16, save_sbs=args.save_sbs, audio=args.audio,
        save_snippets=args.save_snippets, save_uncertainty=args.save_uncertainty,
        batch_size=args.batch_size,
        vae_batch_size=args.vae_batch_size, max_vram=args.max_vram, seed=args.seed, progress=not args.quiet,
        metric_anchors=args.metric_anchors, anchor_tolerance=args.anchor_tolerance, save_ply=args.save_ply,
        ply_every=args.ply_every, save_rrd=args.save_rrd, fov=args.fov, intrinsics=args.intrinsics,
        assumed_range=tuple(args.assumed_range), stereo=stereo_options(args),
    )
    options.check()
    if args.ray_cpus <= 0:
        raise UserError("--ray-cpus must be > 0")
    if args.ray_gpus is not None and args.ray_gpus < 0:
        raise UserError("--ray-gpus must be >= 0")
    check_writable(args.output_dir)
    inputs = [path for arg in args.inputs for path in list_inputs(Path(arg))]
    unique: dict[Path, Path] = {}
    for path in inputs:
        unique.setdefault(path.resolve(), path)  # an input named twice runs once
    inputs = list(unique.values())
    check_distinct_stems(inputs)
    if options.metric_anchors is not None and len(inputs) > 1:
        raise UserError(f"--metric-anchors holds the distances of one video, but {len(inputs)} inputs were given: "
                        "run each video with its own anchors")
    model = args.model or default_model()
    check_model_name(model)  # a wrong folder answered before torch loads; a hub id is checked when it is fetched
    shape = ModelShape.of_folder(model)  # read from its configs: the model itself is loaded after the checks
    infos = [check_input(path, options, model=shape) for path in inputs]  # answered before torch loads
    device_type = None if args.ray else pick_device(args.device).type  # Ray: the workers' devices, not this one's
    for path, info in zip(inputs, infos):  # the disk and memory each needs, estimated before the model loads
        if not likely_done(path, args.output_dir):  # a rerun of a finished input needs neither
            check_resources(path, info, options_for(path, options, shape), args.output_dir, shape, device_type)
    if args.ray:
        from .ray_cluster import run_on_ray

        run_on_ray(args.ray, list(zip(inputs, infos)), str(model), args.output_dir, options,
                   dtype=settings.dtype, device=args.device, cpus_per_video=args.ray_cpus, gpus=args.ray_gpus)
        return 0
    key = load_key(model, settings.dtype, pick_device(args.device))
    # inputs an earlier run finished, or whose depth it left, need no model: it loads only if another one does
    finishers = [without_model(path, info, args.output_dir, options, shape, key) for path, info in zip(inputs, infos)]
    pipe = None
    if any(finish is None for finish in finishers):
        pipe = load_pipeline(model, settings.dtype, args.device, dtype_asked=args.dtype is not None)
    failed: list[tuple[Path, UserError]] = []
    try:
        for number, (path, info, finish) in enumerate(zip(inputs, infos, finishers), 1):
            log.info("[%d/%d] %s", number, len(inputs), path)
            try:
                if finish is not None:
                    finish()
                else:
                    process_video(pipe, path, args.output_dir, options, info, load=key)
            except UserError as exc:  # found while processing (a damaged file): the other inputs go on
                if len(inputs) == 1:
                    raise
                print_error(exc if str(path) in str(exc) else f"{path}: {exc}")
                failed.append((path, exc))
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
            raise
        raise UserError(
            f"cannot write to {args.output_dir}: {exc.strerror} (free some space and rerun the command to resume)"
        ) from None
    if failed:
        raise UserError(f"{len(failed)} of {len(inputs)} inputs failed, the others are done: "
                        + ", ".join(str(path) for path, _ in failed) + " (errors above)")
    return 0


# ------------------------------------------------------------------------------------------------------------------
def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="print co-alignment and end-to-end speed/memory figures")
    p.add_argument("--what", choices=["coalign", "pipeline", "memory", "gpu", "all"], default="all",
                   help="all = coalign and pipeline; memory (peak RSS of rolldepth run vs video length, minutes) "
                        "and gpu (the real-size pipeline on an accelerator: stages, VRAM, fp16 vs fp32) only run "
                        "when asked for")
    p.add_argument("-m", "--model", help="checkpoint for the end-to-end figures (default: embedded model)")
    p.add_argument("--frames", type=int, nargs="+", default=[100, 300], help="video lengths of the co-alignment bench")
    p.add_argument("--video-frames", type=int, default=48, help="frames of the end-to-end bench video")
    p.add_argument("--res", type=int, help="processing resolution of the end-to-end and memory benches "
                                            "(memory default 64)")
    p.add_argument("--memory-frames", type=int, nargs="+", default=[100, 1000],
                   help="video lengths of the memory bench (default 100 1000)")
    p.add_argument("-d", "--dilations", type=int, nargs="+", default=[1, 10, 25])
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("gpu bench")
    g.add_argument("--shape", choices=["sd2", "tiny"], default="sd2",
                   help="random-init model shapes: sd2 = prs-eth/rollingdepth-v1-0's, tiny = a CPU rehearsal")
    g.add_argument("--device", default="cuda", help="device of the gpu bench (default cuda)")
    g.add_argument("--fast-frames", type=int, default=250, help="frames of the fast-preset run (250)")
    g.add_argument("--paper-frames", type=int, default=100, help="frames of the paper-preset run (100)")
    g.add_argument("--max-vram", type=float, default=6.0, metavar="GB", help="VRAM cap of the capped run (6)")
    g.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    lengths = [*args.frames, args.video_frames, *args.memory_frames, args.fast_frames, args.paper_frames]
    if min(lengths) < 3:
        raise UserError(f"bench videos need at least 3 frames (one snippet), got {min(lengths)}")
    if args.res is not None and args.res < 0:
        raise UserError(f"--res must be >= 0 (0 keeps the input size), got {args.res}")
    if args.what == "gpu" and args.device.startswith("cuda") and not torch_cuda_available():
        raise UserError("--what gpu needs a CUDA device (or --device cpu --shape tiny for a rehearsal)")
    from .bench import bench_coalign, bench_memory, bench_pipeline  # loads diffusers: after the checks

    if args.what in ("coalign", "all"):
        bench_coalign(args.frames, args.dilations, args.seed)
    if args.what in ("pipeline", "all"):
        bench_pipeline(args.model or default_model(), args.video_frames, args.res, args.dilations, args.seed)
    if args.what == "memory":  # the tiny random-init model unless one is given: memory is about the data
        bench_memory(args.model, args.memory_frames, 64 if args.res is None else args.res,
                     dilations=args.dilations, seed=args.seed)
    if args.what == "gpu":
        from .bench_gpu import bench_gpu

        bench_gpu(args.shape, args.device, args.fast_frames, args.paper_frames, res=args.res or 768,
                  max_vram=args.max_vram, json_path=args.json)
    return 0


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# ------------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rolldepth", description="Temporally consistent depth for any video (RollingDepth): 'rolldepth run "
        "VIDEO -o OUT' writes relative inverse depth (larger = nearer) as .npy, 16-bit PNGs and colorized videos. "
        "'rolldepth COMMAND -h' tells more.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors, no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_parser(sub)
    add_bench_parser(sub)
    modules = ("data.synth", "train.cli", "evaluate.runner", "evaluate.compare", "apps.web")
    for module in modules:  # each adds its own subcommand
        __import__(f"rolldepth.{module}", fromlist=["register_cli"]).register_cli(sub)
    for command in sub.choices.values():  # -v/-q also after the command: `rolldepth run clip.mp4 -o out -q`
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                             help="only warnings and errors, no progress bars")
    return parser


def print_error(message) -> None:
    """A user mistake, as the command reports it: one line on stderr."""
    print(f"rolldepth: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    if args.quiet:
        import os

        os.environ["TQDM_DISABLE"] = "1"  # also silences the weight-loading bars (see load_components)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print_error(exc)
        return 2
    except KeyboardInterrupt:
        print("rolldepth: interrupted; run the same command again to continue where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

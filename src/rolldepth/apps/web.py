"""A small web page for one video or photo at a time: upload, pick a preset, watch progress, see and download the
results.

``rolldepth web`` serves it. The page calls the same ``process_video`` as ``rolldepth run``, so its outputs are
the CLI's. Gradio is an optional extra (``pip install 'rolldepth[web]'``) and is imported only when the page is
built, so the rest of the CLI works without it.
"""

from __future__ import annotations

import atexit
import json
import logging
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from ..process.presets import PRESETS

log = logging.getLogger(__name__)

COLORMAPS = ("Spectral_r", "Greys_r", "viridis", "inferno", "magma", "turbo")
# The stages process_video reports, in order; a stage it reports that is not listed keeps the bar where it is.
STAGES = ("finding shots", "reading frames", "estimating depth", "writing outputs")
KEEP_SECONDS = 3600  # request folders older than this are removed when a new request starts


def require_gradio():
    """Import gradio, or say in one line how to install it."""
    try:
        import gradio
    except ModuleNotFoundError as exc:
        if exc.name != "gradio":
            raise
        raise UserError("the web page needs gradio: pip install 'rolldepth[web]'") from None
    return gradio


# ------------------------------------------------------------------------------------------------------------------
class PipelineCache:
    """Load the pipeline on the first request and keep it: loading costs far more than a short video.

    Keyed by the precision the device really runs (on the CPU every preset runs fp32, so one load serves all).
    """

    def __init__(self, model: str | None = None, device: str = "auto", loader: Callable | None = None):
        self.model, self.device = model, device
        self._loader = loader
        self._pipes: dict = {}
        self._lock = threading.Lock()

    def get(self, dtype_name: str):
        from ..model.loading import load_pipeline, pick_device, pick_dtype

        with self._lock:
            device = pick_device(self.device)
            key = (str(device), pick_dtype(dtype_name, device))
            if key not in self._pipes:
                log.info("loading the model %s on %s", self.model or "(embedded)", device)
                self._pipes[key] = (self._loader or load_pipeline)(self.model, dtype_name, str(device))
            return self._pipes[key]


@dataclass
class RequestResult:
    """The files one request wrote, and what the page says about it."""

    folder: Path
    depth_video: Path  # for a photo (``still``), the colorized depth and side-by-side outputs are PNG images
    sbs_video: Path
    npy: Path
    png_zip: Path
    exr_zip: Path
    stereo: Path  # the input in stereo 3-D, left | right (--save-stereo sbs; a PNG for a photo)
    uncertainty: Path | None  # the snippets' disagreement (--save-uncertainty); None for a photo, which has none
    depth16: Path | None  # the 16-bit PNGs' codes as one lossless video (--save-depth16); None for a photo
    uncertainty_video: Path | None  # the uncertainty's preview (black: the snippets agree); None for a photo
    n_frames: int
    stage_seconds: list[tuple[str, float]] = field(default_factory=list)
    shots: list[tuple[int, int]] = field(default_factory=list)  # [start, stop) frames; empty: no cuts
    still: bool = False
    notes: list[str] = field(default_factory=list)  # the run's warnings (a damaged frame, a sound not added, ...)

    def summary(self) -> str:
        stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.stage_seconds)
        total = sum(seconds for _, seconds in self.stage_seconds)
        what = "the photo" if self.still else f"{self.n_frames} frame{'s' * (self.n_frames != 1)}"
        text = f"Done: {what} in {total:.1f} s ({stages})."
        if self.shots:
            ranges = ", ".join(f"{a}-{b - 1}" for a, b in self.shots)
            text += f" {len(self.shots)} shots (frames {ranges}), each aligned and normalised on its own."
        if self.notes:
            text += " Note: " + " ".join(note if note.endswith(".") else note + "." for note in self.notes)
        return text

    def shot_strip(self, cmap: str) -> list[tuple[np.ndarray, str]]:
        """The first depth frame of every shot, colorized, with its caption (the page's shot strip)."""
        from ..video.writers import colorize

        depth = np.load(self.npy, mmap_mode="r")
        return [(colorize(np.asarray(depth[a : a + 1]), cmap)[0], f"shot {k + 1}: frames {a}-{b - 1}")
                for k, (a, b) in enumerate(self.shots)]


def zip_folder(folder: Path, target: Path) -> Path:
    """Store a folder's files in a zip without recompressing them (PNGs and ZIP-compressed EXRs already are)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                archive.write(path, f"{folder.name}/{path.name}")
    return target


def prune_old(root: Path, keep_seconds: float = KEEP_SECONDS) -> None:
    """Remove request folders nobody will download from any more, so a long-running server does not fill the disk."""
    cutoff = time.time() - keep_seconds
    for path in root.iterdir():
        if path.is_dir() and path.stat().st_mtime < cutoff:
            shutil.rmtree(path, ignore_errors=True)


def _optional_int(value, name: str) -> int | None:
    """An option box left empty means "the preset's value"; anything else must be a whole number."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{name} must be a whole number or empty, got {text!r}") from None


def run_request(
    cache: PipelineCache,
    video: str | Path | None,
    preset: str,
    res,
    refine_steps,
    cmap: str,
    work_root: Path,
    on_stage: Callable[[str], None] | None = None,
) -> RequestResult:
    """Process one uploaded video or photo into its own folder under ``work_root``; user mistakes raise
    ``UserError``. A photo gets per-frame depth and PNG previews, as with ``rolldepth run photo.jpg``."""
    from ..process.presets import resolve_settings
    from ..process.runner import RunOptions, check_input, process_video
    from ..video.reading import is_still
    from ..video.stereo import StereoOptions

    if not video:
        raise UserError("upload a video or a photo first")
    settings = resolve_settings(
        preset, res=_optional_int(res, "resolution"), refine_steps=_optional_int(refine_steps, "refinement steps")
    )
    path = Path(video)
    options = RunOptions(settings=settings, cmaps=(cmap,), save_npy=True, save_png=True, save_exr=True,
                         save_sbs=True, stereo=StereoOptions(), save_uncertainty=not is_still(path),
                         save_depth16=not is_still(path))
    options.check()
    try:
        info = check_input(path, options)  # a bad upload fails before the model loads
    except UserError as exc:  # the server's upload path means nothing to the person at the browser
        raise UserError(str(exc).replace(str(path), path.name)) from None
    stamps: list[tuple[str, float]] = []

    def stage(name: str) -> None:
        stamps.append((name, time.perf_counter()))
        if on_stage:
            on_stage(name)

    stage("loading the model")
    pipe = cache.get(settings.dtype)
    work_root.mkdir(parents=True, exist_ok=True)
    prune_old(work_root)
    folder = Path(tempfile.mkdtemp(prefix="request-", dir=work_root))
    with warnings_of_this_thread() as notes:  # the person at the browser sees no log
        written = process_video(pipe, path, folder, options, info, on_stage=stage)
    stage("packing downloads")
    png_zip = zip_folder(written["png16"], folder / f"{written['png16'].name}.zip")
    exr_zip = zip_folder(written["exr"], folder / f"{written['exr'].name}.zip")
    stamps.append(("", time.perf_counter()))
    n_frames = int(np.load(written["pred"], mmap_mode="r").shape[0])
    shots = []
    if "shots" in written:
        shots = [tuple(s["frames"]) for s in json.loads(written["shots"].read_text())["shots"]]
    return RequestResult(
        folder=folder, depth_video=written[cmap], sbs_video=written["rgbd"], npy=written["pred"], png_zip=png_zip,
        exr_zip=exr_zip, stereo=written["stereo_sbs"], uncertainty=written.get("uncertainty"),
        depth16=written.get("depth16"), uncertainty_video=written.get("uncertainty_inferno"), n_frames=n_frames,
        shots=shots, still=is_still(path),
        stage_seconds=[(a, t1 - t0) for (a, t0), (_, t1) in zip(stamps, stamps[1:])],
        notes=[note.replace(str(path), path.name) for note in notes],  # the server's upload path means nothing there
    )


@contextmanager
def warnings_of_this_thread() -> Iterator[list[str]]:
    """The messages of rolldepth's warnings logged by this thread while the block runs (another request's, on
    another thread, are not this one's)."""
    notes: list[str] = []
    thread = threading.get_ident()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread:
                notes.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("rolldepth")
    logger.addHandler(handler)
    try:
        yield notes
    finally:
        logger.removeHandler(handler)


def stage_fraction(name: str, last: float) -> float:
    """Where the progress bar stands when a stage starts (an unknown stage keeps the last position)."""
    order = ("loading the model", *STAGES, "packing downloads")
    return order.index(name) / len(order) if name in order else last


# ------------------------------------------------------------------------------------------------------------------
def build_app(model: str | None = None, device: str = "auto", work_root: Path | None = None):
    """The page: a video or a photo, preset and options, Run, progress, then the depth and side-by-side views and
    the downloads.

    Parameters
    ----------
    model : str, optional
        Checkpoint folder or hub id; default the embedded small model. Loaded on the first run, then kept.
    device : str
        ``auto``, ``cpu``, ``cuda``, ...
    work_root : Path, optional
        Where the request folders go (default a new temporary folder, removed at exit).
    """
    from ..video.reading import register_heif

    gr = require_gradio()
    register_heif()  # gradio opens an uploaded photo with Pillow: an iPhone's HEIC needs pillow-heif's opener
    cache = PipelineCache(model, device)
    if work_root is None:
        work_root = Path(tempfile.mkdtemp(prefix="rolldepth-web-"))
        atexit.register(shutil.rmtree, work_root, True)

    def views(still: bool, depth: str | None = None, sbs: str | None = None) -> list:
        """Updates of the depth and side-by-side outputs: videos for a video, images for a photo, the other pair
        hidden but kept (a tab shows its last results again); with paths, the shown pair's new values."""
        updates = [gr.update(visible=not still)] * 2 + [gr.update(visible=still)] * 2
        if depth is not None:
            k = 2 if still else 0
            updates[k : k + 2] = [gr.update(value=depth, visible=True), gr.update(value=sbs, visible=True)]
        return updates

    def on_run(mode, video, photo, preset, res, refine_steps, cmap, progress=gr.Progress(track_tqdm=True)):
        position = [0.0]

        def on_stage(name: str) -> None:
            position[0] = stage_fraction(name, position[0])
            progress(position[0], desc=name)

        try:
            upload = photo if mode == "photo" else video
            if not upload:
                raise UserError(f"upload a {mode} first")
            result = run_request(cache, upload, preset, res, refine_steps, cmap, work_root, on_stage)
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        downloads = [str(p) for p in (result.npy, result.png_zip, result.depth16, result.exr_zip, result.stereo,
                                      result.uncertainty, result.uncertainty_video) if p is not None]
        strip = gr.update(value=result.shot_strip(cmap), visible=bool(result.shots))
        return *views(result.still, str(result.depth_video), str(result.sbs_video)), strip, downloads, result.summary()

    presets_text = "; ".join(
        f"**{name}**: {s.res} px, dilations {list(s.dilations)}, refinement {s.refine_steps} steps"
        for name, s in PRESETS.items()
    )
    with gr.Blocks(title="rolldepth", analytics_enabled=False) as app:  # the default theme's fonts are served locally
        gr.Markdown(
            "# rolldepth\nTemporally consistent video depth (relative inverse depth: brighter/warmer = nearer). "
            "Upload a video (or a photo, for per-frame depth), choose a preset and press Run."
        )
        # which tab is open, set in the browser as the tab is clicked: a server-side state could still say
        # "video" when Run is pressed right after a click on Photo
        mode = gr.Textbox("video", visible=False, elem_id="mode")
        with gr.Row():
            with gr.Column():
                with gr.Tabs():
                    with gr.Tab("Video", elem_id="video-tab") as video_tab:
                        video = gr.Video(label="Input video", sources=["upload"], elem_id="video-input")
                    with gr.Tab("Photo", elem_id="photo-tab") as photo_tab:
                        photo = gr.Image(label="Input photo", type="filepath", sources=["upload"],
                                         elem_id="photo-input")
                preset = gr.Dropdown(list(PRESETS), value="fast", label="Preset", info=presets_text, elem_id="preset")
                with gr.Row():
                    # text boxes, not number boxes: an empty box must mean "the preset's value", not 0
                    res = gr.Textbox(label="Resolution (max side px, 0 = native)", placeholder="preset / model",
                                     elem_id="res")
                    refine = gr.Textbox(label="Refinement steps (0 = off)", placeholder="preset", elem_id="refine")
                cmap = gr.Dropdown(list(COLORMAPS), value=COLORMAPS[0], label="Colormap", elem_id="cmap")
                run = gr.Button("Run", variant="primary", elem_id="run")
                status = gr.Markdown(elem_id="status")
            with gr.Column():
                depth_video = gr.Video(label="Depth", interactive=False, elem_id="depth-video")
                sbs_video = gr.Video(label="Side by side (input | depth)", interactive=False, elem_id="sbs-video")
                depth_image = gr.Image(label="Depth", interactive=False, visible=False, elem_id="depth-image")
                sbs_image = gr.Image(label="Side by side (input | depth)", interactive=False, visible=False,
                                     elem_id="sbs-image")
                shot_strip = gr.Gallery(label="Shots (first depth frame of each; cuts found in the video)",
                                        columns=6, height="auto", visible=False, elem_id="shot-strip")
                files = gr.File(label="Downloads (.npy float32 depth, zips of 16-bit PNGs and float32 EXRs, the "
                                "input in stereo 3-D: left | right, and for a video the PNGs' values as one "
                                "lossless 16-bit video, _depth16.mkv, and the snippets' disagreement at every "
                                "pixel, _uncertainty.npy, with its preview video)",
                                file_count="multiple", interactive=False, elem_id="downloads")
        shown = [depth_video, sbs_video, depth_image, sbs_image]
        for tab, name in ((video_tab, "video"), (photo_tab, "photo")):
            tab.select(None, None, mode, js=f"() => '{name}'")
            tab.select(partial(views, name == "photo"), None, shown)
        run.click(on_run, [mode, video, photo, preset, res, refine, cmap], [*shown, shot_strip, files, status])
    return app


# ------------------------------------------------------------------------------------------------------------------
def register_cli(subparsers) -> None:
    """``rolldepth web [--model M] [--host 127.0.0.1] [--port 7860] [--share off]``"""
    p = subparsers.add_parser(
        "web", help="serve a web page: upload a video or photo, watch progress, see and download the depth",
        description="Serve the rolldepth web page (needs the web extra: pip install 'rolldepth[web]').",
    )
    p.add_argument("-m", "--model", help="checkpoint folder or hub id (default: the embedded small model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 = all)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", choices=["on", "off"], default="off", help="also open a public gradio link (default off)")
    p.set_defaults(func=_cmd_web)


def _cmd_web(args) -> int:
    from ..model.layout import check_model_name
    from ..weights import default_model

    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    model = args.model or str(default_model())  # a missing embedded model fails now
    check_model_name(model)  # a wrong folder now, not at the first upload
    require_gradio()
    app = build_app(model, args.device)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up checks are not news
    try:
        app.queue().launch(server_name=args.host, server_port=args.port, share=args.share == "on")
    except OSError as exc:  # port taken, address not on this machine
        raise UserError(f"cannot serve on {args.host}:{args.port}: {exc}") from None
    return 0

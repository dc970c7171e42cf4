"""Writing the outputs of one video: raw depth, 16-bit PNGs or a 16-bit video, colorized and side-by-side mp4s.

Every output is written under a hidden temporary name (``.<name>.<pid>-<token>.partial``) in its final folder and
renamed into place only once complete. A crash or Ctrl-C therefore never leaves a truncated file under the final
name, where a later ``--resume``-style check or a user would take it for a finished result; at worst a hidden
``.partial`` file stays behind.

The depth written here is RollingDepth's relative INVERSE depth: larger values are nearer. Colorized videos map the
video-global minimum and maximum to the ends of the colormap, so with the default ``Spectral_r`` near is red and far
is blue, and one colour means the same depth in every frame.

Compressing and encoding take longer than a GPU takes to estimate the depth, so the outputs of a video are written
at the same time, each on its own thread, and image sequences compress several frames at once (zlib, x264 and
OpenEXR release Python's lock while they work).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from fractions import Fraction
from functools import partial
from pathlib import Path

try:
    import av
except ImportError:  # a pinned dependency; only missing where frames are given as arrays (GPU benches)
    av = None
import numpy as np
from matplotlib import colormaps
from numpy.lib import format as npformat
from matplotlib.colors import Colormap
from PIL import Image

from ..errors import UserError
from .reading import as_rate
from ..storage.workdir import rows_in_blocks

log = logging.getLogger(__name__)

PNG_RANGE_FILE = "depth_range.json"
DEPTH_MEANING = "relative inverse depth: larger is nearer"  # in the 16-bit PNGs' range file and the video's tags
DEPTH16_DECODE = "depth = vmin + value / 65535 * (vmax - vmin)"
EXR_MEANING = f"{DEPTH_MEANING}; true 1/depth = a * value + b, one a > 0 and b per video"
UNCERTAINTY_EXR_MEANING = ("standard deviation of the co-aligned snippets' predictions of each pixel, in the units "
                           "of the relative inverse depth (<stem>_pred.npy); 0 where a frame lies in one snippet")
_SUGGESTED_CMAPS = ("Spectral_r", "Greys_r", "gray", "viridis", "magma", "inferno", "plasma", "turbo", "jet")


# ----------------------------------------------------------------------------------------------------------------
# Atomic writes
@contextmanager
def atomic_path(final: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; move it onto ``final`` only if the block completes.

    The temporary name lives in the same folder so the final ``os.replace`` is a rename on one file system (atomic
    for files). A folder that already exists under the final name is moved aside first and deleted afterwards,
    because a rename cannot replace a non-empty folder. On any exception, Ctrl-C included, the temporary file or
    folder is removed and the exception propagates.

    Parameters
    ----------
    final : str or Path
        Where the finished output must appear. Its parent folder is created if needed.
    directory : bool
        Create the temporary path as an empty folder (for outputs made of many files).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial_name(final)
    try:
        if directory:
            tmp.mkdir()
        yield tmp
        _move_into_place(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def _partial_name(final: Path) -> Path:
    """Hidden, unique (per process and call) and clearly unfinished; never confusable with the final name."""
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")


def _move_into_place(tmp: Path, final: Path) -> None:
    if tmp.is_dir() and final.is_dir():
        old = _partial_name(final)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------------
# Colour
def get_colormap(name: str) -> Colormap:
    """A matplotlib colormap by name; an unknown name is a user mistake, reported with names that do exist."""
    try:
        return colormaps[name]
    except KeyError:
        known = [n for n in _SUGGESTED_CMAPS if n in colormaps]
        raise UserError(
            f"unknown colormap {name!r}; use a matplotlib colormap name such as {', '.join(known)}"
        ) from None


def value_range(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> tuple[float, float]:
    """The (vmin, vmax) a visualisation maps to its ends: the video-global min/max unless given.

    One range for the whole video (not per frame) keeps colours comparable across frames, so a flicker in the
    video is a flicker in the depth, not in the normalisation. Read block by block: ``depth`` may be disk-backed.
    """
    if vmin is None or vmax is None:
        blocks = np.array([(np.min(b), np.max(b)) for _, b in rows_in_blocks(depth)], dtype=np.float64)
    lo = float(np.min(blocks[:, 0])) if vmin is None else float(vmin)  # np.min, not min(): NaN must propagate
    hi = float(np.max(blocks[:, 1])) if vmax is None else float(vmax)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"depth range must be finite (NaN or inf in the depth?), got [{lo}, {hi}]")
    if hi < lo:
        raise UserError(f"vmax ({hi}) must be >= vmin ({lo})")
    return lo, hi


def _normalised(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] to [0, 1] (clipped); a constant video maps to 0 rather than dividing by zero."""
    span = hi - lo if hi > lo else 1.0
    return np.clip((np.asarray(frame, dtype=np.float64) - lo) / span, 0.0, 1.0)


def _colorized_frames(depth: np.ndarray, cmap: Colormap, lo: float, hi: float) -> Iterator[np.ndarray]:
    """Colorize frame by frame, so a long video is never held as one float RGBA array."""
    for frame in depth:
        yield np.ascontiguousarray(cmap(_normalised(frame, lo, hi), bytes=True)[..., :3])


UNCERTAINTY_CMAP = "inferno"  # black where the snippets agree, bright yellow where they disagree most


def uncertainty_scale(spread: np.ndarray, quantile: float = 0.99, samples: int = 1_000_000) -> float:
    """The spread a preview maps to its brightest colour: its 99th percentile over the whole video (of an even sample
    of at most about ``samples`` values, read block by block: ``spread`` may be disk-backed), so that a few outliers
    do not leave the rest of the picture black."""
    step = max(1, int(np.prod(spread.shape)) // samples)
    values, offset = [], 0
    for _, block in rows_in_blocks(spread):
        flat = np.asarray(block, dtype=np.float64).reshape(-1)
        values.append(flat[(-offset) % step :: step])
        offset += flat.size
    return float(np.quantile(np.concatenate(values), quantile))


def write_uncertainty_video(path: str | Path, spread: np.ndarray, fps: Fraction | float,
                            times: Sequence[Fraction] | None = None, timecode: str | None = None) -> Path:
    """A preview of the uncertainty (``--save-uncertainty``): 0 black, :func:`uncertainty_scale` and above bright, one
    scale for the whole video, through :data:`UNCERTAINTY_CMAP`; timed like the depth videos (:func:`write_video`)."""
    spread = _as_depth(spread)
    frames = _colorized_frames(spread, get_colormap(UNCERTAINTY_CMAP), 0.0, uncertainty_scale(spread))
    return write_video(path, frames, fps, times=times, timecode=timecode)


def colorize(
    depth: np.ndarray, cmap: str = "Spectral_r", vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """Inverse-depth maps [N, H, W] -> uint8 RGB [N, H, W, 3] through a matplotlib colormap.

    ``vmin`` maps to the colormap's first colour and ``vmax`` to its last (video-global min/max by default); with
    inverse depth and ``Spectral_r`` that makes near red and far blue.
    """
    depth = _as_depth(depth)
    colormap = get_colormap(cmap)
    lo, hi = value_range(depth, vmin, vmax)
    out = np.empty((*depth.shape, 3), dtype=np.uint8)
    for index, frame in enumerate(_colorized_frames(depth, colormap, lo, hi)):
        out[index] = frame
    return out


def _as_depth(depth: np.ndarray) -> np.ndarray:
    """A non-empty [N, H, W] array; a disk-backed one (``NpyArray``) is checked but never read here."""
    if not hasattr(depth, "shape") or not hasattr(depth, "dtype"):
        depth = np.asarray(depth)
    if len(depth.shape) != 3 or 0 in depth.shape:
        raise ValueError(f"depth must be a non-empty [N, H, W] array, got shape {list(depth.shape)}")
    return depth


# ----------------------------------------------------------------------------------------------------------------
# Files
def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: Fraction | float, crf: int = 18,
                times: Sequence[Fraction] | None = None, timecode: str | None = None) -> Path:
    """Encode uint8 RGB frames as an H.264 (libx264, yuv420p, BT.709 tagged) mp4 that any player opens and shows
    in the colours given.

    Frames are consumed one at a time (any iterable, e.g. a generator). yuv420p needs even sides, so an odd
    width or height gets one replicated edge column/row. The rate is set as a Fraction on the stream, so
    30000/1001 reads back as exactly 30000/1001 and the video keeps the input's duration.

    Parameters
    ----------
    path : str or Path
        Output file; written atomically (see :func:`atomic_path`).
    frames : iterable of np.ndarray
        uint8 [H, W, 3] RGB frames, all the same size; at least one.
    fps : Fraction or float
        Frame rate.
    crf : int
        x264 constant rate factor: 0 lossless (in YUV), 18 visually lossless, 23 x264's default.
    times : sequence of Fraction, optional
        Each frame's time in seconds, for a variable-frame-rate video (see
        :func:`~rolldepth.video.reading.frame_clock`); ``fps`` is then only the stream's nominal rate.
    timecode : str, optional
        SMPTE timecode of the first frame (``01:00:10:05``), written as a timecode track that editors line up by.
    """
    rate = as_rate(fps)
    path = Path(path)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = None
        for index, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame {index} must be uint8 [H, W, 3], got {frame.dtype} {list(frame.shape)}")
            if stream is None:
                size = frame.shape[:2]
                stream = _add_h264_stream(container, rate, size, crf)
                _set_clock(stream, rate, times is not None, timecode)
            elif frame.shape[:2] != size:
                raise ValueError(f"frame {index} is {list(frame.shape[:2])}, frame 0 was {list(size)}")
            video_frame = av.VideoFrame.from_ndarray(_pad_to_even(frame), format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")  # as the stream is tagged
            _mux_frame(container, stream, video_frame, index, times)
        if stream is None:
            raise ValueError(f"no frames to write to {path}")
        container.mux(stream.encode(None))
    return path


VFR_TIME_BASE = Fraction(1, 90000)  # MPEG's clock: fine enough for any frame's timestamp
BT709, MPEG_RANGE = 1, 1  # FFmpeg's AVCOL_SPC/PRI/TRC_BT709 and AVCOL_RANGE_MPEG (16-235)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Save one uint8 RGB image as PNG; it appears under ``path`` only when complete."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def _add_h264_stream(
    container: av.container.OutputContainer, rate: Fraction, size: tuple[int, int], crf: int
) -> av.VideoStream:
    stream = container.add_stream("libx264", rate=rate, options={"crf": str(crf)})
    stream.height, stream.width = (side + side % 2 for side in size)
    stream.pix_fmt = "yuv420p"
    # BT.709, tagged: an untagged HD video is shown as BT.709 by players and editors, while FFmpeg converts with
    # BT.601 unless told, which turned Spectral_r's red (213, 62, 79) into (225, 77, 77) on screen
    context = stream.codec_context
    context.colorspace = context.color_primaries = context.color_trc = BT709
    context.color_range = MPEG_RANGE
    return stream


def _set_clock(stream: av.VideoStream, rate: Fraction, variable: bool, timecode: str | None) -> None:
    """One tick per frame, so timestamps are exact frame indices (a variable rate needs a finer clock), and the
    first frame's ``timecode``, which editors line up by."""
    stream.codec_context.time_base = VFR_TIME_BASE if variable else 1 / rate
    if timecode:
        stream.metadata["timecode"] = timecode


def _mux_frame(container: av.container.OutputContainer, stream: av.VideoStream, frame: av.VideoFrame, index: int,
               times: Sequence[Fraction] | None) -> None:
    """Encode video frame ``index`` at its time: its index in ticks, or its time from ``times``."""
    base = stream.codec_context.time_base
    frame.pts = index if times is None else round(times[index] / base)
    frame.time_base = base
    container.mux(stream.encode(frame))


def _pad_to_even(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def write_npy(path: str | Path, depth: np.ndarray) -> Path:
    """Save depth as float32 [N, H, W] ``.npy`` (full precision, unlike the official code's float16); a
    disk-backed ``depth`` is copied block by block."""
    depth = _as_depth(depth)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        _write_npy_stream(file, depth, np.float32)
    return path


def _write_npy_stream(file, array, dtype=None) -> None:
    """The ``.npy`` format (header, then C-order data) written block by block from any array-like."""
    dtype = np.dtype(dtype or array.dtype)
    header = {"descr": npformat.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(array.shape)}
    npformat.write_array_header_1_0(file, header)
    for _, block in rows_in_blocks(array):
        file.write(np.ascontiguousarray(block, dtype=dtype).tobytes())


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Save named arrays (e.g. the raw snippet predictions and their frame indices) as one uncompressed ``.npz``,
    each written block by block (disk-backed arrays are never read whole)."""
    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            if not hasattr(array, "shape") or not hasattr(array, "dtype"):
                array = np.asarray(array)
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                if array.shape:
                    _write_npy_stream(member, array)
                else:
                    npformat.write_array(member, np.asarray(array))
    return path


def frame_name(index: int, names: Sequence[str] | None = None) -> str:
    """The file name (no extension) of output frame ``index``: ``names[index]``, else ``frame_000000``, ..."""
    return names[index] if names is not None else f"frame_{index:06d}"


def write_png16(
    folder: str | Path, depth: np.ndarray, vmin: float | None = None, vmax: float | None = None,
    names: Sequence[str] | None = None,
) -> Path:
    """Save depth as 16-bit grayscale PNGs ``frame_000000.png, ...`` (or ``names``) plus ``depth_range.json``.

    ``png = round((d - vmin) / (vmax - vmin) * 65535)`` with one range for the whole video (video-global min/max
    unless given; values outside are clipped), so frames stay comparable and ``d = vmin + png / 65535 *
    (vmax - vmin)`` recovers the depth within (vmax - vmin) / 131070. The folder appears only when complete.
    """
    depth = _as_depth(depth)
    lo, hi = value_range(depth, vmin, vmax)
    folder = Path(folder)

    def write(path: Path, frame: np.ndarray) -> None:
        Image.fromarray(_quantised16(frame, lo, hi)).save(path)

    with atomic_path(folder, directory=True) as tmp:
        write_each(((tmp / f"{frame_name(i, names)}.png", frame) for i, frame in enumerate(depth)), write)
        meta = {
            "vmin": lo,
            "vmax": hi,
            "decode": "depth = vmin + png / 65535 * (vmax - vmin)",
            "meaning": DEPTH_MEANING,
        }
        (tmp / PNG_RANGE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def _quantised16(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``round((d - lo) / (hi - lo) * 65535)`` as uint16: the 16-bit PNGs' and the FFV1 video's code values."""
    return np.rint(_normalised(frame, lo, hi) * 65535).astype(np.uint16)


def write_depth16(
    path: str | Path, depth: np.ndarray, fps: Fraction | float, vmin: float | None = None,
    vmax: float | None = None, times: Sequence[Fraction] | None = None, timecode: str | None = None,
) -> Path:
    """Save depth as one lossless 16-bit grayscale video: FFV1 (``gray16le``) in Matroska, ``<stem>_depth16.mkv``.

    The code values are the 16-bit PNGs' (:func:`write_png16`: the same formula and range), bit for bit, in one file
    that FFmpeg and OpenCV read (``CAP_PROP_CONVERT_RGB`` 0 gives the uint16 codes), smaller than the PNGs and
    written several times faster (``python benchmarks/write_outputs.py``). The range is in the file's tags
    (``VMIN``, ``VMAX``, ``DECODE``, ``MEANING``; ``ffprobe -show_format`` lists them; :func:`read_depth16` applies
    them). Every frame is a key frame, with CRCs on its slices, so any frame decodes on its own and damage is
    detected. Frames keep their times (``times``, a variable rate) and the first one its ``timecode``, as in
    :func:`write_video`.
    """
    depth = _as_depth(depth)
    lo, hi = value_range(depth, vmin, vmax)
    rate = as_rate(fps)
    path = Path(path)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="matroska") as container:
        container.metadata.update({"VMIN": repr(lo), "VMAX": repr(hi), "DECODE": DEPTH16_DECODE,
                                   "MEANING": DEPTH_MEANING})
        # four slices, encoded on as many threads as write_each uses (large frames encode faster on several cores)
        stream = container.add_stream("ffv1", rate=rate,
                                      options={"level": "3", "g": "1", "slicecrc": "1", "slices": "4"})
        stream.thread_count = write_threads()
        stream.height, stream.width = depth.shape[1:]
        stream.pix_fmt = "gray16le"
        _set_clock(stream, rate, times is not None, timecode)
        for index, frame in enumerate(depth):
            video_frame = av.VideoFrame.from_ndarray(_quantised16(frame, lo, hi), format="gray16le")
            _mux_frame(container, stream, video_frame, index, times)
        container.mux(stream.encode(None))
    return path


def read_depth16(path: str | Path) -> tuple[np.ndarray, dict]:
    """The depth of a :func:`write_depth16` video as float32 [N, H, W] (within (vmax - vmin) / 131070 of what was
    written) and its tags (``vmin``, ``vmax``, ``decode``, ``meaning``)."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            tags = {key.lower(): value for key, value in container.metadata.items()}
            lo, hi = float(tags["vmin"]), float(tags["vmax"])
            codes = [frame.to_ndarray(format="gray16le") for frame in container.decode(video=0)]
    except (av.FFmpegError, KeyError, ValueError) as exc:
        raise UserError(f"cannot read {path} as a rolldepth 16-bit depth video: "
                        f"{'no VMIN/VMAX tags' if isinstance(exc, KeyError) else exc}") from None
    if not codes:
        raise UserError(f"{path} holds no frames")
    depth = lo + np.stack(codes).astype(np.float64) / 65535 * (hi - lo)
    return depth.astype(np.float32), {"vmin": lo, "vmax": hi, "decode": tags.get("decode"),
                                      "meaning": tags.get("meaning")}


def write_exr(folder: str | Path, depth: np.ndarray, meaning: str = EXR_MEANING,
              names: Sequence[str] | None = None) -> Path:
    """Save depth as float32 OpenEXR images ``frame_000000.exr, ...`` (or ``names``; one ``Y`` channel, ZIP).

    The values are exactly those of ``depth`` (for ``<stem>_pred.npy``: relative inverse depth, larger = nearer; no
    remapping), so compositing tools (Nuke, Resolve, Blender) read the full float precision. ``Y`` makes viewers
    show it as grayscale; a ``rolldepth`` header attribute holds ``meaning``, what the values are. The folder
    appears only when complete.
    """
    import OpenEXR

    depth = _as_depth(depth)
    folder = Path(folder)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, "rolldepth": meaning}

    def write(path: Path, frame: np.ndarray) -> None:
        with OpenEXR.File(header, {"Y": np.ascontiguousarray(frame, dtype=np.float32)}) as image:
            image.write(str(path))

    with atomic_path(folder, directory=True) as tmp:
        write_each(((tmp / f"{frame_name(i, names)}.exr", frame) for i, frame in enumerate(depth)), write)
    return folder


# What the frames of one sequence being written may hold at once, counting 4x a float32 frame for its copy and the
# float64 and 16-bit arrays made from it: 16 frames in flight at 768x432, 3 of 4K
WRITE_MEMORY_BYTES = 512 << 20


def write_threads() -> int:
    """Threads that compress image sequences: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def write_each(items: Iterable[tuple[Path, np.ndarray]], write: Callable[[Path, np.ndarray], None],
               threads: int | None = None) -> None:
    """``write(path, frame)`` for every item, on several threads.

    Compressing a frame (zlib for PNG, OpenEXR's ZIP) releases the GIL, so a sequence is written about as many
    times faster as there are cores (``python benchmarks/write_outputs.py``). The frames are read here, in order (a
    disk-backed array is read sequentially), each copied, and no more are in flight than ``WRITE_MEMORY_BYTES``
    allows (at most two a thread). The first error is raised once the threads have stopped: nothing is left
    writing into a folder that :func:`atomic_path` removes.
    """
    threads = threads or write_threads()
    pending: deque = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="rolldepth-write") as pool:
        try:
            for path, frame in items:
                frame = np.array(frame)  # a copy: the caller's buffer (or memory map) may change under the thread
                limit = max(1, min(2 * threads, WRITE_MEMORY_BYTES // max(1, 4 * frame.nbytes)))
                while len(pending) >= limit:
                    pending.popleft().result()
                pending.append(pool.submit(write, path, frame))
            while pending:
                pending.popleft().result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def side_by_side(rgb: Iterable[np.ndarray], depth_rgb: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Frames of RGB | colorized depth, lazily. An RGB frame of another size is resized to the depth frame's size
    (bilinear, antialiased when shrinking) so the two halves line up pixel for pixel."""
    for left, right in zip(rgb, depth_rgb, strict=True):
        if left.shape[:2] != right.shape[:2]:
            height, width = right.shape[:2]
            left = np.asarray(Image.fromarray(left).resize((width, height), Image.Resampling.BILINEAR))
        yield np.concatenate([left, right], axis=1)


def save_outputs(
    out_dir: str | Path,
    stem: str,
    depth: np.ndarray,
    rgb: np.ndarray | Iterable[np.ndarray] | None,
    fps: Fraction | float,
    *,
    save_npy: bool = True,
    save_png: bool = False,
    save_exr: bool = False,
    save_depth16: bool = False,
    cmaps: Iterable[str] = ("Spectral_r", "Greys_r"),
    save_sbs: bool = True,
    snippets: Mapping[str, np.ndarray] | None = None,
    times: Sequence[Fraction] | None = None,
    names: Sequence[str] | None = None,
    still: bool = False,
    timecode: str | None = None,
    stereo=None,
    stereo_rgb: Iterable[np.ndarray] | None = None,
    uncertainty: np.ndarray | None = None,
) -> dict[str, Path]:
    """Write every requested output of one video (or, with ``still``, of one image) into ``out_dir``.

    Files: ``<stem>_pred.npy``, ``<stem>_png16/``, ``<stem>_exr/``, ``<stem>_depth16.mkv`` (not for a still: its
    PNG holds the same values), ``<stem>_<cmap>.mp4`` per colormap, ``<stem>_rgbd.mp4`` (RGB | first colormap;
    needs ``rgb`` and at least one colormap), ``<stem>_snippets.npz`` when ``snippets`` is given and
    ``<stem>_stereo_<layout>.mp4`` with ``stereo`` (a
    :class:`~rolldepth.video.stereo.StereoOptions`), rendered from ``stereo_rgb``, frames of any size; with
    ``uncertainty`` (``[N, H, W]``, see ``--save-uncertainty``), its preview ``<stem>_uncertainty_inferno.mp4`` where
    colormaps are asked for, and ``<stem>_uncertainty_exr/`` with ``save_exr``. Colormap
    names and shapes are checked before anything is written, so a typo in a colormap name leaves no partial set of
    outputs behind. The videos play at ``fps``, or keep each frame's time from
    ``times`` (a variable-frame-rate input), and start at ``timecode`` (of the first frame) where given. Image files
    are named ``names`` (an image sequence's own names), else ``frame_000000``, ... A still's colorized and
    side-by-side outputs are PNG images instead of videos.

    Everything is written frame by frame, so ``depth`` may be disk-backed (``NpyArray``) and ``rgb`` any iterable
    of uint8 [H, W, 3] frames (e.g. decoded again from the input), read once, for the side-by-side video. The
    outputs are written at once, each on its own thread (:func:`run_concurrently`); the first error stops them all.

    Returns
    -------
    dict[str, Path]
        What was written, keyed by the part of the name after ``<stem>_``: ``"pred"``, ``"png16"``, ``"exr"``,
        ``"depth16"``, each colormap name, ``"rgbd"``, ``"snippets"``, ``"stereo_<layout>"``,
        ``"uncertainty_inferno"``, ``"uncertainty_exr"``.
    """
    depth = _as_depth(depth)
    if isinstance(depth, np.ndarray):
        depth = depth.astype(np.float32, copy=False)
    selected = {name: get_colormap(name) for name in cmaps}
    if isinstance(rgb, np.ndarray):
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3 or len(rgb) != len(depth):
            raise ValueError(
                f"rgb must be uint8 [{len(depth)}, H, W, 3] to match the depth, got {rgb.dtype} {list(rgb.shape)}"
            )
    for what, given in (("frame times", times), ("frame names", names)):
        if given is not None and len(given) != len(depth):
            raise ValueError(f"{len(given)} {what} for {len(depth)} frames")
    if still and len(depth) != 1:
        raise ValueError(f"a still has one frame, got {len(depth)}")
    rate = as_rate(fps)
    lo, hi = value_range(depth)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def write_frames(name: str, frames: Iterable[np.ndarray]) -> Path:
        if still:
            return write_image(out_dir / f"{stem}_{name}.png", next(iter(frames)))
        return write_video(out_dir / f"{stem}_{name}.mp4", frames, rate, times=times, timecode=timecode)

    stop = threading.Event()
    frames = _Stoppable(depth, stop)
    jobs: dict[str, Callable[[], Path]] = {}
    if save_npy:
        jobs["pred"] = partial(write_npy, out_dir / f"{stem}_pred.npy", frames)
    if save_png:
        jobs["png16"] = partial(write_png16, out_dir / f"{stem}_png16", frames, lo, hi, names)
    if save_exr:
        jobs["exr"] = partial(write_exr, out_dir / f"{stem}_exr", frames, names=names)
    if save_depth16 and not still:
        jobs["depth16"] = partial(write_depth16, out_dir / f"{stem}_depth16.mkv", frames, rate, lo, hi, times,
                                  timecode)
    for name, colormap in selected.items():
        jobs[name] = partial(write_frames, name, _colorized_frames(frames, colormap, lo, hi))
    if save_sbs and rgb is not None and selected:
        colormap = next(iter(selected.values())).copy()  # its own: a colormap builds its table on first use
        jobs["rgbd"] = partial(write_frames, "rgbd", side_by_side(rgb, _colorized_frames(frames, colormap, lo, hi)))
    if stereo is not None and stereo_rgb is not None:
        from .stereo import stereo_frames

        name = f"stereo_{stereo.layout}"
        jobs[name] = partial(write_frames, name, stereo_frames(stereo_rgb, frames, lo, hi, stereo))
    if uncertainty is not None:
        spread = _Stoppable(_as_depth(uncertainty), stop)
        if selected and not still:
            name = f"uncertainty_{UNCERTAINTY_CMAP}"
            jobs[name] = partial(write_uncertainty_video, out_dir / f"{stem}_{name}.mp4", spread, rate, times, timecode)
        if save_exr:
            jobs["uncertainty_exr"] = partial(write_exr, out_dir / f"{stem}_uncertainty_exr", spread,
                                              UNCERTAINTY_EXR_MEANING, names)
    written = run_concurrently(jobs, stop)
    if snippets is not None:
        written["snippets"] = write_npz(out_dir / f"{stem}_snippets.npz", snippets)
    log.debug("wrote %s", ", ".join(str(p) for p in written.values()))
    return written


class _Stopped(Exception):
    """A writer ended early because another one failed (or Ctrl-C was pressed)."""


class _Stoppable:
    """``depth`` read through a check of ``stop``: a writer on another thread ends at its next frame once it is set.

    Indexing and iteration as the writers use them (a disk-backed ``NpyArray`` is read under its lock)."""

    def __init__(self, depth, stop: threading.Event):
        self._depth, self._stop = depth, stop
        self.shape, self.dtype = depth.shape, depth.dtype

    def __len__(self) -> int:
        return len(self._depth)

    def __getitem__(self, key):
        if self._stop.is_set():
            raise _Stopped
        return self._depth[key]

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self[index]


def run_concurrently(jobs: Mapping[str, Callable[[], Path]], stop: threading.Event) -> dict[str, Path]:
    """Run each output's writer on its own thread and return their paths, keyed and ordered as ``jobs``.

    The videos' colour mapping and encoding and the image sequences' compression overlap
    (``python benchmarks/write_outputs.py``). On the first error, or Ctrl-C, ``stop`` is set so the other writers end
    at their next frame (each removes its unfinished file, see :func:`atomic_path`), and that error is raised once
    they have.
    """
    if not jobs:
        return {}
    with ThreadPoolExecutor(len(jobs), thread_name_prefix="rolldepth-output") as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        try:
            done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()
        except BaseException:
            stop.set()
            wait(futures.values())
            raise
    return {key: future.result() for key, future in futures.items()}

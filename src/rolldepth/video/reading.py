"""Reading the inputs: videos through PyAV, image-sequence folders through Pillow, and resizing for the model.

Every input problem a user can cause (a missing file, a file that is not a video, an audio-only file, a corrupt
frame in a sequence, a frame window past the end) surfaces as one :class:`~rolldepth.errors.UserError` naming the
file, never as a PyAV or Pillow traceback. Containers are always opened in a ``with`` block so that a reader that is
abandoned half-way (a generator closed early, an exception in the caller) still releases its file.
"""

from __future__ import annotations

import functools
import logging
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

try:
    import av
except ImportError:  # a pinned dependency; only missing where frames are given as arrays (GPU benches)
    av = None
import numpy as np
from PIL import Image

from ..errors import UserError, first_line
from . import hdr
from .decoding import frames_or_gaps, is_interlaced, progressive, shown, warn_gap, with_rotations

if TYPE_CHECKING:  # torch loads only when frames are resized for the model: a wrong path is answered at once
    import torch

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".wmv", ".flv",
     ".3gp", ".ogv", ".gif"}
)
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".avif", ".heic", ".heif", ".exr", ".dpx"}
)
_HEIF = frozenset({".heic", ".heif"})  # iPhone photos: read through the optional pillow-heif
_FFMPEG_IMAGES = frozenset({".dpx"})  # image formats Pillow cannot read: decoded by FFmpeg through PyAV
LIST_EXTENSION = ".txt"
EXIF_ORIENTATION = 0x0112  # 1 = as stored; 5 to 8 = turned a quarter (width and height swap)
DEFAULT_SEQUENCE_FPS = Fraction(30)
_RESIZE_CHUNK = 16  # frames per interpolate call: bounds the float32 copy of a long video


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline and the writers need to know about one input before decoding it.

    Attributes
    ----------
    n_frames : int
        Frames the input holds (packets of the video stream, or images of the sequence).
    fps : Fraction
        Exact frame rate (30000/1001 stays 30000/1001), so outputs play at the input's speed.
    width, height : int
        Frame size in pixels, as the frames are decoded (upright and with square pixels, unless ``autorotate`` is
        off).
    path : Path
        The video file or image-sequence folder.
    pixel_aspect : Fraction
        Width over height of the video's stored pixels (its sample aspect ratio: 4/3 for HDV's 1440x1080 shown as
        1920x1080, 2 for an anamorphic squeeze); 1 for square pixels, images and where the file says nothing.
    interlaced : bool
        The video's frames are interlaced (DV, HDV, broadcast): they are deinterlaced as they are decoded, unless
        ``autorotate`` is off.
    timecode : str or None
        The SMPTE timecode of the video's first frame, where the file holds one (cameras, editors, MXF).
    hdr : str or None
        ``"PQ"`` or ``"HLG"`` for an HDR video (phones, HDR10): its frames are converted to SDR as they are decoded,
        unless ``autorotate`` is off; ``None`` for SDR.
    """

    n_frames: int
    fps: Fraction
    width: int
    height: int
    path: Path
    pixel_aspect: Fraction = Fraction(1)
    interlaced: bool = False
    timecode: str | None = None
    hdr: str | None = None


# ----------------------------------------------------------------------------------------------------------------
# Finding inputs
def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value, so ``frame2`` comes before ``frame10``.

    ``re.split`` with a capturing group puts text at even and digit runs at odd positions, so two keys always
    compare text with text and numbers with numbers. The name itself breaks ties (``f01`` vs ``f1``).
    """
    parts = re.split(r"(\d+)", name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def _visible_children(folder: Path) -> list[Path]:
    """Folder entries without hidden ones: ``.DS_Store`` or macOS ``._frame.png`` files are not frames."""
    return [p for p in folder.iterdir() if not p.name.startswith(".")]


def image_files(folder: Path) -> list[Path]:
    """The image files of a folder in natural order (any mix of the supported formats)."""
    images = [p for p in _visible_children(folder) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(images, key=lambda p: natural_key(p.name))


def is_still(path: Path) -> bool:
    """A single image file given as an input: read as a sequence of one frame, which gets per-frame depth."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def _is_images(path: Path) -> bool:
    """Read image by image (an image-sequence folder or a still), not as a video stream."""
    return path.is_dir() or is_still(path)


def list_inputs(path: str | Path) -> list[Path]:
    """Expand one command-line argument into the inputs to process, each a video file, an image-sequence folder
    or a single image (a still).

    A video file or an image stands for itself; a folder holding images is one image sequence; otherwise a folder
    stands for the videos and image-sequence subfolders it holds (one level deep, natural order); a ``.txt`` file
    lists one path per line (blank lines and ``#`` comment lines skipped, relative paths taken from the list's
    folder), each expanded by the same rules.

    Raises
    ------
    UserError
        For a missing path, a folder with nothing to process, an unsupported file type or a bad list entry.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.is_dir():
        return _expand_folder(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS or suffix in IMAGE_EXTENSIONS:
        return [path]
    if suffix == LIST_EXTENSION:
        return _expand_list(path)
    raise UserError(
        f"unsupported input {path}: expected a video ({', '.join(sorted(VIDEO_EXTENSIONS))}), an image "
        f"({', '.join(sorted(IMAGE_EXTENSIONS))}), a folder or a .txt list"
    )


def _expand_folder(folder: Path) -> list[Path]:
    if image_files(folder):
        ignored = [p.name for p in _visible_children(folder) if p.suffix.lower() in VIDEO_EXTENSIONS]
        if ignored:
            log.warning("%s is read as an image sequence; ignoring the videos in it: %s", folder, ", ".join(ignored))
        return [folder]
    found = [
        p for p in _visible_children(folder)
        if (p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS) or (p.is_dir() and image_files(p))
    ]
    if not found:
        raise UserError(f"nothing to process in {folder}: no images, videos or image-sequence subfolders")
    return sorted(found, key=lambda p: natural_key(p.name))


def _expand_list(list_file: Path) -> list[Path]:
    try:
        lines = list_file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read input list {list_file}: {exc}") from None
    inputs: list[Path] = []
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry).expanduser()
        if not path.is_absolute():
            path = (list_file.parent / path).resolve()
        if path.suffix.lower() == LIST_EXTENSION:
            raise UserError(f"{list_file}:{number}: input lists cannot include other lists ({entry})")
        if not path.exists():
            raise UserError(f"{list_file}:{number}: input not found: {path}")
        inputs.extend(list_inputs(path))
    if not inputs:
        raise UserError(f"input list {list_file} names no inputs")
    return inputs


# ----------------------------------------------------------------------------------------------------------------
# Probing
def probe(path: str | Path, fps: Fraction | float | None = None, autorotate: bool = True) -> VideoInfo:
    """Frame count, exact frame rate and size of a video file, image-sequence folder or image, without decoding
    pixels.

    Parameters
    ----------
    path : str or Path
        A video file, an image-sequence folder or a single image (one frame).
    fps : Fraction or float, optional
        Frame rate of an image sequence, which has none of its own (default 30). A video's own rate is used;
        ``fps`` only stands in when the container declares no rate at all.
    autorotate : bool
        Report the size of the upright picture when the video carries a display rotation (phones), and of the
        displayed picture when its pixels are not square (HDV, DV, anamorphic), as the frames are decoded by
        default (interlaced ones also deinterlaced, HDR ones converted to SDR); ``False`` reports the stored
        pixels' size, as the official RollingDepth reads them.

    Notes
    -----
    The frame count comes from demuxing the video stream's packets: ``stream.frames`` is 0 for containers such as
    Matroska/WebM and only as good as the header otherwise, while demuxing reads the file without decoding it.
    """
    path = Path(path)
    default_rate = DEFAULT_SEQUENCE_FPS if fps is None else as_rate(fps)
    if _is_images(path):
        files = _sequence_files(path)
        width, height = _image_size(files[0], autorotate)
        return VideoInfo(n_frames=len(files), fps=default_rate, width=width, height=height, path=path)
    with _open_video(path) as (container, stream):
        n_frames, rotation, interlaced, hdr_name = 0, None, False, None
        for packet in _until_eof(container.demux(stream)):
            n_frames += shown(packet)
            if rotation is None:  # the display rotation is side data of decoded frames: decode until one appears
                try:
                    first = next(iter(packet.decode()), None)
                except av.error.InvalidDataError:  # a damaged frame: decoding stands another in for it
                    first = None
                if first is not None:
                    rotation, interlaced = first.rotation, is_interlaced(first, stream)
                    hdr_name = hdr.NAMES.get(first.color_trc)
        rate = stream.average_rate or stream.guessed_rate
        timecode = _timecode(container, stream)
        pixel_aspect = _pixel_aspect(stream)
        width, height = _decoded_size(stream, autorotate)
    if autorotate and _quarter_turns(rotation or 0) % 2:
        width, height = height, width
    if n_frames == 0:
        raise UserError(f"{path} has a video stream but no frames")
    if not rate or rate <= 0:
        rate = default_rate
        log.warning("%s declares no frame rate; using %s fps", path, rate)
    return VideoInfo(n_frames=n_frames, fps=Fraction(rate), width=width, height=height, path=path,
                     pixel_aspect=pixel_aspect, interlaced=interlaced, timecode=timecode, hdr=hdr_name)


def _timecode(container: av.container.InputContainer, stream: av.VideoStream) -> str | None:
    """The first frame's timecode: a tag of the video stream (MOV, MP4), of a timecode track, or of the file (MXF)."""
    for tags in (stream.metadata, *(s.metadata for s in container.streams if s.type == "data"), container.metadata):
        if tags.get("timecode"):
            return tags["timecode"]
    return None


def _pixel_aspect(stream: av.VideoStream) -> Fraction:
    """The stream's sample aspect ratio; 1 where it is missing, zero (FFmpeg's "unknown") or absurd."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return Fraction(sar) if sar and Fraction(1, 8) <= sar <= 8 else Fraction(1)


def _decoded_size(stream: av.VideoStream, square_pixels: bool) -> tuple[int, int]:
    """(width, height) the frames are converted to: the stream's size, with ``square_pixels`` widened (or narrowed)
    to the display's shape, the height kept, so that a circle filmed on an anamorphic or HDV camera stays round."""
    width, height = stream.codec_context.width, stream.codec_context.height
    if square_pixels:
        width = max(1, round(width * _pixel_aspect(stream)))
    return width, height


def frame_clock(info: VideoInfo, start: int, stop: int) -> tuple[Fraction, list[Fraction] | None]:
    """When frame ``start`` is shown, in seconds on the file's clock (which its audio shares), and the presentation
    times (seconds from frame ``start``) of frames ``start .. stop-1`` of a variable-frame-rate video, so the depth
    videos can keep them. The times are None where ``info.fps`` already times every frame to within half a frame
    (the usual case), for image sequences, and where the container has no timestamps; the start is then
    ``start / fps``.

    Both come from one demux, not from decoding: the packets' timestamps sorted are the frames' in display order.
    """
    if _is_images(info.path):
        return Fraction(start) / info.fps, None
    stamps, time_base = _frame_stamps(info.path)
    if start >= len(stamps) or time_base is None:
        return Fraction(start) / info.fps, None
    first = stamps[start] * time_base
    if len(stamps) != info.n_frames or len(set(stamps)) != len(stamps) or stop > len(stamps):
        return first, None
    times = [(pts - stamps[start]) * time_base for pts in stamps[start:stop]]
    period = 1 / info.fps
    if all(abs(t - i * period) <= period / 2 for i, t in enumerate(times)):
        return first, None
    return first, times


def _frame_stamps(path: Path) -> tuple[list[int], Fraction | None]:
    """A video's frames' presentation timestamps in display order (its packets' sorted), and their time base."""
    with _open_video(path) as (container, stream):
        stamps = sorted(p.pts for p in _until_eof(container.demux(stream)) if shown(p) and p.pts is not None)
        return stamps, stream.time_base


def frame_names(path: Path, start: int, count: int) -> list[str]:
    """The file names (no extension) of a window's per-frame outputs, so a compositor's frame numbers carry over:
    an image sequence's own names (``plate.1001.exr`` -> ``plate.1001``), else ``frame_000100``, ... numbered by
    the input frame (``--from 100``), also for a sequence where two images share a name."""
    if _is_images(path):
        names = [file.stem for file in _sequence_files(path)[start : start + count]]
        if len(set(names)) == len(names):
            return names
    from .writers import frame_name

    return [frame_name(start + i) for i in range(count)]


def sequence_gaps(names: list[str]) -> str | None:
    """What looks wrong in the numbering of a sequence's file names (no extension), in words, or None: frame numbers
    that jump (``plate.1001``, ``plate.1003``: a frame not rendered or scanned; a steady stride such as every tenth
    frame is no jump) or names of several patterns (``shotA.0001``, ``shotB.0001``: two sequences in one folder).
    Names without a frame number say nothing."""
    parts = [re.fullmatch(r"(.*?)(\d+)", name) for name in names]
    if len(names) < 2 or not all(parts):
        return None
    prefixes = sorted({m.group(1) for m in parts})
    if len(prefixes) > 1:
        shown = ", ".join(f"{p}####" for p in prefixes[:3]) + (", ..." if len(prefixes) > 3 else "")
        return f"its images follow {len(prefixes)} name patterns ({shown}): they are read as one sequence"
    numbers = [int(m.group(2)) for m in parts]
    steps = [b - a for a, b in zip(numbers, numbers[1:])]
    stride = max(set(steps), key=steps.count)  # frames taken every n-th (0, 10, 20, ...) are no gap
    jumps = [(a, b) for a, b, step in zip(numbers, numbers[1:], steps) if step != stride]
    if not jumps:
        return None
    a, b = jumps[0]
    more = f", and {len(jumps) - 1} more jump{'s' * (len(jumps) > 2)}" if len(jumps) > 1 else ""
    return f"its frame numbers jump from {a} to {b}{more}: missing frames are not filled in, so motion skips there"


def check_sequence(folder: str | Path, start: int = 0, count: int = 0, autorotate: bool = True) -> None:
    """Read the header of every image of a sequence window, so an unreadable file or one of another size is
    reported before any work starts rather than when decoding reaches it (headers only: fast for long sequences).
    Gaps in the frame numbers, or two sequences in one folder, are warned about (:func:`sequence_gaps`).

    Raises
    ------
    UserError
        Naming the first image that cannot be read or whose size differs from the first one's.
    """
    files = _sequence_files(Path(folder))
    files = files[start : len(files) if count == 0 else start + count]
    gaps = sequence_gaps([path.stem for path in files])
    if gaps:
        log.warning("%s: %s", folder, gaps)
    size = _image_size(files[0], autorotate) if files else None
    for path in files[1:]:
        found = _image_size(path, autorotate)
        if found != size:
            raise _size_error(path, found, size)


def _size_error(path: Path, found: tuple[int, int], size: tuple[int, int]) -> UserError:
    """An image of another size (width, height) in a sequence: most often a folder of unrelated photos, which
    are depth-estimated one by one when passed as files."""
    return UserError(
        f"image {path} is {found[0]}x{found[1]} but the sequence is {size[0]}x{size[1]}: all images of a sequence "
        f"must have the same size (for each photo's depth on its own, pass the images as files: "
        f"rolldepth run {shlex.quote(str(path.parent))}/*{path.suffix} -o OUT)"
    )


def as_rate(fps: Fraction | float) -> Fraction:
    """An exact, positive frame rate: Fractions and ints as given, floats to the nearest ratio with denominator
    <= 1001 (29.97002997... -> 30000/1001), because a float's exact binary value makes no usable time base."""
    rate = Fraction(fps) if isinstance(fps, (Fraction, int)) else Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise UserError(f"frame rate must be > 0, got {fps}")
    return rate


@contextmanager
def _open_video(path: Path, image: bool = False) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """Open a video (with ``image``, a picture FFmpeg reads and Pillow cannot, such as DPX) and hand out its video
    stream (FFmpeg's best); PyAV errors become one-line UserErrors naming the file."""

    def error(as_video: str, why) -> UserError:
        return UserError(f"cannot read image {path}: {why}" if image else as_video)

    if not path.is_file():
        raise UserError(f"{'image' if image else 'video'} not found: {path}")
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as exc:
        raise error(f"cannot read {path} as a video: {exc.strerror or exc}", exc.strerror or exc) from None
    with container:
        if not container.streams.video:
            raise error(f"{path} has no video stream", "no picture in it")
        # FFmpeg's choice, as its players make it: not a cover picture or a thumbnail track ahead of the video
        stream = container.streams.best("video") or container.streams.video[0]
        try:
            yield container, stream
        except av.FFmpegError as exc:
            raise error(f"error while reading {path}: {exc.strerror or exc}", exc.strerror or exc) from None


def _until_eof(items: Iterator) -> Iterator:
    """Stop quietly where FFmpeg reports an unexpected end of file (a truncated or header-only file): the frames
    before it are still good, and a file without any is reported as having no frames."""
    try:
        yield from items
    except av.error.EOFError:
        return


def _sequence_files(folder: Path) -> list[Path]:
    if is_still(folder):
        return [folder]
    files = image_files(folder)
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {folder}")
    return files


def _image_size(path: Path, autorotate: bool = True) -> tuple[int, int]:
    """(width, height) from the image header only: upright, with ``autorotate``, where EXIF says the camera was
    turned (:func:`load_rgb8`)."""
    if path.suffix.lower() == ".exr":
        with _open_exr(path, header_only=True) as exr:
            low, high = exr.header()["dataWindow"]
            return int(high[0] - low[0] + 1), int(high[1] - low[1] + 1)
    if path.suffix.lower() in _FFMPEG_IMAGES:
        with _open_video(path, image=True) as (_, stream):
            size = stream.codec_context.width, stream.codec_context.height
        if 0 in size:
            raise UserError(f"cannot read image {path}: its header gives no picture size")
        return size
    try:
        with _open_image(path) as image:
            width, height = image.size
            turned = autorotate and _orientation(image) in (5, 6, 7, 8)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None
    return (height, width) if turned else (width, height)


# ----------------------------------------------------------------------------------------------------------------
# Decoding
def iter_frames(path: str | Path, start: int = 0, count: int = 0, autorotate: bool = True) -> Iterator[np.ndarray]:
    """Decode frames ``start .. start+count-1`` one at a time as uint8 [H, W, 3] RGB arrays.

    The input is checked eagerly (missing file, not a video, window past the end raise here, not at the first
    ``next``); frames are then decoded lazily, so a long video never has to fit in memory.

    Parameters
    ----------
    path : str or Path
        A video file or an image-sequence folder.
    start : int
        First frame (0-based).
    count : int
        Frames to read; 0 reads to the end, a count past the end stops at the end.
    autorotate : bool
        Turn frames upright by the video's display rotation, give non-square pixels the display's shape and
        deinterlace interlaced frames and convert HDR frames to SDR (default); ``False`` keeps the stored pixels.
    """
    path = Path(path)
    info, stop = _window(path, start, count, autorotate)
    return _decode(info, start, stop, autorotate)


def read_frames(path: str | Path, start: int = 0, count: int = 0, autorotate: bool = True) -> np.ndarray:
    """All frames of a window as one uint8 [N, H, W, 3] RGB array (see :func:`iter_frames`).

    The array is allocated once from the probed frame count and filled frame by frame, so reading never holds
    two copies of the video.
    """
    path = Path(path)
    info, stop = _window(path, start, count, autorotate)
    frames = np.empty((stop - start, info.height, info.width, 3), dtype=np.uint8)
    n_read = 0
    for n_read, frame in enumerate(_decode(info, start, stop, autorotate), 1):
        frames[n_read - 1] = frame
    if n_read == 0:
        raise UserError(f"no frame of {path} could be decoded")
    if n_read < len(frames):
        log.warning("%s: only %d of %d frames could be decoded", path, n_read, len(frames))
    return frames[:n_read]


def _window(path: Path, start: int, count: int, autorotate: bool = True) -> tuple[VideoInfo, int]:
    """Probe the input and turn (start, count) into a checked [start, stop) range."""
    if start < 0 or count < 0:
        raise UserError(f"frame start and count must be >= 0, got start={start}, count={count}")
    info = probe(path, autorotate=autorotate)
    check_start(path, info, start, "start frame")
    stop = info.n_frames if count == 0 else min(start + count, info.n_frames)
    return info, stop


def check_start(path: Path, info: VideoInfo, start: int, name: str) -> None:
    """Refuse a first frame past the input's end; ``name`` is how the caller's user gave it (``--from 40``)."""
    if start >= info.n_frames:
        frames = f"{info.n_frames} frame{'s' * (info.n_frames != 1)}"
        raise UserError(f"{name} {start} is past the end of {path} ({frames})")


def _decode(info: VideoInfo, start: int, stop: int, autorotate: bool = True) -> Iterator[np.ndarray]:
    if _is_images(info.path):
        return _iter_images(_sequence_files(info.path)[start:stop], (info.height, info.width), autorotate)
    return _iter_video(info.path, start, stop, autorotate)


def _iter_video(path: Path, start: int, stop: int, autorotate: bool = True) -> Iterator[np.ndarray]:
    with _open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        width, height = _decoded_size(stream, autorotate)  # every frame at the stream's (display) size
        decoded = frames_or_gaps(_until_eof(container.demux(stream)))
        frames = progressive(decoded, stream) if autorotate else with_rotations(decoded)

        def image(frame: av.VideoFrame, rotation: float) -> np.ndarray:
            if autorotate and frame.color_trc in hdr.NAMES:
                array = hdr.to_sdr(frame.to_ndarray(format="rgb48le", width=width, height=height), frame.color_trc)
            else:
                array = frame.to_ndarray(format="rgb24", width=width, height=height)
            return _upright(array, rotation) if autorotate else array

        last, waiting = None, 0  # the last decoded frame; gaps in the window before any decoded frame
        for index, (frame, rotation) in enumerate(frames):
            if frame is None:
                if index >= start:
                    warn_gap(path, index, "the frame before it" if last else "the next decoded frame")
                    if last is not None:
                        yield image(*last)
                    else:
                        waiting += 1
            else:
                last = (frame, rotation)
                if index >= start:  # frames before the window are decoded (H.264 needs them) but never converted
                    current = image(frame, rotation)
                    for _ in range(waiting + 1):
                        yield current
                    waiting = 0
            if index + 1 >= stop:
                break


def _quarter_turns(rotation: float) -> int:
    return round(rotation / 90) % 4


def _upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a video's display rotation (``rotation`` degrees counter-clockwise, as FFmpeg reports it).

    Phones store portrait video as landscape pixels plus a rotation for the player; the model has to see the
    scene upright, as the user does, and the outputs then play upright too.
    """
    turns = _quarter_turns(rotation)
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def stored_orientation(path: str | Path) -> Callable[[np.ndarray], np.ndarray] | None:
    """The inverse of the turn that reading applies to an input's first frame to show it upright (a video's display
    rotation, an image's EXIF orientation), as a function of arrays [..., H, W]; ``None`` where the frames are stored
    upright. It takes a prediction made on the upright frames to data kept in the stored pixels' orientation (the
    depth of a phone's capture app). Found by turning a small array of distinct values as the frames are turned and
    matching it against the eight quarter turns and flips."""
    path = Path(path)
    cells = np.arange(6, dtype=np.uint8).reshape(2, 3)
    if _is_images(path):
        first = _sequence_files(path)[0]
        if first.suffix.lower() == ".exr" or first.suffix.lower() in _FFMPEG_IMAGES:
            return None  # read as stored
        with _open_image(first) as image:
            turn = _UPRIGHT.get(_orientation(image))
        if turn is None:
            return None
        upright = np.asarray(Image.fromarray(cells).transpose(turn))
    else:
        with _open_video(path) as (container, stream):
            rotation = next((frame.rotation for frame in _until_eof(container.decode(stream))), 0)
        if not _quarter_turns(rotation):
            return None
        upright = _upright(cells, rotation)
    for turns in range(4):
        for flip in (False, True):
            undo = functools.partial(_dihedral, turns=turns, flip=flip)
            if np.array_equal(undo(upright), cells):
                return undo
    raise AssertionError("a turn or flip of the plane is one of the eight tried")


def _dihedral(array: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    """``array`` [..., H, W] mirrored left-right (``flip``), then turned ``turns`` quarters counter-clockwise."""
    return np.ascontiguousarray(np.rot90(array[..., ::-1] if flip else array, turns, axes=(-2, -1)))


def _iter_images(files: list[Path], size: tuple[int, int], autorotate: bool = True) -> Iterator[np.ndarray]:
    for path in files:
        image = load_rgb8(path, autorotate)
        if image.shape[:2] != size:
            raise _size_error(path, image.shape[1::-1], size[::-1])
        yield image


def load_rgb8(path: Path, autorotate: bool = True) -> np.ndarray:
    """One image as uint8 [H, W, 3] RGB, whatever its mode; with ``autorotate``, upright as viewers show it where
    its EXIF orientation says the camera was turned (phone photos store the sensor's pixels plus that tag, as
    phone videos carry a display rotation).

    Gray, palette and CMYK images are converted by Pillow and alpha is dropped. 16-bit gray (``I;16``) and 32-bit
    integer (``I``, taken as 16-bit data) images are scaled by 1/257, which maps 65535 to 255 and recovers ``v`` from
    the usual 8-to-16-bit expansion ``v * 257``; Pillow's own conversion would clip them to 0/255 instead.
    OpenEXR plates are scene-linear: see :func:`load_exr_rgb8`. DPX images are decoded by FFmpeg, their code values
    (10-bit and others) scaled to 8 bits as they are stored: a log-encoded film scan reaches the model as flat as it
    looks without a viewing LUT.
    """
    if path.suffix.lower() == ".exr":
        return load_exr_rgb8(path)
    if path.suffix.lower() in _FFMPEG_IMAGES:
        with _open_video(path, image=True) as (container, stream):
            frame = next(container.decode(stream), None)
            if frame is None:
                raise UserError(f"cannot read image {path}: no picture in it")
            return frame.to_ndarray(format="rgb24")
    try:
        with _open_image(path) as image:
            turn = _UPRIGHT.get(_orientation(image)) if autorotate else None
            image.load()
            return _to_rgb8(image if turn is None else image.transpose(turn), path)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None


@contextmanager
def _open_exr(path: Path, header_only: bool = False):
    """An OpenEXR file as a context manager; a damaged one is a UserError naming it."""
    import OpenEXR

    try:
        exr = OpenEXR.File(str(path), separate_channels=True, header_only=header_only)
    except Exception as exc:  # OpenEXR raises plain RuntimeErrors and others for damaged files
        raise UserError(f"cannot read image {path}: {first_line(exc)}") from None
    with exr:
        yield exr


def read_exr_channels(path: Path) -> dict[str, np.ndarray]:
    """Every channel of an OpenEXR file's first part, by name."""
    with _open_exr(path) as exr:
        return {name: channel.pixels for name, channel in exr.channels().items()}


def load_exr_rgb8(path: Path) -> np.ndarray:
    """An OpenEXR plate (first part; R, G, B channels, or Y for grey) as uint8 sRGB [H, W, 3].

    The model learnt from display-referred images, and EXR plates hold scene-linear light, so the values go through
    the sRGB transfer curve (IEC 61966-2-1) after clipping to [0, 1], as an sRGB viewer shows them; NaN becomes 0.
    """
    channels = read_exr_channels(path)
    if {"R", "G", "B"} <= channels.keys():
        linear = np.stack([channels[c] for c in "RGB"], axis=-1)
    elif "Y" in channels:
        linear = np.repeat(channels["Y"][..., None], 3, axis=-1)
    else:
        raise UserError(f"image {path} has no R, G, B or Y channels (it has {', '.join(sorted(channels))})")
    linear = np.nan_to_num(linear.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0).clip(0, 1)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
    return np.rint(encoded * 255).astype(np.uint8)


# EXIF orientation -> the transpose that shows the stored pixels upright (the tag's definition in the EXIF standard)
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation an opened image's header gives (1 = as stored). A PNG's EXIF chunk may follow the
    pixels, and Pillow would decode the whole image to find it: such a PNG counts as unturned, so that the header
    check of a long sequence stays a header check and agrees with what decoding gives."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return image.getexif().get(EXIF_ORIENTATION, 1)


def _open_image(path: Path) -> Image.Image:
    """``Image.open``, with HEIF (iPhone photos) through pillow-heif, an optional extra, registered on first use.
    libheif applies the file's own rotation, and pillow-heif then reports EXIF orientation 1."""
    if path.suffix.lower() in _HEIF and not register_heif():
        raise UserError(f"reading {path} (HEIF) needs pillow-heif: pip install 'rolldepth[heif]'")
    return Image.open(path)


@functools.cache
def register_heif() -> bool:
    """Register pillow-heif's opener with Pillow, once; False where pillow-heif is not installed."""
    try:
        import pillow_heif
    except ModuleNotFoundError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _to_rgb8(image: Image.Image, path: Path) -> np.ndarray:
    if image.mode.startswith("I"):
        gray = np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode == "F":
        raise UserError(f"image {path} holds floating-point values; convert it to 8- or 16-bit first")
    try:
        return np.asarray(image.convert("RGB"))
    except ValueError:
        raise UserError(f"image {path} has an unsupported pixel format ({image.mode})") from None


def as_rgb_frames(frames) -> np.ndarray:
    """Frames given in memory, in the layouts image libraries use, as one uint8 [N, H, W, 3] RGB array.

    Accepted: numpy arrays or torch tensors, channels last ([N, H, W, C]) or first ([N, C, H, W], diffusers'
    layout), with 3 (RGB), 4 (RGBA: alpha dropped) or 1 channel, or grey [N, H, W]; uint8, other integers within
    0..255, or floats within [0, 1] (rounded to 8 bits, as video frames are); or a list of such frames or of PIL
    images. A uint8 [N, H, W, 3] array is returned as it is, without a copy.

    Raises
    ------
    UserError
        For another shape, values out of range, or frames of different sizes.
    """
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise UserError("no frames given")
        frames = [_to_rgb8(f, f"frame {i}") if isinstance(f, Image.Image) else as_rgb_frames(f[None])[0]
                  for i, f in enumerate(frames)]
        if len({f.shape for f in frames}) > 1:
            raise UserError(f"frames of different sizes: {sorted({f.shape[:2] for f in frames})}")
        return np.stack(frames)
    torch = sys.modules.get("torch")  # not imported: then frames cannot be a tensor (reading stays torch-free)
    if torch is not None and isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        frames = (frames.float() if frames.is_floating_point() else frames).numpy()  # numpy has no bfloat16
    frames = np.asarray(frames)
    what = f"{frames.dtype} {list(frames.shape)}"
    if frames.ndim == 3:
        frames = frames[..., None]
    elif frames.ndim == 4 and frames.shape[-1] not in (1, 3, 4) and frames.shape[1] in (1, 3, 4):
        frames = frames.transpose(0, 2, 3, 1)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise UserError(f"frames must be [N, H, W, 3] (or [N, 3, H, W], [N, H, W], RGBA), got {what}")
    if frames.dtype != np.uint8:
        if frames.dtype.kind == "f":
            if not np.isfinite(frames).all():
                raise UserError(f"frames hold NaN or infinite values ({what})")
            if frames.size and (frames.min() < 0 or frames.max() > 1):
                raise UserError(f"float frames must lie within [0, 1], got {what} from {frames.min():g} to "
                                f"{frames.max():g}; uint8 frames are 0..255")
            frames = np.rint(frames * 255)
        elif frames.dtype.kind in "iub":
            if frames.size and (frames.min() < 0 or frames.max() > 255):
                raise UserError(f"integer frames must lie within 0..255 (8 bits), got {what} up to {frames.max()}")
        else:
            raise UserError(f"frames must be numbers, got {what}")
        frames = frames.astype(np.uint8)
    if frames.shape[-1] == 1:
        return np.repeat(frames, 3, axis=-1)
    return np.ascontiguousarray(frames[..., :3]) if frames.shape[-1] == 4 else frames


# ----------------------------------------------------------------------------------------------------------------
# Resizing
def processing_size(height: int, width: int, res: int) -> tuple[int, int]:
    """(h, w) with the longer side scaled to ``res`` and the aspect ratio kept; ``res=0`` keeps the size.

    The official formula, floats and flooring included (``f = min(res / W, res / H)``, ``int(H * f)``,
    ``int(W * f)``), so that every input reaches the model at the size the official code gives it (854x480 at
    768 px is 768x431, not 768x432).
    """
    if res < 0:
        raise UserError(f"processing resolution must be >= 0 (0 keeps the input size), got {res}")
    if res == 0:
        return height, width
    scale = min(res / width, res / height)
    return max(1, int(height * scale)), max(1, int(width * scale))


def resize_frames(frames: np.ndarray, res: int) -> torch.Tensor:
    """uint8 RGB frames -> float32 [N, 3, h, w] in [-1, 1] at the processing resolution.

    Antialiased bilinear (a triangle filter widened by the shrink factor) rather than plain bilinear, which
    would alias fine texture when a 4K frame goes to 768 px. Frames are converted in chunks so a long video
    never exists as one full-resolution float32 array.

    Parameters
    ----------
    frames : np.ndarray
        uint8 [N, H, W, 3] or one [H, W, 3] frame.
    res : int
        Target size of the longer side; 0 keeps the native size.
    """
    import torch
    import torch.nn.functional as F

    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    n_frames, height, width = frames.shape[:3]
    size = processing_size(height, width, res)
    out = torch.empty((n_frames, 3, *size), dtype=torch.float32)
    for first in range(0, n_frames, _RESIZE_CHUNK):
        chunk = torch.from_numpy(frames[first : first + _RESIZE_CHUNK].copy()).permute(0, 3, 1, 2).float()
        if size != (height, width):
            chunk = F.interpolate(chunk, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[first : first + _RESIZE_CHUNK] = (chunk / 127.5 - 1.0).clamp_(-1.0, 1.0)
    return out


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float [N, h, w] depth maps to ``size = (H, W)``, e.g. back to the input resolution.

    Bilinear; torch's ``antialias=True`` widens the filter only along an axis that shrinks and is plain bilinear
    along one that grows, which is what a depth map needs either way.
    """
    import torch
    import torch.nn.functional as F

    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 3:
        raise ValueError(f"depth must be [N, h, w], got {list(depth.shape)}")
    size = (int(size[0]), int(size[1]))
    if size == depth.shape[1:]:
        return depth.copy()
    out = np.empty((len(depth), *size), dtype=np.float32)
    for first in range(0, len(depth), _RESIZE_CHUNK):
        chunk = torch.from_numpy(depth[first : first + _RESIZE_CHUNK].copy())[:, None]
        resized = F.interpolate(chunk, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[first : first + _RESIZE_CHUNK] = resized[:, 0].numpy()
    return out

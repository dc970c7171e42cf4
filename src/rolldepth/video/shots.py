"""Shots: where a video cuts, so that no snippet spans a cut and each shot is co-aligned and normalised on its own.

One global scale and shift per snippet is only meaningful inside one continuous shot: across a cut the
co-alignment would tie unrelated scenes together. Cuts come from PySceneDetect's content detector run on the
frames we decode (so a frame window, rotation and image sequences are handled as everywhere else), or from a file:

* plain frame numbers: the first frame of every new shot, 0-based, in the input's numbering (separated by
  commas, spaces or new lines; ``#`` starts a comment);
* PySceneDetect's scene list CSV (``scenedetect -i VIDEO list-scenes``): its "Start Frame" / "End Frame" columns,
  which count from 1 with inclusive ends.

Shots are half-open ranges ``[start, stop)`` of frame indices inside the processed window.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import UserError, read_user_file

THRESHOLD = 27.0  # PySceneDetect ContentDetector's default: mean HSV change between frames that makes a cut
MIN_SHOT = 15  # frames; PySceneDetect's default minimum scene length
DETECT_WIDTH = 256  # frames are subsampled to about this width for detection, as PySceneDetect does by default


def detect_cuts(frames: Iterable[np.ndarray], fps: float, threshold: float = THRESHOLD,
                min_shot: int = MIN_SHOT) -> list[int]:
    """Indices (within ``frames``) of the first frame of every new shot, found by PySceneDetect.

    Parameters
    ----------
    frames : iterable of np.ndarray
        uint8 ``[H, W, 3]`` RGB frames, in order.
    fps : float
        Frame rate (PySceneDetect keeps time codes; the frame numbers do not depend on it).
    threshold, min_shot
        The content detector's threshold and minimum shot length in frames.
    """
    from scenedetect import ContentDetector, FrameTimecode

    detector = ContentDetector(threshold=threshold, min_scene_len=min_shot)
    cuts: list[int] = []
    for index, frame in enumerate(frames):
        step = max(1, frame.shape[1] // DETECT_WIDTH)
        bgr = np.ascontiguousarray(frame[::step, ::step, ::-1])
        cuts += [int(c.frame_num) for c in detector.process_frame(FrameTimecode(index, fps), bgr)]
    return sorted(set(c for c in cuts if c > 0))


def read_shots_file(path: str | Path) -> list[int]:
    """Cut frames (0-based first frames of new shots, input numbering) from a shots file; see the module notes."""
    path = Path(path)
    text = read_user_file(path, "shots file")
    if "Start Frame" in text:
        return _scenedetect_csv(text, path)
    words = [w for line in text.splitlines() for w in re.split(r"[,\s]+", line.split("#")[0]) if w]
    try:
        cuts = [int(w) for w in words]
    except ValueError:
        raise UserError(f"{path}: a shots file holds frame numbers (or PySceneDetect's CSV), found "
                        f"{words[:3]}") from None
    if any(c < 0 for c in cuts):
        raise UserError(f"{path}: frame numbers must be >= 0")
    return sorted(set(cuts))


def _scenedetect_csv(text: str, path: Path) -> list[int]:
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if "Start Frame" in line)
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[header:]))))
    try:
        ranges = [(int(r["Start Frame"]) - 1, int(r["End Frame"])) for r in rows]
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: the CSV needs integer 'Start Frame' and 'End Frame' columns") from None
    for k, (start, stop) in enumerate(ranges):
        if start < 0 or stop <= start:
            raise UserError(f"{path}: scene {k + 1} has an empty or negative frame range")
        if k and start < ranges[k - 1][1]:
            raise UserError(f"{path}: scenes {k} and {k + 1} overlap (frames {start + 1}-{ranges[k - 1][1]})")
    return [start for start, _ in ranges[1:]] + ([ranges[-1][1]] if ranges else [])


def file_digest(path: str | Path) -> str:
    """Content digest of a shots file, for the run's fingerprint (an edited file must not resume old shots)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def shot_ranges(cuts: Iterable[int], start: int, n_frames: int, total: int, source: str = "") -> list[tuple[int, int]]:
    """Shots of the window ``[start, start + n_frames)`` of a ``total``-frame input, as ranges inside the window.

    Cuts outside the window are ignored; a cut past the end of the input is an error (the file does not belong to
    this video). A cut equal to ``total`` (the end of the last scene in a CSV) is not a cut.
    """
    cuts = sorted(set(int(c) for c in cuts))
    late = [c for c in cuts if c > total]
    if late:
        raise UserError(f"{source or 'shots'}: frame {late[0]} is past the end of the input ({total} frames)")
    inside = [c - start for c in cuts if start < c < start + n_frames]
    bounds = [0, *inside, n_frames]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def drop_short_shots(shots: list[tuple[int, int]], minimum: int) -> list[tuple[int, int]]:
    """Merge every detected shot shorter than ``minimum`` frames into its predecessor (or successor).

    Detection enforces a minimum length after each cut but not for the last shot; a shot too short for one snippet
    cannot be processed on its own, and a false cut near the end is the likely cause.
    """
    merged = list(shots)
    k = 0
    while len(merged) > 1 and k < len(merged):
        a, b = merged[k]
        if b - a >= minimum:
            k += 1
            continue
        if k > 0:
            merged[k - 1 : k + 1] = [(merged[k - 1][0], b)]
        else:
            merged[0:2] = [(a, merged[1][1])]
    return merged

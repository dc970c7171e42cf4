"""A Rerun recording (``<stem>.rrd``) of a video's RGB frames, depth and point clouds, for the Rerun viewer.

Rerun is an optional extra (``pip install 'rolldepth[rrd]'``), imported only when a recording is asked for. The
recording has one timeline ``frame`` (the depth's frame index) and, per exported frame: ``camera`` (a pinhole with
the depth's intrinsics, OpenCV axes: x right, y down, z forward), ``camera/image/rgb``, ``camera/image/depth`` (metres,
or the assumed range's metres, see ``description``) and ``points`` (the coloured point cloud in camera coordinates).
Open it with ``rerun clip.rrd``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError


def import_rerun():
    """The ``rerun`` module, or one clear line saying how to install it."""
    try:
        import rerun
    except ImportError:
        raise UserError("--save-rrd needs the Rerun SDK: pip install 'rolldepth[rrd]' (or rerun-sdk)") from None
    return rerun


class RrdRecorder:
    """Logs frames to a ``.rrd`` file written under a temporary name and renamed into place by :meth:`close`.

    Parameters
    ----------
    path : Path
        The final ``.rrd`` file.
    name : str
        Recording name (the video's stem).
    K : np.ndarray
        Intrinsics [3, 3] at ``size``.
    size : (int, int)
        (width, height) of the depth.
    description : str
        What the depth is (metric, or an assumed range), logged as a text document.
    """

    def __init__(self, path: Path, name: str, K: np.ndarray, size: tuple[int, int], description: str):
        from .writers import _partial_name

        rr = import_rerun()
        self.rr = rr
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _partial_name(self.path)
        self.stream = rr.RecordingStream(application_id="rolldepth", recording_id=name)
        self.stream.save(str(self.tmp))
        self.stream.log("description", rr.TextDocument(f"{name}: {description}"), static=True)
        self.stream.log("camera", rr.ViewCoordinates.RDF, static=True)
        self.stream.log("camera/image", rr.Pinhole(image_from_camera=np.asarray(K, dtype=np.float32),
                                                    resolution=[int(size[0]), int(size[1])]), static=True)

    def log_frame(self, index: int, rgb: np.ndarray | None, depth_m: np.ndarray, points: np.ndarray,
                  colours: np.ndarray | None) -> None:
        """One frame: its RGB image (if given), metric depth image and coloured points."""
        rr, stream = self.rr, self.stream
        stream.set_time("frame", sequence=int(index))
        if rgb is not None:
            stream.log("camera/image/rgb", rr.Image(np.ascontiguousarray(rgb)))
        stream.log("camera/image/depth", rr.DepthImage(np.nan_to_num(depth_m, nan=0.0), meter=1.0))
        stream.log("camera/points", rr.Points3D(points, colors=colours))

    def close(self) -> Path:
        """Flush the recording and move it onto its final name."""
        import os

        self.stream.flush()
        self.stream.disconnect()
        os.replace(self.tmp, self.path)
        return self.path

"""The metric and 3-D outputs of one video, after its relative depth is computed.

With anchors (``--metric-anchors``): ``<stem>_depth_m.npy`` (float32 [N, H, W], metres, NaN where the fit puts a
pixel beyond infinity), ``<stem>_depth_m_exr/`` with ``--save-exr``, and ``<stem>_metric.json`` (the fit, per-anchor
residuals, RMSE, invalid pixels). With ``--save-ply``: ``<stem>_ply/frame_000000.ply, ...``, one coloured point cloud
every ``--ply-every`` frames, from the metric depth when anchors are given, else from the relative depth mapped to an
assumed range (said in the log and in each file's header). ``--save-rrd`` logs the same frames (RGB, depth, camera,
points) to ``<stem>.rrd`` for the Rerun viewer.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..method.metric_scale import INVALID_MEANING, MetricFit, MetricView, assumed_range_map
from .pointcloud import frame_points, intrinsics_from_fov, read_intrinsics, scale_intrinsics, write_ply
from ..storage.workdir import rows_in_blocks
from .writers import atomic_path, frame_name, value_range, write_exr, write_npy

log = logging.getLogger(__name__)

METRIC_EXR_MEANING = "metric z-depth in metres (1 / (a * pred + b), fit in <stem>_metric.json); " + INVALID_MEANING
ANCHOR_CONVENTION = ("x, y: pixels of the input frame (after autorotation), pixel centres at integers, mapped to the "
                     "depth's grid as x_d = (x + 0.5) * w / W - 0.5; frame: input frame number")


@dataclass(frozen=True)
class Export3D:
    """What to write besides the relative depth (the 3-D part of ``RunOptions``, resolved for one video)."""

    save_npy: bool = True
    save_exr: bool = False
    save_ply: bool = False
    ply_every: int = 10
    save_rrd: bool = False
    fov: float | None = None
    intrinsics: Path | None = None
    assumed_range: tuple[float, float] = (1.0, 10.0)

    @property
    def needs_camera(self) -> bool:
        return self.save_ply or self.save_rrd


def check_aspect(size: tuple[int, int], image_size: tuple[int, int], name: str) -> None:
    """Intrinsics given for another picture shape than the video's cannot be scaled to it."""
    if abs(size[0] / size[1] - image_size[0] / image_size[1]) > 0.01 * image_size[0] / image_size[1]:
        raise UserError(f"{name} is for {size[0]}x{size[1]} images, but the video is {image_size[0]}x{image_size[1]} "
                        f"(another aspect ratio)")


def depth_intrinsics(
    fov: float | None, intrinsics: Path | None, image_size: tuple[int, int], depth_size: tuple[int, int]
) -> np.ndarray:
    """K at the depth's size (width, height): from a horizontal field of view, or from a file given in the input's
    pixels (or for the size the file names), scaled to the depth."""
    if intrinsics is not None:
        K, size = read_intrinsics(intrinsics)
        if size is not None:
            check_aspect(size, image_size, Path(intrinsics).name)
        return scale_intrinsics(K, size or image_size, depth_size)
    if fov is None:
        raise UserError("3-D export needs the camera: give --fov DEG (horizontal field of view) or --intrinsics FILE")
    return intrinsics_from_fov(depth_size[0], depth_size[1], fov)


def write_3d_outputs(
    output_dir: Path,
    stem: str,
    pred,
    rgb: Iterable[np.ndarray] | None,
    export: Export3D,
    fit: MetricFit | None,
    image_size: tuple[int, int],
    first_frame: int = 0,
    names: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Write the metric and 3-D outputs of one video (see the module notes); returns them keyed by name.

    Parameters
    ----------
    pred : array [N, h, w]
        Relative inverse depth (may be disk-backed).
    rgb : iterable of uint8 [h, w, 3], optional
        The video's frames at the depth's size, for the points' colours (none without).
    fit : MetricFit, optional
        The metric fit; without it the point clouds use ``export.assumed_range``.
    image_size : (int, int)
        (width, height) of the input frames (anchor and intrinsics coordinates).
    first_frame : int
        Input frame number of ``pred[0]``.
    names : sequence of str, optional
        File names (no extension) of the frames' EXR and PLY files; ``frame_000000``, ... without.
    """
    output_dir = Path(output_dir)
    written: dict[str, Path] = {}
    depth_size = (pred.shape[2], pred.shape[1])
    if fit is not None:
        a, b = fit.a, fit.b
        log.info("%s", fit.summary())
        depth_note = (f"metric depth in metres, fitted to {len(fit.anchors)} anchors "
                      f"(RMSE {fit.rmse_m:.4g} m, see {stem}_metric.json)")
    else:
        near, far = export.assumed_range
        a, b = assumed_range_map(*value_range(pred), near, far)
        depth_note = (f"NOT metric: relative depth mapped to an assumed range, nearest {near:g} m, farthest {far:g} m "
                      f"(--assumed-range; give --metric-anchors for metric depth)")
        if export.needs_camera:
            log.info("no --metric-anchors: the 3-D output assumes the video's depth runs from %g m (nearest) to %g m "
                     "(farthest); it is not metric", near, far)
    view = MetricView(pred, a, b)
    if fit is not None:
        if export.save_npy:
            written["depth_m"] = write_npy(output_dir / f"{stem}_depth_m.npy", view)
        if export.save_exr:
            written["depth_m_exr"] = write_exr(output_dir / f"{stem}_depth_m_exr", view, METRIC_EXR_MEANING, names)
        written["metric"] = write_metric_json(output_dir / f"{stem}_metric.json", fit, view, image_size, depth_size,
                                              first_frame, [p.name for p in written.values()])
    if export.needs_camera:
        K = depth_intrinsics(export.fov, export.intrinsics, image_size, depth_size)
        written |= write_points(output_dir, stem, view, rgb, K, export, depth_note, first_frame, names)
    return written


def count_invalid(view: MetricView) -> int:
    """Pixels of the whole video whose metric depth is NaN (beyond infinity under the fit)."""
    return int(sum(np.count_nonzero(np.isnan(block)) for _, block in rows_in_blocks(view)))


def write_metric_json(path: Path, fit: MetricFit, view: MetricView, image_size: tuple[int, int],
                      depth_size: tuple[int, int], first_frame: int, outputs: list[str]) -> Path:
    """``<stem>_metric.json``: the fit and its residuals (``MetricFit.to_json``), conventions and invalid pixels."""
    invalid = count_invalid(view)
    if invalid:
        log.warning("%d of %d pixels lie beyond infinity under the metric fit (a * pred + b <= 0): NaN in the metric "
                    "depth", invalid, int(np.prod(view.shape)))
    report = fit.to_json() | {
        "anchor_coordinates": ANCHOR_CONVENTION,
        "image_size": list(image_size),
        "depth_size": list(depth_size),
        "first_frame": first_frame,
        "invalid_pixels": invalid,
        "invalid_meaning": INVALID_MEANING,
        "outputs": outputs,
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return path


def write_points(output_dir: Path, stem: str, view: MetricView, rgb: Iterable[np.ndarray] | None, K: np.ndarray,
                 export: Export3D, depth_note: str, first_frame: int,
                 names: Sequence[str] | None = None) -> dict[str, Path]:
    """Every ``export.ply_every``-th frame as a PLY point cloud in ``<stem>_ply/`` and/or a Rerun recording."""
    if export.ply_every < 1:
        raise UserError(f"--ply-every must be >= 1, got {export.ply_every}")
    recorder = None
    if export.save_rrd:
        from .rrd import RrdRecorder

        recorder = RrdRecorder(output_dir / f"{stem}.rrd", stem, K, (view.shape[2], view.shape[1]), depth_note)
    written: dict[str, Path] = {}
    folder = output_dir / f"{stem}_ply"
    height, width = view.shape[1:]
    camera = (f"intrinsics fx {K[0, 0]:.6g} fy {K[1, 1]:.6g} cx {K[0, 2]:.6g} cy {K[1, 2]:.6g} at {width}x{height}")
    frames = itertools.repeat(None) if rgb is None else iter(rgb)
    with atomic_path(folder, directory=True) if export.save_ply else nullcontext() as tmp:
        for index in range(len(view)):
            colour = next(frames, None)
            if index % export.ply_every:
                continue
            metres = view[index]
            points, colours = frame_points(metres, colour, K)
            if tmp is not None:
                comments = (f"rolldepth point cloud of {stem}, frame {index} (input frame {first_frame + index})",
                            "camera coordinates, OpenCV axes: x right, y down, z forward; metres",
                            f"depth: {depth_note}", camera)
                write_ply(tmp / f"{frame_name(index, names)}.ply", points, colours, comments)
            if recorder is not None:
                recorder.log_frame(index, colour, metres, points, colours)
    if export.save_ply:
        written["ply"] = folder
        log.info("point clouds of every %d-th frame in %s (%s)", export.ply_every, folder.name, depth_note)
    if recorder is not None:
        written["rrd"] = recorder.close()
    return written

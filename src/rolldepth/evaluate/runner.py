"""``rolldepth eval``: a model on a benchmark, with the per-frame baseline and dilation ablations side by side.

Every variant runs the same model on the same frames with the same noise seed; only the snippet kernels differ.
Each prediction is scored twice, after one least-squares scale and shift per video in disparity space and in
depth space (:mod:`rolldepth.metrics`), and the per-video scores are averaged with each video counting once.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ..method.coalign import COALIGN_SOLVERS, DEFAULT_COALIGN
from ..method.snippets import PER_FRAME_KERNELS, snippets_share_frames
from ..errors import UserError
from .metrics import evaluate_video, mean_over_videos, tae

log = logging.getLogger(__name__)

# name -> pipeline kernels; "per-frame" is the single-image baseline (see PER_FRAME_KERNELS)
VARIANTS: dict[str, dict] = {
    "per-frame": PER_FRAME_KERNELS,
    "{1}": dict(snippet_lengths=(3,), dilations=(1,)),
    "{1,25}": dict(snippet_lengths=(3,), dilations=(1, 25)),
    "{1,10,25}": dict(snippet_lengths=(3,), dilations=(1, 10, 25)),
}
SPACES = ("disparity", "depth")
WORK_DIR = ".eval-work"  # inside OUT: finished (video, variant) results of an interrupted evaluation


def parse_variants(text: str | None) -> list[str]:
    """Comma-separated variant names (``None`` = all); ``{1,25}`` contains a comma, so split on names."""
    if not text:
        return list(VARIANTS)
    names, rest = [], text.replace(" ", "")
    while rest:
        match = next((name for name in sorted(VARIANTS, key=len, reverse=True) if rest.startswith(name)), None)
        if match is None:
            raise UserError(f"unknown variant in {text!r}; choose from {', '.join(VARIANTS)}")
        names.append(match)
        rest = rest[len(match):].lstrip(",")
    return names


def depth_like(pred_inv: np.ndarray) -> np.ndarray:
    """An inverse-depth prediction turned into something affine-comparable to depth, for depth-space alignment.

    The prediction is shifted and scaled to [0, 1] over the whole video and inverted with the clip the official
    co-alignment uses for its depth term, ``1 / clip(x, 1e-3)``: the affine-invariant depth of the prediction
    under the assumption that its minimum is (near) infinity. The same map takes an affine-invariant depth to
    inverse depth, under the mirrored assumption that its minimum is (near) zero.
    """
    pred = np.asarray(pred_inv, dtype=np.float64)
    low, high = float(pred.min()), float(pred.max())
    unit = (pred - low) / max(high - low, 1e-12)
    return (1.0 / np.clip(unit, 1e-3, None)).astype(np.float32)


PREDICTION_KINDS = ("inverse-depth", "depth")


def score(pred: np.ndarray, sample, temporal: bool = True, kind: str = "inverse-depth") -> dict[str, dict]:
    """Metrics of one prediction ([N, h, w]) against one sample, in both alignment spaces; without ``temporal``,
    AbsRel and delta1 only (the TAE entries are None).

    ``kind`` says what the prediction holds: ``"inverse-depth"`` (larger = nearer, what the pipeline returns) or
    ``"depth"`` (affine-invariant depth, larger = farther, as Marigold's depth pipeline returns). Each kind is
    aligned as it is in its own space, and through :func:`depth_like` in the other.
    """
    if kind not in PREDICTION_KINDS:
        raise UserError(f"unknown prediction kind {kind!r}: use {' or '.join(PREDICTION_KINDS)}")
    common = dict(max_depth=sample.max_depth, min_depth=sample.min_depth, poses=sample.poses if temporal else None,
                  K=sample.K, moving=sample.moving, motion=_motion(sample))
    inverse, depth = (pred, depth_like(pred)) if kind == "inverse-depth" else (depth_like(pred), pred)
    return {
        "disparity": evaluate_video(inverse, sample.depth, sample.valid, space="disparity", **common),
        "depth": evaluate_video(depth, sample.depth, sample.valid, space="depth", **common),
    }


def _motion(sample) -> tuple[np.ndarray, np.ndarray] | None:
    """The sample's object indices and poses for the flow TAE, where it has them (synthetic data)."""
    return None if sample.objects is None or sample.object_poses is None else (sample.objects, sample.object_poses)


def evaluate(
    pipe, samples, variants=None, *, res=None, refine_steps=0, seed=0, progress=True, work_dir: Path | None = None,
    coalign: str = DEFAULT_COALIGN, predictions_dir: Path | None = None, temporal: bool = True,
    uncertainty: bool = False,
) -> dict:
    """Run every variant on every sample and score it.

    With ``work_dir``, each (video, variant) result is saved there as soon as it is scored, together with what
    produced it (weights digest, resolution, refinement, seed, a hash of the frames and ground truth); a re-run after
    a crash reuses the results whose record matches and computes the rest, so an interrupted evaluation loses at most
    one variant.

    Parameters
    ----------
    pipe : RollingDepthPipeline
        The model.
    samples : iterable of VideoSample
        Benchmark videos (:func:`rolldepth.datasets.load_dataset`).
    variants : list of str, optional
        Keys of :data:`VARIANTS` (default all, in table order).
    res : int, optional
        Processing resolution (default: the checkpoint's recommendation).
    refine_steps : int
        Refinement steps for the snippet variants (the per-frame baseline is never refined).
    seed : int
        Noise seed, the same for every video and variant.
    work_dir : Path, optional
        Folder of finished (video, variant) results, for resuming.
    coalign : str
        Co-alignment mode of the snippet variants (``"official"`` or ``"objective"``).
    predictions_dir : Path, optional
        Save each raw prediction (float32 [N, h, w] affine-invariant inverse depth, as the pipeline returns it,
        before any alignment; turned onto the depth's orientation where ``sample.to_depth`` says so) to
        ``predictions_dir/<video name>/<variant>.npy``, so that other metrics can be
        computed later without running the model again. A saved result whose prediction file is missing is
        computed again.
    temporal : bool
        Also score TAE (all pixels, static, flow) and the ground truth's own TAE. Off, only AbsRel and delta1 are
        scored: the TAE reprojections take most of the scoring time, which is what a quick choice between models
        on a GPU waits for.
    uncertainty : bool
        Also score how well the snippet variants' uncertainty (the spread of the snippets averaged into each pixel,
        ``output_uncertainty``) ranks each pixel's error (:func:`.uncertainty.score_uncertainty`).

    Returns
    -------
    dict
        ``videos``: per video and variant the metrics of both spaces and the seconds; ``summary``: per variant
        the mean over videos of each space and the seconds per frame.
    """
    variants = list(variants or VARIANTS)
    if work_dir:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    videos, seconds, frames_done = [], {v: 0.0 for v in variants}, 0
    for sample in samples:
        frames = np.asarray(sample.frames)
        if len(frames) < 2:
            raise UserError(f"{sample.name} has {len(frames)} frame(s); a video needs at least 2")
        entry = _video_entry(sample, len(frames), temporal)
        if work_dir:
            data = hashlib.sha1(frames.tobytes())
            data.update(np.asarray(sample.depth, dtype=np.float32).tobytes())
            if sample.moving is not None:  # a result saved without the static TAE is redone
                data.update(np.asarray(sample.moving, dtype=bool).tobytes())
            if _motion(sample) is not None:  # and one saved without the flow TAE
                data.update(np.asarray(sample.objects, dtype=np.uint8).tobytes())
        for name in variants:
            steps = 0 if name == "per-frame" else refine_steps
            saved = record = None
            if work_dir:
                record = dict(weights=pipe.weights_digest(), res=pipe.resolve_res(res), refine_steps=steps,
                              coalign=coalign, seed=seed, shape=list(frames.shape), data=data.hexdigest(),
                              temporal=temporal, uncertainty=uncertainty)
                saved = Path(work_dir) / f"{sample.name.replace('/', '__')}__{name}.json"
            prediction = Path(predictions_dir) / sample.name / f"{name}.npy" if predictions_dir else None
            result = None if prediction and not prediction.is_file() else _load_result(saved, record)
            if result is None:
                result = _run_variant(pipe, sample, frames, name, steps, coalign, res, seed, saved, record, prediction,
                                      temporal, uncertainty)
            else:
                log.info("%s %s: done in an earlier run", sample.name, name)
            seconds[name] += result["seconds"]
            entry["variants"][name] = result
        frames_done += len(frames)
        videos.append(entry)
    return _report(videos, variants, seconds, frames_done)


def score_saved(samples, folder: str | Path, label: str = "predictions", temporal: bool = True,
                kind: str = "inverse-depth", uncertainty: bool = False) -> dict:
    """Score predictions made elsewhere (another model, another tool, an earlier ``rolldepth run``) as
    :func:`evaluate` scores its own: for each sample one of ``folder/<sequence>.npy``, ``<sequence>_pred.npy``
    (what ``rolldepth run`` writes), ``<sequence>.npz`` (DepthCrafter's), ``<sequence>_pred.npz`` or
    ``<sequence>_depths.npz`` (Video Depth Anything's), float [N, h, w] of the frames evaluated, any resolution, or
    ``<sequence>_depth16.mkv`` (``rolldepth run --save-depth16``'s),
    holding affine-invariant inverse depth (larger = nearer) or, with ``kind="depth"``, affine-invariant depth (see
    :func:`score`); else a folder of one image per frame (``<sequence>_exr``, ``_depths_exr``, ``_png16``). The
    report has one variant, ``label``. With ``uncertainty``, ``<sequence>_uncertainty.npy`` beside each (``rolldepth
    run --save-uncertainty``'s) is scored too (:func:`.uncertainty.score_uncertainty`)."""
    from .uncertainty import score_uncertainty

    if uncertainty and kind != PREDICTION_KINDS[0]:
        raise UserError("--uncertainty scores the spread of inverse-depth predictions (rolldepth run "
                        "--save-uncertainty's); not with --prediction-kind depth")
    folder = Path(folder)
    videos, frames_done = [], 0
    for sample in samples:
        pred = _saved_prediction(folder, sample)
        entry = _video_entry(sample, len(pred), temporal)
        entry["variants"][label] = dict(score(pred, sample, temporal, kind), seconds=None)
        if uncertainty:
            spread = _saved_uncertainty(folder, sample, pred.shape)
            entry["variants"][label]["uncertainty"] = score_uncertainty(pred, spread, sample)
        videos.append(entry)
        frames_done += len(pred)
    return _report(videos, [label], None, frames_done)  # no time of ours to report


def _video_entry(sample, n_frames: int, temporal: bool) -> dict:
    """A video's entry in a report, its variants still to fill: its name, frames and the ground truth's own TAE."""
    truth = _ground_truth_tae(sample) if temporal else dict.fromkeys(GROUND_TRUTH_KEYS)
    return {"name": sample.name, "n_frames": n_frames, "variants": {}, **truth}


# ours, DepthCrafter's, Video Depth Anything's, our 16-bit video; then folders of one image per frame: ours, VDA's
PREDICTION_FILES = ("{}.npy", "{}_pred.npy", "{}.npz", "{}_pred.npz", "{}_depths.npz", "{}_depth16.mkv", "{}_exr",
                    "{}_depths_exr", "{}_png16")
NPZ_KEYS = ("depth", "depths", "disparity", "pred")


def _saved_prediction(folder: Path, sample) -> np.ndarray:
    sequence = sample.name.split("/", 1)[-1]
    names = [pattern.format(sequence) for pattern in PREDICTION_FILES]
    # a 16-bit video counts only without an array file, image folders without either (rolldepth run writes several)
    present = [folder / name for name in names if (folder / name).exists()]
    arrays = [p for p in present if p.is_file() and p.suffix != ".mkv"]
    videos = [p for p in present if p.is_file() and p.suffix == ".mkv"]
    found = arrays or videos or [p for p in present if p.is_dir()]
    if len(found) != 1:
        raise UserError(f"{'no' if not found else 'several'} predictions for {sample.name} in {folder}: expected one "
                        f"of {', '.join(names)}" + (f", found {', '.join(p.name for p in found)}" if found else ""))
    path, n_frames = found[0], len(sample.depth)
    if path.is_dir():
        pred = _prediction_images(path, n_frames)
    else:
        try:
            if path.suffix == ".mkv":
                from ..video.writers import read_depth16

                pred = read_depth16(path)[0]
            else:
                pred = np.load(path, mmap_mode="r") if path.suffix == ".npy" else _npz_array(path)
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from None
        if pred.ndim != 3 or len(pred) != n_frames:
            raise UserError(f"{path} is {list(pred.shape)}: expected [{n_frames}, h, w], one map for each frame "
                            f"{sample.name} is scored on (a benchmark's split or --max-frames picks them)")
        pred = np.asarray(pred, dtype=np.float32)
    if not np.isfinite(pred).all():
        raise UserError(f"{path} holds NaN or infinite values")
    return _turned_like_depth(pred, sample)


def _turned_like_depth(array: np.ndarray, sample) -> np.ndarray:
    """A saved [N, h, w] map made on the upright frames, as rolldepth run makes it, turned onto the depth's
    orientation where the sample stores it turned (``sample.to_depth``) and the map's shape says it was not."""
    from ..data.benchmarks import closer_to_swapped

    if sample.to_depth is not None and closer_to_swapped(array.shape[1:], sample.depth.shape[1:]):
        return sample.to_depth(array)
    return array


def _saved_uncertainty(folder: Path, sample, shape: tuple) -> np.ndarray:
    """``<sequence>_uncertainty.npy`` beside a saved prediction of ``shape``, turned as the prediction was."""
    path = folder / f"{sample.name.split('/', 1)[-1]}_uncertainty.npy"
    if not path.is_file():
        raise UserError(f"no {path.name} in {folder} for --uncertainty: rolldepth run --save-uncertainty writes it "
                        "beside the prediction")
    try:
        spread = np.asarray(np.load(path, mmap_mode="r"), dtype=np.float32)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if spread.ndim == 3:
        spread = _turned_like_depth(spread, sample)
    if spread.shape != tuple(shape):
        raise UserError(f"{path} is {list(spread.shape)}: expected {list(shape)}, the prediction's shape")
    if not (np.isfinite(spread).all() and (spread >= 0).all()):
        raise UserError(f"{path} holds negative, NaN or infinite values: expected standard deviations")
    return spread


def _prediction_images(folder: Path, n_frames: int) -> np.ndarray:
    """A folder of one image per frame scored (natural order): EXR (``Z``, else ``Y``: ``rolldepth run
    --save-exr``'s, Video Depth Anything's), float TIFF or 16-bit PNG, whose values need only be affine in the
    prediction (``rolldepth run``'s ``_png16`` are)."""
    from ..data.benchmarks import depth_images
    from ..video.reading import image_files

    count = len(image_files(folder))
    if count != n_frames:
        raise UserError(f"{folder} holds {count} images: expected {n_frames}, one for each frame scored")
    return depth_images(folder, list(range(n_frames)))


def _npz_array(path: Path) -> np.ndarray:
    """The prediction in an ``.npz``: its only array, else the one under a usual name (``depth``: DepthCrafter's,
    ``depths``: Video Depth Anything's)."""
    with np.load(path) as archive:
        keys = list(archive.keys())
        key = keys[0] if len(keys) == 1 else next((k for k in NPZ_KEYS if k in keys), None)
        if key is None:
            raise UserError(f"{path} holds {', '.join(keys) or 'no arrays'}: expected one array, or one named "
                            f"{' or '.join(NPZ_KEYS)}")
        return archive[key]


def _report(videos: list[dict], variants: list[str], seconds: dict[str, float] | None, frames_done: int) -> dict:
    """The per-video entries with each variant's mean over the videos (and seconds per frame, where the
    predictions were made here) and the ground truth's mean TAE."""
    if not videos:
        raise UserError("the dataset has no videos")
    summary = {
        name: {
            **{space: mean_over_videos([v["variants"][name][space] for v in videos]) for space in SPACES},
            "seconds_per_frame": None if seconds is None else seconds[name] / frames_done,
        }
        for name in variants
    }
    for name in variants:
        scored = [v["variants"][name].get("uncertainty") for v in videos]
        if all(scored):
            summary[name]["uncertainty"] = _mean_uncertainty(scored)
    report = {"videos": videos, "summary": summary}
    for key in GROUND_TRUTH_KEYS:
        truths = [v[key] for v in videos if v[key] is not None]
        report[key] = float(np.mean(truths)) if truths else None
    return report


GROUND_TRUTH_KEYS = ("ground_truth_tae", "ground_truth_tae_static", "ground_truth_tae_flow")


def _ground_truth_tae(sample) -> dict[str, float | None]:
    """TAE of the ground truth itself (all pixels, off the moving objects, along every pixel's true motion): what
    exact depth scores.

    TAE reprojects with the camera's motion only, so objects that move, and pixels rounded onto another surface
    at depth edges, cost even the true depth. Reported beside the variants so that their TAE can be read against it.
    It is not a floor: depth smoother than the truth can score below it.
    """
    out = dict.fromkeys(GROUND_TRUTH_KEYS)
    if sample.poses is None or sample.K is None:
        return out
    truth = (sample.depth, sample.depth, sample.valid, sample.poses, sample.K, sample.max_depth, sample.min_depth)
    motion = _motion(sample)
    for key, needs, options in (("ground_truth_tae", True, {}),
                                ("ground_truth_tae_static", sample.moving is not None, dict(moving=sample.moving)),
                                ("ground_truth_tae_flow", motion is not None, dict(motion=motion))):
        value = tae(*truth, **options) if needs else np.nan
        out[key] = value if np.isfinite(value) else None
    return out


def has_uncertainty(name: str) -> bool:
    """Whether a variant's frames lie in several snippets that can disagree (snippets of one frame never share one)."""
    return snippets_share_frames(VARIANTS[name]["snippet_lengths"])


def _run_variant(pipe, sample, frames, name, steps, coalign, res, seed, saved: Path | None, record,
                 prediction: Path | None = None, temporal: bool = True, uncertainty: bool = False) -> dict:
    """Run and score one variant on one video; saved in ``saved`` (with its ``record``) when given, and the raw
    prediction in ``prediction``; with ``uncertainty``, the variant's uncertainty is scored too, where it has one."""
    from .uncertainty import score_uncertainty

    uncertainty = uncertainty and has_uncertainty(name)
    tic = time.perf_counter()
    out = pipe(
        frames, **VARIANTS[name], refine_steps=steps, coalign_mode=coalign, processing_res=res, generator=seed,
        output_uncertainty=uncertainty, progress=False,
    )
    depth = np.asarray(out.depth, dtype=np.float32)
    spread = np.asarray(out.uncertainty, dtype=np.float32) if uncertainty else None
    if sample.to_depth is not None:  # own phone footage: the frames were seen upright, the depth is stored turned
        depth = sample.to_depth(depth)
        spread = None if spread is None else sample.to_depth(spread)
    result = dict(score(depth, sample, temporal), seconds=time.perf_counter() - tic)
    if uncertainty:
        result["uncertainty"] = score_uncertainty(depth, spread, sample)
    if prediction:
        prediction.parent.mkdir(parents=True, exist_ok=True)
        tmp = prediction.with_name(f".{prediction.name}.partial")
        with open(tmp, "wb") as f:
            np.save(f, depth)
        os.replace(tmp, prediction)
    if saved:
        _write_atomic(saved, json.dumps({"record": record, "result": result}))
    log.info("%s %s: AbsRel %.4f (disparity) in %.1f s", sample.name, name,
             result["disparity"]["abs_rel"], result["seconds"])
    return result


def _load_result(path: Path | None, record: dict) -> dict | None:
    """A saved result if it exists, is readable and was made the same way; else ``None`` (it will be recomputed)."""
    if path is None or not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved["result"] if isinstance(saved, dict) and saved.get("record") == record else None


def _mean_uncertainty(scored: list[dict]) -> dict:
    """Means over videos of the AUSE of each ranking and of the shares of chance's gap closed, per error, and on how
    many videos the spread ranks better than the depth's edges."""
    from .uncertainty import RANKINGS

    mean = {}
    for space in scored[0]:
        entries = [video[space] for video in scored]
        closed = {key: [e[key] for e in entries if e[key] is not None] for key in ("gap_closed", "edges_gap_closed")}
        mean[space] = {
            **{f"ause_{name}": float(np.mean([e[name]["ause"] for e in entries])) for name in RANKINGS},
            **{key: float(np.mean(values)) if values else None for key, values in closed.items()},
            "spread_beats_edges": sum(e["spread"]["ause"] < e["edges"]["ause"] for e in entries),
            "videos": len(entries),
        }
    return mean


def uncertainty_table(summary: dict) -> str:
    """Rows = the variants whose uncertainty was scored, for each error: AUSE (x100) of the spread, the depth's edges
    and chance, the share of chance's gap to the oracle the spread and the edges close, and on how many videos the
    spread ranks the error better than the edges. Empty when none was scored."""
    rows = []
    for name, s in summary.items():
        for space, m in s.get("uncertainty", {}).items():
            error = "disparity" if space == "disparity" else "AbsRel"
            rows.append(f"| {name} | {error} | {_fmt(m['ause_spread'], 100)} | {_fmt(m['ause_edges'], 100)} | "
                        f"{_fmt(m['ause_chance'], 100)} | {_fmt(m['gap_closed'], 100, 0)} % | "
                        f"{_fmt(m['edges_gap_closed'], 100, 0)} % | {m['spread_beats_edges']} of {m['videos']} |")
    if not rows:
        return ""
    head = ("| variant | error | AUSE↓ spread | AUSE edges | AUSE chance | gap closed↑ spread | gap closed edges | "
            "spread < edges |\n|" + "---|" * 8)
    return "\n".join([head, *rows]) + "\n"


def _fmt(value, scale: float = 1.0, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def markdown_table(summary: dict, ground_truth: dict | None = None) -> str:
    """Rows = variants; AbsRel (x100), delta1 (%) and TAE (%) for both alignments, then seconds per frame; last,
    with ``ground_truth`` (the :data:`GROUND_TRUTH_KEYS` of a report), the ground truth's own scores (what exact
    depth gets for TAE on these videos).

    Where the data marks its moving objects, a "static" TAE column follows each TAE: the same error on the
    pixels that the camera's motion explains, i.e. the flicker of the static scene; where it also gives their
    motion, a "flow" column: the error along every pixel's true motion, the flicker of the whole picture."""
    extras = [key for key in ("tae_static", "tae_flow")
              if any(s[space].get(key) is not None for s in summary.values() for space in SPACES)]
    metrics = ["AbsRel↓", "δ1↑", "TAE↓"] + [f"TAE {key[4:]}↓" for key in extras]
    columns = [f"{metric} {short}" for short in ("disp", "depth") for metric in metrics]
    head = "| variant | " + " | ".join(columns) + " | s/frame |\n|" + "---|" * (len(columns) + 2)
    rows = []
    for name, s in summary.items():
        cells = []
        for space in SPACES:
            m = s[space]
            cells += [_fmt(m["abs_rel"], 100), _fmt(m["delta1"]), _fmt(m["tae"])] + [_fmt(m.get(k)) for k in extras]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {_fmt(s['seconds_per_frame'], digits=3)} |")
    truth = ground_truth or {}
    if truth.get("ground_truth_tae") is not None:
        cells = ["0.00", "100.00"] + [_fmt(truth.get(f"ground_truth_{key}")) for key in ("tae", *extras)]
        rows.append("| ground truth | " + " | ".join(cells * 2) + " | - |")
    return "\n".join([head, *rows]) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


# ============================================================================================ command line
def _cmd_eval(args: argparse.Namespace) -> int:
    from ..data.benchmarks import load_dataset
    from ..model.layout import check_model_name
    from ..model.loading import load_pipeline
    from ..weights import default_model

    variants = parse_variants(args.variants)
    if args.refine_steps < 0 or (args.max_videos is not None and args.max_videos < 1):
        raise UserError("--refine-steps must be >= 0 and --max-videos >= 1")
    if args.max_frames is not None and args.max_frames < 2:
        raise UserError(f"--max-frames must be at least 2 (a video's first two frames), got {args.max_frames}")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"output {args.out} exists and is not a folder")
    if args.model:
        check_model_name(args.model)  # a wrong folder before the first video is read and torch loads
    # One video at a time: a benchmark's frames and depth would not all fit in memory at once (each video's
    # frames stay with its sample once decoded). A broken video is therefore reported when it is reached, and a
    # re-run after fixing it resumes there.
    samples = itertools.islice(load_dataset(args.kind, args.data, max_frames=args.max_frames), args.max_videos)
    if args.prediction_kind != PREDICTION_KINDS[0] and not args.predictions:
        raise UserError("--prediction-kind says what the files of --predictions hold: give --predictions DIR too")
    if args.predictions:
        if args.model or args.variants or args.save_predictions:
            raise UserError("--predictions scores saved predictions: --model, --variants and --save-predictions "
                            "do not apply")
        label = args.predictions.resolve().name or "predictions"
        report = score_saved(samples, args.predictions, label, temporal=not args.no_tae, kind=args.prediction_kind,
                             uncertainty=args.uncertainty)
        report["settings"] = dict(predictions=str(args.predictions), prediction_kind=args.prediction_kind,
                                  data=str(args.data), kind=args.kind, max_frames=args.max_frames,
                                  max_videos=args.max_videos, tae=not args.no_tae, uncertainty=args.uncertainty)
        return _write_report(args.out, report)
    if next(load_dataset(args.kind, args.data, max_frames=args.max_frames), None) is None:  # before the model loads:
        raise UserError(f"no videos in {args.data}")  # a wrong folder or layout (the first video's, read twice)
    model = args.model or str(default_model())
    pipe = load_pipeline(model, args.dtype, args.device)
    work_dir = args.out / WORK_DIR
    report = evaluate(pipe, samples, variants, res=args.res, refine_steps=args.refine_steps, seed=args.seed,
                      progress=not args.quiet, work_dir=work_dir, coalign=args.coalign,
                      predictions_dir=args.out / "predictions" if args.save_predictions else None,
                      temporal=not args.no_tae, uncertainty=args.uncertainty)
    report["settings"] = dict(
        model=model, data=str(args.data), kind=args.kind, variants=variants, res=args.res or pipe.default_res,
        refine_steps=args.refine_steps, coalign=args.coalign, seed=args.seed, max_frames=args.max_frames,
        max_videos=args.max_videos, tae=not args.no_tae, uncertainty=args.uncertainty,
    )
    _write_report(args.out, report)
    shutil.rmtree(work_dir)  # everything it held is in eval.json now
    return 0


def _write_report(out: Path, report: dict) -> int:
    table = markdown_table(report["summary"], report)
    if uncertain := uncertainty_table(report["summary"]):
        table += ("\nUncertainty (--uncertainty): how well the snippets' spread ranks each pixel's error "
                  "(sparsification, AUSE x100, means over videos)\n\n" + uncertain)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "eval.json", json.dumps(report, indent=1))
    _write_atomic(out / "eval.md", table)
    print(table, end="")
    return 0


def register_cli(subparsers) -> None:
    """Add ``rolldepth eval --data ROOT --kind KIND -o OUT``."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model on benchmark data or your own videos with depth (per-frame baseline and dilation "
        "ablations)",
        description="Run the per-frame baseline and the dilation variants on every video of a benchmark, align "
        "each prediction to the ground truth with one scale and shift per video (in disparity and in depth "
        "space), and write OUT/eval.json (per video) and OUT/eval.md (the mean table). AbsRel is printed x100. "
        "An interrupted evaluation resumes: run the same command again.",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset root folder")
    p.add_argument("--kind", required=True,
                   help="synth, scannet, bonn, sintel, kitti, pointodyssey, or video: your own, each NAME.mp4 (or "
                   "image folder NAME/) beside its depth, NAME_depth.npy (float [N, H, W]) or NAME_depth/ (a PNG, "
                   "TIFF or EXR per frame), and optionally NAME_poses.npy (camera-to-world [N, 4, 4], translations in "
                   "the depth's unit) and NAME_K.npy (3x3) for TAE")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("-m", "--model", help="checkpoint folder or hub id (default: the embedded model)")
    p.add_argument("--variants", help=f"comma-separated subset of {', '.join(VARIANTS)} (default all)")
    p.add_argument("--max-videos", type=int, default=None, help="evaluate the first N videos only")
    p.add_argument("--max-frames", type=int, default=None, help="frames per video (default: the benchmark's)")
    p.add_argument("--res", type=int, default=None, help="processing resolution (default: the model's)")
    p.add_argument("--refine-steps", type=int, default=0, help="refinement steps for the snippet variants")
    p.add_argument("--coalign", choices=tuple(COALIGN_SOLVERS), default=DEFAULT_COALIGN,
                   help=f"co-alignment of the snippet variants (default {DEFAULT_COALIGN})")
    p.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32", help="precision (default fp32)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shared noise map (default 0)")
    p.add_argument("--no-tae", action="store_true",
                   help="score AbsRel and δ1 only: the temporal metrics (TAE) take most of the scoring time, which "
                        "a quick choice between models does not need")
    p.add_argument("--predictions", type=Path, metavar="DIR",
                   help="score predictions made elsewhere instead of running a model: for each video one of "
                        "DIR/NAME.npy, NAME_pred.npy (what rolldepth run writes), NAME.npz (DepthCrafter's), "
                        "NAME_pred.npz or NAME_depths.npz (Video Depth Anything's), float [N, h, w] relative inverse "
                        "depth (larger = nearer) of the frames scored, any resolution; else NAME_depth16.mkv "
                        "(rolldepth run --save-depth16) or a folder NAME_exr/, "
                        "NAME_depths_exr/ or NAME_png16/ of one image per frame")
    p.add_argument("--prediction-kind", choices=PREDICTION_KINDS, default=PREDICTION_KINDS[0],
                   help="what the files of --predictions hold: relative inverse depth (default; rolldepth run's "
                        "_pred.npy) or affine-invariant depth, larger = farther (Marigold's depth pipeline); each is "
                        "aligned in its own space, and in the other through 1 / x after mapping it to [0, 1]")
    p.add_argument("--uncertainty", action="store_true",
                   help="also score the snippet variants' uncertainty (rolldepth run --save-uncertainty's spread): how "
                   "well it ranks each pixel's error, by sparsification (AUSE), against the depth's own edges and "
                   "chance; a table of its own in eval.md. With --predictions: NAME_uncertainty.npy beside each")
    p.add_argument("--save-predictions", action="store_true",
                   help="also write every raw prediction to OUT/predictions/<video>/<variant>.npy (float32 inverse "
                        "depth before alignment), to score it again without the model")
    p.set_defaults(func=_cmd_eval)

"""Procedural synthetic videos with exact metric depth, camera poses and intrinsics: sequences and dataset files.

rolldepth trains and checks its own small depth model on synthetic video, because only a renderer gives
depth that is exact at every pixel, with poses that agree with it to float precision. Each seed builds one
scene (a furnished room, a tabletop, a street or an open field, :mod:`.scenes`) from boxes, spheres, cylinders and
quads with procedural textures, Lambertian + ambient lighting (:mod:`.scene`), a camera path (dolly, orbit, pan,
handheld, forward walk, :mod:`.cameras`) and optionally moving objects, one of which may pass close to the camera;
:mod:`.renderer` draws it. Scene scale spans tabletop (tens of centimetres) to street (about 100 m). This module
puts a sequence together, writes and reads the dataset files and adds ``rolldepth synth`` to the command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import UserError
from .cameras import choose_path, clearance
from .renderer import get_renderer
from .scene import CAMERA_PATHS, CONSISTENCY_PATHS, SCENE_KINDS, Scene, SceneConfig, SceneObject, intrinsics_matrix
from .scenes import KIND_BUILDERS, enrich_textures, flyby_object, lighting, mover, random_material, thin_structures

logger = logging.getLogger(__name__)


REALISM = ("shadows", "rich_textures", "thin_structures")  # SceneConfig switches recorded in meta.json when on
_OPTION_KEYS = (*REALISM, "motion_blur", "shutter")  # the keys of recorded_options()
FORMAT_NAME = "rolldepth-synth"
FORMAT_VERSION = 1
SEQUENCE_ARRAYS = ("frames", "depth", "objects", "object_poses", "poses", "intrinsics")  # seq_XXXXX/<name>.npy


# ============================================================================================ sequences
def _check_size(size) -> tuple[int, int]:
    try:
        width, height = (int(s) for s in size)
    except (TypeError, ValueError):
        raise UserError(f"size must be (width, height), got {size!r}") from None
    if not (8 <= width <= 4096 and 8 <= height <= 4096):
        raise UserError(f"image size {width}x{height} is out of range (8..4096 per side)")
    return width, height


def _check_blur(config: SceneConfig) -> int:
    blur = config.motion_blur
    if blur < 1 or blur % 2 == 0 or not 0.0 < config.shutter <= 2.0:
        raise UserError(f"motion blur needs an odd number of instants per frame (got {blur}) and a shutter in (0, 2] "
                        f"frame intervals (got {config.shutter})")
    return blur


def frame_instants(n_frames: int, config: SceneConfig) -> np.ndarray:
    """Times in seconds at which a sequence is rendered: ``motion_blur`` instants per frame, frame after frame,
    spread evenly over the shutter and centred on the frame's time (just the frame times without blur)."""
    blur = _check_blur(config)
    offsets = (np.arange(blur) - blur // 2) * (config.shutter / max(blur - 1, 1))
    return ((np.arange(n_frames)[:, None] + offsets[None, :]) / config.fps).ravel()


def recorded_options(config: SceneConfig) -> dict:
    """The rendering options a sequence's ``meta.json`` records: realism switches that are on, and the blur when
    there is some. What is not recorded is the default, so sequences made before an option existed still match."""
    options = {name: True for name in REALISM if getattr(config, name)}
    if config.motion_blur > 1:
        options.update(motion_blur=config.motion_blur, shutter=float(config.shutter))
    return options


def build_sequence_scene(
    seed: int, n_frames: int, size: tuple[int, int], config: SceneConfig
) -> tuple[Scene, np.ndarray, np.ndarray, dict]:
    """The random scene, camera poses [N * motion_blur, 4, 4], intrinsics [3, 3] and a description of one seed.

    Parts are drawn in order: scene kind and structure, camera path (kept clear of the structure), then
    clutter and moving objects, each dropped if it would come too close to any camera position.
    """
    rng = np.random.default_rng(seed)
    kind = config.kind or str(rng.choice(SCENE_KINDS))
    if kind not in KIND_BUILDERS:
        raise UserError(f"unknown scene kind {kind!r}; choose one of {', '.join(SCENE_KINDS)}")
    for path in (config.camera_path, *(config.camera_paths or ())):
        if path is not None and path not in CAMERA_PATHS:
            raise UserError(f"unknown camera path {path!r}; choose one of {', '.join(CAMERA_PATHS)}")
    width, height = size
    times = frame_instants(n_frames, config)
    layout, structure, clutter = KIND_BUILDERS[kind](rng)
    K = intrinsics_matrix(width, height, rng.uniform(50, 85), rng.uniform(-0.02, 0.02, 2) * [width, height])
    path, poses = choose_path(rng, layout, times, (n_frames - 1) / config.fps, config.camera_path, config.camera_paths)
    eyes = poses[:, :3, 3]
    margin = 0.1 * layout.view_distance
    objects = list(structure)
    palette_hue = rng.uniform()
    for mesh, place in clutter:
        hue = palette_hue if rng.uniform() < 0.4 else None
        obj = SceneObject(mesh, random_material(rng, 2 * float(mesh.bounds[1].max()), hue=hue), place)
        if clearance(obj, eyes) > margin:
            objects.append(obj)
    if config.thin_structures:  # from a stream of their own, so every other draw of the seed stays the same
        extra = np.random.default_rng([seed, 1])
        for mesh, place in thin_structures(extra, kind, layout):
            extent = 2 * float(mesh.bounds[1].max())
            obj = SceneObject(mesh, random_material(extra, extent, ("solid", "noise", "stripes", "gradient")), place)
            if clearance(obj, eyes) > margin:
                objects.append(obj)
    n_moving, flyby = 0, False
    if config.moving_objects:
        for _ in range(rng.integers(0, 4) if kind != "street" else rng.integers(1, 6)):
            mesh, transforms = mover(rng, kind, layout, times)
            obj = SceneObject(mesh, random_material(rng, 2 * float(mesh.bounds[1].max())), transforms)
            if clearance(obj, eyes) > margin:
                objects.append(obj)
                n_moving += 1
        wants_flyby = config.flyby if config.flyby is not None else bool(rng.uniform() < 0.35)
        if wants_flyby and n_frames > 1:
            mesh, transforms = flyby_object(rng, poses, K, size, layout, times, config.motion_blur)
            obj = SceneObject(mesh, random_material(rng, 2 * float(mesh.bounds[1].max())), transforms)
            if clearance(obj, eyes) > 0.02 * layout.view_distance:
                objects.append(obj)
                flyby = True
    if config.rich_textures:
        objects = enrich_textures(np.random.default_rng([seed, 2]), objects)
    scene = Scene(objects=objects, shadows=config.shadows, **lighting(rng, outdoor=kind in ("street", "field")))
    meta = {"kind": kind, "camera_path": path, "n_moving": n_moving, "flyby": flyby, **recorded_options(config)}
    return scene, poses, K, meta


def render_sequence(
    seed: int, n_frames: int = 48, size: tuple[int, int] = (160, 120), config: SceneConfig | None = None
) -> dict:
    """Render one random synthetic video with exact depth.

    Parameters
    ----------
    seed : int
        Everything random (scene kind, layout, textures, light, path, motion) derives from it; the same
        seed and arguments give bit-identical arrays.
    n_frames : int
    size : (int, int)
        (width, height) in pixels.
    config : SceneConfig or None
        Fixes parts of the scene instead of drawing them.

    Returns
    -------
    dict
        ``frames`` uint8 [N, H, W, 3]; ``depth`` float32 [N, H, W] z-depth in metres, > 0 everywhere;
        ``objects`` uint8 [N, H, W], 0 on the static scene and k where the k-th moving object is seen;
        ``object_poses`` float32 [N, K, 4, 4], object-to-world of the K moving objects in each frame (with
        ``poses``, the true motion of every pixel);
        ``moving`` bool [N, H, W], ``objects > 0`` (the pixels that break a static-scene reprojection);
        ``poses`` float32 [N, 4, 4] camera-to-world in OpenCV axes (x right, y down, z forward) with world
        y up; ``intrinsics`` float32 [3, 3] in pixels; ``fps`` float; ``meta`` dict (seed, size, kind,
        camera path, moving objects, flyby, depth range).
    """
    config = config or SceneConfig()
    width, height = _check_size(size)
    if n_frames < 1:
        raise UserError(f"a sequence needs at least one frame, got {n_frames}")
    scene, poses, K, meta = build_sequence_scene(seed, n_frames, (width, height), config)
    frames, depth, objects = get_renderer(width, height, config.antialias).render(scene, poses, K)
    movers = [obj.transform for obj in scene.objects if obj.moving]  # in the renderer's slot order
    object_poses = np.stack(movers, axis=1) if movers else np.zeros((len(poses), 0, 4, 4))
    if config.motion_blur > 1:  # average each frame's instants; keep the middle one's depth, objects and poses
        blur, middle = config.motion_blur, config.motion_blur // 2
        frames = frames.reshape(n_frames, blur, *frames.shape[1:]).mean(axis=1).round().astype(np.uint8)
        depth, objects = depth[middle::blur], objects[middle::blur]
        poses, object_poses = poses[middle::blur], object_poses[middle::blur]
    if not np.all(depth > 0):
        raise RuntimeError(f"seed {seed}: {np.sum(depth <= 0)} pixels saw no geometry (scene is not closed)")
    meta.update(
        seed=int(seed), size=[width, height], n_frames=int(n_frames), fps=float(config.fps),
        min_depth=float(depth.min()), max_depth=float(depth.max()),
    )
    return {
        "frames": frames,
        "depth": depth,
        "objects": objects,
        "object_poses": object_poses.astype(np.float32),
        "moving": objects > 0,
        "poses": poses.astype(np.float32),
        "intrinsics": K.astype(np.float32),
        "fps": float(config.fps),
        "meta": meta,
    }


# ============================================================================================ dataset files
def sequence_seed(dataset_seed: int, index: int) -> int:
    """Seed of sequence ``index``: independent streams per (dataset seed, index), so datasets made with
    different seeds share no scene and a sequence does not depend on how many were requested."""
    return int(np.random.SeedSequence([int(dataset_seed), int(index)]).generate_state(1)[0])


def write_dataset(
    root: str | Path,
    n_sequences: int,
    n_frames: int = 48,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    progress: bool = True,
    config: SceneConfig | None = None,
    workers: int = 1,
) -> Path:
    """Render a dataset to ``root/seq_00000/ ...`` and describe it in ``root/dataset.json``.

    Each sequence is written into a hidden temporary folder and renamed when complete, so an interrupted run
    leaves no half-written sequence; running again skips the complete ones (resume). With ``workers > 1`` the
    sequences are rendered by that many processes, each with its own EGL context; every sequence depends on its
    own seed only, so the files are the same either way.

    Returns
    -------
    Path
        The root folder.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    width, height = _check_size(size)
    if n_sequences < 1 or n_frames < 1:
        raise UserError(f"need at least one sequence and one frame, got {n_sequences} and {n_frames}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1 (rendering processes), got {workers}")
    if config:
        _check_blur(config)
    options = recorded_options(config or SceneConfig())
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} is a file: the dataset needs a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the dataset folder {root}: {exc.strerror or exc}") from None
    for stale in root.glob(".seq_*.partial"):
        shutil.rmtree(stale)
    todo, metas = [], {}
    for index in range(n_sequences):
        name, seq_seed = f"seq_{index:05d}", sequence_seed(seed, index)
        folder = root / name
        if folder.is_dir():
            meta = _read_meta(folder)
            if ((meta.get("seed"), meta.get("size"), meta.get("n_frames")) != (seq_seed, [width, height], n_frames)
                    or {key: meta[key] for key in _OPTION_KEYS if key in meta} != options):
                raise UserError(f"{folder} was rendered with other settings (seed/size/frames/motion blur/realism); "
                                "use a new output folder")
            logger.debug("skipping complete %s", folder)
            metas[index] = meta
        else:
            todo.append((str(root), name, seq_seed, n_frames, (width, height), config, index, int(seed)))
    bar = tqdm(total=n_sequences, initial=n_sequences - len(todo), desc="synth", unit="seq", disable=not progress)
    if workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # a fresh process per worker: EGL contexts do not fork
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
            for meta in pool.map(_render_and_write, todo):
                metas[meta["index"]] = meta
                bar.update()
    else:
        for job in todo:
            meta = _render_and_write(job)
            metas[meta["index"]] = meta
            bar.update()
    bar.close()
    entries = [
        {"name": f"seq_{index:05d}", "seed": meta["seed"], "kind": meta["kind"], "n_frames": meta["n_frames"]}
        for index, meta in sorted(metas.items())
    ]
    description = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "seed": int(seed),
        "size": [width, height],
        "n_frames": int(n_frames),
        "conventions": {
            "depth": "z along the optical axis, metres, float32",
            "poses": "camera-to-world 4x4, OpenCV axes (x right, y down, z forward), world y up",
            "intrinsics": "3x3 pixels, pixel centres at integer coordinates",
            "objects": "uint8 per pixel: 0 on the static scene, k where the k-th moving object is seen",
            "object_poses": "[N, K, 4, 4] object-to-world of the K moving objects in each frame, world as in poses",
        },
        "sequences": entries,
    }
    _write_json(root / "dataset.json", description)
    return root


def _render_and_write(job: tuple) -> dict:
    """Render one sequence of a dataset, write it and return its meta (a top-level function: worker processes
    import it)."""
    root, name, seq_seed, n_frames, size, config, index, dataset_seed = job
    sample = render_sequence(seq_seed, n_frames, size, config)
    meta = dict(sample["meta"], index=index, dataset_seed=dataset_seed)
    _write_sequence(Path(root), name, sample, meta)
    return meta


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _write_sequence(root: Path, name: str, sample: dict, meta: dict) -> None:
    tmp = root / f".{name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for key in SEQUENCE_ARRAYS:
        np.save(tmp / f"{key}.npy", sample[key])
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    os.replace(tmp, root / name)


def _read_meta(folder: Path) -> dict:
    path = folder / "meta.json"
    try:
        meta = json.loads(path.read_text())
        float(meta["fps"])
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a valid sequence description ({exc})") from None
    return meta


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path} is missing")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path} is corrupt ({exc})") from None


def load_sequence(folder: str | Path) -> dict:
    """Read one sequence written by :func:`write_dataset`, checking that its arrays fit together.

    Returns
    -------
    dict
        The keys of :func:`render_sequence`. ``objects`` and ``object_poses`` are None for sequences written
        before they existed, and ``moving`` too for those written before the moving-object mask.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"sequence folder {folder} does not exist")
    meta = _read_meta(folder)
    arrays = {key: _load_npy(folder / f"{key}.npy") for key in ("frames", "depth", "poses", "intrinsics")}
    frames, depth, poses, K = (arrays[k] for k in ("frames", "depth", "poses", "intrinsics"))
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise UserError(f"{folder}/frames.npy must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    if depth.dtype != np.float32 or depth.shape != frames.shape[:3]:
        raise UserError(f"{folder}/depth.npy must be float32 {list(frames.shape[:3])}, got {depth.dtype} {depth.shape}")
    if poses.shape != (len(frames), 4, 4):
        raise UserError(f"{folder}/poses.npy must be [{len(frames)}, 4, 4], got {poses.shape}")
    if K.shape != (3, 3):
        raise UserError(f"{folder}/intrinsics.npy must be [3, 3], got {K.shape}")
    return {"frames": frames, "depth": depth, **load_motion(folder, depth.shape), "poses": poses, "intrinsics": K,
            "fps": float(meta["fps"]), "meta": meta}


def flyby_index(meta: dict) -> int:
    """Index in ``objects`` of the object that flies past the camera in a sequence with this ``meta`` (0: none).

    :func:`build_sequence_scene` adds it after the ``n_moving`` other movers, and the renderer numbers moving objects
    in scene order from 1.
    """
    return int(meta.get("n_moving", 0)) + 1 if meta.get("flyby") else 0


def load_motion(folder: Path, shape: tuple[int, ...]) -> dict:
    """What a sequence says about its moving objects: ``objects`` (``objects.npy``, uint8, the depth's shape),
    ``object_poses`` (``object_poses.npy``, float [N, K, 4, 4], K at least the largest object index) and
    ``moving`` (``objects > 0``, or the bool ``moving.npy`` of sequences written before the object indices);
    each None where the sequence predates it."""
    folder = Path(folder)
    path, poses_path, mask_path = folder / "objects.npy", folder / "object_poses.npy", folder / "moving.npy"
    if path.exists():
        objects, object_poses = _load_npy(path), _load_npy(poses_path)
        if objects.dtype != np.uint8 or objects.shape != tuple(shape):
            raise UserError(f"{path} must be uint8 {list(shape)}, got {objects.dtype} {objects.shape}")
        needed = int(objects.max(initial=0))
        if (object_poses.ndim != 4 or object_poses.shape[0] != shape[0] or object_poses.shape[2:] != (4, 4)
                or object_poses.shape[1] < needed):
            raise UserError(f"{poses_path} must be [{shape[0]}, K, 4, 4] with K >= {needed} (the objects in "
                            f"objects.npy), got {object_poses.shape}")
        return {"objects": objects, "object_poses": object_poses, "moving": objects > 0}
    moving = None
    if mask_path.exists():
        moving = _load_npy(mask_path)
        if moving.dtype != np.bool_ or moving.shape != tuple(shape):
            raise UserError(f"{mask_path} must be bool {list(shape)}, got {moving.dtype} {moving.shape}")
    return {"objects": None, "object_poses": None, "moving": moving}


# ============================================================================================ command line
def size_argument(example: str):
    """An argparse ``type`` for ``WIDTHxHEIGHT`` sizes; ``example`` is shown in the error message."""

    def parse(text: str) -> tuple[int, int]:
        try:
            width, height = (int(part) for part in text.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"size must look like {example}, got {text!r}") from None
        return width, height

    return parse


def _cmd_synth(args: argparse.Namespace) -> int:
    recipe = dict(camera_paths=CONSISTENCY_PATHS, flyby=True) if args.consistency else {}
    config = SceneConfig(**recipe, motion_blur=args.motion_blur, shutter=args.shutter,
                         **{name: getattr(args, name) or args.realism for name in REALISM})
    root = write_dataset(args.out, args.sequences, args.frames, args.size, args.seed, progress=not args.quiet,
                         config=config, workers=args.workers)
    logger.info("wrote %d sequences to %s", args.sequences, root)
    return 0


def register_cli(subparsers) -> None:
    """Add ``rolldepth synth OUT --sequences N --frames N --size WxH --seed S``."""
    p = subparsers.add_parser(
        "synth",
        help="render synthetic videos with exact depth, poses and intrinsics",
        description="Render random procedural scenes into OUT/seq_XXXXX/{frames,depth,poses,intrinsics}.npy "
        "+ meta.json, and OUT/dataset.json; objects.npy and object_poses.npy give the moving object seen at each "
        "pixel (0: none) and each one's pose in every frame. Complete sequences already in OUT are kept (resume).",
    )
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--sequences", type=int, default=100, help="number of videos (default 100)")
    p.add_argument("--frames", type=int, default=48, help="frames per video (default 48)")
    p.add_argument("--size", type=size_argument("160x120"), default=(160, 120), help="WIDTHxHEIGHT (default 160x120)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--consistency", action="store_true",
                   help="the consistency split: every shot changes its visible depth range (a camera turning from "
                        "a near wall to a far view, or closing in on the scene) and has an object flying close by")
    p.add_argument("--motion-blur", type=int, default=1, metavar="N",
                   help="render N instants per frame (odd) and average their colours, like a camera's exposure; "
                        "depth stays the frame's own (default 1: none)")
    p.add_argument("--shutter", type=float, default=0.5,
                   help="exposure of --motion-blur in frame intervals, up to 2 (default 0.5, a 180-degree shutter)")
    p.add_argument("--shadows", action="store_true", help="objects cast shadows of the scene's light")
    p.add_argument("--rich-textures", action="store_true",
                   help="about half the surfaces get bricks, tiles, wood, cells or dots instead of the basic patterns")
    p.add_argument("--thin-structures", action="store_true",
                   help="add wires, railings, fences, rod frames and pencils, a pixel or less across")
    p.add_argument("--realism", action="store_true", help="all three: --shadows --rich-textures --thin-structures")
    p.add_argument("--workers", type=int, default=1, help="rendering processes (default 1)")
    p.set_defaults(func=_cmd_synth)

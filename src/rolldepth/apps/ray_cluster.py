"""``rolldepth run --ray ADDRESS``: one Ray task per video, spread over a cluster.

Each Ray worker process loads the model once (cached in the process) and runs :func:`runner.process_video`, the
same code as a one-process run, so outputs, resume and error handling are identical. Workers write straight to the
output folder, which must therefore be storage every node can reach (NFS, a mounted bucket) on a real cluster.
A video that fails is reported by name with its one-line reason; the others still finish. Where the cluster has
GPUs, each video reserves its own (:func:`gpus_per_video`), so a node's videos share out its GPUs.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ..errors import UserError, connect_error, first_line

log = logging.getLogger(__name__)

_PIPELINES: dict[tuple, object] = {}  # per worker process: (model, dtype, device) -> pipeline


def _pipeline(model: str, dtype: str, device: str):
    key = (model, dtype, device)
    if key not in _PIPELINES:
        from ..model.checkpoint import quiet_weight_loading
        from ..model.loading import load_pipeline

        quiet_weight_loading()  # no weight-loading bars from workers in the driver's log
        _PIPELINES[key] = load_pipeline(model, dtype, device)
    return _PIPELINES[key]


def process_one(model: str, dtype: str, device: str, path: Path, output_dir: Path, options, info) -> str | None:
    """Body of one Ray task: ``None`` on success, else the one-line reason a user mistake stopped this video.

    A video that an earlier run finished, or whose depth it left, with the model loaded the same way, is finished
    without loading the model (:func:`~rolldepth.process.runner.without_model`), as ``rolldepth run`` does without
    Ray: a rerun of a batch loads it only in the workers that get an unfinished video."""
    from ..model.loading import pick_device
    from ..process.runner import ModelShape, load_key, process_video, without_model

    try:
        key = load_key(model, dtype, pick_device(device))
        if finish := without_model(path, info, output_dir, options, ModelShape.of_folder(model), key):
            finish()
        else:
            process_video(_pipeline(model, dtype, device), path, output_dir, options, info, load=key)
    except UserError as exc:
        return str(exc)
    return None


def gpus_per_video(requested: float | None, device: str, node_gpus: float) -> float:
    """GPUs each video's task reserves, and so the devices its worker sees: Ray shows a task only the GPUs it gave
    it (``CUDA_VISIBLE_DEVICES``), so videos run side by side on a node's GPUs instead of all on its first.

    Parameters
    ----------
    requested : float or None
        ``--ray-gpus``; None: one GPU a video where the cluster has GPUs and ``device`` is not the CPU, else none.
        A fraction shares a GPU (0.5: two videos on each).
    device : str
        ``--device``. A numbered GPU (``cuda:1``) cannot be combined with reserved GPUs (a task sees its GPU as
        ``cuda:0``), and CUDA cannot be used without reserving any.
    node_gpus : float
        GPUs of the cluster's largest node: no video could start with more.
    """
    if requested is None:
        requested = 1.0 if node_gpus > 0 and device != "cpu" else 0.0
    if requested > node_gpus:
        raise UserError(f"--ray-gpus {requested:g}: no node of the Ray cluster has that many GPUs (the largest has "
                        f"{node_gpus:g}), so no video could start")
    if requested > 0 and device.startswith("cuda:"):
        raise UserError(f"--device {device} with --ray: Ray gives each video its own GPU, which it sees as cuda:0; "
                        "use --device cuda or auto")
    if requested == 0 and device.startswith("cuda"):
        raise UserError(f"--device {device} with --ray needs --ray-gpus (GPUs per video), so that Ray gives each "
                        "video its own GPU")
    return requested


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a head node nobody answers at (Ray itself retries for minutes before giving up)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"--ray {address!r}: expected auto, local, host:port or ray://host:port")
    reason = connect_error(host.strip("[]"), int(port), timeout)
    if reason is not None:
        raise UserError(f"cannot connect to the Ray cluster at {address!r}: {reason}")


def connect(address: str, quiet: bool) -> None:
    """Join the cluster at ``address`` ("auto", "ray://host:10001", "host:6379") or start one here ("local")."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'rolldepth[ray]'") from None
    if address not in ("local", "auto"):
        check_reachable(address)
    kwargs = dict(log_to_driver=not quiet, logging_level=logging.WARNING)
    try:
        if address == "local":
            ray.init(include_dashboard=False, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot connect to the Ray cluster at {address!r}: {first_line(exc)}") from None


def run_on_ray(
    address: str,
    jobs: list[tuple[Path, object]],
    model: str,
    output_dir: Path,
    options,
    dtype: str = "fp32",
    device: str = "auto",
    cpus_per_video: float = 1,
    gpus: float | None = None,
) -> None:
    """Process ``jobs`` (input path, its checked ``VideoInfo``) as Ray tasks; raise if any video failed.

    Parameters
    ----------
    address : str
        Ray address, or "local" to start a Ray instance on this machine.
    jobs : list of (Path, VideoInfo)
        Inputs already checked by :func:`runner.check_input` (so user mistakes show before any work starts).
    model, dtype, device : str
        As for ``rolldepth run``; the model path must be valid on every node (a hub id always is).
    cpus_per_video : float
        Ray CPUs reserved per task (Ray also sets the task's thread count to it).
    gpus : float or None
        GPUs reserved per task (``--ray-gpus``; see :func:`gpus_per_video`); a task without one runs on the CPU.

    Raises
    ------
    UserError
        Ray missing or unreachable, or some videos failed (each named on its own line first).
    """
    connect(address, quiet=not options.progress)  # first: it turns a missing Ray into a one-line error
    import ray
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        node_gpus = max((node["Resources"].get("GPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
        gpus = gpus_per_video(gpus, device, node_gpus)
        if not gpus and device == "auto":  # it would take a GPU that another video's task was given
            device = "cpu"
        task = ray.remote(num_cpus=cpus_per_video, num_gpus=gpus, max_retries=0)(process_one)
        worker_options = dataclasses.replace(options, progress=False)  # no bars from inside workers
        pending = {
            task.remote(model, dtype, device, path, output_dir, worker_options, info): path for path, info in jobs
        }
        failures = []
        bar = tqdm(total=len(pending), desc="videos", unit="video", disable=not options.progress)
        with bar, logging_redirect_tqdm():  # "done: ..." lines print above the bar, not through it
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                path = pending.pop(ready)
                try:
                    reason = ray.get(ready)
                except ray.exceptions.RayError as exc:  # a crash in the worker (a bug, or the node died)
                    reason = f"worker failed: {str(exc).strip().splitlines()[-1]}"
                if reason:
                    failures.append(f"{path}: {reason}")
                    log.error("error: %s: %s", path, reason)
                else:
                    log.info("done: %s", path)
                bar.update()
    finally:
        ray.shutdown()
    if failures:
        raise UserError(f"{len(failures)} of {len(jobs)} videos failed: " + "; ".join(failures))

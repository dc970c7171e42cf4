"""Loading a pipeline for the applications: device and precision choice, quiet weight loading, and the settings a
checkpoint recommends (readable before the model loads, without importing diffusers).

Below the applications (command line, web page, Ray workers, evaluation), so that none of them imports another.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import UserError, first_line
from ..weights import default_model

log = logging.getLogger("rolldepth")


def read_model_defaults(folder: Path) -> dict:
    """The optional ``rolldepth.json`` of a checkpoint: inference defaults its authors recommend (e.g. the small
    embedded model's ``processing_res``, far below the 768 px that suits the full SD2-based models, and its
    ``refine_steps``, 0, since refinement makes its depth flicker more)."""
    path = Path(folder) / "rolldepth.json"
    if not path.is_file():
        return {}
    try:
        defaults = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(defaults, dict):
        raise UserError(f"{path} must hold a JSON object, e.g. {{\"processing_res\": 192}}")
    refine = defaults.get("refine_steps")
    if refine is not None and (not isinstance(refine, int) or isinstance(refine, bool) or not 0 <= refine <= 500):
        raise UserError(f"{path}: refine_steps must be a whole number from 0 to 500, got {refine!r}")
    return defaults


def pick_device(name: str):
    """``auto`` -> cuda, then mps, then cpu; an explicit device must exist."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        why = "no CUDA GPU is visible" if torch.version.cuda else f"this torch ({torch.__version__}) is a CPU build"
        raise UserError(f"device {name!r} is not usable here: {why}; --device cpu (or auto) runs on the CPU")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {name!r} is not usable here: MPS needs Apple silicon and a torch built for it")
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as exc:  # e.g. cuda:3 on a machine with two GPUs
        raise UserError(f"device {name!r} is not usable here: {first_line(exc)[:200]}") from None
    return device


def pick_dtype(name: str, device, asked: bool = True):
    """fp16 only where it helps: on the CPU it is many times slower than fp32, so fp32 is used there (said only
    when the user ``asked`` for fp16; a preset's fp16 is meant for GPUs)."""
    import torch

    if name == "fp16" and device.type == "cpu":
        log.log(logging.INFO if asked else logging.DEBUG, "fp16 is slow on the CPU: running in fp32")
        return torch.float32
    return torch.float16 if name == "fp16" else torch.float32


def load_pipeline(model: str | None, dtype_name: str, device_name: str, dtype_asked: bool = True):
    from .pipeline import RollingDepthPipeline

    device = pick_device(device_name)
    return RollingDepthPipeline.from_pretrained(
        model or default_model(), dtype=pick_dtype(dtype_name, device, dtype_asked), device=device
    )

"""Loading a pipeline for the applications: device and precision choice, quiet weight loading.

Below the applications (command line, web page, Ray workers, evaluation), so that none of them imports another.
"""

from __future__ import annotations

import logging

from ..errors import UserError
from ..weights import default_model

log = logging.getLogger("rolldepth")


def quiet_weight_loading() -> None:
    """Silence diffusers' and transformers' weight-loading bars, which ignore TQDM_DISABLE."""
    for library in ("diffusers", "transformers"):
        __import__(f"{library}.utils.logging", fromlist=["disable_progress_bar"]).disable_progress_bar()


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
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise UserError(f"device {name!r} is not usable here: {str(exc).splitlines()[0]}") from None
    return device


def pick_dtype(name: str, device):
    """fp16 only where it helps: on the CPU it is many times slower than fp32, so fp32 is used there."""
    import torch

    if name == "fp16" and device.type == "cpu":
        log.info("fp16 is slow on the CPU: running in fp32")
        return torch.float32
    return torch.float16 if name == "fp16" else torch.float32


def load_pipeline(model: str | None, dtype_name: str, device_name: str):
    from .pipeline import RollingDepthPipeline

    device = pick_device(device_name)
    return RollingDepthPipeline.from_pretrained(
        model or default_model(), dtype=pick_dtype(dtype_name, device), device=device
    )

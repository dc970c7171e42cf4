"""A short fingerprint of a pipeline's model, so that a resumed run only reuses predictions of the same model."""

from __future__ import annotations

import hashlib
import json


def weights_digest(pipe) -> str:
    """SHA-1 of the weights, scheduler and prompt embedding.

    Hashing every weight of an SD-sized UNet costs seconds, so each tensor contributes its name, shape, dtype and
    a strided sample of its values: any retrained or swapped model changes it.
    """
    digest = hashlib.sha1()
    for part in ("unet", "vae"):
        for name, tensor in getattr(pipe, part).state_dict().items():
            flat = tensor.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy()
            digest.update(f"{part}.{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(sample.tobytes())
    digest.update(pipe.empty_embedding.float().cpu().numpy().tobytes())
    digest.update(json.dumps(dict(pipe.scheduler.config), sort_keys=True, default=str).encode())
    return digest.hexdigest()

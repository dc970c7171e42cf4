"""The small model shipped inside the package (``default/``, see its MODEL_CARD.md), used when no model is named."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

DEFAULT_MODEL = Path(__file__).parent / "default"


def default_model() -> Path:
    """Folder of the embedded default model; a one-line error if the install left it out."""
    if not (DEFAULT_MODEL / "unet").is_dir():
        raise UserError(
            f"the embedded default model is not installed ({DEFAULT_MODEL} is missing); pass --model DIR_OR_HUB_ID"
        )
    return DEFAULT_MODEL

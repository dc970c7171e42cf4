"""Inference presets, the official ones, and how user options override them.

A preset is only a set of defaults: any option the user gives explicitly wins. The checkpoint may carry its own
recommendations (``rolldepth.json`` in the model folder): a processing resolution (the small embedded model is
trained at a low one) and a number of refinement steps (the embedded model is worse refined); each replaces the
preset's value unless the user asked for one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..method.coalign import COALIGN_SOLVERS, DEFAULT_COALIGN
from ..errors import UserError


@dataclass(frozen=True)
class Settings:
    """Everything that decides how one video is processed (not where outputs go).

    Attributes
    ----------
    res : int
        Max side of the processing resolution in pixels; 0 keeps the input size.
    dilations : tuple of int
        Frame gaps of the rolling kernels; 1 must be among them.
    snippet_lengths : tuple of int
        Frames per snippet, one for all dilations or one per dilation.
    cap_dilation : bool
        Shrink dilations that do not fit a short video (official behaviour) instead of failing.
    dtype : str
        ``"fp32"`` or ``"fp16"`` (fp16 is used on GPUs only; on the CPU it is slow and falls back to fp32).
    refine_steps : int
        Partial-diffusion refinement steps after co-alignment; 0 disables refinement.
    refine_snippet_length, refine_start_dilation : int
        Snippet length and first dilation of the refinement schedule.
    coalign : str
        Co-alignment solution: ``"official"`` (the official procedure's fixed point) or ``"objective"`` (the
        minimum of its loss).
    """

    res: int = 768
    dilations: tuple[int, ...] = (1, 25)
    snippet_lengths: tuple[int, ...] = (3,)
    cap_dilation: bool = True
    dtype: str = "fp16"
    refine_steps: int = 0
    refine_snippet_length: int = 3
    refine_start_dilation: int = 6
    coalign: str = DEFAULT_COALIGN
    res_explicit: bool = field(default=False, compare=False)
    refine_explicit: bool = field(default=False, compare=False)


PRESETS: dict[str, Settings] = {
    "fast": Settings(),
    "fast1024": Settings(res=1024),
    "full": Settings(res=1024, dilations=(1, 10, 25), refine_steps=10),
    "paper": Settings(dilations=(1, 10, 25), cap_dilation=False, dtype="fp32", refine_steps=10, coalign="official"),
}


def resolve_settings(preset: str = "fast", **overrides) -> Settings:
    """Start from a preset and apply the options the user set (``None`` means "not set").

    Raises
    ------
    UserError
        For an unknown preset or an impossible option.
    """
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    for key in ("dilations", "snippet_lengths"):
        if key in given:
            given[key] = tuple(int(v) for v in given[key])
    settings = replace(PRESETS[preset], **given, res_explicit="res" in given, refine_explicit="refine_steps" in given)
    check_settings(settings)
    return settings


def check_settings(s: Settings) -> None:
    """Reject option values that can never work, with a message that says which and why."""
    if s.res < 0:
        raise UserError(f"--res must be >= 0 (0 keeps the input size), got {s.res}")
    if not s.dilations or any(d < 1 for d in s.dilations):
        raise UserError(f"dilations must be positive integers, got {list(s.dilations)}")
    if 1 not in s.dilations:
        raise UserError(f"dilation 1 must be among the dilations (got {list(s.dilations)}): it links neighbouring "
                        "frames")
    if len(s.snippet_lengths) not in (1, len(s.dilations)):
        raise UserError(
            f"give one snippet length or one per dilation: {len(s.snippet_lengths)} lengths for "
            f"{len(s.dilations)} dilations"
        )
    if any(n < 1 for n in s.snippet_lengths):
        raise UserError(f"snippet lengths must be >= 1, got {list(s.snippet_lengths)}")
    if s.dtype not in ("fp32", "fp16"):
        raise UserError(f"--dtype must be fp32 or fp16, got {s.dtype!r}")
    if s.refine_steps < 0 or s.refine_steps > 500:
        raise UserError(f"--refine-steps must be between 0 and 500, got {s.refine_steps}")
    if s.coalign not in COALIGN_SOLVERS:
        raise UserError(f"--coalign must be one of {', '.join(COALIGN_SOLVERS)}, got {s.coalign!r}")
    if s.refine_snippet_length < 1 or s.refine_start_dilation < 1:
        raise UserError("--refine-snippet-length and --refine-start-dilation must be >= 1")


def with_checkpoint_defaults(s: Settings, default_res: int | None, default_refine_steps: int | None) -> Settings:
    """``s`` with a checkpoint's recommended resolution and refinement (its ``rolldepth.json``) in place of the
    preset's, except where the user set them."""
    given = {}
    if not s.res_explicit and default_res is not None:
        given["res"] = default_res
    if not s.refine_explicit and default_refine_steps is not None:
        given["refine_steps"] = default_refine_steps
    return replace(s, **given) if given else s

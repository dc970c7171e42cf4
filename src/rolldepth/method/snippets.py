"""Which frames go into which snippet: the dilated rolling kernel of RollingDepth.

A snippet of length ``L`` with dilation ``d`` holds frames ``[i, i+d, ..., i+(L-1)d]``; the kernel rolls with
stride 1, so ``i`` runs over every start that keeps the snippet inside the video. Several dilations together
give each frame short- and long-range context; dilation 1 must be one of them so neighbouring frames are always
tied together and every frame is covered.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UserError

# The single-image baseline (and what a still gets): snippets of one frame each, which share no frame, so
# co-alignment has nothing to align and every frame keeps the model's own affine frame.
PER_FRAME_KERNELS = dict(snippet_lengths=(1,), dilations=(1,))


def snippets_share_frames(snippet_lengths) -> bool:
    """Whether frames lie in several snippets, whose predictions can then disagree (an uncertainty) and be aligned
    to each other: only snippets of 2 or more frames overlap."""
    return any(int(n) > 1 for n in snippet_lengths)


def cap_dilation(dilation: int, n_frames: int, snippet_len: int) -> int:
    """Shrink a dilation so a short video still gets several snippets: ``min(d, N // L - 1)``, never below 1.

    The official code lets the cap reach 0 (when ``N < 2L``), where its gap arithmetic behaves like dilation 1;
    we return 1 directly so the value is meaningful.
    """
    return max(1, min(int(dilation), n_frames // snippet_len - 1))


def snippet_indices(n_frames: int, dilation: int, snippet_len: int = 3) -> np.ndarray:
    """Frame indices of every snippet, ``[K, L]`` int64, ``K = N - (L-1) d`` (empty when the video is too short).

    Row ``i`` is ``[i, i+d, ..., i+(L-1)d]``: stride 1, so consecutive snippets overlap in ``L-1`` positions
    (for d=1) and every frame appears in up to ``L`` snippets of the group.
    """
    if dilation < 1 or snippet_len < 1:
        raise ValueError(f"dilation and snippet length must be >= 1, got {dilation} and {snippet_len}")
    n_snippets = max(0, n_frames - (snippet_len - 1) * dilation)
    starts = np.arange(n_snippets, dtype=np.int64)[:, None]
    return starts + dilation * np.arange(snippet_len, dtype=np.int64)[None, :]


@dataclass(frozen=True, eq=False)
class SnippetGroup:
    """All snippets of one dilation: ``indices[k]`` are the frames of snippet ``k`` (``[K, L]`` int64)."""

    dilation: int
    indices: np.ndarray

    @property
    def snippet_len(self) -> int:
        """Frames per snippet ``L``."""
        return int(self.indices.shape[1])

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def _check_positive_int(value, what: str) -> int:
    """Accept Python/numpy integers only (not bools, not floats like 2.5): silent rounding hides typos."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise UserError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def build_snippet_groups(
    n_frames: int, dilations: Sequence[int], snippet_lens: Sequence[int] = (3,), cap: bool = True
) -> list[SnippetGroup]:
    """One ``SnippetGroup`` per dilation, validated so the co-alignment is well posed.

    Parameters
    ----------
    n_frames : int
        Frames in the video.
    dilations : sequence of int
        Snippet dilations; must contain 1 (neighbouring frames must share snippets). Kept in the given order,
        duplicates included (as the official code does, e.g. when capping maps 10 and 25 to the same value).
    snippet_lens : sequence of int
        One length for all dilations, or one per dilation. Length 1 means single frames (a per-frame baseline).
    cap : bool
        Shrink dilations that do not fit the video with :func:`cap_dilation` instead of failing.

    Raises
    ------
    UserError
        Bad dilations or lengths, or a video too short for a snippet. (Once the dilation-1 group has a
        snippet, its stride-1 kernel covers every frame, so coverage needs no separate check.)
    """
    dilations = [_check_positive_int(d, "a dilation") for d in dilations]
    if not dilations:
        raise UserError("at least one dilation is needed (dilation 1 is required)")
    if 1 not in dilations:
        raise UserError(f"dilations must include 1 so neighbouring frames share snippets, got {dilations}")
    lens = [_check_positive_int(n, "a snippet length") for n in snippet_lens]
    if len(lens) == 1:
        lens = lens * len(dilations)
    if len(lens) != len(dilations):
        raise UserError(
            f"give one snippet length or one per dilation: {len(lens)} lengths for {len(dilations)} dilations"
        )

    groups = []
    for dilation, length in zip(dilations, lens):
        if cap:
            dilation = cap_dilation(dilation, n_frames, length)
        needed = (length - 1) * dilation + 1
        if n_frames < needed:
            if dilation == 1:
                raise UserError(f"snippets of {length} frames need at least {length} frames, the video has {n_frames}"
                                + (f"; snippets of {n_frames} frames run it" if n_frames > 1 else "")
                                + "; snippets of 1 frame give per-frame depth (set with --snippet-lengths, or "
                                "snippet_lengths in Python)")
            raise UserError(
                f"dilation {dilation} needs at least {needed} frames, the video has {n_frames}; "
                "cap the dilations (--cap-dilation, or cap_dilation=True in Python) or use a smaller one"
            )
        groups.append(SnippetGroup(dilation, snippet_indices(n_frames, dilation, length)))
    return groups


def refine_dilations(
    steps: int, start_dilation: int, n_frames: int, snippet_len: int = 3, cap: bool = True
) -> list[int]:
    """Dilation of each refinement step, shrinking linearly from ``start_dilation`` to 1.

    Reproduces the official integer arithmetic exactly (gap = dilation - 1, truncated toward zero in float
    arithmetic), e.g. 10 steps from 6 give ``[6, 5, 5, 4, 4, 3, 3, 2, 1, 1]``; the start value is capped
    first like every other dilation.
    """
    steps = _check_positive_int(steps, "the number of refinement steps")
    start_dilation = _check_positive_int(start_dilation, "the refinement start dilation")
    if cap:
        start_dilation = cap_dilation(start_dilation, n_frames, snippet_len)
    gap_start, gap_end = start_dilation - 1, 0
    return [int((1 - i / steps) * (gap_start - gap_end) + gap_end) + 1 for i in range(steps)]


def check_refine_coverage(
    steps: int, start_dilation: int, n_frames: int, snippet_len: int = 3, cap: bool = True
) -> None:
    """Refuse a refinement schedule in which some step's snippets leave frames out.

    After every refinement step a frame's latent is the mean over the snippets that contain it; a frame in none
    (uncapped dilation ``d`` with fewer than ``L*d`` frames) would become 0/0. The official code stops there too.
    """
    length = min(snippet_len, n_frames)
    for dilation in sorted(set(refine_dilations(steps, start_dilation, n_frames, snippet_len, cap)), reverse=True):
        covered = np.zeros(n_frames, dtype=bool)
        covered[snippet_indices(n_frames, dilation, length).reshape(-1)] = True
        if not covered.all():
            raise UserError(
                f"refinement at dilation {dilation} would leave {int((~covered).sum())} of {n_frames} frames in no "
                f"snippet (snippets of {length} frames at that dilation need at least {length * dilation} frames); "
                "cap the dilations (--cap-dilation), start refinement at a smaller dilation (--refine-start-dilation) "
                "or turn it off (--refine-steps 0); in Python: cap_dilation, refine_start_dilation, refine_steps"
            )

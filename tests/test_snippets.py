"""Snippet indices, dilation capping, validation and the refinement schedule, against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from rolldepth.errors import UserError
from rolldepth.method.snippets import build_snippet_groups, cap_dilation, refine_dilations, snippet_indices


def test_indices_dilation_1_2_3_on_10_frames():
    np.testing.assert_array_equal(snippet_indices(10, 1), [[i, i + 1, i + 2] for i in range(8)])
    np.testing.assert_array_equal(
        snippet_indices(10, 2), [[0, 2, 4], [1, 3, 5], [2, 4, 6], [3, 5, 7], [4, 6, 8], [5, 7, 9]]
    )
    np.testing.assert_array_equal(snippet_indices(10, 3), [[0, 3, 6], [1, 4, 7], [2, 5, 8], [3, 6, 9]])
    assert snippet_indices(10, 3).dtype == np.int64


def test_indices_other_lengths_and_too_short():
    np.testing.assert_array_equal(snippet_indices(5, 2, snippet_len=2), [[0, 2], [1, 3], [2, 4]])
    np.testing.assert_array_equal(snippet_indices(3, 7, snippet_len=1), [[0], [1], [2]])
    assert snippet_indices(4, 2).shape == (0, 3)


def test_cap_dilation():
    assert cap_dilation(25, 20, 3) == 5  # floor(20/3) - 1
    assert cap_dilation(4, 20, 3) == 4  # already fits: untouched
    assert cap_dilation(10, 5, 3) == 1  # floor(5/3) - 1 = 0: never below 1
    assert cap_dilation(25, 100, 3) == 25


def test_groups_cap_and_keep_order():
    groups = build_snippet_groups(20, [1, 25, 10], cap=True)
    assert [g.dilation for g in groups] == [1, 5, 5]
    np.testing.assert_array_equal(groups[1].indices, snippet_indices(20, 5))
    assert [len(g) for g in groups] == [18, 10, 10]


def test_groups_one_length_per_dilation():
    groups = build_snippet_groups(12, [1, 2], snippet_lens=(2, 4), cap=False)
    assert [g.snippet_len for g in groups] == [2, 4]
    np.testing.assert_array_equal(groups[1].indices[0], [0, 2, 4, 6])
    per_frame = build_snippet_groups(4, [1], snippet_lens=(1,))
    np.testing.assert_array_equal(per_frame[0].indices, [[0], [1], [2], [3]])


@pytest.mark.parametrize(
    ("n_frames", "dilations", "lens", "cap", "message"),
    [
        (30, [1, 40], (3,), False, "dilation 40 needs at least 81 frames, the video has 30; cap the dilations "
                                     r"\(--cap-dilation, or cap_dilation=True in Python\)"),
        (30, [10, 25], (3,), True, "must include 1"),
        (30, [], (3,), True, "at least one dilation"),
        (30, [1, 0], (3,), True, "positive integer"),
        (30, [1, 2.5], (3,), True, "positive integer"),
        (30, [1, True], (3,), True, "positive integer"),
        (30, [1, 10], (0,), True, "positive integer"),
        (30, [1, 10], (3, 3, 3), True, "one snippet length or one per dilation"),
        (2, [1], (3,), True, "snippets of 3 frames need at least 3 frames, the video has 2; snippets of 2 frames "
                             "run it; snippets of 1 frame give per-frame depth"),
        (1, [1], (3,), True, "the video has 1; snippets of 1 frame give per-frame depth \\(set with "
                             "--snippet-lengths, or snippet_lengths in Python\\)"),
    ],
)
def test_groups_reject_bad_settings(n_frames, dilations, lens, cap, message):
    with pytest.raises(UserError, match=message):
        build_snippet_groups(n_frames, dilations, lens, cap=cap)


@pytest.mark.parametrize("n_frames", [3, 4, 7, 31, 200])
def test_every_frame_is_covered_by_the_dilation_1_group(n_frames):
    # coverage is what the "dilation 1 required" rule buys: check it on the capped paper setting
    groups = build_snippet_groups(n_frames, [1, 10, 25], cap=True)
    counts = np.bincount(np.concatenate([g.indices.ravel() for g in groups]), minlength=n_frames)
    assert counts.shape == (n_frames,) and counts.min() >= 1
    assert counts[0] == 3  # first frame: position 0 of the first snippet of each group
    if n_frames == 200:  # frame 100 meets every (group, position) once: 3 groups x 3 positions
        assert counts[100] == 9


def test_refine_schedule_official():
    assert refine_dilations(10, 6, n_frames=100) == [6, 5, 5, 4, 4, 3, 3, 2, 1, 1]


def test_refine_schedule_hand_cases():
    # gap 2: int(2.0), int(1.5), int(1.0), int(0.5) -> 2, 1, 1, 0 -> +1
    assert refine_dilations(4, 3, n_frames=100) == [3, 2, 2, 1]
    # (1 - 4/5) * 5 = 0.9999999999999998 in float arithmetic: truncates to 0, so the last step is 1, not 2
    assert refine_dilations(5, 6, n_frames=100) == [6, 5, 4, 3, 1]
    # 9 frames: start 6 is capped to floor(9/3) - 1 = 2 first; gap 1: int(1.0), int(0.67), int(0.33)
    assert refine_dilations(3, 6, n_frames=9) == [2, 1, 1]
    assert refine_dilations(3, 6, n_frames=9, cap=False) == [6, 4, 2]
    with pytest.raises(UserError):
        refine_dilations(0, 6, n_frames=9)


def test_refinement_coverage_is_refused_exactly_when_a_frame_is_in_no_snippet():
    from rolldepth.method.snippets import check_refine_coverage

    for n_frames in range(2, 40):
        for start in (1, 2, 6, 9):
            for length in (2, 3):
                for cap in (True, False):
                    missed = False
                    for dilation in refine_dilations(10, start, n_frames, length, cap=cap):
                        size = min(length, n_frames)
                        covered = {s + k * dilation for s in range(n_frames) for k in range(size)
                                   if s + (size - 1) * dilation < n_frames}
                        missed |= len(covered) < n_frames
                    if missed:
                        with pytest.raises(UserError, match="in no snippet"):
                            check_refine_coverage(10, start, n_frames, length, cap=cap)
                    else:
                        check_refine_coverage(10, start, n_frames, length, cap=cap)
    with pytest.raises(UserError, match="8 of 14 frames"):  # the 0/0 case of the issue: -d 1 --no-cap-dilation
        check_refine_coverage(10, 6, 14, 3, cap=False)

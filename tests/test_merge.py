"""Merging aligned snippets into frames, their spread and renormalising the video, against naive loops in float64."""

from __future__ import annotations

import numpy as np
import pytest

from rolldepth.method.merge import global_min, merge_frames, renormalise, snippet_spread, video_range
from rolldepth.method.snippets import build_snippet_groups


def naive_merge(preds, groups, n_frames, scales, shifts, offset, reduce=np.mean):
    """Loop over frames, then over every snippet slot, and average (``reduce``) the ones showing that frame."""
    out = []
    for frame in range(n_frames):
        values = [
            scales[g][k] * (preds[g][k, j].astype(np.float64) - offset) + shifts[g][k]
            for g, group in enumerate(groups)
            for k in range(len(group))
            for j in range(group.snippet_len)
            if group.indices[k, j] == frame
        ]
        out.append(reduce(values, axis=0))
    return np.stack(out)


@pytest.fixture()
def snippets():
    rng = np.random.default_rng(0)
    groups = build_snippet_groups(11, [1, 4], snippet_lens=(3, 2))
    preds = [rng.normal(0.3, 0.5, (len(g), g.snippet_len, 5, 7)).astype(np.float32) for g in groups]
    scales = [rng.uniform(0.5, 2, len(g)) for g in groups]
    shifts = [rng.uniform(-0.3, 0.3, len(g)) for g in groups]
    return groups, preds, scales, shifts


def test_merge_matches_naive_loop(snippets):
    groups, preds, scales, shifts = snippets
    offset = global_min(preds)
    assert offset == min(float(p.min()) for p in preds)
    merged = merge_frames(preds, groups, 11, scales, shifts, offset)
    assert merged.dtype == np.float32 and merged.shape == (11, 5, 7)
    np.testing.assert_allclose(merged, naive_merge(preds, groups, 11, scales, shifts, offset), rtol=1e-6, atol=1e-6)


def test_merge_reads_and_writes_memmaps(snippets, tmp_path):
    groups, preds, scales, shifts = snippets
    mapped = []
    for i, p in enumerate(preds):
        m = np.lib.format.open_memmap(tmp_path / f"g{i}.npy", mode="w+", dtype=np.float32, shape=p.shape)
        m[:] = p
        mapped.append(m)
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=(11, 5, 7))
    result = merge_frames(mapped, groups, 11, scales, shifts, -0.25, out=out)
    assert result is out
    out.flush()
    np.testing.assert_allclose(
        np.load(tmp_path / "out.npy"), naive_merge(preds, groups, 11, scales, shifts, -0.25), rtol=1e-6, atol=1e-6
    )
    with pytest.raises(ValueError, match="shape"):
        merge_frames(preds, groups, 11, scales, shifts, 0.0, out=np.empty((10, 5, 7), np.float32))


def test_spread_is_the_standard_deviation_of_the_aligned_values(snippets, tmp_path):
    groups, preds, scales, shifts = snippets
    offset = global_min(preds)
    spread = snippet_spread(preds, groups, 11, scales, shifts, offset)
    assert spread.dtype == np.float32 and spread.shape == (11, 5, 7)
    np.testing.assert_allclose(spread, naive_merge(preds, groups, 11, scales, shifts, offset, reduce=np.std),
                               rtol=1e-5, atol=1e-6)
    # the offset matters: the snippets' scales differ, so shifting every prediction changes their disagreement
    assert np.abs(snippet_spread(preds, groups, 11, scales, shifts, offset - 1) - spread).max() > 1e-3
    out = np.lib.format.open_memmap(tmp_path / "spread.npy", mode="w+", dtype=np.float32, shape=(11, 5, 7))
    assert snippet_spread(preds, groups, 11, scales, shifts, offset, out=out) is out
    with pytest.raises(ValueError, match="shape"):
        snippet_spread(preds, groups, 11, scales, shifts, offset, out=np.empty((11, 5, 6), np.float32))


def test_spread_of_two_snippets_is_half_their_difference_and_zero_for_one():
    # 4 frames, snippets of 3 at dilation 1: frames 0 and 3 lie in one snippet, frames 1 and 2 in both
    groups = build_snippet_groups(4, [1], snippet_lens=(3,))
    preds = [np.stack([np.full((3, 2, 2), 1.0), np.full((3, 2, 2), 2.0)]).astype(np.float32)]
    spread = snippet_spread(preds, groups, 4, [np.array([1.0, 3.0])], [np.array([0.0, -1.0])], 0.0)
    # aligned values: snippet 0 gives 1, snippet 1 gives 3 * 2 - 1 = 5; their standard deviation is 2
    np.testing.assert_array_equal(spread[[0, 3]], 0.0)
    np.testing.assert_allclose(spread[[1, 2]], 2.0)


def test_renormalise_maps_the_video_to_minus_one_one():
    rng = np.random.default_rng(1)
    depth = rng.uniform(3, 7, (4, 3, 5)).astype(np.float32)
    out = renormalise(depth)
    lo, hi = depth.astype(np.float64).min(), depth.astype(np.float64).max()
    np.testing.assert_allclose(out, (depth - lo) / (hi - lo) * 2 - 1, atol=1e-6)
    assert out.min() == pytest.approx(-1) and out.max() == pytest.approx(1)
    # one range for the whole video: a frame with a small range is not stretched on its own
    two = renormalise(np.array([[[0.0, 1.0]], [[0.0, 4.0]]], dtype=np.float32))
    np.testing.assert_array_equal(two, [[[-1.0, -0.5]], [[-1.0, 1.0]]])


def test_renormalise_in_place_and_constant_video():
    depth = np.array([[[1.0, 3.0]], [[2.0, 2.0]]], dtype=np.float32)
    assert renormalise(depth, out=depth) is depth
    np.testing.assert_array_equal(depth, [[[-1.0, 1.0]], [[0.0, 0.0]]])
    flat = renormalise(np.full((3, 2, 2), 5.0, dtype=np.float32))
    assert np.isfinite(flat).all() and (flat == 0).all()


def test_renormalise_with_known_bounds_is_the_same_map():
    depth = np.random.default_rng(2).uniform(-3, 5, (3, 4, 4)).astype(np.float32)
    bounds = video_range(depth)
    assert bounds == (float(depth.min()), float(depth.max()))
    np.testing.assert_array_equal(renormalise(depth, bounds=bounds), renormalise(depth))

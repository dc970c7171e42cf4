"""benchmarks/target_ceiling.py: perfect predictions of the training target, merged as the pipeline merges them."""

import importlib.util
from pathlib import Path

import numpy as np

from rolldepth.evaluate.metrics import evaluate_video

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "target_ceiling.py"
_spec = importlib.util.spec_from_file_location("target_ceiling", _SCRIPT)
target_ceiling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(target_ceiling)


def _scene(size=(24, 32), seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(2.0, 10.0, size).astype(np.float32)


def test_per_frame_ceiling_is_exact_when_the_depth_range_is_fixed():
    depth = np.repeat(_scene()[None], 12, axis=0)
    for variant in ("per-frame", "{1}"):
        video = target_ceiling.target_video(depth, variant)
        metrics = evaluate_video(video, depth, None, max_depth=100.0)
        assert metrics["abs_rel"] < 0.01 and metrics["delta1"] > 99.9


def test_only_snippets_keep_a_depth_range_that_changes_over_the_shot():
    """Frame t sees the scene from (1 + t/4) times closer: each frame's own normalisation hides it, a snippet's
    joint normalisation keeps it, and co-alignment carries it along the video."""
    scene = _scene()
    depth = np.stack([scene / (1 + t / 4) for t in range(12)])
    per_frame = evaluate_video(target_ceiling.target_video(depth, "per-frame"), depth, None, max_depth=100.0)
    snippets = evaluate_video(target_ceiling.target_video(depth, "{1}"), depth, None, max_depth=100.0)
    assert per_frame["abs_rel"] > 0.2
    assert snippets["abs_rel"] < 0.03 and snippets["delta1"] > 99

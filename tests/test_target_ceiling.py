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


def test_flyby_factors_span_the_renderers_range_around_the_guess():
    from rolldepth.data.scenes import FLYBY_CLOSE
    factors = target_ceiling.flyby_factors(0.21)
    low, high = FLYBY_CLOSE
    np.testing.assert_allclose(factors * 0.21, [low + (k + 0.5) / 5 * (high - low) for k in range(5)])
    assert factors[2] == 1.0  # 0.21 is the middle of (0.12, 0.3)
    depth = np.full((2, 4, 4), 2.0, np.float32)
    mask = np.zeros(depth.shape, bool)
    mask[1, :2] = True
    moved = target_ceiling.misjudged(depth, mask, 1.25)
    np.testing.assert_allclose(1 / moved[mask], 1.25 / 2.0)  # disparity x 1.25 on the object
    np.testing.assert_array_equal(moved[~mask], depth[~mask])


def test_flyby_guess_averages_the_misplaced_objects_scores(tmp_path):
    """On a rendered fly-by shot the script's figure equals the mean of 5 scorings done here, and misplacing the
    object costs more than the plain ceiling."""
    import json
    import subprocess
    import sys

    from rolldepth.data.benchmarks import load_dataset
    from rolldepth.data.scene import SceneConfig
    from rolldepth.data.synth import write_dataset
    from rolldepth.evaluate.runner import score

    root = write_dataset(tmp_path / "d", 1, n_frames=8, size=(48, 36), seed=5, progress=False,
                         config=SceneConfig(flyby=True))
    meta = json.loads((root / "seq_00000" / "meta.json").read_text())
    assert meta["flyby"]
    sample = next(iter(load_dataset("synth", root)))
    flyby = sample.objects == meta["n_moving"] + 1
    assert flyby.any()
    expected = np.mean([score(target_ceiling.target_video(target_ceiling.misjudged(sample.depth, flyby, f),
                                                          "per-frame"), sample)["disparity"]["abs_rel"]
                        for f in target_ceiling.flyby_factors(0.15)])
    figures = {}
    for name, extra in (("plain", []), ("guess", ["--flyby-guess", "0.15"])):
        out = tmp_path / f"{name}.json"
        subprocess.run([sys.executable, str(_SCRIPT), "--data", str(root), "--variants", "per-frame",
                        "--json", str(out), *extra], check=True, capture_output=True)
        figures[name] = json.loads(out.read_text())["summary"]["per-frame"]["abs_rel"]
    assert abs(figures["guess"] - expected) < 1e-9
    assert figures["guess"] > figures["plain"] + 0.01

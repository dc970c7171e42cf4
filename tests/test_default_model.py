"""The embedded default model: a valid small checkpoint that sees real depth on a scene it was not trained on."""

import numpy as np
import pytest

from rolldepth.model.layout import validate_checkpoint
from rolldepth.weights import DEFAULT_MODEL
from rolldepth.evaluate.metrics import evaluate_video
from rolldepth.model.pipeline import RollingDepthPipeline
from rolldepth.data.synth import render_sequence, sequence_seed

# Training used synth dataset seed 0 (MODEL_CARD.md); dataset seed 99 shares no scene with it.
HELD_OUT_SEED = sequence_seed(99, 0)


@pytest.fixture(scope="module")
def pipe():
    return RollingDepthPipeline.from_pretrained()  # no name: the embedded model, as `rolldepth run` without --model


def test_shipped_checkpoint_is_valid_and_small():
    validate_checkpoint(DEFAULT_MODEL)
    size = sum(f.stat().st_size for f in DEFAULT_MODEL.rglob("*") if f.is_file())
    assert size < 50 * 2**20
    assert (DEFAULT_MODEL / "MODEL_CARD.md").is_file()


def test_default_model_beats_a_flat_guess_on_an_unseen_scene(pipe):
    scene = render_sequence(HELD_OUT_SEED, 12, (192, 144))
    out = pipe(scene["frames"], dilations=(1, 3), generator=0, progress=False)
    assert pipe.default_res == 192 and out.depth.shape == (12, 144, 192)
    gt = scene["depth"]
    model = evaluate_video(out.depth, gt, None, max_depth=float(gt.max()) + 1)
    # A flat prediction plus a tiny ramp (alignment needs some variance): what "no depth at all" scores.
    flat = np.broadcast_to(np.linspace(0, 1e-3, 192, dtype=np.float32), gt.shape).copy()
    baseline = evaluate_video(flat, gt, None, max_depth=float(gt.max()) + 1)
    assert model["abs_rel"] < 0.6 * baseline["abs_rel"]
    assert model["delta1"] > baseline["delta1"] + 15
    inverse = 1 / gt
    assert np.corrcoef(out.depth.ravel(), inverse.ravel())[0, 1] > 0.7

"""benchmarks/noise_seeds.py: the ensemble of affine-invariant predictions, checked against closed forms."""

import importlib.util
from pathlib import Path

import numpy as np

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "noise_seeds.py"
_spec = importlib.util.spec_from_file_location("noise_seeds", _SCRIPT)
noise_seeds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(noise_seeds)


def test_affine_copies_average_to_the_first_prediction():
    """Seeds that differ only by a scale and shift per frame are the same prediction: the ensemble is the first."""
    rng = np.random.default_rng(0)
    first = rng.uniform(0, 1, (4, 6, 8)).astype(np.float32)
    copies = [first * rng.uniform(0.5, 2, (4, 1, 1)) + rng.uniform(-1, 1, (4, 1, 1)) for _ in range(3)]
    out = noise_seeds.ensemble([first] + [c.astype(np.float32) for c in copies])
    np.testing.assert_allclose(out, first, atol=1e-5)


def test_independent_errors_shrink_with_the_mean():
    """Truth plus independent noise per seed: aligned and averaged, the error falls well below a single seed's
    (the alignment fits two numbers per frame, so it does not carry the first seed's noise into the others)."""
    rng = np.random.default_rng(1)
    truth = rng.uniform(0, 1, (2, 20, 20))
    seeds = [truth + rng.normal(0, 0.1, truth.shape) for _ in range(8)]
    out = noise_seeds.ensemble(seeds)
    single = np.abs(seeds[1] - truth).mean()
    assert np.abs(out - truth).mean() < 0.6 * single

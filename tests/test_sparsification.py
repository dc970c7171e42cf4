"""Scoring an uncertainty by how it ranks the error (rolldepth.evaluate.uncertainty): sparsification curves against
a plain loop and in closed form, AUSE and the share of chance's gap for rankings whose quality is known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rolldepth.evaluate.uncertainty import FRACTIONS, edge_strength, score_uncertainty, sparsification


def test_sparsification_equals_a_loop_that_removes_the_highest_ranked_first():
    rng = np.random.default_rng(0)
    error = rng.random(537)
    ranking = rng.integers(0, 40, 537).astype(float)  # many ties: broken by position, first first
    order = sorted(range(537), key=lambda i: -ranking[i])  # Python's sort is stable
    expected = [np.mean([error[i] for i in order[round(f * 537):]]) for f in FRACTIONS]
    np.testing.assert_allclose(sparsification(error, ranking), expected, rtol=1e-12)


def test_sparsification_in_closed_form():
    error = np.arange(1.0, 11.0)  # ten pixels, errors 1..10: removing k of them leaves a mean of a run of integers
    k = np.arange(10)
    np.testing.assert_allclose(sparsification(error, error), (11 - k) / 2)  # the largest go first: the oracle
    np.testing.assert_allclose(sparsification(error, -error), (k + 11) / 2)  # the smallest go first: the worst


def test_edge_strength_is_the_gradient_magnitude():
    yy, xx = np.mgrid[0:5, 0:7].astype(float)
    np.testing.assert_allclose(edge_strength((3 * xx + 4 * yy)[None]), np.full((1, 5, 7), 5.0))


def sample_with_noise(seed=0):
    """A video's true depth, and a prediction: its disparity times 2 plus 3 (aligned away), with noise whose size
    varies from pixel to pixel (``sigma``)."""
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1, 10, (4, 24, 32))
    sigma = rng.uniform(0, 0.1, depth.shape) ** 2 * 20  # a few pixels far noisier than most
    pred = 2 / depth + 3 + rng.normal(0, 1, depth.shape) * sigma
    sample = SimpleNamespace(depth=depth, valid=np.ones(depth.shape, bool), min_depth=0.5, max_depth=20.0)
    return sample, pred, sigma


def test_a_ranking_that_knows_the_noise_closes_most_of_chances_gap_and_a_random_one_none():
    sample, pred, sigma = sample_with_noise()
    knows = score_uncertainty(pred, sigma, sample)["disparity"]
    guess = score_uncertainty(pred, np.random.default_rng(1).random(pred.shape), sample)["disparity"]
    assert knows["gap_closed"] > 0.7 and knows["spearman"] > 0.5
    assert abs(guess["gap_closed"]) < 0.05 and abs(guess["spearman"]) < 0.05
    assert knows["spread"]["ause"] < guess["spread"]["ause"] == pytest.approx(guess["chance"]["ause"], rel=0.1)
    # the oracle's own curve is the floor: no gap; chance's gap is that of the flat mean
    assert knows["oracle"]["ause"] == 0
    oracle = np.array(knows["oracle"]["curve"])
    assert knows["chance"]["ause"] == pytest.approx(np.mean(oracle[0] - oracle))
    # a spread scaled by any factor ranks the same; the edges' ranking is the depth's, whatever the spread
    again = score_uncertainty(pred, 7 * sigma, sample)["disparity"]
    assert again["spread"] == knows["spread"] and again["edges"] == knows["edges"]

"""HDR to SDR: the BT.2100 curves against the standard's published anchors and their own inverses, the gamut matrix
against BT.2087's table, and whole frames against a float64 per-pixel reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from conftest import nits_to_pq
from rolldepth.video import hdr

M1, M2 = 2610 / 16384, 2523 / 4096 * 128
C1, C2, C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32


def test_pq_curve_meets_its_inverse_and_the_published_code_values():
    nits = np.array([0.005, 0.1, 1, 18, 100, 203, 1000, 4000, 10000])
    np.testing.assert_allclose(hdr.pq_to_nits(nits_to_pq(nits)), nits, rtol=1e-9)
    # BT.2408: 203 nits (HDR diffuse white) at 58 %, 1000 nits at 75 %; 100 nits at 51 %, 10000 at 100 %
    np.testing.assert_allclose(nits_to_pq([100, 203, 1000, 10000]), [0.5081, 0.5806, 0.7518, 1.0], atol=5e-4)


def test_hlg_curve_meets_the_published_anchors():
    codes = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    scene = hdr.hlg_to_scene(codes)
    np.testing.assert_allclose(scene[:3], [0, 0.25**2 / 3, 1 / 12], rtol=1e-12)  # the square-root segment
    np.testing.assert_allclose(scene[4], 1.0, rtol=1e-6)  # the log segment meets peak at code 1
    a = 0.17883277  # the log segment inverts BT.2100's OETF: E' = a ln(12 E - b) + c
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    np.testing.assert_allclose(a * np.log(12 * scene[3] - b) + c, 0.75, rtol=1e-12)
    grey = hdr.hlg_scene_to_nits(np.repeat(scene[:, None], 3, axis=1))
    assert grey[3, 0] == pytest.approx(203, abs=0.5)  # BT.2408: HLG 75 % shows HDR diffuse white
    assert grey[4, 0] == pytest.approx(1000, rel=1e-6)  # peak white on the nominal 1000-nit display


def test_gamut_matrix_is_the_one_bt2087_tabulates():
    published = [[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]]
    np.testing.assert_allclose(hdr.BT2020_TO_BT709, published, atol=1e-4)
    np.testing.assert_allclose(hdr.BT2020_TO_BT709.sum(axis=1), 1, atol=1e-6)  # white stays white
    np.testing.assert_allclose(hdr.rgb_to_xyz(hdr.BT2020_PRIMARIES)[1], hdr.BT2020_LUMA, atol=1e-4)


def test_roll_off_keeps_the_shadows_and_bends_the_highlights_smoothly_below_white():
    x = np.linspace(0, 10000 / 203, 500001)  # up to PQ's peak
    y = hdr.roll_off(x)
    below = x <= hdr.KNEE
    np.testing.assert_array_equal(y[below], x[below])
    assert (np.diff(y) > 0).all() and y[-1] < 1  # every highlight keeps its order, none reaches white
    assert np.round(255 * hdr.roll_off([1.0, 1000 / 203]) ** (1 / 2.4)).tolist() == [241, 253]
    h = 1e-7  # the slope is 1 on both sides of the knee: no kink for a gradient to band at
    assert (hdr.roll_off(hdr.KNEE + h) - hdr.KNEE) / h == pytest.approx(1, abs=1e-5)


def reference_sdr(codes: np.ndarray, transfer: int) -> np.ndarray:
    """The SDR picture computed per pixel in float64, with the test's own PQ curve and HLG system gain."""
    e = codes.astype(np.float64) / 65535
    if transfer == hdr.PQ:
        p = e ** (1 / M2)
        nits = 10000 * (np.maximum(p - C1, 0) / (C2 - C3 * p)) ** (1 / M1)
    else:
        scene = hdr.hlg_to_scene(e)
        luminance = scene @ [0.2627, 0.6780, 0.0593]
        nits = scene * (1000 * luminance ** 0.2)[..., None]
    relative = np.maximum(nits @ hdr.BT2020_TO_BT709.T.astype(np.float64) / 203, 0)
    return np.round(255 * hdr.roll_off(relative) ** (1 / 2.4))


@pytest.mark.parametrize("transfer", [hdr.PQ, hdr.HLG])
def test_frames_match_a_float64_reference_within_a_level(transfer):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 65536, (64, 96, 3), dtype=np.uint16)
    codes[0, :32] = np.linspace(0, 65535, 32)[:, None].astype(np.uint16)  # a grey ramp over the whole range
    sdr = hdr.to_sdr(codes, transfer)
    assert sdr.dtype == np.uint8 and sdr.shape == codes.shape
    difference = np.abs(sdr.astype(int) - reference_sdr(codes, transfer))
    assert difference.max() <= 1 and difference.mean() < 0.01


def test_an_sdr_picture_coded_as_an_hdr_camera_would_comes_back():
    """benchmarks/hdr_frames.py codes SDR frames as an HDR camera would (the inverse curves, HLG's inverse system
    gamma per pixel, BT.709 to BT.2020): below the knee, where the roll-off is the identity, converting back gives
    the SDR picture again, colours included."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "hdr_frames.py"
    spec = importlib.util.spec_from_file_location("hdr_frames", script)
    hdr_frames = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hdr_frames)
    knee_level = int(255 * hdr.KNEE ** (1 / 2.4))  # 226
    sdr = np.random.default_rng(1).integers(0, knee_level + 1, (32, 48, 3), dtype=np.uint8)
    for transfer in (hdr.PQ, hdr.HLG):
        difference = np.abs(hdr.to_sdr(hdr_frames.hdr_codes(sdr, transfer), transfer).astype(int) - sdr)
        assert difference[sdr >= 8].max() <= 1, hdr.NAMES[transfer]
        assert difference.max() <= 2  # the 2.4 gamma's steep toe magnifies 16-bit rounding in the darkest levels

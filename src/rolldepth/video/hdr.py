"""HDR video (BT.2100 PQ and HLG) turned into the SDR picture a depth model was trained on.

Phones film HDR by default (iPhones in HLG, many Android phones and HDR10 downloads in PQ). Read as if it were SDR,
an HDR frame is dim and flat: PQ puts diffuse white at 58 % of the code range (the model would see it as grey) and
both use the wide BT.2020 primaries, so colours look washed out. Without FFmpeg's zscale (PyAV's FFmpeg has none),
each frame is converted here from 16-bit R'G'B': to light, BT.2020 to BT.709 primaries, diffuse white (203 nits,
ITU-R BT.2408) to near SDR white with a soft roll-off of the highlights above it, and BT.1886's 2.4 gamma.
"""

from __future__ import annotations

import functools

import numpy as np

PQ, HLG = 16, 18  # FFmpeg's AVColorTransferCharacteristic: SMPTE ST 2084 and ARIB STD-B67
NAMES = {PQ: "PQ", HLG: "HLG"}  # the transfers converted; SDR and untagged frames are read as they are
REFERENCE_WHITE_NITS = 203.0  # BT.2408: HDR diffuse white, shown near SDR white (8-bit level 241)
HLG_PEAK_NITS = 1000.0  # BT.2100's nominal display for the HLG system gamma (1.2)
KNEE = 0.75  # of diffuse white: darker light is kept as it is, brighter light rolls off towards SDR white
SDR_GAMMA = 2.4  # BT.1886's display: what SDR code values mean as light

BT2020_PRIMARIES = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))  # red, green, blue (x, y)
BT709_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
D65 = (0.3127, 0.3290)
BT2020_LUMA = np.array([0.2627, 0.6780, 0.0593], dtype=np.float32)  # BT.2100's luminance Y of linear RGB


def rgb_to_xyz(primaries: tuple, white: tuple = D65) -> np.ndarray:
    """The matrix from linear RGB on these primaries to CIE XYZ, scaled so that RGB = 1 is the white point."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    wx, wy = white
    return xyz * np.linalg.solve(xyz, [wx / wy, 1.0, (1 - wx - wy) / wy])


# Linear BT.2020 RGB to linear BT.709 RGB: derived, not the 4-digit table of ITU-R BT.2087, whose rounding shifts
# the shadows of a pixel with a 10000-nit channel by several levels
BT2020_TO_BT709 = np.linalg.solve(rgb_to_xyz(BT709_PRIMARIES), rgb_to_xyz(BT2020_PRIMARIES)).astype(np.float32)


def pq_to_nits(code: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 (BT.2100 PQ) EOTF: code values in [0, 1] to display light in nits (cd/m^2)."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    p = np.power(np.clip(code, 0, 1), 1 / m2)
    return 10000 * np.power(np.maximum(p - c1, 0) / (c2 - c3 * p), 1 / m1)


def hlg_to_scene(code: np.ndarray) -> np.ndarray:
    """BT.2100 HLG inverse OETF: code values in [0, 1] to scene light in [0, 1]."""
    a = 0.17883277
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    code = np.clip(code, 0, 1)
    return np.where(code <= 0.5, code**2 / 3, (np.exp((code - c) / a) + b) / 12)


def hlg_scene_to_nits(scene: np.ndarray) -> np.ndarray:
    """BT.2100 HLG OOTF on a 1000-nit display: scene light ``[..., 3]`` (BT.2020) to display light in nits; the
    gain depends on each pixel's luminance (system gamma 1.2), so HLG's 75 % code value shows at 203 nits."""
    luminance = scene @ BT2020_LUMA
    return scene * (HLG_PEAK_NITS * np.power(luminance, 0.2, where=luminance > 0,
                                             out=np.zeros_like(luminance)))[..., None]


def roll_off(x: np.ndarray) -> np.ndarray:
    """Light relative to diffuse white to SDR light in [0, 1): the identity up to ``KNEE``, then a hyperbola
    towards 1 with the same slope at the knee, so highlights keep their order instead of clipping (diffuse white
    gives 0.875, 8-bit level 241; 1000 nits level 253)."""
    x = np.asarray(x, dtype=np.float64)
    t = (np.maximum(x, KNEE) - KNEE) / (1 - KNEE)
    return np.where(x <= KNEE, np.maximum(x, 0), KNEE + (1 - KNEE) * t / (1 + t))


@functools.cache
def _light_of_code(transfer: int) -> np.ndarray:
    """Per-channel light for every 16-bit code value: nits for PQ, scene light for HLG (float32, 65536 entries)."""
    code = np.arange(65536) / 65535
    return (pq_to_nits(code) if transfer == PQ else hlg_to_scene(code)).astype(np.float32)


_STEPS = 4096  # per unit of the square root of relative light: under 0.1 of an 8-bit level apart in the shadows


@functools.cache
def _sdr_of_root() -> np.ndarray:
    """The 8-bit SDR level, ``255 * roll_off(x) ** (1 / 2.4)`` rounded, on a grid of ``sqrt(x)`` up to PQ's
    10000 nits: a lookup instead of a power of every pixel, fine where the 2.4 gamma is steep (the shadows)."""
    root = np.arange(int(np.sqrt(10000 / REFERENCE_WHITE_NITS) * _STEPS) + 2) / _STEPS
    return np.round(255 * roll_off(root**2) ** (1 / SDR_GAMMA)).astype(np.uint8)


def to_sdr(rgb16: np.ndarray, transfer: int) -> np.ndarray:
    """An HDR frame's R'G'B' code values (``uint16 [H, W, 3]``, BT.2020, as FFmpeg's ``rgb48`` gives them) as the
    8-bit BT.709 SDR picture (``uint8 [H, W, 3]``)."""
    light = _light_of_code(transfer)[rgb16]
    if transfer == HLG:
        light = hlg_scene_to_nits(light)
    relative = light @ (BT2020_TO_BT709.T / np.float32(REFERENCE_WHITE_NITS))
    index = np.sqrt(np.maximum(relative, 0, out=relative), out=relative)
    index *= _STEPS
    index += 0.5
    levels = _sdr_of_root()
    return levels[np.minimum(index, len(levels) - 1, out=index).astype(np.intp)]

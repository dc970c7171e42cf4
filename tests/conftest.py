"""Shared fixtures: a tiny random-init checkpoint of the real layout and small videos encoded with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from rolldepth.model.checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", seed=0)


def pattern_frames(n_frames: int, height: int = 36, width: int = 52, seed: int = 0) -> np.ndarray:
    """A textured square moving over a gradient: enough structure for every stage to do real work."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for i in range(n_frames):
        image = np.stack([xx * 4 + i, yy * 6, 128 + 0 * xx], axis=-1).astype(np.float64)
        x0 = (3 * i) % (width - 10)
        image[8:20, x0 : x0 + 10] = rng.uniform(0, 255, size=3)
        frames[i] = image.clip(0, 255).astype(np.uint8)
    return frames


def encode_video(path: Path, frames: np.ndarray, fps=Fraction(25), pixel_aspect: Fraction | None = None) -> Path:
    """Write frames as a near-lossless H.264 mp4 with PyAV directly (independent of rolldepth's writer), with
    ``pixel_aspect`` as its sample aspect ratio if given (non-square pixels)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"qp": "0"}
        if pixel_aspect:
            stream.codec_context.sample_aspect_ratio = pixel_aspect
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def nits_to_pq(nits) -> np.ndarray:
    """ST 2084's inverse EOTF, written out here in float64 (the package has only the EOTF)."""
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = np.power(np.asarray(nits, dtype=np.float64) / 10000, m1)
    return np.power((c1 + c2 * y) / (1 + c3 * y), m2)


def encode_hdr(path: Path, codes: np.ndarray, transfer: int, n_frames: int = 2) -> Path:
    """R'G'B' code values in [0, 1] (``[H, W, 3]``) as a 10-bit BT.2020 video tagged PQ (16) or HLG (18), as phones
    film it; Y'CbCr computed here (BT.2020 non-constant luminance, limited range) and coded losslessly."""
    r, g, b = np.moveaxis(codes, -1, 0)
    y = 0.2627 * r + 0.6780 * g + 0.0593 * b
    planes = [64 + 876 * y, 512 + 896 * (b - y) / 1.8814, 512 + 896 * (r - y) / 1.4746]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25, options={"qp": "0"})
        stream.height, stream.width = codes.shape[:2]
        stream.pix_fmt = "yuv444p10le"
        context = stream.codec_context
        context.color_trc, context.color_primaries, context.colorspace, context.color_range = transfer, 9, 9, 1
        for i in range(n_frames):
            frame = av.VideoFrame(codes.shape[1], codes.shape[0], "yuv444p10le")
            for plane, values in zip(frame.planes, planes):
                rows = np.zeros((plane.height, plane.line_size // 2), np.uint16)
                rows[:, : plane.width] = np.round(values)
                plane.update(rows.tobytes())
            frame.color_trc, frame.color_primaries, frame.colorspace, frame.color_range = transfer, 9, 9, 1
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def damage(path: Path, frames: list[int], out: Path) -> Path:
    """A copy of ``path`` with the packets of ``frames`` (decode order) zeroed, as a bad sector or a broken
    download leaves them: the decoder rejects them."""
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    for k in frames:
        position, size = packets[k]
        data[position : position + size] = bytes(size)
    out.write_bytes(bytes(data))
    return out

"""Milliseconds per frame to decode an HDR (PQ, 10-bit HEVC) video as rolldepth reads it: converted to SDR
(``video/hdr.py``), against the stored code values read as SDR (``--no-autorotate``).

    python benchmarks/hdr_frames.py --frames 30 --size 1920x1080
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from rolldepth.video import hdr
from rolldepth.video.reading import iter_frames


def encode_pq_clip(path: Path, n_frames: int, width: int, height: int) -> Path:
    """A moving colour gradient, its code values tagged PQ on BT.2020 primaries, as a phone's HDR10 HEVC."""
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        options = {"preset": "ultrafast", "x265-params": "log-level=error"}
        stream = container.add_stream("libx265", rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p10le"
        stream.codec_context.color_trc, stream.codec_context.color_primaries = hdr.PQ, 9
        stream.codec_context.colorspace = 9
        for i in range(n_frames):
            rgb = np.stack([(xx + 8 * i) % 256, yy * 255 // height, np.full_like(xx, 4 * i % 256)], axis=-1)
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24").reformat(format="yuv420p10le")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = encode_pq_clip(Path(tmp) / "pq.mp4", args.frames, width, height)
        for name, autorotate in (("converted to SDR", True), ("code values as SDR", False)):
            best = float("inf")
            for _ in range(2):
                start = time.perf_counter()
                for _ in iter_frames(path, autorotate=autorotate):
                    pass
                best = min(best, time.perf_counter() - start)
            print(f"{args.size} PQ, {name}: {1000 * best / args.frames:.1f} ms/frame (best of 2)")


if __name__ == "__main__":
    main()

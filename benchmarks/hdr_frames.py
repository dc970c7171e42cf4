"""HDR input: what converting PQ and HLG frames to SDR costs in decoding time, and what it buys in depth.

Time (milliseconds per frame to decode a PQ 10-bit HEVC video converted to SDR by ``video/hdr.py``, against its code
values read as SDR, what ``--no-autorotate`` does)::

    python benchmarks/hdr_frames.py --frames 30 --size 1920x1080

Depth: ``--data`` takes ``rolldepth synth`` renders and writes, for ``rolldepth eval --kind video``, each shot as it
would come from an HDR camera (its frames as the light an SDR display shows, white at HDR diffuse white, 203 nits)
in PQ and in HLG, the same code values as an untagged 8-bit video (what a reader that ignores HDR sees), and the SDR
frames as they are (10-bit and 8-bit 4:4:4, coded losslessly), each folder with the true depth::

    rolldepth synth /work/data/test --sequences 12 --frames 64 --size 192x144 --seed 1
    python benchmarks/hdr_frames.py --data /work/data/test -o /work/data/hdr
    rolldepth eval --data /work/data/hdr/pq --kind video -o EVAL_PQ --variants "per-frame,{1,10,25}" --no-tae
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from rolldepth.video import hdr
from rolldepth.video.reading import iter_frames

BT2020 = 9  # FFmpeg's code for BT.2020 primaries and the BT.2020 non-constant-luminance matrix
HLG_A = 0.17883277


def sdr_to_light(rgb8: np.ndarray) -> np.ndarray:
    """SDR video code values to the light a BT.1886 display shows, 1 = white."""
    return (rgb8.astype(np.float64) / 255) ** hdr.SDR_GAMMA


def hdr_codes(rgb8: np.ndarray, transfer: int) -> np.ndarray:
    """SDR frames as an HDR camera would code them: uint16 R'G'B' on BT.2020 primaries, white at 203 nits."""
    light = sdr_to_light(rgb8) @ np.linalg.inv(hdr.BT2020_TO_BT709.astype(np.float64)).T
    nits = np.clip(light, 0, None) * hdr.REFERENCE_WHITE_NITS
    if transfer == hdr.PQ:  # ST 2084's inverse EOTF
        m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
        y = (nits / 10000) ** m1
        code = ((c1 + c2 * y) / (1 + c3 * y)) ** m2
    else:  # BT.2100's inverse OOTF on a 1000-nit display, then the HLG OETF
        luminance = nits @ hdr.BT2020_LUMA.astype(np.float64) / hdr.HLG_PEAK_NITS
        scene = nits / hdr.HLG_PEAK_NITS * np.power(luminance, -0.2 / 1.2, where=luminance > 0,
                                                    out=np.zeros_like(luminance))[..., None]
        b, c = 1 - 4 * HLG_A, 0.5 - HLG_A * np.log(4 * HLG_A)
        code = np.where(scene <= 1 / 12, np.sqrt(3 * scene), HLG_A * np.log(np.maximum(12 * scene - b, 1e-12)) + c)
    return np.round(np.clip(code, 0, 1) * 65535).astype(np.uint16)


def encode(path: Path, frames: np.ndarray, transfer: int | None = None, fps: float = 30, codec: str = "libx264",
           pix_fmt: str = "yuv444p10le") -> Path:
    """``frames``: uint16 code values tagged ``transfer`` on BT.2020, or uint8 frames untagged (SDR); x264 at qp 0
    is lossless, so only the transfer differs between the folders of ``--data``."""
    options = {"qp": "0"} if codec == "libx264" else {"preset": "ultrafast", "x265-params": "log-level=error"}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=round(fps), options=options)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt if transfer else "yuv444p"
        if transfer:
            stream.codec_context.color_trc, stream.codec_context.color_primaries = transfer, BT2020
            stream.codec_context.colorspace, stream.codec_context.color_range = BT2020, 1
        for i, image in enumerate(frames):
            if transfer:
                frame = av.VideoFrame.from_ndarray(image, format="rgb48le").reformat(
                    format=stream.pix_fmt, dst_colorspace="bt2020", dst_color_range=1)
                frame.color_trc, frame.color_primaries = transfer, BT2020
            else:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_folders(data: Path, out: Path) -> None:
    """One ``rolldepth eval --kind video`` folder per way the renders of ``data`` are coded (module docstring)."""
    shots = sorted(p for p in data.iterdir() if (p / "frames.npy").exists())
    for name in ("sdr", "pq", "pq_as_sdr", "hlg", "hlg_as_sdr"):
        (out / name).mkdir(parents=True, exist_ok=True)
    for shot in shots:
        frames = np.load(shot / "frames.npy")
        fps = json.loads((shot / "meta.json").read_text()).get("fps", 30)
        videos = {"sdr": (frames, None)}
        for name, transfer in (("pq", hdr.PQ), ("hlg", hdr.HLG)):
            codes = hdr_codes(frames, transfer)
            videos[name] = (codes, transfer)
            videos[f"{name}_as_sdr"] = ((codes.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8), None
        for name, (content, transfer) in videos.items():
            folder = out / name
            encode(folder / f"{shot.name}.mp4", content, transfer, fps)
            np.save(folder / f"{shot.name}_depth.npy", np.load(shot / "depth.npy"))
            np.save(folder / f"{shot.name}_poses.npy", np.load(shot / "poses.npy"))
            np.save(folder / f"{shot.name}_K.npy", np.load(shot / "intrinsics.npy"))
        print(f"{shot.name}: {', '.join(videos)}")


def time_decoding(n_frames: int, width: int, height: int) -> None:
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.stack([np.stack([(xx + 8 * i) % 256, yy * 255 // height, np.full_like(xx, 4 * i % 256)], axis=-1)
                       for i in range(n_frames)]).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = encode(Path(tmp) / "pq.mp4", hdr_codes(frames, hdr.PQ), hdr.PQ, codec="libx265",
                      pix_fmt="yuv420p10le")
        for name, autorotate in (("converted to SDR", True), ("code values as SDR", False)):
            best = float("inf")
            for _ in range(2):
                start = time.perf_counter()
                for _ in iter_frames(path, autorotate=autorotate):
                    pass
                best = min(best, time.perf_counter() - start)
            print(f"{width}x{height} PQ, {name}: {1000 * best / n_frames:.1f} ms/frame (best of 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30, help="frames of the timed video")
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT of the timed video")
    parser.add_argument("--data", type=Path, help="rolldepth synth renders to code as HDR (no timing then)")
    parser.add_argument("-o", "--out", type=Path, help="where --data's folders go")
    args = parser.parse_args()
    if args.data:
        if not args.out:
            parser.error("--data needs -o")
        write_folders(args.data, args.out)
    else:
        time_decoding(args.frames, *map(int, args.size.split("x")))


if __name__ == "__main__":
    main()

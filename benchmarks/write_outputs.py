"""Seconds to write one video's outputs (`rolldepth run`'s defaults, plus EXR): one thread against several.

A GPU estimates depth faster than one CPU thread compresses it: on the H200 the fast preset spent 18 % of its time
writing the .npy and the 16-bit PNGs (README, "On a GPU"). On a smooth depth video like a prediction (a tilted
plane, a few blobs, moving) and an RGB video, this times
- the image sequences with ``threads`` frames compressed at once (``write_each``) against one;
- the sizes of the 16-bit PNGs, the EXRs and the FFV1 video of ``--save-depth16`` (the PNGs' codes, one file);
- the uncertainty's preview video and EXRs (``rolldepth run --save-uncertainty --save-exr``) written after the
  others, as before, against beside them in ``save_outputs``;
- every output written alone, one after the other, against ``save_outputs``, which writes them all at once;
- a camera's PCM sound (MP4 takes none) encoded to AAC for each of the three videos, against once for all
  (``audio.mp4_sound``), as ``rolldepth run`` adds it;
- rendering the stereo views of ``--save-stereo`` (each eye's pixels moved along their rows), which is no file
  writing but runs beside it, per frame and at 1920x1080.

    python benchmarks/write_outputs.py --frames 100 --size 768x432
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from rolldepth.video import writers


def depth_video(n_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """[N, H, W] float32: a tilted plane and drifting Gaussian blobs, in [-1, 1] like ``_pred.npy``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy / height, xx / width
    centres, sizes, speeds = rng.random((6, 2)), 0.05 + 0.1 * rng.random(6), 0.01 * rng.standard_normal((6, 2))
    frames = []
    for i in range(n_frames):
        frame = 0.8 * yy - 0.2 * xx
        for (cy, cx), s, (vy, vx) in zip(centres, sizes, speeds):
            frame += 0.5 * np.exp(-((yy - cy - i * vy) ** 2 + (xx - cx - i * vx) ** 2) / (2 * s * s))
        frames.append(frame)
    depth = np.stack(frames)
    return (2 * (depth - depth.min()) / (depth.max() - depth.min()) - 1).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", default="768x432", help="WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, default=writers.write_threads(),
                        help="threads of the parallel runs (default: this machine's, at most 8)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    depth = depth_video(args.frames, height, width)
    lo, hi = writers.value_range(depth)
    print(f"{args.frames} frames at {width}x{height}, {args.threads} threads against 1")
    rgb = np.repeat(((depth[..., None] + 1) * 127.5).astype(np.uint8), 3, axis=-1)
    cmaps = ("Spectral_r", "Greys_r")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        alone = {
            "npy": lambda: writers.write_npy(tmp / "a.npy", depth),
            "png16": lambda: writers.write_png16(tmp / "png", depth, lo, hi),
            "exr": lambda: writers.write_exr(tmp / "exr", depth),
            "depth16": lambda: writers.write_depth16(tmp / "depth16.mkv", depth, 30, lo, hi),
            **{cmap: lambda cmap=cmap: writers.write_video(
                tmp / f"{cmap}.mp4", writers._colorized_frames(depth, writers.get_colormap(cmap), lo, hi), 30)
               for cmap in cmaps},
            "rgbd": lambda: writers.write_video(tmp / "rgbd.mp4", writers.side_by_side(
                rgb, writers._colorized_frames(depth, writers.get_colormap(cmaps[0]), lo, hi)), 30),
        }
        for name in ("png16", "exr"):
            seconds = {}
            for n in (1, args.threads):
                writers.write_threads = lambda n=n: n  # what write_each asks for
                seconds[n] = timed(alone[name])
            print(f"  {name}: 1 thread {seconds[1]:.2f} s, {args.threads} threads {seconds[args.threads]:.2f} s "
                  f"({seconds[1] / seconds[args.threads]:.2f}x)")
        writers.write_threads = lambda: args.threads
        each = {name: timed(write) for name, write in alone.items()}
        together = timed(lambda: writers.save_outputs(tmp / "all", "clip", depth, rgb, 30, save_png=True,
                                                      save_exr=True, save_depth16=True, cmaps=cmaps))
        print(f"  one after the other: {sum(each.values()):.2f} s ("
              + ", ".join(f"{name} {s:.2f}" for name, s in each.items()) + ")")
        print(f"  all at once (save_outputs): {together:.2f} s ({sum(each.values()) / together:.2f}x)")
        spread = 0.1 * np.abs(depth)  # a stand-in for the snippets' spread
        options = dict(save_png=True, save_exr=True, save_depth16=True, cmaps=cmaps)
        after = timed(lambda: (
            writers.save_outputs(tmp / "u_after", "clip", depth, rgb, 30, **options),
            writers.write_uncertainty_video(tmp / "u_after" / "u.mp4", spread, 30),
            writers.write_exr(tmp / "u_after" / "u_exr", spread, writers.UNCERTAINTY_EXR_MEANING),
        ))
        beside = timed(lambda: writers.save_outputs(tmp / "u_beside", "clip", depth, rgb, 30, **options,
                                                    uncertainty=spread))
        print(f"  with the uncertainty's preview and EXRs: written after the others {after:.2f} s, beside them "
              f"{beside:.2f} s ({after / beside:.2f}x)")
        sizes = {name: sum(f.stat().st_size for f in (tmp / name).rglob("*") if f.is_file())
                 for name in ("png", "exr")} | {"depth16": (tmp / "depth16.mkv").stat().st_size}
        print("  16-bit depth on disk: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sizes.items())
              + f" (raw uint16 {depth.size * 2 / 1e6:.1f} MB)")
        sound_bench(tmp, [tmp / "all" / f"clip_{name}.mp4" for name in (*cmaps, "rgbd")], args.frames / 30)
    stereo_bench(rgb, depth, lo, hi)


def stereo_bench(rgb: np.ndarray, depth: np.ndarray, lo: float, hi: float, full_hd: int = 10) -> None:
    """Milliseconds to render one frame's stereo pair, at the benchmark's size and at 1920x1080."""
    from PIL import Image

    from rolldepth.video.stereo import StereoOptions, stereo_frames

    options = StereoOptions()
    at_size = timed(lambda: list(stereo_frames(rgb, depth, lo, hi, options))) / len(depth)
    big_rgb = np.asarray(Image.fromarray(rgb[0]).resize((1920, 1080)))
    big = timed(lambda: list(stereo_frames([big_rgb] * full_hd, depth[:full_hd], lo, hi, options))) / full_hd
    print(f"  stereo views (--save-stereo, rendering only): {1000 * at_size:.0f} ms/frame at "
          f"{depth.shape[2]}x{depth.shape[1]}, {1000 * big:.0f} ms/frame at 1920x1080")


def sound_bench(tmp: Path, videos: list[Path], seconds: float) -> None:
    """Seconds to add ``seconds`` of 48 kHz stereo PCM to ``videos``: encoded for each, and encoded once."""
    import av

    from rolldepth.video.audio import add_audio, mp4_sound

    source = tmp / "camera.mov"
    with av.open(str(source), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=48000)
        stream.layout = "stereo"
        for first in range(0, round(seconds * 48000), 1920):
            tone = (3000 * np.sin(2 * np.pi * 440 * (first + np.arange(1920)) / 48000)).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2)[None], format="s16", layout="stereo")
            frame.sample_rate, frame.pts = 48000, first
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    duration = Fraction(seconds).limit_denominator(1000)
    each = timed(lambda: [add_audio(video, source, Fraction(0), duration) for video in videos])

    def once():
        with mp4_sound(source, Fraction(0), duration, tmp) as (sound, start):
            for video in videos:
                add_audio(video, sound, start, duration)

    print(f"  sound, {seconds:.1f} s of PCM into {len(videos)} videos: encoded for each {each:.2f} s, once "
          f"{timed(once):.2f} s")


def timed(call) -> float:
    tic = time.perf_counter()
    call()
    return time.perf_counter() - tic

if __name__ == "__main__":
    main()

"""The README's picture: a strip of RGB frames over their depth, from a video and its `rolldepth run` output.

    rolldepth run examples/demo.mp4 -o out
    python examples/make_strip.py examples/demo.mp4 out/demo_pred.npy -o examples/demo_strip.png
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from rolldepth.video.reading import read_frames
from rolldepth.video.writers import colorize


def strip(frames: np.ndarray, depth: np.ndarray, count: int, cmap: str = "Spectral_r") -> np.ndarray:
    """``count`` evenly spaced frames: RGB on the top row, colorized depth (one scale for the video) below."""
    picks = np.linspace(0, len(depth) - 1, count).round().astype(int)
    height, width = depth.shape[1:]
    rgb = [np.asarray(Image.fromarray(frames[i]).resize((width, height), Image.BICUBIC)) for i in picks]
    colored = colorize(np.asarray(depth), cmap, vmin=float(np.min(depth)), vmax=float(np.max(depth)))[picks]
    gap = np.full((height, 4, 3), 255, dtype=np.uint8)
    row = lambda images: np.concatenate([x for image in images for x in (image, gap)][:-1], axis=1)  # noqa: E731
    return np.concatenate([row(rgb), np.full((4, row(rgb).shape[1], 3), 255, np.uint8), row(colored)], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("pred", help="the run's <stem>_pred.npy")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    Image.fromarray(strip(read_frames(args.video), np.load(args.pred, mmap_mode="r"), args.count)).save(args.output)


if __name__ == "__main__":
    main()

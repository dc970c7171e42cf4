"""The ComfyUI video-depth node against ``rolldepth run`` on the same clip: its seconds and the largest difference.

The node gets the clip's frames as ComfyUI holds them (float [N, H, W, 3] in [0, 1]) and runs the embedded model with
its defaults (preset fast, seed 0), at the processing size, as ``rolldepth run CLIP -o OUT`` does:

    rolldepth run examples/demo.mp4 -o out
    python benchmarks/comfyui_vs_run.py examples/demo.mp4 out/demo_pred.npy
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rolldepth.apps.comfyui import NODE_CLASS_MAPPINGS
from rolldepth.video_io import read_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("pred", help="the <stem>_pred.npy that rolldepth run wrote for the clip")
    args = parser.parse_args()
    frames = torch.from_numpy(read_frames(args.clip).astype(np.float32) / 255)
    loader, node = NODE_CLASS_MAPPINGS["LoadRollingDepth"](), NODE_CLASS_MAPPINGS["RollingDepthVideo"]()
    (pipe,) = loader.load("", "auto", "cpu")
    tic = time.perf_counter()
    with torch.inference_mode():  # as ComfyUI runs every node
        *_, raw = node.estimate(pipe, frames, "fast", 0, output_size="processing")
    seconds = time.perf_counter() - tic
    expected = np.load(args.pred)
    print(f"node: {len(frames)} frames in {seconds:.1f} s; largest |node - rolldepth run| "
          f"{np.abs(raw.depth - expected).max():.3g} over {raw.depth.shape}")


if __name__ == "__main__":
    main()

"""`rolldepth run` end to end on a video the test encodes, and one clear line for every user mistake."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from conftest import encode_video, pattern_frames
from rolldepth.cli import main


def read_video(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return np.stack(frames), stream.average_rate


def test_run_writes_every_output_readable_back(tmp_path, tiny_checkpoint, capsys):
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(14), fps=Fraction(30000, 1001))
    out = tmp_path / "out"
    code = main(["-q", "run", str(video), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "0",
                 "-d", "1", "3", "--save-snippets"])
    assert code == 0, capsys.readouterr().err
    depth = np.load(out / "clip_pred.npy")
    assert depth.dtype == np.float32 and depth.shape == (14, 36, 52)
    assert depth.min() == pytest.approx(-1, abs=1e-5) and depth.max() == pytest.approx(1, abs=1e-5)

    pngs = sorted((out / "clip_png16").glob("*.png"))
    assert len(pngs) == 14
    first = np.asarray(Image.open(pngs[0]))
    assert first.dtype == np.uint16 and first.shape == (36, 52)
    rng = json.loads((out / "clip_png16" / "depth_range.json").read_text())
    back = first / 65535 * (rng["vmax"] - rng["vmin"]) + rng["vmin"]
    np.testing.assert_allclose(back, depth[0], atol=(rng["vmax"] - rng["vmin"]) / 65535)

    for name in ("clip_Spectral_r.mp4", "clip_Greys_r.mp4"):
        frames, fps = read_video(out / name)
        assert frames.shape == (14, 36, 52, 3) and fps == Fraction(30000, 1001)
    grey, _ = read_video(out / "clip_Greys_r.mp4")
    near = np.unravel_index(depth[5].argmax(), depth[5].shape)
    far = np.unravel_index(depth[5].argmin(), depth[5].shape)
    assert grey[5][near].mean() > grey[5][far].mean()  # Greys_r: nearer (larger inverse depth) is brighter

    sbs, _ = read_video(out / "clip_rgbd.mp4")
    assert sbs.shape == (14, 36, 104, 3)
    snippets = np.load(out / "clip_snippets.npz")
    assert {k for k in snippets.files if k.endswith("indices")} == {"dilation1_0_indices", "dilation3_1_indices"}


def test_image_sequence_folder_and_frame_window(tmp_path, tiny_checkpoint):
    seq = tmp_path / "shot01"
    seq.mkdir()
    for i, frame in enumerate(pattern_frames(12)):
        Image.fromarray(frame).save(seq / f"f{i}.png")
    out = tmp_path / "out"
    code = main(["-q", "run", str(seq), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "26",
                 "-d", "1", "--from", "2", "--frames", "8", "--cmap", "--no-save-png", "--input-fps", "12"])
    assert code == 0
    assert np.load(out / "shot01_pred.npy").shape == (8, 18, 26)
    assert sorted(p.name for p in out.iterdir()) == ["shot01_pred.npy"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "{tmp}/missing.mp4", "-o", "{tmp}/o", "--model", "{ckpt}"], "missing.mp4"),
        (["run", "{video}", "-o", "{tmp}/o", "--model", "{tmp}"], "checkpoint"),
        (["run", "{video}", "-o", "{tmp}/o", "--model", "{ckpt}", "-d", "2", "4"], "dilation 1"),
        (["run", "{video}", "-o", "{tmp}/o", "--model", "{ckpt}", "--res", "-5"], "--res"),
        (["run", "{one}", "-o", "{tmp}/o", "--model", "{ckpt}"], "frame"),
        (["run", "{junk}", "-o", "{tmp}/o", "--model", "{ckpt}"], "junk.mp4"),
        (["run", "{video}", "-o", "{tmp}/o", "--model", "{ckpt}", "--cmap", "NoSuchMap"], "NoSuchMap"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(tmp_path, tiny_checkpoint, capsys, args, message):
    video = encode_video(tmp_path / "ok.mp4", pattern_frames(6))
    one = encode_video(tmp_path / "one.mp4", pattern_frames(1))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 50)
    fill = dict(tmp=tmp_path, ckpt=tiny_checkpoint, video=video, one=one, junk=junk)
    code = main(["-q", *[a.format(**fill) for a in args]])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("rolldepth: error:") and "\n" not in err and "Traceback" not in err
    assert message in err
    assert not (tmp_path / "o" / "ok_pred.npy").exists()

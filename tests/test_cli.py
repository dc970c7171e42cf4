"""`rolldepth run` end to end on a video the test encodes, and one clear line for every user mistake."""

from __future__ import annotations

import json
import re
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import OpenEXR
import pytest
import torch
from PIL import Image

from conftest import damage, encode_hdr, encode_video, pattern_frames
from rolldepth.apps.cli import build_parser, main
from rolldepth.errors import UserError
from rolldepth.process.presets import resolve_settings
from rolldepth.video.writers import colorize
from rolldepth.video.reading import load_rgb8
from test_video_io import save_with_orientation, write_dpx, write_header_only_mkv


def read_video(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return np.stack(frames), stream.average_rate


def test_run_writes_every_output_readable_back(tmp_path, tiny_checkpoint, capsys):
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(14), fps=Fraction(30000, 1001))
    out = tmp_path / "out"
    code = main(["-q", "run", str(video), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "0",
                 "-d", "1", "3", "--save-snippets", "--save-exr"])
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

    exrs = sorted((out / "clip_exr").glob("*.exr"))
    assert len(exrs) == 14
    with OpenEXR.File(str(exrs[-1])) as image:
        np.testing.assert_array_equal(image.channels()["Y"].pixels, depth[-1])  # the .npy's values, bit for bit

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


def test_a_variable_frame_rate_video_keeps_each_frames_time(tmp_path, tiny_checkpoint, capsys):
    """Depth laid over a phone's variable-rate video in an editor must stay in step: at the average rate frame 12
    of this video would show 0.34 s late."""
    from test_video_io import VFR_MS, encode_vfr

    video = encode_vfr(tmp_path / "vfr.mp4", pattern_frames(24), VFR_MS)

    def times(path):
        with av.open(str(path)) as container:
            return np.array([float(frame.time) for frame in container.decode(video=0)])

    code = main(["-q", "run", str(video), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint), "-d", "1",
                 "--res", "0", "--from", "2"])
    assert code == 0, capsys.readouterr().err
    expected = (np.array(VFR_MS[2:]) - VFR_MS[2]) / 1000
    for name in ("vfr_Spectral_r.mp4", "vfr_rgbd.mp4"):
        assert np.allclose(times(tmp_path / "out" / name), expected, atol=1e-4), name
    code = main(["-q", "run", str(video), "-o", str(tmp_path / "cfr"), "--model", str(tiny_checkpoint), "-d", "1",
                 "--res", "0", "--fps", "10"])  # a rate the user asks for times the frames evenly
    assert code == 0 and np.allclose(times(tmp_path / "cfr" / "vfr_Greys_r.mp4"), np.arange(24) / 10, atol=1e-4)


def test_a_video_of_non_square_pixels_gets_depth_of_the_shape_it_is_shown_in(tmp_path, tiny_checkpoint, caplog):
    video = encode_video(tmp_path / "hdv.mp4", pattern_frames(6, 36, 48), pixel_aspect=Fraction(4, 3))
    out = tmp_path / "out"
    caplog.set_level("INFO", logger="rolldepth")
    argv = ["run", str(video), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "0", "-d", "1", "--cmap"]
    assert main(argv) == 0
    assert np.load(out / "hdv_pred.npy").shape == (6, 36, 64)  # 48 stored columns of 4:3 pixels are 64 shown
    assert "pixels are not square (sample aspect ratio 4:3)" in caplog.text and "64x36" in caplog.text
    assert main([*argv, "-o", str(tmp_path / "stored"), "--no-autorotate"]) == 0
    assert np.load(tmp_path / "stored" / "hdv_pred.npy").shape == (6, 36, 48)


def test_an_hdr_video_is_converted_to_sdr_and_says_so(tmp_path, tiny_checkpoint, caplog):
    video = encode_hdr(tmp_path / "phone.mp4", pattern_frames(1, 36, 48)[0] / 255, transfer=18, n_frames=6)
    caplog.set_level("INFO", logger="rolldepth")
    argv = ["run", str(video), "--model", str(tiny_checkpoint), "--res", "0", "-d", "1", "--cmap", "--no-save-png"]
    assert main([*argv, "-o", str(tmp_path / "out")]) == 0
    assert "an HDR video (HLG): its frames are converted to SDR" in caplog.text
    caplog.clear()
    assert main([*argv, "-o", str(tmp_path / "stored"), "--no-autorotate"]) == 0
    assert "HDR" not in caplog.text
    assert not np.array_equal(np.load(tmp_path / "out" / "phone_pred.npy"),
                              np.load(tmp_path / "stored" / "phone_pred.npy"))  # the model saw other pictures


def test_a_video_found_undecodable_while_processing_does_not_stop_the_batch(tmp_path, tiny_checkpoint, capsys):
    """The inputs are checked before the model loads, but damage inside a file shows only when it is decoded: the
    other videos of the batch are still processed, and the command fails at the end, naming the one that failed."""
    batch = tmp_path / "batch"
    batch.mkdir()
    ok = encode_video(batch / "b_ok.mp4", pattern_frames(6))
    damage(ok, list(range(6)), batch / "a_dead.mp4")
    out = tmp_path / "out"
    assert main(["-q", "run", str(batch), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "0", "-d", "1",
                 "--cmap", "--no-save-png"]) == 2
    err = capsys.readouterr().err
    assert "a_dead.mp4: none of the 6 frames could be decoded (damaged data)" in err
    assert "1 of 2 inputs failed, the others are done: " + str(batch / "a_dead.mp4") in err
    assert sorted(p.name for p in out.iterdir()) == [".b_ok.rolldepth-done.json", "b_ok_pred.npy"]


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
    assert sorted(p.name for p in out.iterdir()) == [".shot01.rolldepth-done.json", "shot01_pred.npy"]


def test_frames_of_an_image_sequence_keep_their_names(tmp_path, tiny_checkpoint):
    """plate.1001.png gives plate.1001.png / .exr / .ply, so a compositor's frame numbers carry over; a video, or a
    sequence where two images share a name, gives frame_000000, ... numbered by the input frame (--from 1 starts at
    frame_000001)."""
    seq = tmp_path / "plate"
    seq.mkdir()
    for i, frame in enumerate(pattern_frames(6)):
        Image.fromarray(frame).save(seq / f"plate.{1001 + i}.png")
    out = tmp_path / "out"
    code = main(["-q", "run", str(seq), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "26", "-d", "1",
                 "--from", "1", "--save-exr", "--save-ply", "--fov", "60", "--ply-every", "2", "--cmap"])
    assert code == 0
    depth = np.load(out / "plate_pred.npy")
    assert sorted(p.name for p in (out / "plate_png16").glob("*.png")) == [f"plate.{n}.png" for n in range(1002, 1007)]
    assert sorted(p.name for p in (out / "plate_exr").iterdir()) == [f"plate.{n}.exr" for n in range(1002, 1007)]
    assert sorted(p.name for p in (out / "plate_ply").iterdir()) == [f"plate.{n}.ply" for n in (1002, 1004, 1006)]
    with OpenEXR.File(str(out / "plate_exr" / "plate.1004.exr")) as image:  # input frame 1004 is output frame 2
        np.testing.assert_array_equal(image.channels()["Y"].pixels, depth[2])
    Image.fromarray(pattern_frames(1)[0]).save(seq / "plate.1003.jpg")  # two images named plate.1003
    code = main(["-q", "run", str(seq), "-o", str(tmp_path / "clash"), "--model", str(tiny_checkpoint), "--res", "26",
                 "-d", "1", "--save-exr", "--cmap"])
    assert code == 0 and (tmp_path / "clash" / "plate_exr" / "frame_000006.exr").exists()
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(6))
    code = main(["-q", "run", str(video), "-o", str(tmp_path / "video"), "--model", str(tiny_checkpoint), "--res", "26",
                 "-d", "1", "--from", "1", "--save-exr", "--save-ply", "--fov", "60", "--ply-every", "2", "--cmap"])
    assert code == 0
    out, depth = tmp_path / "video", np.load(tmp_path / "video" / "clip_pred.npy")
    numbers = [f"frame_{n:06d}" for n in range(1, 6)]
    assert sorted(p.name for p in (out / "clip_png16").glob("*.png")) == [f"{n}.png" for n in numbers]
    assert sorted(p.name for p in (out / "clip_exr").iterdir()) == [f"{n}.exr" for n in numbers]
    assert sorted(p.name for p in (out / "clip_ply").iterdir()) == [f"{n}.ply" for n in numbers[::2]]
    with OpenEXR.File(str(out / "clip_exr" / "frame_000003.exr")) as image:  # input frame 3 is output frame 2
        np.testing.assert_array_equal(image.channels()["Y"].pixels, depth[2])


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
        (["run", "{video}", "-o", "{tmp}/o", "--model", "{ckpt}", "--snippet-lengths", "1", "--save-uncertainty"],
         "snippets of one frame never share one"),
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


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("rolldepth: error:") and "\n" not in err and "Traceback" not in err, err
    return err


def test_the_cpu_says_it_runs_fp32_only_when_fp16_was_asked_for(caplog):
    """The presets' fp16 is meant for GPUs: every CPU run told a new user it had not asked for fp16."""
    import logging

    from rolldepth.model.loading import pick_dtype

    cpu = torch.device("cpu")
    with caplog.at_level(logging.INFO, logger="rolldepth"):
        assert pick_dtype("fp16", cpu, asked=False) == torch.float32
        assert "fp16" not in caplog.text
        assert pick_dtype("fp16", cpu) == torch.float32
        assert "fp16 is slow on the CPU: running in fp32" in caplog.text


@pytest.mark.parametrize("args, message", [
    (["--frames", "0"], "bench videos need at least 3 frames (one snippet), got 0"),  # printed a table header first
    (["--what", "memory", "--memory-frames", "2", "100"], "at least 3 frames"),
    (["--res", "-1"], "--res must be >= 0"),
    pytest.param(["--what", "gpu"], "--what gpu needs a CUDA device", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="a CUDA device runs the bench")),
])
def test_impossible_bench_options_are_one_line_before_any_output(capsys, args, message):
    code = main(["bench", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.startswith("rolldepth: error:") and err.count("\n") == 1, err
    assert message in err


@pytest.mark.parametrize("name, message", [
    ("tpu", "unknown device 'tpu': use auto, cpu, cuda, cuda:N or mps"),
    ("cuda", "device 'cuda' is not usable here"),
    ("cuda:1", "device 'cuda:1' is not usable here"),
    ("mps", "device 'mps' is not usable here: MPS needs Apple silicon"),  # was torch's 1500-character dispatch list
])
def test_a_device_this_machine_lacks_is_one_short_line(name, message):
    from rolldepth.model.loading import pick_device

    gpus = torch.cuda.device_count()
    mps = torch.backends.mps.is_available()
    if (name == "cuda" and gpus >= 1) or (name == "cuda:1" and gpus >= 2) or (name == "mps" and mps):
        pytest.skip(f"{name} exists here")
    with pytest.raises(UserError, match=re.escape(message)) as info:
        pick_device(name)
    assert len(str(info.value)) < 130 and "\n" not in str(info.value)
    assert pick_device("cpu") == torch.device("cpu")


@pytest.fixture
def no_model_load(monkeypatch):
    """These mistakes must be found before the (slow) model load."""
    import rolldepth.apps.cli as cli

    def refuse(*args):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(cli, "load_pipeline", refuse)


def written(path, data: bytes):
    path.write_bytes(data)
    return path


def image_sequence(folder, n_frames=6, sizes=None):
    folder.mkdir()
    for i, frame in enumerate(pattern_frames(n_frames)):
        Image.fromarray(frame if sizes is None else frame[: sizes[i][0], : sizes[i][1]]).save(folder / f"f{i}.png")
    return folder


@pytest.mark.parametrize("n_frames", [1, 2])
def test_a_video_shorter_than_a_snippet_runs_as_the_error_says(tmp_path, tiny_checkpoint, capsys, n_frames):
    video = encode_video(tmp_path / "short.mp4", pattern_frames(n_frames))
    args = ["-q", "run", str(video), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), "--res", "26"]
    assert main(args) == 2
    err = one_line_error(capsys)
    assert ("snippets of 2 frames run it" in err) == (n_frames == 2) and "--snippet-lengths" in err
    for length in range(1, n_frames + 1):
        assert main([*args, "--snippet-lengths", str(length)]) == 0
        assert np.load(tmp_path / "o" / "short_pred.npy").shape[0] == n_frames


def test_a_folder_of_unrelated_photos_says_how_to_run_each(tmp_path, tiny_checkpoint, capsys):
    """Photos of different sizes in one folder are no sequence; the error gives the command that runs them one by
    one, and that command gives each photo its own depth."""
    import glob
    import shlex

    folder = image_sequence(tmp_path / "holiday photos", n_frames=2, sizes=[(36, 52), (30, 40)])
    options = ["--model", str(tiny_checkpoint), "--res", "26", "--no-save-png", "--cmap"]
    assert main(["-q", "run", str(folder), "-o", str(tmp_path / "o"), *options]) == 2
    hint = one_line_error(capsys).split("pass the images as files: ")[1].rstrip(")")
    command = shlex.split(hint)
    assert command[:2] == ["rolldepth", "run"] and command[3:] == ["-o", "OUT"]
    files = sorted(glob.glob(command[2]))
    assert [Path(f).name for f in files] == ["f0.png", "f1.png"]
    assert main(["-q", "run", *files, "-o", str(tmp_path / "o"), *options]) == 0
    assert [np.load(tmp_path / "o" / f"f{i}_pred.npy").shape[0] for i in (0, 1)] == [1, 1]


def test_a_portrait_phone_photo_gets_upright_depth(tmp_path, tiny_checkpoint):
    """A photo stored sideways with EXIF orientation 6 gets the depth of its upright copy; --no-autorotate gets that
    of the stored pixels."""
    stored = pattern_frames(1)[0][:20]  # landscape as stored
    save_with_orientation(tmp_path / "IMG_0001.png", stored, 6)
    Image.fromarray(np.ascontiguousarray(np.rot90(stored, -1))).save(tmp_path / "upright.png")
    Image.fromarray(stored).save(tmp_path / "stored.png")
    options = ["--model", str(tiny_checkpoint), "--res", "26", "--no-save-png", "--cmap"]
    photos = [str(tmp_path / f"{name}.png") for name in ("IMG_0001", "upright", "stored")]
    assert main(["-q", "run", *photos, "-o", str(tmp_path / "o"), *options]) == 0
    assert main(["-q", "run", photos[0], "-o", str(tmp_path / "raw"), "--no-autorotate", *options]) == 0
    depth = np.load(tmp_path / "o" / "IMG_0001_pred.npy")
    assert depth.shape[1] > depth.shape[2]  # portrait
    np.testing.assert_array_equal(depth, np.load(tmp_path / "o" / "upright_pred.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "raw" / "IMG_0001_pred.npy"),
                                  np.load(tmp_path / "o" / "stored_pred.npy"))


def test_a_dpx_sequence_runs_like_its_frames_as_png(tmp_path, tiny_checkpoint):
    """Film-scan DPX plates: the depth of the PNG sequence holding the same decoded frames, under the plates' names."""
    frames = pattern_frames(4).astype(np.uint16) * 4  # 8-bit patterns as 10-bit code values
    dpx, png = tmp_path / "plate", tmp_path / "as_png"
    dpx.mkdir()
    png.mkdir()
    for i, frame in enumerate(frames):
        write_dpx(dpx / f"plate.{1001 + i}.dpx", frame)
        Image.fromarray(load_rgb8(dpx / f"plate.{1001 + i}.dpx")).save(png / f"plate.{1001 + i}.png")
    common = ["--model", str(tiny_checkpoint), "--res", "26", "-d", "1", "--cmap"]
    assert main(["-q", "run", str(dpx), "-o", str(tmp_path / "a"), *common]) == 0
    assert main(["-q", "run", str(png), "-o", str(tmp_path / "b"), *common]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "plate_pred.npy"),
                                  np.load(tmp_path / "b" / "as_png_pred.npy"))
    assert sorted(p.name for p in (tmp_path / "a" / "plate_png16").glob("*.png")) == [
        f"plate.{n}.png" for n in range(1001, 1005)]


def test_save_uncertainty_writes_the_pipelines_uncertainty_and_its_exr(tmp_path, tiny_checkpoint, capsys):
    from rolldepth.model.pipeline import RollingDepthPipeline

    video = encode_video(tmp_path / "clip.mp4", pattern_frames(14))
    out = tmp_path / "out"
    code = main(["-q", "run", str(video), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "0",
                 "-d", "1", "3", "--save-uncertainty", "--save-exr", "--no-save-npy", "--cmap", "--no-save-sbs"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".clip.rolldepth-done.json", "clip_exr", "clip_png16",
                                                     "clip_uncertainty.npy", "clip_uncertainty_exr"]
    uncertainty = np.load(out / "clip_uncertainty.npy")
    expected = RollingDepthPipeline.from_pretrained(tiny_checkpoint)(
        str(video), dilations=(1, 3), processing_res=0, generator=0, output_uncertainty=True, progress=False)
    np.testing.assert_allclose(uncertainty, expected.uncertainty, rtol=1e-5, atol=1e-9)
    exrs = sorted((out / "clip_uncertainty_exr").glob("*.exr"))
    assert len(exrs) == 14
    with OpenEXR.File(str(exrs[3])) as image:
        np.testing.assert_array_equal(image.channels()["Y"].pixels, uncertainty[3])
        assert "standard deviation" in image.header()["rolldepth"]


def test_save_uncertainty_with_colormaps_adds_a_preview_video(tmp_path, tiny_checkpoint, capsys):
    """<stem>_uncertainty_inferno.mp4: the uncertainty through inferno, 0 black and the video's 99th percentile
    bright, as colorize maps it (H.264's rounding aside), in step with the depth videos."""
    from rolldepth.video.writers import uncertainty_scale

    video = encode_video(tmp_path / "clip.mp4", pattern_frames(14))
    out = tmp_path / "out"
    assert main(["-q", "run", str(video), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "0",
                 "-d", "1", "3", "--save-uncertainty", "--cmap", "Greys_r", "--no-save-png"]) == 0, \
        capsys.readouterr().err
    uncertainty = np.load(out / "clip_uncertainty.npy")
    top = uncertainty_scale(uncertainty)
    assert top == pytest.approx(np.quantile(uncertainty.astype(np.float64), 0.99)) and top > 0
    with av.open(str(out / "clip_uncertainty_inferno.mp4")) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(out / "clip_Greys_r.mp4")) as container:
        assert len(frames) == sum(1 for _ in container.decode(video=0)) == 14
    expected = colorize(uncertainty, "inferno", 0.0, top).astype(float)  # a tiny model's spread is pixel noise,
    blocks = lambda x: x[:, :36, :52].reshape(14, 9, 4, 13, 4, 3).mean(axis=(2, 4))  # noqa: E731 which yuv420p
    assert np.abs(blocks(frames.astype(float)) - blocks(expected)).mean() < 4  # blurs: compared over 4x4 blocks


def test_save_depth16_writes_the_depth_as_one_lossless_video(tmp_path, tiny_checkpoint, capsys, caplog):
    """<stem>_depth16.mkv holds the 16-bit PNGs' codes and decodes to the .npy within half a step; asked for after
    a finished run, it is written from that run's depth."""
    from rolldepth.video.writers import read_depth16

    video = encode_video(tmp_path / "clip.mp4", pattern_frames(9))
    out = tmp_path / "out"
    args = ["-q", "run", str(video), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "26", "-d", "1", "3",
            "--cmap", "--no-save-sbs"]
    assert main(args) == 0, capsys.readouterr().err
    pred = np.load(out / "clip_pred.npy")
    caplog.set_level("INFO", logger="rolldepth")
    assert main([*args, "--save-depth16"]) == 0
    assert "its depth is done already" in caplog.text
    depth, meta = read_depth16(out / "clip_depth16.mkv")
    lo, hi = float(pred.min()), float(pred.max())
    assert (meta["vmin"], meta["vmax"]) == (lo, hi) and depth.shape == pred.shape
    assert np.abs(depth.astype(np.float64) - pred).max() <= (hi - lo) / 131070 + 1e-6
    with av.open(str(out / "clip_depth16.mkv")) as container:
        codes = np.stack([f.to_ndarray() for f in container.decode(video=0)])
    pngs = np.stack([np.asarray(Image.open(out / "clip_png16" / f"frame_{i:06d}.png")) for i in range(9)])
    np.testing.assert_array_equal(codes, pngs)


def test_a_single_image_has_no_uncertainty_nor_16bit_video_and_says_so(tmp_path, tiny_checkpoint, caplog):
    photo = tmp_path / "photo.png"
    Image.fromarray(pattern_frames(1)[0]).save(photo)
    out = tmp_path / "out"
    assert main(["-q", "run", str(photo), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "26",
                 "--save-uncertainty", "--save-depth16"]) == 0
    assert "no uncertainty is written" in caplog.text and "gets no 16-bit video" in caplog.text
    assert (out / "photo_pred.npy").is_file() and (out / "photo_png16").is_dir()
    assert not list(out.glob("*uncertainty*")) and not list(out.glob("*depth16*"))


def test_a_single_image_gets_per_frame_depth_and_png_previews(tmp_path, tiny_checkpoint, capsys):
    """photo.png: the depth of a one-image folder run per frame, whatever kernels were asked for; the colorized and
    side-by-side outputs are PNG images named after the photo, not one-frame videos."""
    frame = pattern_frames(1)[0]
    photo = tmp_path / "photo.png"
    Image.fromarray(frame).save(photo)
    folder = tmp_path / "seq"
    folder.mkdir()
    Image.fromarray(frame).save(folder / "photo.png")
    common = ["-q", "run", "--model", str(tiny_checkpoint), "--res", "26", "--save-exr"]
    assert main([*common, str(photo), "-o", str(tmp_path / "a"), "-d", "1", "25"]) == 0, capsys.readouterr().err
    assert main([*common, str(folder), "-o", str(tmp_path / "b"), "--snippet-lengths", "1"]) == 0
    out = tmp_path / "a"
    depth = np.load(out / "photo_pred.npy")
    assert depth.shape == (1, 18, 26)
    np.testing.assert_array_equal(depth, np.load(tmp_path / "b" / "seq_pred.npy"))
    assert sorted(p.name for p in out.iterdir()) == [".photo.rolldepth-done.json", "photo_Greys_r.png",
                                                     "photo_Spectral_r.png", "photo_exr", "photo_png16",
                                                     "photo_pred.npy", "photo_rgbd.png"]
    assert (out / "photo_png16" / "photo.png").is_file() and (out / "photo_exr" / "photo.exr").is_file()
    colour = np.asarray(Image.open(out / "photo_Spectral_r.png"))
    np.testing.assert_array_equal(colour, colorize(depth, "Spectral_r")[0])
    sbs = np.asarray(Image.open(out / "photo_rgbd.png"))
    assert sbs.shape == (18, 52, 3) and np.array_equal(sbs[:, 26:], colour)


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (lambda d: written(d / "empty.mp4", b""), [], "empty.mp4 as a video"),
        (lambda d: write_header_only_mkv(d / "nothing.mkv"), [], "no frames"),
        (lambda d: encode_video(d / "two.mp4", pattern_frames(2)), [], "at least 3 frames"),
        (lambda d: written(image_sequence(d / "seq") / "f3.png", b"not a png").parent, [], "cannot read image"),
        (lambda d: written(d / "photo.jpg", b""), [], "cannot read image"),
        (lambda d: written(d / "scan.dpx", b"SDPX" + b"\x00" * 100), [], "scan.dpx: its header gives no picture size"),
        (lambda d: image_sequence(d / "seq", sizes=[(36, 52)] * 4 + [(36, 50)] * 2), [], "f4.png is 50x36"),
        (lambda d: encode_video(d / "ok.mp4", pattern_frames(12)), ["-d", "1", "25", "--no-cap-dilation"],
         "dilation 25 needs at least 51 frames"),
        (lambda d: encode_video(d / "ok.mp4", pattern_frames(14)),
         ["-d", "1", "--no-cap-dilation", "--refine-steps", "10"], "would leave 8 of 14 frames in no snippet"),
        (lambda d: encode_video(d / "ok.mp4", pattern_frames(6)), ["--from", "6"], "past the end"),
        (lambda d: encode_video(d / "ok.mp4", pattern_frames(6)), ["-o", "{tmp}/afile"], "is a file"),
        (lambda d: encode_video(d / "ok.mp4", pattern_frames(6)), ["-o", "{tmp}/afile/o"], "afile is a file"),
    ],
)
def test_bad_inputs_fail_before_the_model_loads(tmp_path, tiny_checkpoint, capsys, no_model_load, make, extra,
                                                message):
    path = make(tmp_path)
    (tmp_path / "afile").write_text("")
    extra = [a.format(tmp=tmp_path) for a in extra]
    code = main(["-q", "run", str(path), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), *extra])
    assert code == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_wrong_checkpoint_folders(tmp_path, tiny_checkpoint, capsys):
    video = encode_video(tmp_path / "ok.mp4", pattern_frames(6))
    broken = shutil.copytree(tiny_checkpoint, tmp_path / "broken")
    next((broken / "unet").glob("*.safetensors")).write_bytes(b"\x00junk" * 100)
    plain = shutil.copytree(tiny_checkpoint, tmp_path / "plain")
    config = json.loads((plain / "unet" / "config.json").read_text())
    (plain / "unet" / "config.json").write_text(json.dumps(config | {"in_channels": 4}))  # a text-to-image UNet
    for model, message in [(broken, "could not load"), (plain, "not a depth-conditioned UNet"),
                           (video, "is a file, not a checkpoint folder")]:
        code = main(["-q", "run", str(video), "-o", str(tmp_path / "o"), "--model", str(model)])
        assert code == 2
        assert message in one_line_error(capsys)
    assert not (tmp_path / "o" / "ok_pred.npy").exists()


def test_image_broken_past_its_header_is_one_line_during_the_run(tmp_path, tiny_checkpoint, capsys):
    seq = image_sequence(tmp_path / "seq")
    data = (seq / "f4.png").read_bytes()
    (seq / "f4.png").write_bytes(data[: len(data) // 2])  # the header check passes, decoding fails
    code = main(["-q", "run", str(seq), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), "--res", "26"])
    assert code == 2
    assert "f4.png" in one_line_error(capsys)
    assert list((tmp_path / "o").iterdir()) == []  # no output, and no work folder worth resuming


def test_native_resolution_of_a_huge_input_is_refused_with_a_memory_estimate(tmp_path, tiny_checkpoint, capsys,
                                                                             monkeypatch, no_model_load):
    import rolldepth.model.vram as vram
    import rolldepth.process.runner as runner

    huge = tmp_path / "huge"
    huge.mkdir()
    Image.new("1", (9000, 9000)).save(huge / "0.png")  # 81 Mpx, a few kB on disk
    for i in (1, 2):
        shutil.copy(huge / "0.png", huge / f"{i}.png")
    monkeypatch.setattr(vram, "available_memory", lambda: 16 * 10**9)  # the same answer on any machine
    args = ["-q", "run", str(huge), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), "-d", "1"]
    assert main([*args, "--res", "0"]) == 2
    err = one_line_error(capsys)
    # The costliest call at batch 1 (on the CPU the batches are then chosen to fit): the UNet, 1 snippet x 3 frames x
    # 81e6 / 2^2 latent px x 16 channels (tiny UNet) x 120 bytes = 116.64e9 (a VAE decode: 81e6 x 16 x 34 = 44.06e9);
    # co-alignment: 1 snippet x 3 frames x 81e6 / 100 px x 4 bytes x 3 = 29.16e6; total 116.669e9 bytes
    assert "3 frames at 9000x9000 (--res 0 keeps the native size)" in err and "116.7 GB of memory" in err
    assert "16.0 GB is available" in err and err.endswith("lower --res")
    assert main([*args, "--res", "0", "--batch-size", "2"]) == 2  # 2 x 116.64e9 + 29.16e6
    err = one_line_error(capsys)
    assert "233.3 GB of memory" in err and err.endswith("lower --res or the batch sizes")
    options = runner.RunOptions(settings=resolve_settings("fast", res=768, dilations=[1]))
    runner.check_input(huge, options, output_dir=tmp_path / "o", model=runner.ModelShape.of_folder(tiny_checkpoint))


def test_frames_too_small_to_coalign_are_refused_before_the_model_loads(tmp_path, tiny_checkpoint, capsys,
                                                                        no_model_load):
    import rolldepth.process.runner as runner

    strip = encode_video(tmp_path / "strip.mp4", pattern_frames(4, height=6, width=300))
    assert main(["-q", "run", str(strip), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), "--res", "192",
                 "-d", "1"]) == 2
    assert one_line_error(capsys) == (
        f"rolldepth: error: {strip}: 300x6 frames at --res 192: frames of 192x3 pixels (width x height) are too "
        "small to co-align: both sides need more than 4 px (a border of 2 px is cropped); a larger --res keeps more")
    native = runner.RunOptions(settings=resolve_settings("fast", res=0, dilations=[1]))
    assert runner.check_input(strip, native).height == 6  # at its native 300x6 it can be processed


def test_a_run_that_cannot_fit_on_the_disk_is_refused(tmp_path, tiny_checkpoint, capsys, monkeypatch, no_model_load):
    import rolldepth.process.runner as runner

    video = encode_video(tmp_path / "ok.mp4", pattern_frames(6))
    monkeypatch.setattr(runner, "free_disk", lambda folder: 1000)
    assert main(["-q", "run", str(video), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), "--res", "0",
                 "--cmap"]) == 2
    # 36x52 = 1872 px. Latents 6 x 4 ch x 1872 / 2^2 x 4 B = 44928; snippets (dilation 1 and 25 capped to 1:
    # 2 x 4 snippets x 3 frames) 24 x 1872 x 4 = 179712; merged depth 6 x 1872 x 4 = 44928; 16-bit PNGs
    # 6 x 1872 x 2 = 22464; total 292032 bytes
    assert "292.0 kB of disk" in one_line_error(capsys)


def test_a_finished_input_is_not_refused_for_the_disk_a_rerun_would_need(tmp_path, tiny_checkpoint, capsys,
                                                                          monkeypatch):
    """A batch interrupted at its 57th video, run again on a nearly full disk: the 56 finished ones need no room."""
    import rolldepth.process.runner as runner

    video = encode_video(tmp_path / "ok.mp4", pattern_frames(6))
    argv = ["-q", "run", str(video), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), "--res", "0",
            "-d", "1", "--cmap"]
    assert main(argv) == 0
    monkeypatch.setattr(runner, "free_disk", lambda folder: 1000)
    assert main(argv) == 0
    (tmp_path / "o" / "ok_pred.npy").unlink()  # no longer finished: it needs the disk again
    assert main(argv) == 2 and "of disk" in one_line_error(capsys)


def test_a_rerun_of_finished_inputs_loads_no_model(tmp_path, tiny_checkpoint, caplog, monkeypatch):
    """Every input done, or asked for other outputs, with the same settings and the same model files: the rerun
    needs no model (the outputs come from the depth written before). A model file rewritten, a depth deleted, a new
    input or another setting: the model loads."""
    import os

    import rolldepth.apps.cli as cli

    model = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model)
    videos = [encode_video(tmp_path / f"{name}.mp4", pattern_frames(6)) for name in ("a", "b")]
    argv = ["-q", "run", *map(str, videos), "-o", str(tmp_path / "o"), "--model", str(model), "--res", "0", "-d",
            "1", "--cmap"]
    assert main(argv) == 0
    loads = []
    real_load = cli.load_pipeline
    monkeypatch.setattr(cli, "load_pipeline", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    caplog.set_level("INFO", logger="rolldepth")
    assert main(argv) == 0 and loads == []
    assert "a.mp4: done already" in caplog.text
    pred = np.load(tmp_path / "o" / "a_pred.npy")
    assert main([*argv, "--save-depth16"]) == 0 and loads == []  # written from the depth the first run left
    assert "its depth is done already" in caplog.text and (tmp_path / "o" / "b_depth16.mkv").is_file()
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "a_pred.npy"), pred)
    assert main([*argv, "--save-depth16", "--dtype", "fp32"]) == 0 and loads == []  # the preset's fp16 ran in fp32
    weights = next((model / "unet").glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # rewritten
    assert main([*argv, "--save-depth16"]) == 0 and len(loads) == 1  # loaded: the same weights, found done
    assert main([*argv, "--save-depth16"]) == 0 and len(loads) == 1  # and recorded as loaded from these files
    (tmp_path / "o" / "b_pred.npy").unlink()
    assert main([*argv, "--save-depth16"]) == 0 and len(loads) == 2  # its depth is gone: computed again
    third = encode_video(tmp_path / "c.mp4", pattern_frames(6))
    assert main([*argv[:4], str(third), *argv[4:], "--save-depth16"]) == 0 and len(loads) == 3
    assert main([*argv, "--save-depth16", "--seed", "1"]) == 0 and len(loads) == 4  # another setting


@pytest.mark.parametrize("argv", [["-q", "run", "a.mp4", "-o", "o"], ["run", "a.mp4", "-o", "o", "-q"],
                                  ["synth", "d", "--quiet"]])
def test_quiet_is_accepted_before_or_after_the_command(argv):
    args = build_parser().parse_args(argv)
    assert args.quiet and not args.verbose


def test_without_quiet_flags_are_off():
    args = build_parser().parse_args(["run", "a.mp4", "-o", "o"])
    assert not args.quiet and not args.verbose


def test_ctrl_c_is_one_line_that_says_how_to_resume(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import rolldepth.process.runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rolldepth.process.runner, "process_video", interrupted)
    video = encode_video(tmp_path / "ok.mp4", pattern_frames(6))
    code = main(["-q", "run", str(video), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), "--res", "32"])
    err = capsys.readouterr().err.strip()
    assert code == 130 and "run the same command again" in err and "\n" not in err


def test_inputs_named_alike_are_refused_before_anything_is_written(tmp_path, tiny_checkpoint, capsys):
    first = encode_video((tmp_path / "a").mkdir() or tmp_path / "a" / "clip.mp4", pattern_frames(6))
    second = encode_video((tmp_path / "b").mkdir() or tmp_path / "b" / "clip.mkv", pattern_frames(6, seed=2))
    code = main(["-q", "run", str(first), str(second), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint)])
    assert code == 2 and "would both write clip_* outputs" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_a_checkpoint_that_recommends_no_refinement_is_not_refined_unless_asked(tmp_path, tiny_checkpoint,
                                                                             monkeypatch, caplog):
    """`-p full` refines 10 steps; a model whose rolldepth.json says ``"refine_steps": 0`` (the embedded one) is
    run without refinement, and is refined when ``--refine-steps`` asks for it."""
    from rolldepth.model.pipeline import RollingDepthPipeline

    model = shutil.copytree(tiny_checkpoint, tmp_path / "model")
    (model / "rolldepth.json").write_text(json.dumps({"refine_steps": 0}))
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(8))
    asked = []
    real_run = RollingDepthPipeline.run
    monkeypatch.setattr(RollingDepthPipeline, "run",
                        lambda self, *a, **kw: asked.append(kw["refine_steps"]) or real_run(self, *a, **kw))
    common = [str(video), "--model", str(model), "--res", "0", "-d", "1", "3", "-p", "full", "--no-save-sbs"]
    with caplog.at_level("INFO", logger="rolldepth.process.runner"):
        assert main(["-q", "run", *common, "-o", str(tmp_path / "plain")]) == 0
    assert "as the model recommends" in caplog.text
    assert main(["-q", "run", *common, "-o", str(tmp_path / "asked"), "--refine-steps", "2"]) == 0
    assert asked == [0, 2]
    # The refined depth is another computation than the unrefined one, and the recommendation did not change it.
    plain, refined = (np.load(tmp_path / name / "clip_pred.npy") for name in ("plain", "asked"))
    assert np.abs(plain - refined).max() > 1e-3
    for bad in ({"refine_steps": "many"}, [0]):  # a wrong value, and no JSON object at all: one line, exit 2
        (model / "rolldepth.json").write_text(json.dumps(bad))
        assert main(["-q", "run", *common, "-o", str(tmp_path / "bad")]) == 2


def test_the_embedded_model_recommends_its_resolution_and_no_refinement():
    """Refinement made the embedded model's depth flicker more (MODEL_CARD.md); the presets that refine leave it
    unrefined, and every preset runs it at its native 192 px, unless the user sets either."""
    from rolldepth.process.runner import ModelShape, RunOptions, with_model_defaults
    from rolldepth.weights import DEFAULT_MODEL

    shape = ModelShape.of_folder(DEFAULT_MODEL)
    for preset in ("fast", "full", "paper"):
        settings = with_model_defaults(RunOptions(settings=resolve_settings(preset)), shape).settings
        assert (settings.res, settings.refine_steps) == (192, 0)
    explicit = RunOptions(settings=resolve_settings("full", refine_steps=10, res=256))
    settings = with_model_defaults(explicit, shape).settings
    assert (settings.res, settings.refine_steps) == (256, 10)
    assert with_model_defaults(explicit, ModelShape()).settings == explicit.settings  # a model that recommends nothing


def test_an_input_named_twice_runs_once(tmp_path, tiny_checkpoint, monkeypatch):
    import rolldepth.process.runner

    seen = []
    monkeypatch.setattr(rolldepth.process.runner, "process_video", lambda pipe, path, *a, **k: seen.append(path))
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(6))
    encode_video(tmp_path / "other.mp4", pattern_frames(6))
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "run", "clip.mp4", "other.mp4", str(video), "-o", "o", "--model", str(tiny_checkpoint)]) == 0
    assert seen == [Path("clip.mp4"), Path("other.mp4")]


# ------------------------------------------------------------------------------------------------------------------
# Metric depth and 3-D export
def write_anchor_csv(path, rows):
    path.write_text("frame,x,y,metres\n" + "".join(f"{f},{x},{y},{m!r}\n" for f, x, y, m in rows))
    return path


def anchors_on_depth_pixels(pred, picks, a, b, scale=2):
    """Anchors in INPUT pixels (the depth is ``scale`` times smaller) sitting on depth pixel centres, with the
    distances ``1 / (a * pred + b)`` of the prediction there."""
    return [(f, scale * xd + (scale - 1) / 2, scale * yd + (scale - 1) / 2, 1 / (a * float(pred[f, yd, xd]) + b))
            for f, xd, yd in picks]


def test_metric_anchors_and_point_clouds_end_to_end(tmp_path, tiny_checkpoint, capsys):
    from plyfile import PlyData

    video = encode_video(tmp_path / "clip.mp4", pattern_frames(12))  # 52x36, processed at 26x18
    out = tmp_path / "out"
    base = ["-q", "run", str(video), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "26", "-d", "1",
            "--cmap", "--no-save-png"]
    assert main(base) == 0
    pred = np.load(out / "clip_pred.npy")
    a, b = 0.15, 0.3  # 1/z in [0.15, 0.45] 1/m: z from 2.2 to 6.7 m
    picks = [(0, 3, 4), (2, 20, 10), (5, 11, 15), (7, 24, 1), (9, 6, 12), (11, 17, 6)]
    rows = anchors_on_depth_pixels(pred, picks, a, b)
    rows[3] = (*rows[3][:3], rows[3][3] * 3)  # one wrong anchor

    contradictory = write_anchor_csv(tmp_path / "bad.csv", [rows[0], rows[1], (*rows[2][:3], 0.5),
                                                            (*rows[4][:3], 40.0)])
    fresh = tmp_path / "fresh"
    assert main([*base, "-o", str(fresh), "--metric-anchors", str(contradictory)]) == 2
    err = one_line_error(capsys)
    assert "contradict each other" in err and "run again with corrected anchors" in err
    assert (fresh / ".clip.rolldepth-work").is_dir()  # the depth is kept for the rerun
    assert main([*base, "--metric-anchors", str(contradictory)]) == 2  # a finished video's depth: reused
    err = one_line_error(capsys)
    assert "contradict each other" in err and "the depth in clip_pred.npy is reused" in err
    np.testing.assert_array_equal(np.load(out / "clip_pred.npy"), pred)

    good = write_anchor_csv(tmp_path / "good.csv", rows)
    assert main([*base, "--metric-anchors", str(good), "--save-exr", "--save-ply", "--fov", "60",
                 "--ply-every", "5"]) == 0
    assert not (out / ".clip.rolldepth-work").exists()
    pred = np.load(out / "clip_pred.npy")
    depth_m = np.load(out / "clip_depth_m.npy")
    assert depth_m.dtype == np.float32 and depth_m.shape == (12, 18, 26)
    np.testing.assert_allclose(depth_m, 1 / (a * pred.astype(np.float64) + b), rtol=1e-5)

    report = json.loads((out / "clip_metric.json").read_text())
    assert report["a"] == pytest.approx(a, rel=1e-5) and report["b"] == pytest.approx(b, rel=1e-5)
    assert report["n_anchors"] == 6 and report["n_inliers"] == 5 and report["rmse_m"] < 1e-4
    assert [x["inlier"] for x in report["anchors"]] == [True, True, True, False, True, True]
    assert report["anchors"][3]["source"] == "good.csv line 5"
    assert report["anchors"][3]["residual_m"] == pytest.approx(-2 / 3 * rows[3][3], rel=1e-4)
    assert report["image_size"] == [52, 36] and report["depth_size"] == [26, 18] and report["invalid_pixels"] == 0

    exrs = sorted((out / "clip_depth_m_exr").glob("*.exr"))
    assert len(exrs) == 12
    with OpenEXR.File(str(exrs[7])) as image:
        np.testing.assert_array_equal(image.channels()["Y"].pixels, depth_m[7])

    plys = sorted((out / "clip_ply").glob("*.ply"))
    assert [p.name for p in plys] == ["frame_000000.ply", "frame_000005.ply", "frame_000010.ply"]
    ply = PlyData.read(str(plys[1]))
    vertex = ply["vertex"]
    assert len(vertex) == 18 * 26
    np.testing.assert_allclose(vertex["z"], depth_m[5].ravel(), rtol=1e-6)
    focal = 13 / np.tan(np.radians(30))  # --fov 60 across 26 depth pixels
    np.testing.assert_allclose(vertex["x"][:26], (np.arange(26) - 12.5) / focal * depth_m[5, 0], rtol=1e-5)
    assert any("metric depth in metres, fitted to 6 anchors" in c for c in ply.comments)


def test_point_clouds_without_anchors_assume_a_range(tmp_path, tiny_checkpoint, caplog):
    from plyfile import PlyData

    video = encode_video(tmp_path / "clip.mp4", pattern_frames(8))
    intrinsics = tmp_path / "cam.json"  # given for twice the video's size: scaled to the 26x18 depth
    intrinsics.write_text(json.dumps({"fx": 80, "fy": 80, "cx": 51.5, "cy": 35.5, "width": 104, "height": 72}))
    out = tmp_path / "out"
    caplog.set_level("INFO")
    assert main(["-q", "run", str(video), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "26", "-d", "1",
                 "--cmap", "--no-save-png", "--save-ply", "--intrinsics", str(intrinsics), "--ply-every", "1",
                 "--assumed-range", "2", "5"]) == 0
    assert "assumes the video's depth runs from 2 m (nearest) to 5 m (farthest); it is not metric" in caplog.text
    assert not (out / "clip_depth_m.npy").exists() and not (out / "clip_metric.json").exists()
    pred = np.load(out / "clip_pred.npy")
    plys = sorted((out / "clip_ply").glob("*.ply"))
    assert len(plys) == 8
    z = np.concatenate([PlyData.read(str(p))["vertex"]["z"] for p in plys])
    assert z.min() == pytest.approx(2, rel=1e-5) and z.max() == pytest.approx(5, rel=1e-5)
    nearest = np.unravel_index(pred.argmax(), pred.shape)
    vertex = PlyData.read(str(plys[nearest[0]]))["vertex"]
    assert vertex["z"][nearest[1] * 26 + nearest[2]] == pytest.approx(2, rel=1e-5)  # largest prediction = nearest
    # K scaled to the depth: fx 80 * 26 / 104 = 20, cx (51.5 + 0.5) / 4 - 0.5 = 12.5
    np.testing.assert_allclose(vertex["x"][:26], (np.arange(26) - 12.5) / 20 * vertex["z"][:26], rtol=1e-5)
    comments = PlyData.read(str(plys[0])).comments
    assert any("NOT metric" in c and "nearest 2 m, farthest 5 m" in c for c in comments)


@pytest.mark.parametrize(
    "rows, extra, message",
    [
        ([(0, 3, 3, 2.0)], [], "at least 2 anchors"),
        ([(0, 3, 3, 2.0), (1, 52, 3, 4.0)], [], "line 3: pixel (52, 3) is off the 52x36 frame"),
        ([(0, 3, 3, 2.0), (6, 5, 3, 4.0)], [], "line 3: frame 6 is past the last processed frame 5"),
        ([(0, 3, 3, 2.0), (1, 5, 3, 4.0)], ["--from", "1"], "frame 0 is before the first processed frame 1"),
        ([(0, 3, 3, 2.0), (1, 5, 3, -4.0)], [], "line 3: the distance must be a positive number of metres"),
        ([(0, 3, 3, 2.0), (1, 5, 3, 4.0)], ["+other"], "one video"),
        ([(0, 3, 3, 2.0), (1, 5, 3, 4.0)], ["--anchor-tolerance", "0"], "--anchor-tolerance must be > 0"),
        (None, ["--anchor-tolerance", "-1"], "--anchor-tolerance must be > 0, got -1"),
        (None, ["--save-ply"], "--save-ply needs the camera: give --fov DEG"),
        (None, ["--save-ply", "--fov", "190"], "--fov is the horizontal field of view"),
        (None, ["--save-ply", "--fov", "60", "--intrinsics", "{cam}"], "not both"),
        (None, ["--save-ply", "--fov", "60", "--ply-every", "0"], "--ply-every must be >= 1"),
        (None, ["--save-ply", "--fov", "60", "--assumed-range", "5", "1"], "0 < near < far"),
        (None, ["--save-ply", "--intrinsics", "{wide}"], "cam.json is for 100x36 images, but the video is 52x36"),
    ],
)
def test_bad_anchors_and_3d_options_fail_before_the_model_loads(tmp_path, tiny_checkpoint, capsys, no_model_load,
                                                                 rows, extra, message):
    video = encode_video(tmp_path / "ok.mp4", pattern_frames(6))
    other = encode_video(tmp_path / "other.mp4", pattern_frames(6, seed=1))
    (tmp_path / "k.json").write_text(json.dumps({"fx": 30, "fy": 30, "cx": 25.5, "cy": 17.5}))
    (tmp_path / "cam.json").write_text(json.dumps({"fx": 30, "fy": 30, "cx": 25.5, "cy": 17.5, "width": 100,
                                                   "height": 36}))
    inputs = [video, other] if extra == ["+other"] else [video]
    extra = [a.format(cam=tmp_path / "k.json", wide=tmp_path / "cam.json") for a in extra if a != "+other"]
    anchors = [] if rows is None else ["--metric-anchors", str(write_anchor_csv(tmp_path / "a.csv", rows))]
    code = main(["-q", "run", *map(str, inputs), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), *anchors,
                 *extra])
    assert code == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_save_rrd_without_rerun_is_one_line(tmp_path, tiny_checkpoint, capsys, no_model_load, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rerun", None)  # import rerun fails, as where the extra is not installed
    video = encode_video(tmp_path / "ok.mp4", pattern_frames(6))
    code = main(["-q", "run", str(video), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint), "--save-rrd",
                 "--fov", "60"])
    assert code == 2 and "pip install 'rolldepth[rrd]'" in one_line_error(capsys)


def test_save_rrd_logs_rgb_depth_and_points(tmp_path, tiny_checkpoint):
    pytest.importorskip("rerun")
    from rerun.chunk import RrdReader

    video = encode_video(tmp_path / "clip.mp4", pattern_frames(8))
    out = tmp_path / "out"
    assert main(["-q", "run", str(video), "-o", str(out), "--model", str(tiny_checkpoint), "--res", "26", "-d", "1",
                 "--cmap", "--no-save-png", "--save-rrd", "--fov", "60", "--ply-every", "4"]) == 0
    chunks = list(RrdReader(out / "clip.rrd").stream())
    paths = {str(chunk.entity_path) for chunk in chunks}
    assert {"/camera/image", "/camera/image/rgb", "/camera/image/depth", "/camera/points", "/description"} <= paths
    assert sum(chunk.num_rows for chunk in chunks if str(chunk.entity_path) == "/camera/points") == 2  # frames 0, 4
    assert not list(out.glob(".*partial"))

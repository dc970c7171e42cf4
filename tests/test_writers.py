"""Output side: every file read back with PyAV/Pillow/numpy directly, colours against matplotlib's own values,
and atomicity checked by making writers fail half-way."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

import rolldepth.video.writers as writers
from rolldepth.errors import UserError
from rolldepth.video.writers import (
    atomic_path,
    colorize,
    read_depth16,
    save_outputs,
    side_by_side,
    write_depth16,
    write_exr,
    write_npy,
    write_png16,
    write_each,
    write_video,
)
from rolldepth.storage.workdir import NpyArray


def read_video(path: Path) -> tuple[np.ndarray, Fraction, list[Fraction]]:
    """Frames, average frame rate and presentation times in seconds, decoded with PyAV directly (everything is
    read inside the ``with``: a stream object must not outlive its container)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
        times = [f.pts * stream.time_base for f in decoded]
        return np.stack([f.to_ndarray(format="rgb24") for f in decoded]), stream.average_rate, times


def smooth_frames(n: int, height: int, width: int) -> np.ndarray:
    """Smooth colour ramps (yuv420p halves chroma resolution, so only smooth colour survives it nearly intact)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([
        np.stack([40 + 150 * xx // width + 5 * i, 60 + 150 * yy // height, np.full_like(xx, 100 + 10 * i)], axis=-1)
        .astype(np.uint8)
        for i in range(n)
    ])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------------------------------------------
# Videos
@pytest.mark.parametrize("fps", [Fraction(30000, 1001), 30000 / 1001, Fraction(25)])
def test_write_video_odd_size_and_exact_fractional_rate(tmp_path, fps):
    frames = smooth_frames(6, 31, 47)
    path = write_video(tmp_path / "out.mp4", (f for f in frames), fps, crf=0)  # a generator, not a list
    back, average_rate, times = read_video(path)
    rate = Fraction(30000, 1001) if fps != 25 else Fraction(25)
    assert average_rate == rate
    # Timestamps are exactly frame_index / rate: the duration is kept, no drift on long videos.
    assert times == [i / rate for i in range(6)]
    assert back.shape == (6, 32, 48, 3)
    # crf 0 is lossless in YUV; yuv420p chroma subsampling and RGB<->YUV rounding leave a few levels.
    error = np.abs(back[:, :31, :47].astype(int) - frames)
    assert error.mean() < 2 and error.max() <= 8
    # The padding replicates the last row/column.
    assert np.abs(back[:, 31].astype(int) - back[:, 30]).max() <= 2
    assert np.abs(back[:, :, 47].astype(int) - back[:, :, 46]).max() <= 2
    assert leftovers(tmp_path) == ["out.mp4"]


def test_videos_show_the_colours_given_as_players_read_them(tmp_path):
    """Players and editors show an untagged HD video as BT.709: the video is converted with BT.709 and tagged so,
    and decoded as BT.709 gives the colours written (Spectral_r's ends, its middle, greys), within YUV rounding."""
    colours = np.array([[213, 62, 79], [50, 136, 189], [254, 224, 139], [128, 128, 128], [20, 20, 20],
                        [240, 240, 240]], np.uint8)
    frame = np.repeat(np.repeat(colours[None], 32, axis=0), 32, axis=1)  # 6 blocks of 32x32: [32, 192, 3]
    write_video(tmp_path / "c.mp4", [frame] * 3, 25)
    with av.open(str(tmp_path / "c.mp4")) as container:
        context = container.streams.video[0].codec_context
        assert (context.colorspace, context.color_primaries, context.color_trc, context.color_range) == (1, 1, 1, 1)
        decoded = next(container.decode(video=0))
        as_bt709 = decoded.reformat(format="rgb24", src_colorspace="ITU709", src_color_range="MPEG").to_ndarray()
    centres = as_bt709[16, 16::32].astype(int)
    assert np.abs(centres - colours).max() <= 3  # BT.601 conversion shown as BT.709: 15 off (225, 77, 77)


def test_write_video_rejects_bad_input_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "a.mp4", [], 25)
    frames = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame 1"):
        write_video(tmp_path / "b.mp4", frames, 25)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "c.mp4", [np.zeros((8, 8, 3), np.float32)], 25)
    with pytest.raises(UserError, match="frame rate"):
        write_video(tmp_path / "d.mp4", [np.zeros((8, 8, 3), np.uint8)], 0)
    assert leftovers(tmp_path) == []


def test_failed_rewrite_keeps_the_previous_complete_file(tmp_path):
    path = write_video(tmp_path / "out.mp4", smooth_frames(3, 8, 8), 25)
    before = path.read_bytes()
    during = []

    def frames_then_crash():
        yield from smooth_frames(4, 8, 8)
        during.append(path.read_bytes())
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        write_video(path, frames_then_crash(), 25)
    assert during == [before]  # mid-write, the final name still held the old video
    assert leftovers(tmp_path) == ["out.mp4"] and path.read_bytes() == before


def test_crash_mid_way_leaves_no_file_under_the_final_name(tmp_path):
    def frames_then_crash():
        yield np.zeros((8, 8, 3), np.uint8)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_video(tmp_path / "new.mp4", frames_then_crash(), 25)
    assert leftovers(tmp_path) == []


def test_png16_folder_crash_mid_way_leaves_nothing(tmp_path, monkeypatch):
    real_fromarray = Image.fromarray
    seen = []

    def fromarray_failing_on_third(array):
        seen.append(leftovers(tmp_path))
        if len(seen) == 3:
            raise OSError("disk full")
        return real_fromarray(array)

    monkeypatch.setattr(writers.Image, "fromarray", fromarray_failing_on_third)
    with pytest.raises(OSError, match="disk full"):
        write_png16(tmp_path / "clip_png16", np.random.default_rng(0).random((5, 4, 6)))
    # Frames went into a hidden .partial folder, never under the final name, and it is gone after the failure.
    assert len(seen[2]) == 1 and seen[2][0].startswith(".clip_png16.") and seen[2][0].endswith(".partial")
    assert leftovers(tmp_path) == []


def test_atomic_path_replaces_folders_whole(tmp_path):
    write_png16(tmp_path / "d", np.zeros((5, 2, 2)))
    write_png16(tmp_path / "d", np.ones((2, 2, 2)))
    assert leftovers(tmp_path) == ["d"]
    assert leftovers(tmp_path / "d") == ["depth_range.json", "frame_000000.png", "frame_000001.png"]  # no stale 2-4
    with pytest.raises(ValueError), atomic_path(tmp_path / "x.npy") as tmp:
        tmp.write_bytes(b"half")
        raise ValueError
    assert leftovers(tmp_path) == ["d"]


# ----------------------------------------------------------------------------------------------------------------
# Depth files and colour
def test_png16_round_trip_within_one_step(tmp_path):
    rng = np.random.default_rng(2)
    depth = rng.uniform(-0.7, 2.3, size=(3, 5, 7)).astype(np.float32)
    folder = write_png16(tmp_path / "clip_png16", depth)
    names = leftovers(folder)
    assert names == ["depth_range.json", "frame_000000.png", "frame_000001.png", "frame_000002.png"]
    meta = json.loads((folder / "depth_range.json").read_text())
    assert meta["vmin"] == float(depth.min()) and meta["vmax"] == float(depth.max())
    pngs = np.stack([np.asarray(Image.open(folder / n)) for n in names[1:]])
    assert pngs.dtype == np.uint16 and pngs.min() == 0 and pngs.max() == 65535  # video-global, not per frame
    back = meta["vmin"] + pngs / 65535 * (meta["vmax"] - meta["vmin"])
    step = (meta["vmax"] - meta["vmin"]) / 65535
    assert np.abs(back - depth).max() <= step / 2 + 1e-9


def test_png16_given_range_clips_and_constant_depth_is_zero(tmp_path):
    depth = np.array([[[0.0, 0.5, 1.0, 2.0]]], np.float32)
    folder = write_png16(tmp_path / "p", depth, vmin=0.0, vmax=1.0)
    assert np.asarray(Image.open(folder / "frame_000000.png")).tolist() == [[0, 32768, 65535, 65535]]
    folder = write_png16(tmp_path / "c", np.full((1, 2, 2), 3.5, np.float32))
    meta = json.loads((folder / "depth_range.json").read_text())
    assert (meta["vmin"], meta["vmax"]) == (3.5, 3.5)
    assert np.asarray(Image.open(folder / "frame_000000.png")).max() == 0


def test_depth16_video_holds_the_png16_codes_bit_for_bit(tmp_path):
    """The FFV1 video is lossless: every frame's 16-bit codes equal the PNG sequence's, read by PyAV and Pillow
    directly; its tags give the range, and read_depth16 decodes the depth within half a step (float64 check)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:31, 0:47]  # odd sides: gray has no chroma to subsample, nothing is padded
    depth = np.stack([np.sin(xx / 9 + yy / 7 + i) + rng.normal(0, 0.01, xx.shape) for i in range(4)]).astype(
        np.float32)
    video = write_depth16(tmp_path / "clip_depth16.mkv", depth, Fraction(30000, 1001))
    pngs = write_png16(tmp_path / "clip_png16", depth)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.average_rate) == ("ffv1", Fraction(30000, 1001))
        tags = dict(container.metadata)
        frames = [f for f in container.decode(stream)]
        codes = np.stack([f.to_ndarray() for f in frames])
        assert [f.format.name for f in frames] == ["gray16le"] * 4 and all(f.key_frame for f in frames)
    png_codes = np.stack([np.asarray(Image.open(pngs / f"frame_{i:06d}.png")) for i in range(4)])
    assert codes.dtype == np.uint16 and codes.shape == (4, 31, 47)
    np.testing.assert_array_equal(codes, png_codes)
    meta = json.loads((pngs / "depth_range.json").read_text())
    assert (float(tags["VMIN"]), float(tags["VMAX"])) == (meta["vmin"], meta["vmax"]) == (depth.min(), depth.max())
    assert tags["MEANING"] == "relative inverse depth: larger is nearer"
    back, read_meta = read_depth16(video)
    lo, hi = float(depth.min()), float(depth.max())
    assert back.dtype == np.float32 and read_meta["vmin"] == lo and read_meta["vmax"] == hi
    assert np.abs(back.astype(np.float64) - depth.astype(np.float64)).max() <= (hi - lo) / 131070 + 1e-6
    assert np.abs(back.astype(np.float64) - depth).max() > 0  # quantised: not the floats themselves
    assert leftovers(tmp_path) == ["clip_depth16.mkv", "clip_png16"]


def test_depth16_keeps_variable_frame_times_and_the_timecode(tmp_path):
    times = [Fraction(0), Fraction(1, 25), Fraction(1, 10), Fraction(1, 5)]
    path = write_depth16(tmp_path / "v.mkv", np.random.default_rng(0).random((4, 8, 6)), 30, times=times,
                         timecode="01:00:10:05")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        shown = [f.pts * stream.time_base for f in container.decode(stream)]
        assert stream.metadata["TIMECODE"] == "01:00:10:05"
    assert shown == times  # Matroska counts milliseconds: these fall on whole ones


def test_read_depth16_refuses_other_videos_in_one_line(tmp_path):
    plain = write_video(tmp_path / "plain.mp4", smooth_frames(2, 16, 16), 25)
    for path, message in ((plain, "no VMIN/VMAX tags"), (tmp_path / "missing.mkv", "cannot read")):
        with pytest.raises(UserError, match=message):
            read_depth16(path)


def test_exr_holds_the_exact_float32_values_and_their_meaning(tmp_path, monkeypatch):
    import OpenEXR

    depth = np.random.default_rng(4).normal(size=(3, 5, 7)) * 1e3  # float64 in: stored as float32, not remapped
    folder = write_exr(tmp_path / "clip_exr", depth)
    assert leftovers(folder) == ["frame_000000.exr", "frame_000001.exr", "frame_000002.exr"]
    for index, name in enumerate(leftovers(folder)):
        raw = (folder / name).read_bytes()
        assert raw[:4] == bytes([0x76, 0x2F, 0x31, 0x01])  # OpenEXR magic number
        with OpenEXR.File(str(folder / name)) as image:
            channels = image.channels()
            assert list(channels) == ["Y"] and channels["Y"].pixels.dtype == np.float32
            np.testing.assert_array_equal(channels["Y"].pixels, depth[index].astype(np.float32))
            assert "inverse depth" in image.header()["rolldepth"]

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(OpenEXR.File, "write", fail)
    with pytest.raises(OSError):
        write_exr(tmp_path / "clip_exr", -depth)
    assert leftovers(tmp_path) == ["clip_exr"]  # no partial folder; the complete one is untouched
    with OpenEXR.File(str(folder / "frame_000000.exr")) as image:
        np.testing.assert_array_equal(image.channels()["Y"].pixels, depth[0].astype(np.float32))


def test_npy_is_float32_and_exact(tmp_path):
    depth = np.random.default_rng(5).normal(size=(2, 3, 4))
    back = np.load(write_npy(tmp_path / "d.npy", depth))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, depth.astype(np.float32))


@pytest.mark.parametrize("name", ["Spectral_r", "Greys_r", "viridis"])
def test_colorize_endpoints_are_the_colormap_ends(name):
    cmap = colormaps[name]
    depth = np.array([[[2.0, 4.0]], [[3.0, 3.0]]], np.float32)  # video-global range [2, 4]
    rgb = colorize(depth, name)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 1, 2, 3)
    assert rgb[0, 0, 0].tolist() == list(cmap(0.0, bytes=True)[:3])
    assert rgb[0, 0, 1].tolist() == list(cmap(1.0, bytes=True)[:3])
    assert rgb[1, 0, 0].tolist() == list(cmap(0.5, bytes=True)[:3])  # frame 2 is mid-range, not stretched


def test_colorize_meaning_and_range():
    near_far = np.array([[[1.0, -1.0]]], np.float32)  # inverse depth: 1 is the nearest point
    near, far = colorize(near_far, "Spectral_r")[0, 0].astype(int)
    assert near[0] > near[1] + 100 and near[0] > near[2] + 50  # near red
    assert far[2] > far[0] + 50 and far[2] > far[1] + 50  # far blue
    grey_near, grey_far = colorize(near_far, "Greys_r")[0, 0]
    assert grey_near.tolist() == [255, 255, 255] and grey_far.tolist() == [0, 0, 0]
    clipped = colorize(np.array([[[-5.0, 0.0, 5.0]]]), "Greys_r", vmin=-1, vmax=1)[0, 0, :, 0]
    assert clipped.tolist() == [0, colormaps["Greys_r"](0.5, bytes=True)[0], 255]
    assert colorize(np.full((1, 2, 2), 7.0), "Greys_r").max() == 0  # constant video: no division by zero


def test_unknown_colormap_lists_valid_names():
    with pytest.raises(UserError, match="NoSuchMap") as error:
        colorize(np.zeros((1, 2, 2)), "NoSuchMap")
    assert "Spectral_r" in str(error.value) and "viridis" in str(error.value)


def test_side_by_side_lines_up_and_resizes_rgb():
    rgb = np.full((2, 8, 12, 3), 90, np.uint8)
    depth_rgb = np.zeros((2, 4, 6, 3), np.uint8)
    frames = list(side_by_side(rgb, depth_rgb))
    assert len(frames) == 2 and frames[0].shape == (4, 12, 3)
    assert (frames[0][:, :6] == 90).all() and (frames[0][:, 6:] == 0).all()
    same = list(side_by_side(smooth_frames(1, 4, 6), depth_rgb[:1]))
    np.testing.assert_array_equal(same[0][:, :6], smooth_frames(1, 4, 6)[0])
    with pytest.raises(ValueError):
        list(side_by_side(rgb, depth_rgb[:1]))


# ----------------------------------------------------------------------------------------------------------------
# All outputs of one video
def test_save_outputs_writes_everything_readable(tmp_path):
    # Smooth depth on frames of a few macroblocks: tiny, busy frames lose a lot to yuv420p chroma subsampling.
    yy, xx = np.mgrid[0:33, 0:48]
    depth = np.stack([np.sin(xx / 32 + yy / 33 + 0.4 * i) for i in range(5)]).astype(np.float32)
    rgb = smooth_frames(5, 66, 96)  # input resolution: the side-by-side brings it to the depth's size
    fps = Fraction(24000, 1001)
    written = save_outputs(tmp_path / "out", "clip", depth, rgb, fps, save_png=True,
                           snippets={"dilation1_0": depth[:3], "dilation1_0_indices": np.arange(3)})
    out = tmp_path / "out"
    assert written == {
        "pred": out / "clip_pred.npy", "png16": out / "clip_png16", "Spectral_r": out / "clip_Spectral_r.mp4",
        "Greys_r": out / "clip_Greys_r.mp4", "rgbd": out / "clip_rgbd.mp4", "snippets": out / "clip_snippets.npz",
    }
    assert leftovers(out) == sorted(p.name for p in written.values())
    np.testing.assert_array_equal(np.load(written["pred"]), depth)
    assert len(leftovers(written["png16"])) == 6
    np.testing.assert_array_equal(np.load(written["snippets"])["dilation1_0_indices"], np.arange(3))
    for name in ("Greys_r", "Spectral_r"):
        video, average_rate, _ = read_video(written[name])
        assert video.shape == (5, 34, 48, 3) and average_rate == fps  # 33 rows padded to 34
        assert np.abs(video[:, :33].astype(int) - colorize(depth, name)).mean() < 3
    sbs, _, _ = read_video(written["rgbd"])
    assert sbs.shape == (5, 34, 96, 3)
    assert np.abs(sbs[:, :33, 48:].astype(int) - colorize(depth, "Spectral_r")).mean() < 3  # right: first cmap
    halved = rgb.reshape(5, 33, 2, 48, 2, 3).mean(axis=(2, 4))
    assert np.abs(sbs[:, :33, :48] - halved).mean() < 3  # left: the RGB, halved


def test_save_outputs_without_colormaps_and_with_a_bad_one(tmp_path):
    depth = np.zeros((2, 4, 4), np.float32)
    rgb = np.zeros((2, 4, 4, 3), np.uint8)
    written = save_outputs(tmp_path / "a", "x", depth, rgb, 25, cmaps=())
    assert list(written) == ["pred"] and leftovers(tmp_path / "a") == ["x_pred.npy"]
    with pytest.raises(UserError, match="NoSuchMap"):
        save_outputs(tmp_path / "b", "x", depth, rgb, 25, cmaps=("Greys_r", "NoSuchMap"))
    assert not (tmp_path / "b").exists()  # checked before anything was written
    with pytest.raises(ValueError, match="rgb"):
        save_outputs(tmp_path / "c", "x", depth, rgb[:1], 25)


# ----------------------------------------------------------------------------------------------------------------
# Writing on several threads
def test_write_each_writes_every_frame_it_was_given_on_threads(tmp_path):
    # The reader reuses one buffer, as a decoder might: each frame must be copied before a thread gets it.
    buffer = np.empty((4, 4), np.float32)

    def frames():
        for i in range(30):
            buffer[:] = i
            yield tmp_path / f"{i}.npy", buffer

    def write(path, frame):
        time.sleep(0.002)  # the reader runs ahead meanwhile
        np.save(path, frame)

    write_each(frames(), write, threads=3)
    for i in range(30):
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), np.full((4, 4), i, np.float32))


def test_write_each_stops_reading_at_the_first_error_and_waits_for_its_threads():
    read, running, finished = [], [0], []
    lock = threading.Lock()

    def frames():
        for i in range(1000):
            read.append(i)
            yield Path(f"{i}"), np.zeros(1)

    def write(path, frame):
        with lock:
            running[0] += 1
        time.sleep(0.005)
        with lock:
            running[0] -= 1
        if path.name == "5":
            raise OSError("disk full")
        finished.append(path.name)

    with pytest.raises(OSError, match="disk full"):
        write_each(frames(), write, threads=2)
    assert running[0] == 0  # no thread still writing when the error reaches the caller
    assert len(read) <= 6 + 2 * 2 + 1  # at most two frames a thread were waiting past the failing one
    assert "999" not in finished


def test_write_each_holds_no_more_frames_than_its_memory_allows(monkeypatch):
    frame = np.zeros((100, 100), np.float32)
    monkeypatch.setattr(writers, "WRITE_MEMORY_BYTES", 4 * frame.nbytes * 3)  # room for three frames in flight
    read, written, most, lock = [0], [0], [0], threading.Lock()

    def frames():
        for i in range(40):
            read[0] += 1
            most[0] = max(most[0], read[0] - written[0])
            yield Path(f"{i}"), frame

    def write(path, frame):
        time.sleep(0.003)
        with lock:
            written[0] += 1

    write_each(frames(), write, threads=8)
    assert written[0] == 40
    assert most[0] <= 3 + 1  # three in flight, and the one just read that waits for a place


class SlowDepth:
    """A depth video whose frames take ``delay`` seconds each to read, counting the reads (like a slow disk)."""

    def __init__(self, depth: np.ndarray, delay: float):
        self.depth, self.delay, self.reads = depth, delay, 0
        self.shape, self.dtype = depth.shape, depth.dtype

    def __len__(self):
        return len(self.depth)

    def __getitem__(self, key):
        if not isinstance(key, slice):  # whole-video slices are the range scan, before any writer starts
            self.reads += 1
            time.sleep(self.delay)
        return self.depth[key]


def test_save_outputs_stops_every_writer_at_the_first_failure(tmp_path):
    depth = SlowDepth(np.random.default_rng(0).random((100, 16, 16), dtype=np.float32), 0.02)

    def rgb_then_full_disk():
        for i in range(100):
            if i == 2:
                raise OSError("disk full")
            yield np.zeros((16, 16, 3), np.uint8)

    with pytest.raises(OSError, match="disk full"):
        save_outputs(tmp_path, "clip", depth, rgb_then_full_disk(), 25, save_npy=False, save_png=True, save_exr=True)
    # png16, exr, two colormaps and rgbd would read 500 frames to the end; each stopped at its next one instead
    assert depth.reads < 100
    assert leftovers(tmp_path) == []  # nothing under a final name, no partial file


def test_ctrl_c_while_writing_stops_every_writer_and_leaves_nothing(tmp_path):
    depth = SlowDepth(np.random.default_rng(0).random((100, 16, 16), dtype=np.float32), 0.02)
    rgb = np.zeros((100, 16, 16, 3), np.uint8)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            save_outputs(tmp_path, "clip", depth, rgb, 25, save_npy=False, save_png=True, save_exr=True)
    finally:
        timer.cancel()
    assert depth.reads < 300  # 500 to finish; each writer stopped within a frame of Ctrl-C
    assert leftovers(tmp_path) == []


def test_save_outputs_of_a_disk_backed_video_equal_those_of_the_array(tmp_path):
    # Every writer reads the same file at once: a seek and its read must not interleave with another thread's.
    depth = np.random.default_rng(1).random((40, 24, 32), dtype=np.float32)
    on_disk = NpyArray.create(tmp_path / "depth.npy", depth.shape)
    on_disk[:] = depth
    on_disk.flush()
    kwargs = dict(save_png=True, save_exr=True, save_depth16=True, cmaps=("Greys_r", "Spectral_r"))
    from_disk = save_outputs(tmp_path / "disk", "clip", NpyArray(tmp_path / "depth.npy"), None, 25, **kwargs)
    from_memory = save_outputs(tmp_path / "memory", "clip", depth, None, 25, **kwargs)
    assert list(from_disk) == list(from_memory) == ["pred", "png16", "exr", "depth16", "Greys_r", "Spectral_r"]
    assert from_disk["depth16"].name == "clip_depth16.mkv"
    np.testing.assert_array_equal(np.load(from_disk["pred"]), depth)
    for name in leftovers(from_memory["png16"]):
        assert (from_disk["png16"] / name).read_bytes() == (from_memory["png16"] / name).read_bytes()
    np.testing.assert_array_equal(read_depth16(from_disk["depth16"])[0], read_depth16(from_memory["depth16"])[0])
    still = save_outputs(tmp_path / "still", "photo", depth[:1], None, 25, still=True, **kwargs)
    assert "depth16" not in still  # its 16-bit PNG holds the values
    for key in ("Greys_r", "Spectral_r"):
        np.testing.assert_array_equal(read_video(from_disk[key])[0], read_video(from_memory[key])[0])

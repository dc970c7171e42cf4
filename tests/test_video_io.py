"""Input side: listing, probing and decoding videos/image sequences the tests encode themselves, and resizing
checked against a float64 triangle-filter reference and closed forms."""

from __future__ import annotations

import sys
import types
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import damage, encode_hdr, nits_to_pq, pattern_frames
from rolldepth.errors import UserError
from rolldepth.video import hdr, reading
from rolldepth.video.reading import (
    check_sequence,
    frame_clock,
    iter_frames,
    list_inputs,
    load_rgb8,
    probe,
    processing_size,
    read_frames,
    resize_depth,
    sequence_gaps,
    resize_frames,
    stored_orientation,
)

H, W = 32, 48


def gradient_frames(n: int = 24, height: int = H, width: int = W) -> np.ndarray:
    """A gradient that moves 3 px per frame plus a per-frame blue level: every frame differs and is identifiable."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([
        np.stack([(xx * 5 + 3 * i) % 256, yy * 7, np.full_like(xx, 10 * i)], axis=-1).astype(np.uint8)
        for i in range(n)
    ])


def encode(
    path: Path, frames: np.ndarray, fps: Fraction = Fraction(25), fmt: str | None = None, rotation: int = 0,
    pixel_aspect: Fraction | None = None,
) -> Path:
    """Near-lossless H.264 (yuv444p, qp 0) written with PyAV directly, independent of rolldepth's writer;
    ``rotation`` is a display rotation (degrees counter-clockwise) as phones record it, ``pixel_aspect`` the
    sample aspect ratio of HDV (4/3) or DV (8/9) cameras."""
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=fps, options={"qp": "0"})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv444p"
        if rotation:
            stream.set_display_rotation(rotation)
        if pixel_aspect:
            stream.codec_context.sample_aspect_ratio = pixel_aspect
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def encode_vfr(path: Path, frames: np.ndarray, times_ms: list[int]) -> Path:
    """H.264 with each frame at its own time (milliseconds), as phones record: a variable frame rate."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30, options={"qp": "0"})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv444p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for frame, t in zip(frames, times_ms):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    return path


VFR_MS = [33 * i for i in range(12)] + [363 + 100 * i for i in range(1, 13)]  # 30 fps, then 10 fps


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_header_only_mkv(path: Path) -> Path:
    """A Matroska file cut right after the ID of its first Cluster element: the header declares a video stream,
    but no frame follows."""
    data = encode(path, gradient_frames(4)).read_bytes()
    path.write_bytes(data[: data.index(b"\x1f\x43\xb6\x75") + 4])
    return path


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return gradient_frames()


@pytest.fixture(scope="module")
def video(tmp_path_factory, frames) -> Path:
    return encode(tmp_path_factory.mktemp("video") / "clip.mp4", frames, Fraction(30000, 1001))


# ----------------------------------------------------------------------------------------------------------------
# Videos
def test_frame_times_of_a_variable_rate_video_and_none_for_a_constant_one(tmp_path, frames, video):
    vfr = encode_vfr(tmp_path / "vfr.mp4", frames, VFR_MS)
    info = probe(vfr)
    times = frame_clock(info, 0, info.n_frames)[1]
    assert len(times) == 24 and np.allclose([float(t) for t in times], np.array(VFR_MS) / 1000, atol=1e-4)
    start, window = frame_clock(info, 10, 20)  # seconds from the window's first frame, shown at VFR_MS[10]
    assert np.allclose([float(t) for t in window], (np.array(VFR_MS[10:20]) - VFR_MS[10]) / 1000, atol=1e-4)
    assert abs(float(start) - (VFR_MS[10] - VFR_MS[0]) / 1000) < 1e-4
    assert frame_clock(probe(video), 0, 24)[1] is None  # 30000/1001 times every frame: nothing to keep
    folder = tmp_path / "seq"
    folder.mkdir()
    for i, frame in enumerate(frames[:3]):
        Image.fromarray(frame).save(folder / f"{i}.png")
    assert frame_clock(probe(folder), 1, 3) == (Fraction(1) / probe(folder).fps, None)


@pytest.mark.parametrize("fps, fmt, suffix", [(Fraction(30000, 1001), None, "mp4"), (Fraction(25), "matroska", "mkv")])
def test_probe_and_read_back_what_was_encoded(tmp_path, frames, fps, fmt, suffix):
    path = encode(tmp_path / f"clip.{suffix}", frames, fps, fmt)
    info = probe(path)
    assert (info.n_frames, info.width, info.height, info.path) == (24, W, H, path)
    assert isinstance(info.fps, Fraction) and info.fps == fps
    back = read_frames(path)
    assert back.dtype == np.uint8 and back.shape == (24, H, W, 3)
    # qp 0 in yuv444p is lossless in YUV; only the RGB<->YUV rounding remains (measured max 2 levels).
    assert np.abs(back.astype(int) - frames).max() <= 3


def test_frame_count_does_not_rely_on_the_header(tmp_path, frames):
    path = encode(tmp_path / "clip.mkv", frames[:10], fmt="matroska")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # Matroska declares no count: it must be counted
    assert probe(path).n_frames == 10


def test_windows_match_the_full_read(video, frames):
    full = read_frames(video)
    np.testing.assert_array_equal(read_frames(video, start=5, count=7), full[5:12])
    np.testing.assert_array_equal(read_frames(video, start=20), full[20:])
    np.testing.assert_array_equal(read_frames(video, start=22, count=50), full[22:])  # clipped at the end
    np.testing.assert_array_equal(read_frames(video, start=23, count=1), full[23:])


@pytest.mark.parametrize("rotation, turns", [(90, 1), (-90, 3), (180, 2)])
def test_display_rotation_is_applied(tmp_path, frames, rotation, turns):
    """A portrait phone video: landscape pixels plus a display rotation. The frames must come out as a player
    shows them (np.rot90 turns counter-clockwise, like the display matrix angle)."""
    path = encode(tmp_path / "phone.mp4", frames[:3], rotation=rotation)
    info = probe(path)
    expected = np.rot90(frames[:3], turns, axes=(1, 2))
    assert (info.height, info.width) == expected.shape[1:3]
    back = read_frames(path)
    assert back.shape == expected.shape and back.flags.c_contiguous
    assert np.abs(back.astype(int) - expected).max() <= 3
    # --no-autorotate: the stored pixels, as the official code reads them
    stored = probe(path, autorotate=False)
    assert (stored.height, stored.width) == frames.shape[1:3]
    raw = read_frames(path, autorotate=False)
    assert raw.shape == frames[:3].shape
    assert np.abs(raw.astype(int) - frames[:3]).max() <= 3
    np.testing.assert_array_equal(np.stack(list(iter_frames(path, 1, 1, autorotate=False))), raw[1:2])
    # a prediction of the upright frames goes back onto the stored pixels (own footage's depth is often stored so)
    np.testing.assert_array_equal(np.moveaxis(stored_orientation(path)(np.moveaxis(back, -1, 1)), 1, -1), raw)
    assert stored_orientation(encode(tmp_path / "plain.mp4", frames[:3])) is None


@pytest.mark.parametrize("pixel_aspect, width", [(Fraction(4, 3), 64), (Fraction(8, 9), 43)])
def test_non_square_pixels_are_read_at_the_shape_they_are_shown_in(tmp_path, pixel_aspect, width):
    """HDV (1440x1080 shown as 1920x1080) and DV (720x480 shown as 640x480): the model must see a round wheel
    round. The frames come out resampled to the display's width, the height kept; --no-autorotate keeps the
    stored pixels."""
    xx = np.broadcast_to(np.arange(48), (36, 48))
    ramp = np.stack([xx * 5, np.full_like(xx, 90), np.full_like(xx, 160)], axis=-1).astype(np.uint8)  # 0..235
    path = encode(tmp_path / "hdv.mp4", np.stack([ramp] * 3), pixel_aspect=pixel_aspect)
    info = probe(path)
    assert (info.width, info.height, info.pixel_aspect) == (width, 36, pixel_aspect)  # 48 x 4/3, 48 x 8/9 rounded
    shown = read_frames(path)
    assert shown.shape == (3, 36, width, 3)
    # a linear resampling of a ramp is the ramp at the output pixels' centres, mapped back onto the stored ones
    centres = (np.arange(width) + 0.5) * 48 / width - 0.5
    inside = (centres >= 0) & (centres <= 47)  # the edges are clamped
    assert np.abs(shown[0, 18, inside, 0] - 5 * centres[inside]).max() <= 3
    stored = probe(path, autorotate=False)
    assert (stored.width, stored.height) == (48, 36)
    assert np.abs(read_frames(path, autorotate=False)[0].astype(int) - ramp).max() <= 3
    turned = encode(tmp_path / "turned.mp4", np.stack([ramp] * 3), rotation=90, pixel_aspect=pixel_aspect)
    assert read_frames(turned).shape == (3, width, 36, 3) and (probe(turned).width, probe(turned).height) == (36, width)


def camcorder_fields(n_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Interlaced frames as a camcorder takes them: a bar moving 3 px a field, the even lines from one field (time
    2i), the odd lines from the next (2i + 1), so its edges comb; the right part of the picture stands still."""
    frames = np.full((n_frames, height, width, 3), 40, np.uint8)
    for i in range(n_frames):
        for y in range(height):
            t = 2 * i + y % 2
            frames[i, y, 8 + 3 * t : 20 + 3 * t] = 220
    frames[:, :, 50:] = 120
    return frames


def combing(frames: np.ndarray) -> np.ndarray:
    """Per frame, how far each line is from the mean of its neighbours: large where fields disagree."""
    g = frames[..., 1].astype(float)
    return np.abs(g[:, 1:-1] - (g[:, :-2] + g[:, 2:]) / 2).mean(axis=(1, 2))


def encode_interlaced(path: Path) -> tuple[Path, np.ndarray]:
    """:func:`camcorder_fields` coded interlaced by x264 (which flags the frames so), and the frames stored, as
    PyAV alone decodes them."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25, options={"qp": "0", "x264-params": "interlaced=1:tff=1"})
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv444p"
        for frame in camcorder_fields(6):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        return path, np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_interlaced_frames_are_deinterlaced_one_for_one(tmp_path, video):
    path, raw = encode_interlaced(tmp_path / "dv.mp4")
    assert probe(path).interlaced and not probe(video).interlaced
    frames = read_frames(path)
    assert frames.shape == raw.shape  # a frame for each frame
    assert (combing(frames) < 0.1 * combing(raw)).all()  # 16.9 -> 0.6 and below
    assert np.abs(frames[:, :, 52:].astype(int) - raw[:, :, 52:]).max() <= 2  # what stands still is untouched
    np.testing.assert_array_equal(read_frames(path, start=3, count=2), frames[3:5])  # same frames in a window
    np.testing.assert_array_equal(read_frames(path, autorotate=False), raw)  # --no-autorotate: as stored


def test_interlaced_frames_without_a_deinterlacer_are_read_as_stored(tmp_path, monkeypatch, caplog):
    path, raw = encode_interlaced(tmp_path / "dv.mp4")

    real_add = av.filter.Graph.add

    def without_yadif(self, filter, *args, **kwargs):  # an FFmpeg built without it
        if filter == "yadif":
            raise ValueError(f"no filter named {filter}")
        return real_add(self, filter, *args, **kwargs)

    monkeypatch.setattr(av.filter.Graph, "add", without_yadif)
    np.testing.assert_array_equal(read_frames(path), raw)
    assert "deinterlacer is unavailable (ValueError: no filter named yadif)" in caplog.text


def test_hdr_video_is_seen_as_the_sdr_picture(tmp_path, video):
    """A phone's PQ video read as if it were SDR shows diffuse white as grey (58 %) and BT.2020 colours washed out.
    Decoded, its diffuse white (203 nits) is SDR's near-white, 18 % grey is 18 % of it through the 2.4 gamma, and a
    colour keeps its BT.709 values; an HLG video's 75 % code value is the same white."""
    sdr = np.array([[0.5, 0.2, 0.1], [1.0, 1.0, 1.0], [0.18, 0.18, 0.18]])  # linear BT.709, diffuse white = 1
    in_bt2020 = sdr @ np.linalg.inv(hdr.BT2020_TO_BT709.astype(float)).T * 203  # nits on BT.2020 primaries
    codes = np.repeat(nits_to_pq(in_bt2020)[None], 8, axis=1).repeat(8, axis=0).reshape(8, 3, 8, 3)
    path = encode_hdr(tmp_path / "pq.mp4", codes.reshape(8, 24, 3), hdr.PQ)
    assert probe(path).hdr == "PQ" and probe(video).hdr is None
    frames = read_frames(path)
    assert frames.shape == (2, 8, 24, 3)
    expected = np.round(255 * hdr.roll_off(sdr) ** (1 / 2.4))  # [191, 131, 98], 241 and 125
    assert expected[1, 0] == 241 and expected[2, 0] == 125
    assert np.abs(frames[:, 4, 4::8].astype(int) - expected).max() <= 3
    stored = read_frames(path, autorotate=False)[0, 4, 12]  # --no-autorotate: the code values as SDR
    assert np.abs(stored.astype(int) - 148).max() <= 3  # diffuse white shown at 58 %

    hlg = encode_hdr(tmp_path / "hlg.mp4", np.full((8, 8, 3), 0.75), hdr.HLG)
    assert probe(hlg).hdr == "HLG"
    assert np.abs(read_frames(hlg)[:, 4, 4].astype(int) - 241).max() <= 3


@pytest.mark.parametrize("interlaced", [False, True])
def test_a_frame_that_cannot_be_decoded_is_stood_in_for_and_the_others_keep_their_place(tmp_path, caplog, interlaced):
    rng = np.random.default_rng(3)
    frames = (rng.random((12, 48, 64, 3)) * 255).astype(np.uint8)
    params = "keyint=1" + (":interlaced=1:tff=1" if interlaced else "")  # intra only: a lost frame is no reference
    intact = tmp_path / "intact.mp4"
    with av.open(str(intact), mode="w") as container:
        stream = container.add_stream("libx264", rate=25, options={"qp": "0", "x264-params": params})
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    good = read_frames(intact)
    damaged = damage(intact, [0, 5, 6], tmp_path / "damaged.mp4")
    assert probe(damaged).n_frames == 12
    back = read_frames(damaged)
    assert back.shape == good.shape  # every frame keeps its number (and time)
    # yadif looks at the neighbours: a frame next to a lost one is deinterlaced from its stand-in
    for k in (2, 3, 8, 9, 10, 11) + (() if interlaced else (1, 4, 7)):
        np.testing.assert_array_equal(back[k], good[k])
    np.testing.assert_array_equal(back[0], back[1])  # no frame before it: the next one
    np.testing.assert_array_equal(back[5], back[4])
    np.testing.assert_array_equal(back[6], back[4])
    np.testing.assert_array_equal(read_frames(damaged, start=5, count=3), back[5:8])
    assert "damaged.mp4: frame 5 could not be decoded (damaged data): the frame before it stands in" in caplog.text


class FakePacket:
    """A packet whose decoding gives ``frames`` (their timestamps) or is rejected (``frames`` None)."""

    def __init__(self, pts, frames, size=1, is_discard=False):
        self.pts, self.frames, self.size, self.is_discard = pts, frames, size, is_discard

    def decode(self):
        if self.frames is None:
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
        return [types.SimpleNamespace(pts=t) for t in self.frames]


def test_gaps_are_placed_by_timestamp_however_late_the_decoder_reports_them():
    from rolldepth.video.decoding import frames_or_gaps

    def shown(packets):
        return [None if f is None else f.pts for f in frames_or_gaps(packets)]

    # frame threads: the decoder gives each frame two packets late, and rejects packet 2 when packet 4 is sent
    late = [FakePacket(0, []), FakePacket(1, []), FakePacket(2, [0]), FakePacket(3, [1]), FakePacket(4, None),
            FakePacket(5, [3]), FakePacket(None, [4, 5], size=0)]
    assert shown(late) == [0, 1, None, 3, 4, 5]
    # a frame that never comes without a rejection is left out, as FFmpeg leaves it; one hidden by an edit list
    # is no frame at all
    assert shown([FakePacket(0, [0]), FakePacket(1, []), FakePacket(2, [2])]) == [0, 2]
    assert shown([FakePacket(-1, [], is_discard=True), FakePacket(0, [0])]) == [0]
    # the last frames rejected, or a rejected packet without a timestamp: gaps at the end
    assert shown([FakePacket(0, [0]), FakePacket(1, None), FakePacket(None, None)]) == [0, None, None]


def test_a_file_damaged_throughout_is_refused_in_a_few_lines(tmp_path, caplog):
    frames = (np.random.default_rng(4).random((12, 48, 64, 3)) * 255).astype(np.uint8)
    intact = encode(tmp_path / "intact.mp4", frames)
    dead = damage(intact, list(range(12)), tmp_path / "dead.mp4")
    with pytest.raises(UserError, match="no frame of .*dead.mp4 could be decoded"):
        read_frames(dead)
    assert len([r for r in caplog.records if "dead.mp4" in r.getMessage()]) == 4  # three named, then one line


def test_a_thumbnail_track_ahead_of_the_video_is_not_read_as_the_video(tmp_path):
    """Downloads and some cameras put a cover picture or a thumbnail track first: the video is the stream FFmpeg's
    players would show, not stream 0."""
    import io

    cover = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(cover, format="JPEG")
    frames = pattern_frames(10, 48, 64)
    path = tmp_path / "download.mkv"
    with av.open(str(path), mode="w") as container:
        thumbnail = container.add_stream("mjpeg", rate=1)
        thumbnail.width, thumbnail.height, thumbnail.pix_fmt = 32, 32, "yuvj420p"
        stream = container.add_stream("libx264", rate=25, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        packet = av.Packet(cover.getvalue())
        packet.stream, packet.pts, packet.dts = thumbnail, 0, 0
        container.mux(packet)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mjpeg"  # the thumbnail is stream 0
    info = probe(path)
    assert (info.n_frames, info.width, info.height) == (10, 64, 48)
    assert np.abs(read_frames(path).astype(int) - frames).max() <= 3


def test_a_video_trimmed_by_an_edit_list_has_only_its_shown_frames(tmp_path, caplog):
    """A phone's "trim" keeps the frames before the cut that the first shown frame is decoded from, and an edit list
    that hides them: FFmpeg decodes and drops them, and they are no frames of the video (before, they were counted,
    and the video was short of them at its end)."""
    frames = pattern_frames(48, 48, 64)
    full = encode(tmp_path / "full.mp4", frames)  # one keyframe: every frame is decoded from frame 0
    trimmed = tmp_path / "trimmed.mp4"
    with av.open(str(full)) as source, av.open(str(trimmed), mode="w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        cut = round(Fraction(10, 25) / source.streams.video[0].time_base)  # frame 10 becomes time 0
        for packet in source.demux(video=0):
            if packet.size:
                packet.pts, packet.dts, packet.stream = packet.pts - cut, packet.dts - cut, stream
                out.mux(packet)  # frames 0-9 at negative times: the muxer's edit list hides them
    info = probe(trimmed)
    assert info.n_frames == 38
    assert np.abs(read_frames(trimmed).astype(int) - frames[10:]).max() <= 3
    assert frame_clock(info, 5, 38)[0] == Fraction(1, 5)  # frame 5 of the trimmed video is shown at 0.2 s
    assert "could not be decoded" not in caplog.text


@pytest.mark.parametrize("name, codec, pixels, options", [
    ("vp9.webm", "libvpx-vp9", "yuv420p", {}),
    ("vp8.webm", "libvpx", "yuv420p", {"auto-alt-ref": "1", "lag-in-frames": "16"}),  # hidden alt-ref frames
    ("hevc10.mp4", "libx265", "yuv420p10le", {"x265-params": "log-level=error"}),  # B-frames, 10 bits
    ("bframes.ts", "libx264", "yuv420p", {"bf": "3"}),
    ("mpeg2.mpg", "mpeg2video", "yuv420p", {"bf": "2"}),
    ("anim.gif", "gif", "rgb8", {}),
])
def test_every_codec_gives_as_many_frames_as_probe_counts(tmp_path, name, codec, pixels, options):
    """The frame count (from packets) and the frames decoded agree, whatever reorders, hides or packs frames."""
    path = tmp_path / name
    try:
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream(codec, rate=25, options=options)
            stream.width, stream.height, stream.pix_fmt = 64, 48, pixels
            for frame in pattern_frames(30, 48, 64):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
    except (av.FFmpegError, ValueError) as exc:  # a PyAV build without that encoder
        pytest.skip(f"{codec}: {exc}")
    assert probe(path).n_frames == len(read_frames(path)) == 30


def test_iter_frames_is_lazy_and_checks_eagerly(video):
    full = read_frames(video)
    frames = iter_frames(video, start=3, count=4)
    assert not isinstance(frames, (list, np.ndarray))
    np.testing.assert_array_equal(next(frames), full[3])
    frames.close()  # abandoning it half-way must be fine (the container is closed by the generator)
    assert sum(1 for _ in iter_frames(video, start=3, count=4)) == 4
    with pytest.raises(UserError, match="past the end"):
        iter_frames(video, start=24)  # raised at the call, before any next()


@pytest.mark.parametrize(
    "make, start, count, message",
    [
        (lambda d: d / "missing.mp4", 0, 0, "not found"),
        (lambda d: d / "clip.mp4", 24, 0, "past the end"),
        (lambda d: d / "clip.mp4", -1, 0, ">= 0"),
        (lambda d: d / "clip.mp4", 0, -2, ">= 0"),
        (lambda d: _write(d / "junk.mp4", b"\x00not a video" * 50), 0, 0, "cannot read"),
        (lambda d: _write(d / "empty.mp4", b""), 0, 0, "cannot read"),
        (lambda d: write_audio_only(d / "voice.mp4"), 0, 0, "no video stream"),
        (lambda d: write_header_only_mkv(d / "nothing.mkv"), 0, 0, "no frames"),
    ],
)
def test_bad_videos_and_windows_are_user_errors(tmp_path, frames, make, start, count, message):
    encode(tmp_path / "clip.mp4", frames, Fraction(25))
    path = make(tmp_path)
    with pytest.raises(UserError, match=message) as error:
        read_frames(path, start, count)
    assert path.name in str(error.value) or message == ">= 0"
    if message not in ("past the end", ">= 0"):
        with pytest.raises(UserError, match=message):
            probe(path)


def test_header_only_file_really_declares_a_video_stream(tmp_path):
    with av.open(str(write_header_only_mkv(tmp_path / "nothing.mkv"))) as container:
        assert len(container.streams.video) == 1


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Image sequences
def test_image_sequence_natural_order_mixed_formats(tmp_path, frames):
    seq = tmp_path / "shot"
    seq.mkdir()
    suffixes = [".png", ".bmp", ".tif", ".webp", ".jpg"]
    for i in range(12):  # frame1, frame2, ..., frame11: plain string order would put frame10 after frame1
        suffix = suffixes[i % len(suffixes)]
        options = {"lossless": True} if suffix == ".webp" else {}
        Image.fromarray(frames[i]).save(seq / f"frame{i + 1}{suffix}", **options)
    (seq / ".frame0.png").write_bytes(b"hidden AppleDouble junk")
    (seq / "notes.txt").write_text("not a frame")

    info = probe(seq)
    assert (info.n_frames, info.width, info.height, info.fps) == (12, W, H, Fraction(30))
    assert probe(seq, fps=Fraction(24000, 1001)).fps == Fraction(24000, 1001)
    assert probe(seq, fps=30000 / 1001).fps == Fraction(30000, 1001)  # a float NTSC rate recovered exactly
    with pytest.raises(UserError, match="frame rate must be > 0"):
        probe(seq, fps=0)
    back = read_frames(seq)
    assert back.shape == (12, H, W, 3)
    for i in range(12):
        if suffixes[i % len(suffixes)] == ".jpg":  # lossy: the blue level 10*i still identifies the frame
            assert abs(back[i, ..., 2].mean() - 10 * i) < 3
        else:
            np.testing.assert_array_equal(back[i], frames[i])
    np.testing.assert_array_equal(read_frames(seq, start=9, count=2), back[9:11])


def test_sequence_with_a_frame_of_another_size_names_it(tmp_path, frames):
    seq = tmp_path / "shot"
    seq.mkdir()
    for i in range(3):
        Image.fromarray(frames[i]).save(seq / f"{i}.png")
    Image.fromarray(frames[3][:, :-2]).save(seq / "3.png")
    with pytest.raises(UserError, match=r"3\.png is 46x32 but the sequence is 48x32"):
        read_frames(seq)
    assert len(read_frames(seq, count=3)) == 3  # the window before it is fine


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"random bytes" * 9, None])
def test_corrupt_image_in_sequence_names_it(tmp_path, frames, data):
    seq = tmp_path / "shot"
    seq.mkdir()
    for i in range(3):
        Image.fromarray(frames[i]).save(seq / f"{i}.png")
    if data is None:  # a truncated real PNG
        full = (seq / "2.png").read_bytes()
        data = full[: len(full) // 2]
    (seq / "2.png").write_bytes(data)
    with pytest.raises(UserError, match=r"2\.png"):
        read_frames(seq)


def write_exr(path: Path, channels: dict[str, np.ndarray]) -> Path:
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, channels) as image:
        image.write(str(path))
    return path


def test_exr_plates_are_read_as_srgb_sequences(tmp_path):
    """VFX plates are scene-linear EXR: each value goes through the sRGB curve, written out here in float64."""
    linear = np.array([0.0, 0.002, 0.0031308, 0.18, 0.5, 1.0, 4.0, np.nan], dtype=np.float64)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.abs(linear) ** (1 / 2.4) - 0.055)
    expected = np.rint(np.nan_to_num(srgb.clip(0, 1)) * 255).astype(np.uint8)  # 0.18 -> 118, 4.0 -> 255, nan -> 0
    assert list(expected[[0, 3, 5]]) == [0, 118, 255]
    seq = tmp_path / "plate"
    seq.mkdir()
    row = np.tile(linear.astype(np.float32), (3, 1))  # 3 x 8 pixels
    for i in range(3):
        rgb = np.stack([row, np.roll(row, i, axis=1), row[:, ::-1]], axis=-1).astype(np.float16)
        write_exr(seq / f"plate.{1001 + i}.exr", {"RGB": rgb})
    write_exr(tmp_path / "grey.exr", {"Y": row})
    info = probe(seq)
    assert (info.n_frames, info.width, info.height) == (3, 8, 3)
    check_sequence(seq)
    frames = read_frames(seq)
    assert frames.shape == (3, 3, 8, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[2, 0, :, 0], expected)
    np.testing.assert_array_equal(frames[2, 0, :, 1], np.roll(expected, 2))
    np.testing.assert_array_equal(load_rgb8(tmp_path / "grey.exr")[1], np.repeat(expected[:, None], 3, axis=1))
    write_exr(seq / "plate.1004.exr", {"Z": row})
    with pytest.raises(UserError, match=r"plate\.1004\.exr has no R, G, B or Y channels \(it has Z\)"):
        read_frames(seq)
    (seq / "plate.1004.exr").write_bytes(b"v/1\x01" + b"\x00" * 40)
    with pytest.raises(UserError, match=r"cannot read image .*plate\.1004\.exr"):
        check_sequence(seq)


def write_dpx(path: Path, rgb10: np.ndarray) -> Path:
    """A 10-bit RGB DPX image (FFmpeg's encoder, through PyAV) of uint16 [H, W, 3] values in 0..1023."""
    height, width = rgb10.shape[:2]
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("dpx", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "gbrp10le"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb10, dtype=np.uint16), format="gbrp10le")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def test_dpx_plates_are_read_through_ffmpeg(tmp_path):
    """DPX, the film-scan format Pillow cannot open: 10-bit code values come back as 8 bits within one step of
    round(v * 255 / 1023), each channel in its place; a damaged file is one error naming it."""
    ramp = np.arange(1024, dtype=np.uint16).reshape(32, 32)
    seq = tmp_path / "plate"
    seq.mkdir()
    for i in range(3):
        write_dpx(seq / f"plate.{1001 + i}.dpx", np.stack([np.roll(ramp, i, axis=1), ramp[::-1], ramp.T], axis=-1))
    info = probe(seq)
    assert (info.n_frames, info.width, info.height) == (3, 32, 32)
    check_sequence(seq)
    frames = read_frames(seq)
    expected = np.rint(np.stack([np.roll(ramp, 2, axis=1), ramp[::-1], ramp.T], axis=-1) * (255 / 1023))
    assert frames.dtype == np.uint8 and np.abs(frames[2].astype(int) - expected).max() <= 1
    (seq / "plate.1004.dpx").write_bytes(b"SDPX" + b"\x00" * 100)
    with pytest.raises(UserError, match=r"cannot read image .*plate\.1004\.dpx: its header gives no picture size"):
        check_sequence(seq)
    data = (seq / "plate.1002.dpx").read_bytes()
    (seq / "plate.1004.dpx").write_bytes(data[: len(data) // 2])  # the header is whole, the pixels are not
    with pytest.raises(UserError, match=r"cannot read image .*plate\.1004\.dpx"):
        read_frames(seq)


def save_with_orientation(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif)
    return path


@pytest.mark.parametrize("orientation, upright", [
    (1, lambda a: a),
    (3, lambda a: a[::-1, ::-1]),  # turned half way
    (6, lambda a: np.rot90(a, -1)),  # the usual portrait phone photo: turn a quarter clockwise to view
    (8, lambda a: np.rot90(a, 1)),
    (2, lambda a: a[:, ::-1]),  # mirrored
    (5, lambda a: a.transpose(1, 0, 2)),  # transposed
])
def test_photos_are_read_upright_as_their_exif_orientation_says(tmp_path, orientation, upright):
    """Phones store the sensor's pixels plus an EXIF orientation: read upright, as viewers show it (the
    expectation written with numpy from the EXIF definitions); --no-autorotate reads the stored pixels."""
    stored = np.zeros((6, 10, 3), np.uint8)
    stored[..., 0] = np.arange(10) * 25  # columns and rows told apart in two channels
    stored[..., 1] = np.arange(6)[:, None] * 40
    seq = tmp_path / "burst"
    seq.mkdir()
    for i in range(2):
        save_with_orientation(seq / f"IMG_{i}.png", stored, orientation)
    frames = read_frames(seq)
    np.testing.assert_array_equal(frames[1], upright(stored))
    info = probe(seq)
    assert (info.height, info.width) == upright(stored).shape[:2]
    check_sequence(seq)
    np.testing.assert_array_equal(read_frames(seq, autorotate=False)[0], stored)
    assert (probe(seq, autorotate=False).height, probe(seq, autorotate=False).width) == (6, 10)
    undo = stored_orientation(seq)
    assert (undo is None) == (orientation == 1)
    if undo is not None:  # the inverse of each turn and flip: the upright frames' channels go back to the stored
        np.testing.assert_array_equal(np.moveaxis(undo(np.moveaxis(frames, -1, 1)), 1, -1)[1], stored)
    if orientation in (6, 8):  # a sequence turned one way, then another: sizes differ once upright
        save_with_orientation(seq / "IMG_1.png", stored, 1)
        with pytest.raises(UserError, match="all images of a sequence must have the same size"):
            check_sequence(seq)
        check_sequence(seq, autorotate=False)


def test_a_jpeg_from_a_phone_is_turned_and_its_size_known_from_the_header(tmp_path):
    """JPEG, the phones' format: the tagged file decodes to the untagged one's pixels turned a quarter clockwise, and
    the header check reports the upright size."""
    stored = pattern_frames(1)[0]
    save_with_orientation(tmp_path / "tagged.jpg", stored, 6)
    Image.fromarray(stored).save(tmp_path / "plain.jpg")
    plain = load_rgb8(tmp_path / "plain.jpg")
    np.testing.assert_array_equal(load_rgb8(tmp_path / "tagged.jpg"), np.rot90(plain, -1))
    info = probe(tmp_path / "tagged.jpg")
    assert (info.width, info.height) == (stored.shape[0], stored.shape[1])


@pytest.mark.parametrize("names, message", [
    (["plate.1001", "plate.1002", "plate.1003"], None),
    (["0", "10", "20", "30"], None),  # every tenth frame: a stride, not a gap
    (["frame", "other"], None),  # no frame numbers: nothing to say
    (["plate.1001", "plate.1002", "plate.1004", "plate.1005", "plate.1009"],
     "jump from 1002 to 1004, and 1 more jump"),
    (["0", "10", "30", "40"], "jump from 10 to 30:"),
    (["shotA.0001", "shotA.0002", "shotB.0001"], "2 name patterns (shotA.####, shotB.####)"),
])
def test_gaps_in_a_sequences_numbering_are_named(names, message):
    found = sequence_gaps(names)
    assert found is None if message is None else message in found


def test_a_sequence_with_a_missing_frame_is_warned_about(tmp_path, caplog):
    seq = tmp_path / "plate"
    seq.mkdir()
    for number in (1001, 1002, 1004):
        Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(seq / f"plate.{number}.png")
    with caplog.at_level("WARNING"):
        check_sequence(seq)
    assert "frame numbers jump from 1002 to 1004" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_sequence(seq, count=2)  # the window holds no gap
    assert caplog.text == ""


@pytest.mark.parametrize("suffix", [".avif", ".heic"])
def test_avif_and_iphone_heic_photos_are_read(tmp_path, suffix, monkeypatch):
    """AVIF (Pillow's own) and HEIC (iPhones' photos, through the optional pillow-heif): a sequence of them reads
    back as the pixels saved, within the codec's loss; HEIC without pillow-heif is one line saying what to install."""
    if suffix == ".heic":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.register_heif_opener()  # for saving here; reading registers it itself
    frames = pattern_frames(2)
    seq = tmp_path / "seq"
    seq.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(seq / f"IMG_{i}{suffix}", quality=90)
    assert (probe(seq).width, probe(seq).height, probe(seq).n_frames) == (frames.shape[2], frames.shape[1], 2)
    check_sequence(seq)
    read = read_frames(seq).astype(int)
    assert read.shape == frames.shape and np.abs(read - frames).mean() < 3
    if suffix == ".heic":
        monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as where it is not installed
        reading.register_heif.cache_clear()  # registered once per process: forget this one's
        try:
            message = r"IMG_0\.heic \(HEIF\) needs pillow-heif: pip install 'rolldepth\[heif\]"
            with pytest.raises(UserError, match=message):
                check_sequence(seq)
        finally:
            reading.register_heif.cache_clear()


def test_gray_rgba_palette_and_16bit_images_become_rgb8(tmp_path):
    rng = np.random.default_rng(1)
    level8 = rng.integers(0, 256, size=(5, 7))
    # 16-bit data as an 8-bit source expanded by 257, plus noise below half a step: must come back exactly.
    level16 = (level8 * 257 + rng.integers(-128, 129, size=level8.shape)).clip(0, 65535).astype(np.uint16)
    Image.fromarray(level16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    np.testing.assert_array_equal(load_rgb8(tmp_path / "g16.png"), np.repeat(level8[..., None], 3, -1))

    Image.fromarray(level8.astype(np.uint8)).save(tmp_path / "g8.png")
    np.testing.assert_array_equal(load_rgb8(tmp_path / "g8.png"), np.repeat(level8[..., None], 3, -1))

    rgba = rng.integers(0, 256, size=(5, 7, 4)).astype(np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_rgb8(tmp_path / "rgba.png"), rgba[..., :3])

    palette = Image.fromarray(rgba[..., :3]).quantize(8)
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_rgb8(tmp_path / "p.png"), np.asarray(palette.convert("RGB")))

    Image.fromarray(np.zeros((5, 7), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(UserError, match="floating-point"):
        load_rgb8(tmp_path / "f.tif")


def test_16bit_sequence_reads_as_one_video(tmp_path):
    seq = tmp_path / "depthish"
    seq.mkdir()
    for i in range(3):
        Image.fromarray(np.full((4, 6), 257 * 40 * i, np.uint16)).save(seq / f"f{i}.png")
    back = read_frames(seq)
    assert back.shape == (3, 4, 6, 3)
    assert [int(v) for v in back[:, 0, 0, 0]] == [0, 40, 80]


# ----------------------------------------------------------------------------------------------------------------
# Listing inputs
def test_list_inputs_expands_folders_and_lists(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("clip10.mp4", "clip2.MOV", "clip1.mkv", "readme.md", ".hidden.mp4"):
        (videos / name).write_bytes(b"")
    for name in ("shot2", "shot10"):
        (videos / name).mkdir()
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(videos / name / "0.png")
    (videos / "empty_dir").mkdir()
    expected = [videos / n for n in ("clip1.mkv", "clip2.MOV", "clip10.mp4", "shot2", "shot10")]
    assert list_inputs(videos) == expected
    assert list_inputs(videos / "shot10") == [videos / "shot10"]
    assert list_inputs(str(videos / "clip2.MOV")) == [videos / "clip2.MOV"]
    assert list_inputs(videos / "shot2" / "0.png") == [videos / "shot2" / "0.png"]  # a still

    listing = tmp_path / "lists" / "inputs.txt"
    listing.parent.mkdir()
    listing.write_text(f"# my videos\n\n  ../videos/clip10.mp4  \n{videos / 'shot2'}\n{videos}\n")
    assert list_inputs(listing) == [videos.resolve() / "clip10.mp4", videos / "shot2", *expected]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "nope.mp4", "not found"),
        (lambda d: _mkdir(d / "empty"), "nothing to process"),
        (lambda d: _write(d / "model.ckpt", b""), "unsupported input"),
        (lambda d: _write(d / "list.txt", b"# nothing\n\n"), "names no inputs"),
        (lambda d: _write(d / "list.txt", b"a.mp4\n\nmissing.mp4\n"), r"list\.txt:3: input not found"),
        (lambda d: _write(d / "list.txt", b"other.txt\n"), "cannot include other lists"),
    ],
)
def test_list_inputs_user_errors(tmp_path, make, message):
    (tmp_path / "a.mp4").write_bytes(b"")
    with pytest.raises(UserError, match=message):
        list_inputs(make(tmp_path))


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


# ----------------------------------------------------------------------------------------------------------------
# Resizing
def triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of antialiased bilinear resampling, written out in float64: a triangle filter whose
    half-width is the shrink factor (1 when growing), centred on each output pixel's centre in input
    coordinates and renormalised where it falls off the border."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    distance = np.abs(np.arange(n_in)[None, :] + 0.5 - centres[:, None])
    weights = np.clip(1.0 - distance / support, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def reference_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[H, W] float64 -> [h, w] with the separable triangle filter."""
    return triangle_weights(image.shape[0], size[0]) @ image @ triangle_weights(image.shape[1], size[1]).T


def test_processing_size_is_the_official_formula_on_a_grid():
    """f = min(res / W, res / H); int(H * f), int(W * f): the sizes the official code feeds its model."""
    for height in (120, 240, 431, 480, 720, 1080, 1081, 1920):
        for width in (160, 320, 427, 640, 854, 1280, 1920, 1921):
            for res in (384, 512, 768, 1024):
                f = min(res / width, res / height)
                assert processing_size(height, width, res) == (int(height * f), int(width * f))
    assert processing_size(480, 854, 768) == (431, 768)  # rounding would give 432


def test_processing_size_keeps_aspect():
    assert processing_size(36, 52, 26) == (18, 26)
    assert processing_size(33, 50, 20) == (13, 20)  # 13.2 -> 13
    assert processing_size(1080, 1920, 768) == (432, 768)
    assert processing_size(1920, 1080, 768) == (768, 432)
    assert processing_size(3, 1000, 10) == (1, 10)  # never 0 pixels
    assert processing_size(36, 52, 0) == (36, 52)
    assert processing_size(36, 52, 104) == (72, 104)  # res above the size upsamples
    with pytest.raises(UserError, match=">= 0"):
        processing_size(36, 52, -5)


def test_resize_frames_constant_and_native(frames):
    constant = np.full((2, 30, 50, 3), 200, np.uint8)
    out = resize_frames(constant, 20)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 12, 20)
    np.testing.assert_allclose(out.numpy(), 200 / 127.5 - 1, atol=1e-6)
    native = resize_frames(frames[0], 0)  # one [H, W, 3] frame, native size: only the [-1, 1] mapping
    assert native.shape == (1, 3, H, W)
    np.testing.assert_allclose(native[0].permute(1, 2, 0).numpy(), frames[0] / 127.5 - 1, atol=1e-6)
    extremes = resize_frames(np.array([[[0, 255, 0]]], np.uint8), 0)
    assert extremes.flatten().tolist() == [-1.0, 1.0, -1.0]


def test_resize_frames_halving_a_ramp_has_a_closed_form():
    ramp = np.broadcast_to(np.arange(8, dtype=np.uint8) * 30, (8, 8))  # value 30 * x along the width
    image = np.repeat(ramp[..., None], 3, axis=-1)
    out = resize_frames(image, 4)[0, 0].double().numpy()  # [4, 4], all rows equal
    # Output pixel j is centred at input 2j + 0.5 and sees pixels 2j-1 .. 2j+2 with weights 1/4, 3/4, 3/4, 1/4
    # (normalised): inside, a symmetric filter returns the ramp at the centre, 30 * (2j + 0.5); at the left border
    # pixel -1 is missing, leaving (3/4 * 0 + 3/4 * 30 + 1/4 * 60) / (7/4); the right border mirrors it.
    expected = np.array([(0.75 * 30 + 0.25 * 60) / 1.75, 30 * 2.5, 30 * 4.5, 210 - (0.75 * 30 + 0.25 * 60) / 1.75])
    np.testing.assert_allclose(out, np.broadcast_to(expected / 127.5 - 1, (4, 4)), atol=1e-6)


def test_resize_frames_matches_float64_triangle_filter():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, size=(18, 23, 37, 3)).astype(np.uint8)  # 18 > one chunk of 16 frames
    out = resize_frames(frames, 15)  # shrink factors 37/15 and 23/9: non-integer, uneven
    assert out.shape == (18, 3, 9, 15)
    for n in (0, 17):
        for c in range(3):
            ref = reference_resize(frames[n, ..., c].astype(np.float64), (9, 15)) / 127.5 - 1
            np.testing.assert_allclose(out[n, c].numpy(), ref, atol=2e-6)


def test_resize_depth_shrinks_with_antialias_and_grows_bilinearly():
    rng = np.random.default_rng(4)
    depth = rng.normal(size=(3, 20, 31)).astype(np.float32)
    small = resize_depth(depth, (7, 12))
    assert small.dtype == np.float32 and small.shape == (3, 7, 12)
    for n in range(3):
        np.testing.assert_allclose(small[n], reference_resize(depth[n].astype(np.float64), (7, 12)), atol=1e-5)
    # Growing 2 -> 4 pixels, plain bilinear with half-pixel centres: [a, b] -> [a, 3a/4 + b/4, a/4 + 3b/4, b].
    a, b = 1.0, 5.0
    grown = resize_depth(np.array([[[a, b]]], np.float32), (1, 4))
    np.testing.assert_allclose(grown[0, 0], [a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b], atol=1e-6)
    same = resize_depth(depth, (20, 31))
    np.testing.assert_array_equal(same, depth)
    assert same is not depth

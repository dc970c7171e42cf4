"""The input's sound in the depth videos: cut to the frames processed, in sync, the video itself untouched.

Clips are written here with PyAV: frames that differ, and a sound of short clicks every 0.2 s, so that where each
click lands in an output says where its sound was cut.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import pattern_frames
from rolldepth.apps.cli import main

RATE = 48000
CLICKS = np.arange(0, 2, 0.2)  # seconds


def clip_with_sound(path: Path, codec: str, n_frames: int = 50, fps: int = 25, timecode: str | None = None) -> Path:
    """``n_frames`` frames at ``fps`` and 2 s of mono sound: 10 ms clicks at CLICKS, silence between; the first
    frame at ``timecode`` if given (a timecode track, as cameras write)."""
    sound = np.zeros(2 * RATE, np.float32)
    for t in CLICKS:
        sound[round(t * RATE) : round(t * RATE) + 480] = 0.8 * np.sin(np.arange(480) / 3)
    with av.open(str(path), mode="w") as container:
        picture = container.add_stream("libx264", rate=fps)
        picture.width, picture.height, picture.pix_fmt = 52, 36, "yuv420p"
        if timecode:
            picture.metadata["timecode"] = timecode
        audio = container.add_stream(codec, rate=RATE)
        audio.layout = "mono"
        for i, frame in enumerate(pattern_frames(n_frames)):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = i
            container.mux(picture.encode(video_frame))
        size = audio.codec_context.frame_size or 1024
        for at in range(0, len(sound), size):
            chunk = sound[None, at : at + size]
            if audio.codec_context.format.name.startswith("s16"):
                frame = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16), format="s16", layout="mono")
            else:
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, at, Fraction(1, RATE)
            container.mux(audio.encode(frame))
        container.mux(picture.encode(None))
        container.mux(audio.encode(None))
    return path


def decoded(path: Path) -> tuple[np.ndarray, str] | None:
    """The sound of a file as played (float samples from time 0) and its codec; None without sound."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        assert frames[0].time == 0  # the sound starts with the video
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)
        return sound, stream.codec_context.name


def pictures(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])])


def onsets(sound: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(sound) > 0.3)
    return loud[np.r_[True, np.diff(loud) > RATE // 20]] / RATE


def run(clip: Path, out: Path, checkpoint: Path, *extra: str) -> int:
    return main(["-q", "run", str(clip), "-o", str(out), "--model", str(checkpoint), "--res", "26", "--no-save-png",
                 *extra, "--cmap", "Greys_r"])


def test_the_sound_of_the_frames_processed_plays_in_every_depth_video(tmp_path, tiny_checkpoint):
    """AAC is copied packet for packet: played, each output's sound is the input's from the first frame processed,
    sample for sample; the video frames are those of a run without sound."""
    clip = clip_with_sound(tmp_path / "clip.mp4", "aac")
    source, _ = decoded(clip)
    for window, first in (([], 0), (["--from", "10", "--frames", "20"], 10)):
        out = tmp_path / f"from{first}"
        assert run(clip, out, tiny_checkpoint, *window) == 0
        for name in ("clip_Greys_r.mp4", "clip_rgbd.mp4"):
            sound, codec = decoded(out / name)
            assert codec == "aac"
            start = first * RATE // 25
            assert len(sound) >= (20 if first else 50) * RATE // 25  # the whole window has sound
            np.testing.assert_array_equal(sound, source[start : start + len(sound)])
    assert run(clip, tmp_path / "silent", tiny_checkpoint, "--from", "10", "--frames", "20", "--no-audio") == 0
    assert decoded(tmp_path / "silent" / "clip_rgbd.mp4") is None
    np.testing.assert_array_equal(pictures(tmp_path / "silent" / "clip_rgbd.mp4"),
                                  pictures(tmp_path / "from10" / "clip_rgbd.mp4"))


def test_sound_mp4_cannot_hold_is_encoded_to_aac_in_sync(tmp_path, tiny_checkpoint, monkeypatch):
    """A camera's MOV with PCM sound: MP4 does not take PCM, so it is encoded to AAC, once for all the videos; its
    clicks still land where the frames say, within a millisecond."""
    import rolldepth.video.audio as audio

    encodes, real = [], audio._encoded_packets
    monkeypatch.setattr(audio, "_encoded_packets", lambda *a: encodes.append(1) or real(*a))
    clip = clip_with_sound(tmp_path / "camera.mov", "pcm_s16le")
    assert run(clip, tmp_path / "o", tiny_checkpoint, "--from", "6", "--frames", "30") == 0  # 0.24 s to 1.44 s
    sound, codec = decoded(tmp_path / "o" / "camera_rgbd.mp4")
    assert codec == "aac" and len(sound) >= 30 * RATE // 25
    np.testing.assert_allclose(onsets(sound), [0.16, 0.36, 0.56, 0.76, 0.96, 1.16], atol=1e-3)
    np.testing.assert_array_equal(decoded(tmp_path / "o" / "camera_Greys_r.mp4")[0], sound)  # the same AAC
    assert len(encodes) == 1  # for two videos
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [  # the encoded sound was a temporary file
        ".camera.rolldepth-done.json", "camera_Greys_r.mp4", "camera_pred.npy", "camera_rgbd.mp4"]


def test_a_retimed_output_is_written_without_sound(tmp_path, tiny_checkpoint, caplog):
    clip = clip_with_sound(tmp_path / "clip.mp4", "aac")
    with caplog.at_level("INFO"):
        assert run(clip, tmp_path / "o", tiny_checkpoint, "--fps", "50") == 0
    assert decoded(tmp_path / "o" / "clip_rgbd.mp4") is None
    assert "--fps 50 retimes the depth videos" in caplog.text


@pytest.mark.parametrize("codec, suffix, written, exact", [
    ("aac", "mp4", "aac", True), ("flac", "mkv", "flac", True), ("alac", "mov", "alac", True),
    ("mp3", "mkv", "mp3float", False), ("libopus", "mkv", "opus", False), ("ac3", "mkv", "ac3", False),
    ("pcm_s16le", "mov", "aac", False),  # MP4 takes no PCM: encoded to AAC
])
def test_every_codec_plays_in_sync(tmp_path, codec, suffix, written, exact):
    """What the README says of each codec, on the whole clip: in sync within a millisecond; the lossless ones and
    AAC (copied with its priming packet) give the input's samples exactly."""
    from rolldepth.video.audio import add_audio
    from rolldepth.video.writers import write_video

    clip = clip_with_sound(tmp_path / f"clip.{suffix}", codec)
    video = write_video(tmp_path / "depth.mp4", pattern_frames(50), 25)
    add_audio(video, clip, Fraction(0), Fraction(2))
    sound, name = decoded(video)
    assert name == written  # the decoder's name: mp3 decodes as mp3float
    np.testing.assert_allclose(onsets(sound), CLICKS, atol=1e-3)
    if exact:
        np.testing.assert_array_equal(sound, decoded(clip)[0][: len(sound)])


def timecode_of(path: Path) -> str | None:
    """The timecode of a file's first frame, as an editor reads it: from its timecode track (a data stream)."""
    with av.open(str(path)) as container:
        tracks = [s for s in container.streams if s.type == "data" and s.metadata.get("timecode")]
        return tracks[0].metadata["timecode"] if tracks else None


def test_depth_videos_start_at_the_timecode_of_the_first_frame_processed(tmp_path, tiny_checkpoint):
    """A camera clip stamped 01:00:10:05: the depth of frames 10 on starts at 01:00:10:15, so an editor lines it up
    with the clip, with sound or without; retimed by --fps, it has none."""
    clip = clip_with_sound(tmp_path / "camera.mov", "aac", timecode="01:00:10:05")
    assert run(clip, tmp_path / "o", tiny_checkpoint, "--from", "10", "--frames", "20") == 0
    assert run(clip, tmp_path / "silent", tiny_checkpoint, "--from", "10", "--frames", "20", "--no-audio") == 0
    for out in ("o", "silent"):
        for name in ("camera_Greys_r.mp4", "camera_rgbd.mp4"):
            assert timecode_of(tmp_path / out / name) == "01:00:10:15", (out, name)
    assert decoded(tmp_path / "o" / "camera_rgbd.mp4") is not None  # the sound was added with the timecode kept
    with av.open(str(tmp_path / "o" / "camera_rgbd.mp4")) as container:  # and the colour tags
        assert container.streams.video[0].codec_context.colorspace == 1  # BT.709
    assert run(clip, tmp_path / "retimed", tiny_checkpoint, "--fps", "50") == 0
    assert timecode_of(tmp_path / "retimed" / "camera_rgbd.mp4") is None
    assert run(clip_with_sound(tmp_path / "plain.mp4", "aac"), tmp_path / "plain", tiny_checkpoint) == 0
    assert timecode_of(tmp_path / "plain" / "plain_rgbd.mp4") is None

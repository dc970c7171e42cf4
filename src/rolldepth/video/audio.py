"""The input's sound in the depth videos: a side-by-side or colorized video made from a clip plays in sync with it.

The input's audio stream (FFmpeg's best, as players choose) is cut to the frames processed (``--from``,
``--frames``) and muxed into each finished MP4 output. Codecs that MP4 holds are copied packet for packet, from the
packet before the window (MP4's edit list keeps what precedes the first frame silent); others (the PCM of cameras'
MOV files) are encoded to AAC, once for all the outputs (:func:`mp4_sound`). The video is copied, never
re-encoded.
"""

from __future__ import annotations

import heapq
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av

from .writers import atomic_path

log = logging.getLogger(__name__)

# audio codecs FFmpeg's MP4 muxer takes as they are; others are re-encoded to AAC
MP4_AUDIO = frozenset({"aac", "mp3", "alac", "flac", "opus", "ac3", "eac3"})
AAC_BIT_RATE = 192_000


def has_audio(source: str | Path) -> bool:
    """Whether a file holds an audio stream (an image or image folder holds none)."""
    source = Path(source)
    if not source.is_file():
        return False
    try:
        with av.open(str(source)) as container:
            return bool(container.streams.audio)
    except av.FFmpegError:
        return False


def add_audio(video: str | Path, source: str | Path, start: Fraction, duration: Fraction) -> Path:
    """Mux the part of ``source``'s audio stream (FFmpeg's best) from ``start`` seconds (on the source's clock,
    where its first processed frame is shown) lasting ``duration`` seconds into the finished MP4 ``video``, which is
    replaced when complete; the audio starts with the video.

    Parameters
    ----------
    video : str or Path
        An MP4 written by :func:`rolldepth.video.writers.write_video`, starting at time 0.
    source : str or Path
        The input video, holding an audio stream.
    start, duration : Fraction
        The window of the input that ``video`` shows, in seconds.
    """
    video, source = Path(video), Path(source)
    end = start + duration
    with av.open(str(source)) as src, av.open(str(video)) as silent, atomic_path(video) as tmp, \
            av.open(str(tmp), mode="w", format="mp4") as out:
        picture_in, sound_in = silent.streams.video[0], _sound_stream(src)
        picture_out = out.add_stream_from_template(picture_in)
        if picture_in.metadata.get("timecode"):  # the timecode track is made again from it
            picture_out.metadata["timecode"] = picture_in.metadata["timecode"]
        copy = sound_in.codec_context.codec.canonical_name in MP4_AUDIO
        if copy:
            sound_out = out.add_stream_from_template(sound_in)
            sound = _copied_packets(src, sound_in, sound_out, start, end)
        else:
            sound_out = _aac_stream(out, sound_in)
            sound = _encoded_packets(src, sound_in, sound_out, start, end)
        pictures = _moved(silent.demux(picture_in), picture_out)
        for _, packet in heapq.merge(_timed(pictures, 0), _timed(sound, 1)):  # interleaved by time
            out.mux(packet)
    log.debug("%s: audio of %s (%s, %s) from %.3f s for %.3f s", video.name, source.name,
              sound_in.codec_context.codec.canonical_name, "copied" if copy else "re-encoded to AAC", start, duration)
    return video


@contextmanager
def mp4_sound(source: str | Path, start: Fraction, duration: Fraction, folder: str | Path) -> Iterator[
        tuple[Path, Fraction]]:
    """The sound for :func:`add_audio` to copy into several MP4s, and where their window starts in it.

    ``source`` itself, from ``start``, when MP4 holds its codec. Otherwise (a camera's PCM) its window is encoded
    to AAC once, into a hidden audio-only MP4 in ``folder`` that is deleted afterwards, and copied from there into
    each video: encoding a minute of 48 kHz PCM takes seconds, and a run writes up to three videos.
    """
    source = Path(source)
    with av.open(str(source)) as src:
        sound_in = _sound_stream(src)
        if sound_in.codec_context.codec.canonical_name in MP4_AUDIO:
            yield source, start
            return
        handle, name = tempfile.mkstemp(dir=folder, prefix=f".{source.stem}.sound.", suffix=".partial")
        os.close(handle)
        try:
            with av.open(name, mode="w", format="mp4") as out:
                sound_out = _aac_stream(out, sound_in)
                for packet in _encoded_packets(src, sound_in, sound_out, start, start + duration):
                    out.mux(packet)
            yield Path(name), Fraction(0)
        finally:
            Path(name).unlink(missing_ok=True)


def _aac_stream(out, sound_in: av.AudioStream) -> av.AudioStream:
    """An AAC stream in ``out`` for the sound of ``sound_in`` (its rate and channels), which MP4 cannot hold."""
    sound_out = out.add_stream("aac", rate=sound_in.codec_context.sample_rate)
    sound_out.bit_rate = AAC_BIT_RATE
    sound_out.layout = sound_in.codec_context.layout
    return sound_out


def _sound_stream(container) -> av.AudioStream:
    """The sound a player plays: FFmpeg's best audio stream (the default one of a camera's or an editor's several)."""
    return container.streams.best("audio") or container.streams.audio[0]


def _timed(packets, order: int):
    """Packets keyed by their decoding time in seconds, then stream, then arrival: keys never tie, so a merge by
    time never compares two packets."""
    for count, packet in enumerate(packets):
        stamp = packet.dts if packet.dts is not None else packet.pts
        yield (float(stamp * packet.time_base) if stamp is not None else 0.0, order, count), packet


def _moved(packets, stream):
    """The video's packets, flushing packets left out, re-addressed to the output stream."""
    for packet in packets:
        if packet.size:
            packet.stream = stream
            yield packet


def _copied_packets(src, sound_in, sound_out, start: Fraction, end: Fraction):
    """Audio packets shown from ``start`` until ``end``, their times moved so that ``start`` is 0."""
    time_base = sound_in.time_base
    shift = round(start / time_base)
    for packet in src.demux(sound_in):
        if not packet.size or packet.pts is None:
            continue
        if (packet.pts + 2 * packet.duration) * time_base <= start:
            continue  # before the window, and not the one packet before it, which primes the decoder (MP4's edit
            # list keeps the part before 0 silent, as it keeps an encoder's priming packet)
        if packet.pts * time_base >= end:
            break
        packet.pts -= shift
        packet.dts = packet.dts - shift if packet.dts is not None else packet.pts
        packet.stream = sound_out
        yield packet


def _encoded_packets(src, sound_in, sound_out, start: Fraction, end: Fraction):
    """The audio decoded, cut to ``start``..``end`` (whole decoded frames) and encoded again."""
    rate = sound_in.codec_context.sample_rate
    written = None
    for frame in src.decode(sound_in):
        if frame.time is None or frame.time < start:
            continue
        if frame.time >= end:
            break
        if written is None:  # the first frame kept starts this far into the window
            written = round((Fraction(frame.time).limit_denominator(rate) - start) * rate)
        frame.pts, frame.time_base = written, Fraction(1, rate)
        written += frame.samples
        yield from sound_out.encode(frame)
    yield from sound_out.encode(None)

"""From a video's packets to the frames the model sees: a damaged packet's frame kept as a gap in its place, and
interlaced frames deinterlaced (see :func:`rolldepth.video.reading.iter_frames`, which stands a neighbour in for
each gap and converts the frames)."""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path

try:
    import av
except ImportError:  # as in reading.py: only missing where frames are given as arrays (GPU benches)
    av = None

from ..errors import first_line

log = logging.getLogger(__name__)


def shown(packet: av.Packet) -> bool:
    """Whether a packet holds a frame that is shown: not the flush packet at the end, and not one that an edit list
    cuts off (a video trimmed on a phone keeps the frames before the cut that the first shown one is decoded from;
    FFmpeg decodes them and drops them)."""
    return packet.size > 0 and not packet.is_discard


def with_rotations(frames: Iterator[av.VideoFrame | None]) -> Iterator[tuple[av.VideoFrame | None, float]]:
    """Each frame with its display rotation (a gap, None, with none)."""
    return ((frame, 0.0 if frame is None else frame.rotation) for frame in frames)


def frames_or_gaps(packets: Iterator[av.Packet]) -> Iterator[av.VideoFrame | None]:
    """The frames of a video stream's ``packets`` in display order, with None in the place of each frame whose
    packet the decoder rejects (a damaged part of the file), so that every later frame keeps its number and time.

    The decoder may report a rejected packet a few packets late (frame threads), so the gaps are placed by
    timestamp: a decoder gives frames in display order, and gives one only after every packet shown before it was
    sent, so a packet timestamp below that of the frame given, and not matched by a frame, is a frame that will
    never come. It becomes a gap while there are rejections to account for (a frame missing without one is left
    out, as FFmpeg leaves it); rejections left at the end (the last frames, or packets without timestamps) end the
    video as gaps.
    """
    sent: list[int] = []  # timestamps of the shown packets sent and not yet matched by a frame, a heap
    rejected = 0  # shown packets the decoder rejected, not yet given a place
    for packet in packets:
        if shown(packet) and packet.pts is not None:
            heapq.heappush(sent, packet.pts)
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            rejected += shown(packet)
            continue
        for frame in frames:
            if frame.pts is None:  # no timestamp to place it by: it is the next one
                if sent:
                    heapq.heappop(sent)
            else:
                while sent and sent[0] < frame.pts:
                    heapq.heappop(sent)
                    if rejected:
                        rejected -= 1
                        yield None
                if sent and sent[0] == frame.pts:
                    heapq.heappop(sent)
            yield frame
    for _ in range(rejected):
        yield None


GAPS_WARNED: dict[str, set[int]] = {}
GAPS_NAMED = 3  # frames named in warnings per file; a file damaged throughout would print a line per frame


def warn_gap(path: Path, index: int, stand_in: str) -> None:
    """Once per frame and process (the frames are decoded again for the shots and the side-by-side video), and for
    the first few frames of a file only."""
    warned = GAPS_WARNED.setdefault(str(path), set())
    if index in warned or len(warned) > GAPS_NAMED:
        return
    warned.add(index)
    if len(warned) > GAPS_NAMED:
        log.warning("%s: more frames could not be decoded; they are not named", path)
    else:
        log.warning("%s: frame %d could not be decoded (damaged data): %s stands in for it", path, index, stand_in)


INTERLACED_FIELD_ORDERS = frozenset({2, 3, 4, 5})  # FFmpeg's AVFieldOrder: top or bottom field first, coded so


def is_interlaced(frame: av.VideoFrame, stream: av.VideoStream) -> bool:
    return bool(frame.interlaced_frame) or int(stream.codec_context.field_order or 0) in INTERLACED_FIELD_ORDERS


def progressive(frames: Iterator[av.VideoFrame | None], stream: av.VideoStream) -> Iterator[
        tuple[av.VideoFrame | None, float]]:
    """The decoded frames with their display rotations, interlaced ones deinterlaced (a None, a frame that could
    not be decoded, stays None in its place).

    An interlaced frame (DV, HDV, broadcast) holds two fields taken a field apart: on motion its lines alternate
    between two positions, combs that the model would read as depth edges. FFmpeg's yadif turns each such frame
    into one progressive frame (one out for each in, so frame numbers and times stay), and passes frames not
    flagged interlaced through; a stream whose first frame and field order say progressive is not filtered at all.
    """
    frames, first = iter(frames), None
    for frame in frames:
        if frame is not None:
            first = frame
            break
        yield None, 0.0  # a gap before the first frame
    if first is None:
        return
    frames = itertools.chain([first], frames)
    if not is_interlaced(first, stream):
        yield from with_rotations(frames)
        return
    try:
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream)
        yadif = graph.add("yadif", "mode=send_frame:parity=auto:deint=interlaced")
        sink = graph.add("buffersink")
        source.link_to(yadif)
        yadif.link_to(sink)
        graph.configure()
    except (av.FFmpegError, ValueError) as exc:  # an FFmpeg build without yadif: combed frames beat no frames
        log.warning("interlaced frames are used as they are: the deinterlacer is unavailable (%s)", first_line(exc))
        yield from with_rotations(frames)
        return
    # What went in, in order: a frame's display rotation (the filter drops the side data that holds it; one frame
    # comes out for each in) or None for a gap, which keeps its place among the frames that come out
    order: deque[float | None] = deque()

    def ready() -> Iterator[tuple[av.VideoFrame | None, float]]:
        while True:
            try:
                frame = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            while order[0] is None:
                order.popleft()
                yield None, 0.0
            yield frame, order.popleft()

    for frame in frames:
        if frame is None:
            order.append(None)
            continue
        order.append(frame.rotation)
        graph.push(frame)
        yield from ready()
    graph.push(None)
    yield from ready()
    yield from ((None, 0.0) for _ in order)  # gaps after the last frame

"""SMPTE timecode of a video's first frame, moved by a number of frames.

A camera or an editor stamps a clip with the timecode of its first frame (``01:00:10:05``), and editors line up
clips by it: a depth video made from frames 10 on must start at the timecode of frame 10. Non-drop-frame timecode
counts ``round(fps)`` frames a second. Drop-frame timecode (``;`` before the frames, 29.97 and 59.94 fps) skips the
labels ``:00`` and ``:01`` (``:00`` to ``:03`` at 59.94) at the start of every minute except every tenth, so that
its clock keeps up with the real one.
"""

from __future__ import annotations

import re
from fractions import Fraction

_TIMECODE = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})")
DAY_HOURS = 24


def shift_timecode(timecode: str, frames: int, fps: Fraction) -> str | None:
    """The timecode ``frames`` frames after ``timecode`` at the rate ``fps``, in the same notation; None where
    ``timecode`` is no SMPTE timecode or does not fit the rate (a frame field of 30 at 25 fps)."""
    match = _TIMECODE.fullmatch(timecode.strip())
    nominal = round(fps)
    if match is None or nominal < 1:
        return None
    hours, minutes, seconds, separator, frame = match.groups()
    hours, minutes, seconds, frame = int(hours), int(minutes), int(seconds), int(frame)
    drop = _dropped(separator, fps)
    if minutes > 59 or seconds > 59 or frame >= nominal or (drop and frame < drop and seconds == 0 and minutes % 10):
        return None
    count = (hours * 3600 + minutes * 60 + seconds) * nominal + frame
    count -= drop * (60 * hours + minutes - (60 * hours + minutes) // 10)
    return _label(count + frames, nominal, drop, separator, len(match.group(5)))


def _dropped(separator: str, fps: Fraction) -> int:
    """Labels dropped a minute: 2 at 29.97, 4 at 59.94 with a drop-frame separator, else none."""
    if separator not in ";,":
        return 0
    nominal = round(fps)
    return 2 * nominal // 30 if nominal in (30, 60) and fps != nominal else 0


def _label(count: int, nominal: int, drop: int, separator: str, digits: int) -> str:
    """Frame ``count`` (from 00:00:00:00, wrapped at a day) as a timecode."""
    per_ten = 600 * nominal - 9 * drop  # frames in ten minutes of drop-frame labels
    per_day = DAY_HOURS * 6 * per_ten if drop else DAY_HOURS * 3600 * nominal
    count %= per_day
    if drop:
        tens, rest = divmod(count, per_ten)
        count += 9 * drop * tens + (drop * ((rest - drop) // (60 * nominal - drop)) if rest >= drop else 0)
    seconds, frame = divmod(count, nominal)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{frame:0{digits}d}"

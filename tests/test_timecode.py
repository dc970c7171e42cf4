"""Timecode of a window's first frame: non-drop and drop-frame, against labels enumerated by SMPTE's rule."""

from __future__ import annotations

from fractions import Fraction

import pytest

from rolldepth.video.timecode import shift_timecode

NTSC, NTSC_DOUBLE = Fraction(30000, 1001), Fraction(60000, 1001)


def labels(nominal: int, dropped: int, minutes: int, separator: str) -> list[str]:
    """Every label of the first ``minutes`` minutes in order: all of them, less the first ``dropped`` frame
    numbers of each minute that is not a tenth."""
    out = []
    for minute in range(minutes):
        for second in range(60):
            for frame in range(nominal):
                if dropped and second == 0 and minute % 10 and frame < dropped:
                    continue
                out.append(f"{minute // 60:02d}:{minute % 60:02d}:{second:02d}{separator}{frame:02d}")
    return out


@pytest.mark.parametrize("fps, nominal, dropped, separator", [
    (NTSC, 30, 2, ";"), (NTSC_DOUBLE, 60, 4, ";"), (Fraction(25), 25, 0, ":"), (NTSC, 30, 0, ":"),
    (Fraction(24000, 1001), 24, 0, ":"),
])
def test_every_label_of_twenty_minutes(fps, nominal, dropped, separator):
    expected = labels(nominal, dropped, 21, separator)
    first = f"00:00:00{separator}00"
    assert [shift_timecode(first, k, fps) for k in range(len(expected))] == expected
    for start in (1, 1799, 1800, 17981, 17982, 20000):  # from any label, not only from zero
        assert shift_timecode(expected[start], 777, fps) == expected[start + 777]


def test_known_labels_day_wrap_and_what_is_no_timecode():
    assert shift_timecode("01:00:10:05", 10, Fraction(25)) == "01:00:10:15"
    assert shift_timecode("00:00:59;29", 1, NTSC) == "00:01:00;02"  # ;00 and ;01 do not exist
    assert shift_timecode("00:09:59;29", 1, NTSC) == "00:10:00;00"  # every tenth minute keeps them
    assert shift_timecode("23:59:59:24", 2, Fraction(25)) == "00:00:00:01"
    assert shift_timecode("23:59:59;29", 1, NTSC) == "00:00:00;00"
    for wrong in ("", "1:00", "01:00:10:25", "00:01:00;00", "00:61:00:00", "ab:cd:ef:gh"):
        assert shift_timecode(wrong, 0, Fraction(25) if ":" in wrong[-3:] else NTSC) is None

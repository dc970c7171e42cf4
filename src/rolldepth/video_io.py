"""Documented import path ``rolldepth.video_io`` (frame reading), kept for the README and existing code; the code
lives in :mod:`rolldepth.video.reading`."""

from .video.reading import *  # noqa: F401,F403

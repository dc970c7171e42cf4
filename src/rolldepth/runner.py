"""Documented import path ``rolldepth.runner`` (RunOptions and process_video), kept for the README and existing
code; the code lives in :mod:`rolldepth.process.runner`."""

from .process.runner import *  # noqa: F401,F403

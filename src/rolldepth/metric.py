"""Documented import path ``rolldepth.metric`` (metric scale from anchors), kept for the README and existing code;
the code lives in :mod:`rolldepth.method.metric_scale`."""

from .method.metric_scale import *  # noqa: F401,F403

"""Documented import path ``rolldepth.pointcloud`` (point clouds), kept for the README and existing code; the code
lives in :mod:`rolldepth.video.pointcloud`."""

from .video.pointcloud import *  # noqa: F401,F403

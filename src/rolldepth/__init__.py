"""rolldepth: temporally consistent video depth with RollingDepth on stock diffusers."""

__version__ = "0.1.0"

"""rolldepth: temporally consistent video depth with RollingDepth on stock diffusers."""

__version__ = "0.1.0"
__all__ = ["RollingDepthPipeline", "RollingDepthOutput"]


def __getattr__(name: str):
    """Import the pipeline on first use, so ``rolldepth --help`` and the pure-numpy modules stay fast to import."""
    if name in __all__:
        from .model import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'rolldepth' has no attribute {name!r}")

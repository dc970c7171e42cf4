"""Documented import path ``rolldepth.cli`` (the command line), kept for the README and existing code; the code lives in
:mod:`rolldepth.apps.cli`."""

import sys

from .apps.cli import build_parser, main  # noqa: F401

if __name__ == "__main__":  # python -m rolldepth.cli
    sys.exit(main())

#!/usr/bin/env bash
# Set up rolldepth in ./.venv on a fresh machine: CPU torch first (an unpinned torch pulls a multi-GB CUDA build),
# then the package with its pinned dependencies and the test tools. Re-running is cheap.
# System packages: EGL/Mesa for `rolldepth synth` (headless OpenGL), libGL/GLib for OpenCV (shot detection), and
# Debian's chromium for the web page's browser test (Playwright drives /usr/bin/chromium; it never downloads one).
set -euo pipefail
cd "$(dirname "$0")"
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] \
    && { ! ldconfig -p | grep -q libEGL.so.1 || ! ldconfig -p | grep -q libGL.so.1 \
         || ! ldconfig -p | grep -q libglib-2.0.so.0 || [ ! -x /usr/bin/chromium ]; }; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        libegl1 libgl1 libgl1-mesa-dri libgles2 libglib2.0-0 chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"

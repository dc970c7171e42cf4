#!/usr/bin/env bash
# What an accelerator call needs besides the checkout. The device machine has Python 3.12 and CUDA torch, but not
# rolldepth's other dependencies, no EGL/Vulkan loaders for `rolldepth synth`, and no network; a call carries at most
# 64 MiB with the working tree, so they travel as .whl (16 wheels, 26 MB) and .gl (7 .debs), both git-ignored.
#
#   bash benchmarks/device_deps.sh             # here, once: download them (PyPI and Debian; pinned)
#   source benchmarks/device_deps.sh install   # there, first in the call's command (carry [".whl", ".gl"]); it
#                                              # stops the command (exit 3) when an import fails, before any work
#
# PyAV is left out (a 36 MB wheel does not fit beside the checkout; training and the synthetic evaluations read no
# video). The list is the one the eighth run carried (benchmarks/results/v2_gpu_run9/README.md); truststore is
# there because httpcore2 imports it (a call without it failed 13 s in).
WHEELS="diffusers==0.42.1 transformers==5.23.0 huggingface-hub==2.4.0 hf-xet==1.8.0 httpx2==2.16.2 httpcore2==2.16.2
truststore==0.10.5 anyio==4.16.0 h11==0.16.0 idna==3.20 regex==2026.11.19 click==8.5.1 typing_extensions==4.16.0
importlib_metadata==10.2.0 moderngl==5.13.0 glcontext==3.1.0"
DEBS="libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2"

if [ "${1:-}" = install ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 || exit 3
    PYTHONPATH=src:$PYTHONPATH python3 -c "import diffusers, transformers, huggingface_hub.hf_api, moderngl
import rolldepth.model.checkpoint, rolldepth.apps.cli; print('imports ok')" || exit 3
else
    set -e
    cd "$(git rev-parse --show-toplevel)"
    for path in /.whl/ /.gl/; do grep -qxF "$path" .git/info/exclude || echo "$path" >> .git/info/exclude; done
    mkdir -p .whl .gl /tmp/amd64/partial
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $WHEELS
    apt_amd64="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64"
    apt-get -q $apt_amd64 update > /dev/null
    (cd .gl && apt-get -q $apt_amd64 download $DEBS > /dev/null)
    du -sh .whl .gl
fi

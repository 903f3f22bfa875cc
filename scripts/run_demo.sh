#!/usr/bin/env bash
# Set up (idempotent), then extract FlowFeat features from OpenCV's sample video into outputs/demo.
# Extra arguments go to `python -m flowfeat_core.video_features`.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO_ROOT/scripts/setup_env.sh"

cd "$REPO_ROOT"
export VIRTUAL_ENV="$REPO_ROOT/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"

python -m flowfeat_core.video_features \
    --video /usr/share/doc/opencv-doc/examples/data/vtest.avi \
    --out outputs/demo \
    "$@"

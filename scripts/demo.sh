#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs configs/demo.yaml on the CPU
# from scratch (any earlier runs/demo is removed first). Extra args go to `grpo run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
rm -rf runs/demo
build/grpo run configs/demo.yaml "$@"

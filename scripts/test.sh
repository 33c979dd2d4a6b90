#!/usr/bin/env bash
# Builds and runs the whole test suite with ctest (quick and long tiers).
#   scripts/test.sh              the normal build (what CI runs)
#   scripts/test.sh --sanitize   an ASan+UBSan build in build-asan/, quick tier
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if [ "${1:-}" = "--sanitize" ]; then
  cmake -S . -B build-asan -DGRPO_SANITIZE=ON -DGRPO_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug > build-asan.log 2>&1 \
    || { cat build-asan.log; exit 1; }
  cmake --build build-asan -j"$(nproc)" >> build-asan.log 2>&1 || { tail -50 build-asan.log; exit 1; }
  cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest -L quick --output-on-failure
else
  scripts/build.sh
  cd build && ctest --output-on-failure
fi

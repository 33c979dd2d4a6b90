#!/usr/bin/env bash
# Training throughput of a dense preset, grpo.c vs PyTorch (CPU) on the same config,
# batch, sequence length and optimizer, in one run; prints both and the ratio.
# usage: bench/train_vs_torch.sh [PRESET] [BATCH] [SEQ] [STEPS]   (PYTHON: a python with torch +
# transformers; default: the one scripts/pyref.sh makes)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-dense-10m}; batch=${2:-8}; seq=${3:-256}; steps=${4:-10}
python=${PYTHON:-$(scripts/pyref.sh)}
threads=${OMP_NUM_THREADS:-$(nproc)}
cmake --build build --target bench_train -j"$(nproc)" > /dev/null
ours=$(OMP_NUM_THREADS=$threads build/bench/bench_train --preset "$preset" --batch "$batch" --seq "$seq" --steps "$steps")
echo "$ours" | grep -v RESULT
theirs=$($python bench/train_torch.py --config "configs/models/$preset.json" --batch "$batch" --seq "$seq" \
         --steps "$steps" --threads "$threads" 2>/dev/null)
echo "$theirs" | grep -v RESULT
a=$(echo "$ours" | sed -n 's/.*tokens_per_second=\([0-9.]*\).*/\1/p')
b=$(echo "$theirs" | sed -n 's/.*tokens_per_second=\([0-9.]*\).*/\1/p')
awk -v a="$a" -v b="$b" 'BEGIN { printf "ratio grpo.c / pytorch: %.2fx\n", a / b }'

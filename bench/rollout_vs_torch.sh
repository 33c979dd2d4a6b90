#!/usr/bin/env bash
# Rollout throughput, grpo.c's engine vs transformers' generate (CPU), same configs, prompts
# of P tokens, N sampled tokens each, batch sizes 1 16 64 256, in one run; prints a table.
# usage: bench/rollout_vs_torch.sh [PRESETS] [BATCHES] [P] [N]
#   e.g. bench/rollout_vs_torch.sh "tiny-dense dense-10m" "1 16 64 256" 64 64
#   PYTHON: a python with torch + transformers; OMP_NUM_THREADS: threads for both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
presets=${1:-"tiny-dense dense-10m"}; batches=${2:-"1 16 64 256"}; P=${3:-64}; N=${4:-64}
python=${PYTHON:-$(scripts/pyref.sh)}
threads=${OMP_NUM_THREADS:-$(nproc)}
build=${BUILD:-build}
cmake --build "$build" --target bench_rollout -j"$(nproc)" > /dev/null
field() { echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"; }
echo "| preset | batch | grpo.c prefill tok/s | grpo.c decode tok/s | transformers prefill tok/s | transformers decode tok/s | decode ratio | grpo.c cache KiB/seq |"
echo "|---|---|---|---|---|---|---|---|"
for preset in $presets; do
  for b in $batches; do
    ours=$(OMP_NUM_THREADS=$threads "$build/bench/bench_rollout" --preset "$preset" --batch "$b" --prompt "$P" --gen "$N")
    echo "$ours" | grep -v RESULT >&2
    theirs=$(OMP_NUM_THREADS=$threads $python bench/generate_torch.py --config "configs/models/$preset.json" \
             --batch "$b" --prompt "$P" --gen "$N" --threads "$threads" 2>/dev/null)
    echo "$theirs" | grep -v RESULT >&2
    ours=$(echo "$ours" | grep RESULT); theirs=$(echo "$theirs" | grep RESULT)
    awk -v p="$preset" -v b="$b" -v op="$(field "$ours" prefill_tps)" -v od="$(field "$ours" decode_tps)" \
        -v tp="$(field "$theirs" prefill_tps)" -v td="$(field "$theirs" decode_tps)" \
        -v kib="$(field "$ours" cache_kib_per_seq)" \
        'BEGIN { printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.1fx | %.1f |\n", p, b, op, od, tp, td, od / td, kib }'
  done
done

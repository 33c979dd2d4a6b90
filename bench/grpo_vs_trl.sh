#!/usr/bin/env bash
# GRPO on the CPU, grpo.c vs TRL's GRPOTrainer: the same base model (the demo's pretrained tiny
# MoE), the same problems, rewards and settings (bench/grpo_vs_trl.yaml), in one run; prints
# each run's step time and reward curve and the ratio of the time both need to reach the same
# reward. usage: bench/grpo_vs_trl.sh [STEPS]  (PYTHON: a python with torch + transformers + trl;
# default: the one scripts/pyref.sh makes). Needs a quiet machine: both sides use every core.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-100}
python=${PYTHON:-$(scripts/pyref.sh)}
threads=${OMP_NUM_THREADS:-$(nproc)}
work=${GRPO_BENCH_DIR:-runs}
cmake --build build --target grpo -j"$(nproc)" > /dev/null
rm -rf "$work/grpo-vs-trl"
OMP_NUM_THREADS=$threads build/grpo run bench/grpo_vs_trl.yaml --set run.output_dir="$work" \
    --set stages.1.max_steps="$steps" | tail -n 8
run="$work/grpo-vs-trl"
base=$(ls -d "$run"/ckpt/step-* | sort -t- -k2 -n | head -n 1)   # the end of the pretrain stage
echo "base model for TRL: $base"
$python bench/grpo_vs_trl.py train --model "$base" --data "$run/data/rl_train.jsonl" --steps "$steps" \
    --threads "$threads" --workdir "$run/trl" --out "$run/trl.jsonl" 2> "$run/trl.log" \
    || { tail -n 30 "$run/trl.log"; exit 1; }
$python bench/grpo_vs_trl.py compare --ours "$run/run.db" --stage 1 --trl "$run/trl.jsonl"

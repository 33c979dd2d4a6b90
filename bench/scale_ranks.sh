#!/usr/bin/env bash
# Data-parallel scaling on one machine, two parts:
# 1. the trainer API (test_data_parallel's worker, a tiny model): SFT step time on 1 and 2
#    MPI ranks (same global batch) and the bytes each rank sends per step, against the
#    formula of gradient all-reduce + ZeRO-1 weight all-gather (2 (W-1)/W 4P + (W-1) 4 ceil(P/W)).
#    "model" bytes are what the collectives move under ring algorithms; "wire" bytes are
#    what the process wrote to its sockets during collectives (tcp on loopback, Linux
#    /proc/self/io), i.e. what OpenMPI really sent.
# 2. `grpo run` of an SFT stage on PRESET (default dense-10m, big enough that compute
#    dominates) on 1 and 2 ranks with the same global batch (8 sequences of up to 192
#    tokens: per_device_train_batch_size 8 on one rank, 4 on two): seconds per step from
#    summary.json (the stage's wall time, model creation and the output save included,
#    over STEPS steps). OMP_NUM_THREADS threads per rank (default 1), so 2 ranks use twice
#    the cores: ideal strong scaling halves the step time. Time it on a quiet machine.
# Usage: bench/scale_ranks.sh [BUILD_DIR] [STEPS] [PRESET]   (needs grpo and test_data_parallel built)
set -euo pipefail
build=${1:-build}
steps=${2:-20}
preset=${3:-dense-10m}
exe="$build/test_data_parallel"
grpo="$build/grpo"
for x in "$exe" "$grpo"; do
  [ -x "$x" ] || { echo "build $x first: cmake --build $build --target test_data_parallel grpo"; exit 1; }
done
command -v mpirun > /dev/null || { echo "no mpirun on PATH"; exit 1; }
root=$(mktemp -d /tmp/grpo_scale_XXXX)
trap 'rm -rf "$root"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mpi=(--oversubscribe --bind-to none --mca btl self,tcp --mca btl_tcp_if_include lo -x OMP_NUM_THREADS)
echo "machine: $(nproc --all) cores, $(uname -m); $(date -u +%Y-%m-%dT%H:%MZ); OMP_NUM_THREADS=$OMP_NUM_THREADS;" \
     "load $(cut -d' ' -f1 /proc/loadavg)"

"$exe" --worker-data "$root"
for np in 1 2; do
  GRPO_DP_REPORT=1 GRPO_COMM_STATS=1 GRPO_DP_STEPS=$steps \
    mpirun -np "$np" "${mpi[@]}" -x GRPO_DP_REPORT -x GRPO_COMM_STATS -x GRPO_DP_STEPS \
    "$exe" --worker sft "$root" | grep '^BENCH'
done

cat > "$root/sft.yaml" <<YAML
run: {name: r1, output_dir: $root/runs, seed: 1, resume: false}
model: {preset: $preset, tokenizer: builtin}
datasets:
  - {name: text, generate: arith, n: 2000, difficulty: 2, ops: "+", answer_noise: 0.5}
stages:
  - {name: sft, kind: sft, train_dataset: text, completion_only_loss: false, max_steps: $steps,
     per_device_train_batch_size: 8, max_length: 192, learning_rate: 1.0e-3, logging_steps: 10}
YAML
for np in 1 2; do
  mpirun -np "$np" "${mpi[@]}" "$grpo" run "$root/sft.yaml" --quiet --set run.name=r$np \
    --set "stages[0].per_device_train_batch_size=$((8 / np))" > /dev/null
  python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))["stages"][0]
print("BENCH grpo-run preset=%s ranks=%s steps=%d step_s=%.4f" % (sys.argv[2], sys.argv[3], s["steps"], s["wall_seconds"] / s["steps"]))' \
    "$root/runs/r$np/summary.json" "$preset" "$np"
done

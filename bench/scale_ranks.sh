#!/usr/bin/env bash
# Data-parallel scaling on one machine: step time of SFT on 1 and 2 MPI ranks (same
# global batch) and the bytes each rank sends per step, against the formula of gradient
# all-reduce + ZeRO-1 weight all-gather (2 (W-1)/W 4P + (W-1) 4 ceil(P/W)).
# "model" bytes are what the collectives move under ring algorithms; "wire" bytes are
# what the process wrote to its sockets during collectives (tcp on loopback, Linux
# /proc/self/io), i.e. what OpenMPI really sent.
# Usage: bench/scale_ranks.sh [BUILD_DIR] [STEPS]   (needs test_data_parallel built)
set -euo pipefail
build=${1:-build}
steps=${2:-20}
exe="$build/test_data_parallel"
[ -x "$exe" ] || { echo "build $exe first: cmake --build $build --target test_data_parallel"; exit 1; }
command -v mpirun > /dev/null || { echo "no mpirun on PATH"; exit 1; }
root=$(mktemp -d /tmp/grpo_scale_XXXX)
trap 'rm -rf "$root"' EXIT
"$exe" --worker-data "$root"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 GRPO_DP_REPORT=1 GRPO_COMM_STATS=1
export GRPO_DP_STEPS=$steps OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "machine: $(nproc) cores, $(uname -m); $(date -u +%Y-%m-%dT%H:%MZ); OMP_NUM_THREADS=$OMP_NUM_THREADS"
for np in 1 2; do
  mpirun -np "$np" --oversubscribe --bind-to none --mca btl self,tcp --mca btl_tcp_if_include lo \
    "$exe" --worker sft "$root" | grep '^BENCH'
done

#!/usr/bin/env bash
# Training step time at each compute precision (run.precision: fp32, bf16, fp8) on the CPU:
# the SFT demo (configs/sft-demo.yaml, tiny-dense preset) for STEPS steps per precision, each
# in a fresh run directory; prints seconds per step from each run's summary.json.
# On the CPU, bf16 and fp8 are EMULATED (model/linear.h: both operands of every projection
# rounded into float32 copies, E4M3 block scales computed per call for activations), so they
# are slower than fp32 here; the numbers measure the emulation's cost, not FP8 hardware.
# The stage's wall seconds include its held-out evaluation (also at that precision): use
# enough STEPS (default 40) for the steps to dominate.
# usage: bench/precision.sh [STEPS] [BUILD_DIR]   (OMP_NUM_THREADS: threads, default all)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-40}; build=${2:-build}
cmake --build "$build" --target grpo -j"$(nproc)" > /dev/null
out=$(mktemp -d /tmp/grpo-bench-precision.XXXXXX)
trap 'rm -rf "$out"' EXIT
echo "precision  steps  seconds  seconds/step   (sft-demo, tiny-dense, batch 32 x 160 tokens)"
for p in fp32 bf16 fp8; do
    "$build"/grpo run configs/sft-demo.yaml --set run.precision=$p --set run.name=$p --set run.output_dir="$out" \
        --set run.resume=false --set "stages[0].max_steps=$steps" --set "stages[0].eval_steps=0" \
        --set "stages[0].save_steps=0" > "$out/$p.log" 2>&1 || { cat "$out/$p.log"; exit 1; }
    python3 - "$out/$p/summary.json" "$p" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
st = [x for x in s["stages"] if x["kind"] == "sft"][0]
print(f'{sys.argv[2]:<10} {st["steps"]:>5} {st["wall_seconds"]:>8.1f} {st["wall_seconds"] / max(st["steps"], 1):>13.3f}')
PY
done

#!/usr/bin/env bash
# Creates (once per machine, outside the repo) the Python environment with the reference
# implementations the fixture scripts and the side-by-side benchmarks use: torch,
# transformers, tokenizers, safetensors, trl, math-verify. Prints the python to use.
#   PY=$(scripts/pyref.sh) && $PY tests/fixtures/make_dense_fixtures.py
set -euo pipefail
dir=${GRPO_PYREF:-$HOME/.cache/grpo-pyref}
if [ ! -x "$dir/bin/python" ]; then
  python3 -m venv "$dir" >&2
  "$dir/bin/pip" install -q torch transformers tokenizers safetensors numpy trl math-verify >&2
fi
echo "$dir/bin/python"

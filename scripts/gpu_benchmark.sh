#!/usr/bin/env bash
# The GPU table of issue 16 (part 4), in one run of a few minutes on a machine with a GPU and a
# JAX that sees it (CUDA jaxlib installed; nothing is downloaded). CI never runs it.
#   bash scripts/gpu_benchmark.sh [OUTDIR]      (default: $OUT if set, else runs/gpu)
# Writes OUTDIR/benchmark (the benchmark's JSON, plots and table), OUTDIR/env.txt and the log.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-runs/gpu}}"
mkdir -p "$out"
python=${PYTHON:-python3}
"$python" - <<'PY' | tee "$out/env.txt"
import jax, jaxlib, platform
print("jax", jax.__version__, "jaxlib", jaxlib.__version__, platform.python_version())
print("backend", jax.default_backend(), "devices", jax.devices())
if jax.default_backend() != "gpu":
  raise SystemExit("no GPU: JAX's default backend is " + jax.default_backend())
PY
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package from this tree, not installed
# 64 members against one (the ensemble section), the engine against the hand-written loop
# (baseline), and the per-example table (models); three repeats each, no compilation cache.
"$python" -m experiments.benchmark --sections=models,ensemble,baseline --repeats=3 \
  --compilation_cache= --workdir="$out/benchmark" 2>&1 | tee "$out/benchmark.log"

#!/usr/bin/env bash
# `make bench-gpu`: GPU numbers in one command (docs/performance.md): the model alone at batch 1..256
# (float32, mixed precision, XLA), then the worker end to end against a local broker fed by the
# simulator at full speed; prints frames/s and worker / model-alone. The measuring part is cut at
# 8 minutes (BENCH_GPU_TIMEOUT); installing is done once before it, from this repository's files.
#   deploy/bench-gpu.sh [--dry-run] [options of python -m line_harness.bench.gpu]
#   --dry-run (or BENCH_GPU_DRY=1): the same path on CPU with tiny sizes, to check it without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
dry=${BENCH_GPU_DRY:-0}
for arg in "$@"; do [[ $arg == --dry-run ]] && dry=1; done
PY=.venv/bin/python

# Install: the project with its dev extras (TensorFlow, LiteRT, the simulator, the harness) pinned by the
# images' constraints, and the Kafka broker jars; each step is skipped when already done.
if [[ ! -x $PY ]] || ! $PY -c 'import tensorflow, kafka, line_harness' 2>/dev/null; then
  test -x $PY || python3 -m venv .venv
  $PY -m pip install -q --disable-pip-version-check -e '.[dev]' -c deploy/docker/constraints.txt
fi
$PY -m line_harness.kafka fetch

if [[ $dry != 1 ]]; then
  if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "bench-gpu: no NVIDIA GPU visible (nvidia-smi). On a CPU machine check the path with: make bench-gpu DRY=1" >&2
    exit 2
  fi
  # The plain tensorflow wheel finds no CUDA libraries unless the host has them; its [and-cuda] extra brings them.
  if ! $PY -c 'import sys, tensorflow as tf; sys.exit(0 if tf.config.list_physical_devices("GPU") else 1)' 2>/dev/null; then
    tf_version=$($PY -c 'import tensorflow as tf; print(tf.__version__)')
    echo "TensorFlow $tf_version sees no GPU: installing tensorflow[and-cuda]==$tf_version"
    $PY -m pip install -q --disable-pip-version-check "tensorflow[and-cuda]==$tf_version"
  fi
fi
args=()
for arg in "$@"; do [[ $arg == --dry-run ]] || args+=("$arg"); done
[[ $dry == 1 ]] && args+=(--dry-run)
exec timeout -s INT -k 30 "${BENCH_GPU_TIMEOUT:-480}" nice -n "${BENCH_NICE:-0}" $PY -m line_harness.bench.gpu "${args[@]}"

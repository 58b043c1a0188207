#!/usr/bin/env bash
# The fault suite (`make chaos`): SIGKILLs, broker restart, rebalance, corrupt frames (+ --soak).
# Options go to `python -m line_harness.chaos.run` (--short for the CI size, --help for all).
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m line_harness.chaos.run "$@"

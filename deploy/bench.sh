#!/usr/bin/env bash
# The performance benchmark (`make bench`): ceiling, worker, naive baseline, latency, sweep.
# Options go to `python -m line_harness.bench.run` (--quick for a few minutes, --help for all).
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m line_harness.bench.run "$@"

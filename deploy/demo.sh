#!/usr/bin/env bash
# The one-command demo (`make demo`): local Kafka broker, topics, the quick demo model (built once),
# one worker, a simulated line of 2 x 2 cameras, live numbers, Prometheus if installed; then it stops
# everything it started. Settings: DEMO_* variables (docs/demo.md); KAFKA_BOOTSTRAP_SERVERS uses an
# existing broker instead. Ctrl-C stops early (a second Ctrl-C kills at once).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

python="${DEMO_PYTHON:-${repo_root}/.venv/bin/python}"
if [[ ! -x "${python}" ]]; then
    echo "demo: ${python} not found: run \`make setup\` first (or set DEMO_PYTHON to a Python with the project installed)" >&2
    exit 2
fi
if ! command -v java >/dev/null 2>&1 && [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    echo "demo: java not found: the local Kafka broker needs Java 17+ (or set KAFKA_BOOTSTRAP_SERVERS to an existing broker)" >&2
    exit 2
fi

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# exec: the Python orchestrator receives Ctrl-C/SIGTERM itself and stops every process group it
# started (its children also die with it if it is SIGKILLed).
exec "${python}" -m line_harness.demo.run

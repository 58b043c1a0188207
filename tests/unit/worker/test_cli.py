"""`python -m worker` as a process: --help, bad settings (exit 2), unreachable Kafka (exit 3); the docs' table."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from line_harness.paths import REPO
from worker.settings import WorkerSettings


def _run_cli(args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=REPO, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_help_lists_every_setting_and_no_secret():
    done = _run_cli(["--help"], WORKER_KAFKA_SASL_PASSWORD="hunter2-secret")
    assert done.returncode == 0
    for name in WorkerSettings.model_fields:
        assert f"WORKER_{name.upper()}" in done.stdout
    assert "hunter2-secret" not in done.stdout + done.stderr


@pytest.mark.parametrize("var,value", [("WORKER_MAX_BATCH_SIZE", "0"), ("WORKER_PROCESSING_GUARANTEE", "twice"),
                                       ("WORKER_SIZE_MISMATCH_POLICY", "crop"), ("WORKER_POLL_TIMEOUT_MS", "0")])
def test_bad_setting_exits_2_naming_the_variable(var, value):
    done = _run_cli([], **{var: value})
    assert done.returncode == 2
    assert var in done.stderr and value in done.stderr


def test_unreachable_kafka_exits_3_naming_the_setting():
    done = _run_cli([], WORKER_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", WORKER_KAFKA_CONNECT_TIMEOUT_S="2",
                    WORKER_METRICS_PORT="0", WORKER_MODEL_PATH="/nonexistent")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "WORKER_KAFKA_BOOTSTRAP_SERVERS" in done.stderr


def test_docs_list_every_setting():
    doc = (REPO / "docs" / "worker.md").read_text()
    missing = [f"WORKER_{n.upper()}" for n in WorkerSettings.model_fields if f"`WORKER_{n.upper()}`" not in doc]
    assert not missing, f"docs/worker.md lacks {missing}: regenerate its settings table"


def test_batch_buckets_are_powers_of_two_up_to_max():
    assert WorkerSettings(max_batch_size=24).batch_buckets() == [1, 2, 4, 8, 16, 24]
    assert WorkerSettings(max_batch_size=1).batch_buckets() == [1]

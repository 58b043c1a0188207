"""The settings the harness starts a worker and a simulator with (no broker, no process): who wins when
the same variable is set twice."""

from __future__ import annotations

from pathlib import Path

from line_harness.worker_process import TEST_DEFAULTS, worker_env

TOPICS = ("frames-x", "results-x", "dlq-x")


def test_defaults_then_required_settings_then_explicit_ones():
    env = worker_env("127.0.0.1:9092", Path("/m"), TOPICS, "g", 9401, env={"PATH": "/bin"}, max_batch_size=3)
    assert env["WORKER_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    assert (env["WORKER_FRAMES_TOPIC"], env["WORKER_RESULTS_TOPIC"], env["WORKER_DEAD_LETTER_TOPIC"]) == TOPICS
    assert env["WORKER_MODEL_PATH"] == "/m" and env["WORKER_GROUP_ID"] == "g"
    assert env["WORKER_METRICS_HOST"] == "127.0.0.1" and env["WORKER_METRICS_PORT"] == "9401"
    assert env["WORKER_MAX_BATCH_SIZE"] == "3"  # explicit beats the default (16)
    assert env["WORKER_MODEL_BACKEND"] == str(TEST_DEFAULTS["model_backend"])
    assert env["PATH"] == "/bin" and env["TF_CPP_MIN_LOG_LEVEL"] == "2" and env["PYTHONUNBUFFERED"] == "1"


def test_a_users_worker_setting_beats_a_default_but_not_the_broker(monkeypatch):
    user = {"WORKER_MAX_BATCH_SIZE": "2", "WORKER_KAFKA_BOOTSTRAP_SERVERS": "elsewhere:9092",
            "WORKER_KAFKA_SASL_PASSWORD": "stale"}
    env = worker_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
                     Path("/m"), TOPICS, "g", 1, env=user, defaults={"max_batch_size": 8, "decode_threads": 1})
    assert env["WORKER_MAX_BATCH_SIZE"] == "2" and env["WORKER_DECODE_THREADS"] == "1"
    assert env["WORKER_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:1"
    assert env["WORKER_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert "WORKER_KAFKA_SASL_PASSWORD" not in env  # a broker setting is never mixed from two brokers


def test_without_an_env_this_process_worker_settings_are_left_out(monkeypatch):
    monkeypatch.setenv("WORKER_MAX_BATCH_SIZE", "99")
    monkeypatch.setenv("HARNESS_UNIT_MARKER", "1")
    env = worker_env("b:1", Path("/m"), TOPICS, "g", 1)
    assert env["WORKER_MAX_BATCH_SIZE"] == str(TEST_DEFAULTS["max_batch_size"])
    assert env["HARNESS_UNIT_MARKER"] == "1"


def test_the_simulator_keeps_a_users_settings_but_takes_the_broker_from_the_run(monkeypatch):
    from line_harness.simulator import sim_env
    user = {"SIM_FPS": "3", "SIM_KAFKA_BOOTSTRAP_SERVERS": "elsewhere:9092", "PATH": "/bin"}
    env = sim_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, user)
    assert env["SIM_FPS"] == "3" and env["SIM_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:1" and env["PATH"] == "/bin"
    monkeypatch.setenv("SIM_FPS", "99")
    assert "SIM_FPS" not in sim_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})  # a run's own: none of ours

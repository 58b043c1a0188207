"""TLS + SASL/SCRAM: the round trip works with the shared settings; wrong credentials fail fast and clearly."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer
from pydantic_settings import SettingsConfigDict

from line_harness.kafka.broker import LocalKafka
from line_harness.paths import REPO
from line_runtime.kafka_check import KafkaConnectError, check_kafka_connection
from line_runtime.settings import KafkaClientSettings, load_settings, settings_table

PREFIX = "SECTEST_"


class ClientSettings(KafkaClientSettings):
    """A deployable's settings as the worker and simulator declare them: own env prefix, shared kafka_* fields."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", validate_default=True)


@pytest.fixture(scope="module")
def tls_broker():
    """A broker whose only client listener is SASL_SSL (SCRAM-SHA-512, certificate from a generated CA)."""
    run_dir = REPO / "run" / "pytest-kafka" / f"{os.getpid()}-tls"
    kafka = LocalKafka(run_dir, security="sasl_ssl", die_with_parent=True)
    try:
        kafka.start(timeout_s=60)
        yield kafka
    finally:
        kafka.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def tls_env(tls_broker, monkeypatch) -> dict[str, str]:
    """The broker's client settings exported as SECTEST_KAFKA_* environment variables."""
    env = tls_broker.client_settings_env(PREFIX)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_round_trip_over_tls_and_scram(tls_env, new_group):
    settings = load_settings(ClientSettings)
    assert settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_ssl_cafile.is_file()
    check_kafka_connection(settings, timeout_s=20)
    kwargs = settings.kafka_client_kwargs()
    topic = f"tls-{time.monotonic_ns()}"
    producer = KafkaProducer(**kwargs, acks="all")
    for i in range(10):
        producer.send(topic, key=b"cam-1", value=b"frame-%d" % i)
    producer.flush(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, **kwargs, group_id=new_group(), auto_offset_reset="earliest")
    values, deadline = [], time.monotonic() + 30
    while len(values) < 10 and time.monotonic() < deadline:
        values += [r.value for batch in consumer.poll(timeout_ms=500).values() for r in batch]
    consumer.close()
    assert values == [b"frame-%d" % i for i in range(10)]


def test_wrong_password_fails_fast_naming_the_setting(tls_env, monkeypatch):
    monkeypatch.setenv(PREFIX + "KAFKA_SASL_PASSWORD", "not-the-password")
    settings = load_settings(ClientSettings)
    t0 = time.monotonic()
    with pytest.raises(KafkaConnectError) as err:
        check_kafka_connection(settings, timeout_s=15)
    elapsed = time.monotonic() - t0
    assert elapsed < 10, f"took {elapsed:.1f} s to report a wrong password"
    message = str(err.value)
    assert "authentication" in message.lower() and PREFIX + "KAFKA_SASL_PASSWORD" in message
    assert "not-the-password" not in message and tls_env[PREFIX + "KAFKA_SASL_PASSWORD"] not in message


def test_untrusted_broker_certificate_fails_fast_naming_the_ca_setting(tls_env, monkeypatch):
    monkeypatch.delenv(PREFIX + "KAFKA_SSL_CAFILE")  # the system CAs do not know our local CA
    t0 = time.monotonic()
    with pytest.raises(KafkaConnectError, match=f"CERTIFICATE_VERIFY_FAILED.*{PREFIX}KAFKA_SSL_CAFILE"):
        check_kafka_connection(load_settings(ClientSettings), timeout_s=15)
    assert time.monotonic() - t0 < 10


def test_plaintext_client_is_refused_within_its_timeout(tls_env, monkeypatch):
    monkeypatch.setenv(PREFIX + "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    t0 = time.monotonic()
    with pytest.raises(KafkaConnectError, match=f"{PREFIX}KAFKA_SECURITY_PROTOCOL"):
        check_kafka_connection(load_settings(ClientSettings), timeout_s=3)
    assert time.monotonic() - t0 < 10


def test_password_never_shown(tls_env):
    settings = load_settings(ClientSettings)
    password = tls_env[PREFIX + "KAFKA_SASL_PASSWORD"]
    for text in (str(settings), repr(settings), settings_table(ClientSettings), settings.model_dump_json()):
        assert password not in text
    assert settings.kafka_client_kwargs()["sasl_plain_password"] == password  # ...but the client gets it


def test_broker_files_holding_secrets_are_private(tls_broker):
    for path in (tls_broker.run_dir / "server.properties", tls_broker.run_dir / "tls" / "client.password",
                 tls_broker.run_dir / "tls" / "broker-keystore.pem", tls_broker.run_dir / "tls" / "ca.key"):
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"

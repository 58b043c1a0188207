"""Settings: a bad value names its env var; secrets never show in str/repr/tables/errors."""

from __future__ import annotations

import importlib

import pytest
from pydantic_settings import SettingsConfigDict

from line_harness.paths import REPO
from line_runtime.settings import KafkaClientSettings, SettingsError, env_name, load_settings, settings_table

SECRET = "s3cr3t-value-that-must-not-leak"


class AppSettings(KafkaClientSettings):
    """A deployable's settings: its own prefix on top of the shared kafka_* fields."""

    model_config = SettingsConfigDict(env_prefix="TESTAPP_", extra="ignore", validate_default=True)


def _deployable_classes():
    """The real deployables' settings classes (each must hide secrets the same way)."""
    out = [AppSettings]
    for module, name in (("worker.settings", "WorkerSettings"), ("producer_sim.settings", "SimSettings")):
        out.append(getattr(importlib.import_module(module), name))
    return out


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for cls in _deployable_classes():
        prefix = cls.model_config.get("env_prefix", "")
        for name in cls.model_fields:
            monkeypatch.delenv((prefix + name).upper(), raising=False)


def test_env_var_name_uses_the_prefix():
    assert env_name(AppSettings, "kafka_sasl_password") == "TESTAPP_KAFKA_SASL_PASSWORD"


@pytest.mark.parametrize("var, value", [
    ("TESTAPP_KAFKA_CONNECT_TIMEOUT_S", "soon"),
    ("TESTAPP_KAFKA_CONNECT_TIMEOUT_S", "-1"),
    ("TESTAPP_KAFKA_SECURITY_PROTOCOL", "TLS"),
    ("TESTAPP_KAFKA_SSL_CHECK_HOSTNAME", "perhaps"),
])
def test_bad_value_names_the_env_var_and_the_value(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings(AppSettings)
    assert var in str(err.value) and repr(value) in str(err.value)


def test_sasl_without_credentials_names_each_missing_var(monkeypatch):
    monkeypatch.setenv("TESTAPP_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(SettingsError) as err:
        load_settings(AppSettings)
    for var in ("TESTAPP_KAFKA_SASL_MECHANISM", "TESTAPP_KAFKA_SASL_USERNAME", "TESTAPP_KAFKA_SASL_PASSWORD"):
        assert var in str(err.value)


def test_missing_ca_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("TESTAPP_KAFKA_SSL_CAFILE", str(tmp_path / "nope.pem"))
    with pytest.raises(SettingsError, match="TESTAPP_KAFKA_SSL_CAFILE points to .*nope.pem"):
        load_settings(AppSettings)


def test_overrides_win_over_env(monkeypatch):
    monkeypatch.setenv("TESTAPP_KAFKA_BOOTSTRAP_SERVERS", "from-env:9092")
    assert load_settings(AppSettings).kafka_bootstrap_servers == "from-env:9092"
    assert load_settings(AppSettings, kafka_bootstrap_servers="flag:1").kafka_bootstrap_servers == "flag:1"
    assert load_settings(AppSettings, kafka_bootstrap_servers=None).kafka_bootstrap_servers == "from-env:9092"


@pytest.mark.parametrize("cls", _deployable_classes(), ids=lambda c: c.__name__)
def test_secrets_never_shown(monkeypatch, cls):
    prefix = cls.model_config.get("env_prefix", "")
    monkeypatch.setenv(f"{prefix}KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv(f"{prefix}KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv(f"{prefix}KAFKA_SASL_USERNAME", "line")
    monkeypatch.setenv(f"{prefix}KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv(f"{prefix}KAFKA_SSL_PASSWORD", SECRET)
    settings = load_settings(cls)
    shown = [str(settings), repr(settings), settings.model_dump_json(), settings_table(cls),
             settings_table(cls, markdown=True)]
    assert not [text for text in shown if SECRET in text]
    assert settings.kafka_client_kwargs()["sasl_plain_password"] == SECRET  # the client still gets it

    monkeypatch.setenv(f"{prefix}KAFKA_CONNECT_TIMEOUT_S", "never")  # an unrelated error must not echo secrets
    with pytest.raises(SettingsError) as err:
        load_settings(cls)
    assert SECRET not in str(err.value) and f"{prefix}KAFKA_CONNECT_TIMEOUT_S" in str(err.value)


def test_every_field_is_documented():
    for cls in _deployable_classes():
        undocumented = [n for n, f in cls.model_fields.items() if not (f.description or "").strip()]
        assert not undocumented, f"{cls.__name__} fields without a description: {undocumented}"


def test_readme_worker_settings_table_is_current():
    """The README's worker settings table is exactly what the settings class generates."""
    from worker.settings import WorkerSettings

    readme = (REPO / "README.md").read_text()
    start = readme.index("<!-- worker-settings:start")
    body = readme[readme.index("\n", start) + 1:readme.index("<!-- worker-settings:end -->")].strip()
    assert body == settings_table(WorkerSettings, markdown=True), "regenerate the table in README.md"

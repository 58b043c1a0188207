"""Settings base shared by every deployable: env-var loading, Kafka connection, clear errors.

Each deployable subclasses `KafkaClientSettings` with its own env prefix (WORKER_, SIM_, ...),
so the Kafka connection fields are declared once and read as e.g. WORKER_KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Type, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


class SettingsError(ValueError):
    """One or more settings are invalid; the message names each env var and the fix."""


class KafkaClientSettings(BaseSettings):
    """Connection to the Kafka cluster, shared by the worker, the simulator and the tools."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    kafka_bootstrap_servers: str = Field(
        "localhost:9092", description="Comma-separated host:port list of Kafka brokers to bootstrap from.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Protocol to talk to the brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_mechanism: Optional[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]] = Field(
        None, description="SASL mechanism when the protocol is SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    kafka_sasl_username: Optional[str] = Field(None, description="SASL user name.")
    kafka_sasl_password: Optional[SecretStr] = Field(None, description="SASL password (secret; never logged).")
    kafka_ssl_cafile: Optional[Path] = Field(None, description="PEM file of the CA that signed the brokers' certificates.")
    kafka_ssl_certfile: Optional[Path] = Field(None, description="PEM client certificate, for mutual TLS.")
    kafka_ssl_keyfile: Optional[Path] = Field(None, description="PEM private key of the client certificate.")
    kafka_ssl_password: Optional[SecretStr] = Field(None, description="Password of the client key file (secret).")
    kafka_ssl_check_hostname: bool = Field(True, description="Verify that the broker certificate matches its host name.")
    kafka_connect_timeout_s: float = Field(
        15.0, gt=0, description="Give up with an error when no broker answers within this many seconds.")

    @model_validator(mode="after")
    def _check_security(self):
        proto = self.kafka_security_protocol
        if proto.startswith("SASL"):
            missing = [n for n in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
                       if getattr(self, n) is None]
            if missing:
                names = ", ".join(env_name(type(self), n) for n in missing)
                raise ValueError(f"security protocol {proto} needs {names} to be set")
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{env_name(type(self), name)} points to {path}, which is not a readable file")
        return self

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (KafkaConsumer, KafkaProducer, KafkaAdminClient)."""
        kw: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()],
            "security_protocol": self.kafka_security_protocol,
            # kafka-python 3.x name; 2.x called it api_version_auto_timeout_ms and 3.x rejects that.
            "bootstrap_timeout_ms": int(self.kafka_connect_timeout_s * 1000),
        }
        if self.kafka_security_protocol.startswith("SASL"):
            kw["sasl_mechanism"] = self.kafka_sasl_mechanism
            kw["sasl_plain_username"] = self.kafka_sasl_username
            kw["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol.endswith("SSL"):
            kw["ssl_check_hostname"] = self.kafka_ssl_check_hostname
            if self.kafka_ssl_cafile:
                kw["ssl_cafile"] = str(self.kafka_ssl_cafile)
            if self.kafka_ssl_certfile:
                kw["ssl_certfile"] = str(self.kafka_ssl_certfile)
            if self.kafka_ssl_keyfile:
                kw["ssl_keyfile"] = str(self.kafka_ssl_keyfile)
            if self.kafka_ssl_password:
                kw["ssl_password"] = self.kafka_ssl_password.get_secret_value()
        return kw


def env_name(cls: Type[BaseSettings], field: str) -> str:
    """The environment variable that sets `field` of settings class `cls`."""
    return (cls.model_config.get("env_prefix", "") + field).upper()


def load_settings(cls: Type[S], **overrides: Any) -> S:
    """Build settings from env vars (overrides win, e.g. CLI flags); raise SettingsError naming each bad var."""
    try:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            where = env_name(cls, field) if field in cls.model_fields else cls.__name__
            got = "" if field and cls.model_fields.get(field) and _is_secret(cls, field) else \
                f" (got {err.get('input')!r})" if "input" in err and not isinstance(err.get("input"), dict) else ""
            lines.append(f"  {where}: {err['msg']}{got}")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None


def _is_secret(cls: Type[BaseSettings], field: str) -> bool:
    return "SecretStr" in str(cls.model_fields[field].annotation)


def settings_table(cls: Type[BaseSettings], markdown: bool = False) -> str:
    """A table of every setting: env var, default, meaning. Secrets never show a value."""
    rows = []
    for name, info in cls.model_fields.items():
        default = "(secret)" if _is_secret(cls, name) else "(required)" if info.is_required() \
            else info.get_default(call_default_factory=True)
        default = "" if default is None else str(default.value if hasattr(default, "value") else default)
        rows.append((env_name(cls, name), default, info.description or ""))
    if markdown:
        out = ["| Variable | Default | Meaning |", "|---|---|---|"]
        out += [f"| `{n}` | `{d}` | {m} |" if d else f"| `{n}` | | {m} |" for n, d, m in rows]
        return "\n".join(out)
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {n:<{width}}  {m}" + (f" [default: {d}]" if d else "") for n, d, m in rows)

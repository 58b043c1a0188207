"""Preflight check of a deployable's Kafka settings: connect once, fail fast with an error naming the setting.

kafka-python retries every failed bootstrap (also a wrong password or an untrusted certificate)
until its timeout and then only says "Unable to bootstrap". Call `check_kafka_connection` at
start-up instead: it reports the real cause within a second or two for the causes no retry can
fix (authentication, TLS), and the last seen cause otherwise, naming the env vars to correct.
kafka-python is imported lazily, so importing line_contracts stays cheap.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from typing import Optional

from line_runtime.settings import KafkaClientSettings, env_name

# Substrings of kafka-python's connection-failure texts that no retry can fix, and what to check.
_FATAL = (
    ("Authentication", ("kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_mechanism")),
    ("UnsupportedSaslMechanism", ("kafka_sasl_mechanism",)),
    ("CERTIFICATE_VERIFY_FAILED", ("kafka_ssl_cafile", "kafka_ssl_check_hostname")),
    ("Hostname mismatch", ("kafka_ssl_check_hostname", "kafka_bootstrap_servers")),
    ("Handshake failed", ("kafka_security_protocol", "kafka_ssl_cafile")),
)


# kafka-python 3.0.12 drops a response that arrives together with the connection close, which is
# exactly how a broker answers a failed SASL authentication (error, then close). Several such
# drops in a row, with TLS and SASL configured, are therefore reported as a credentials problem.
_DROPS_MEAN_BAD_CREDENTIALS = 3
_SASL_DROP = ("the broker closed the connection during SASL authentication, so the credentials are most likely "
              "wrong (or the security protocol does not match the listener)")
_SASL_DROP_FIELDS = ("kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_mechanism", "kafka_security_protocol")

_BACKOFF = re.compile(r"\s*\(backoff [0-9.]+ secs\)$")


class KafkaConnectError(RuntimeError):
    """The Kafka settings do not lead to a working connection; the message names the env vars to fix."""


class _FailureLog(logging.Handler):
    """Collects kafka-python's connection-failure log lines while a check runs."""

    def __init__(self, thread_name: str, sasl: bool) -> None:
        super().__init__(level=logging.WARNING)
        self.thread_name = thread_name  # only this check's client: earlier clients may still be retrying
        self.sasl = sasl
        self.drops = 0
        self.last: Optional[str] = None
        self.fatal: Optional[tuple[str, tuple[str, ...]]] = None
        self.changed = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.threadName != self.thread_name or not ("fail" in text.lower() or "lost" in text.lower()):
            return
        text = _BACKOFF.sub("", text)
        if text.startswith("Bootstrap failed"):  # the final timeout; the cause came before it
            return
        if "Abort (" in text and text.endswith(")"):
            text = text[:-1]
        self.last = text
        for needle, fields in _FATAL:
            if needle in text and self.fatal is None:
                self.fatal = (text, fields)
                self.changed.set()
        if self.sasl and text.startswith("Bootstrap connection") and "socket disconnected" in text:
            self.drops += 1
            if self.drops >= _DROPS_MEAN_BAD_CREDENTIALS and self.fatal is None:
                self.fatal = (_SASL_DROP, _SASL_DROP_FIELDS)
                self.changed.set()


def check_kafka_connection(settings: KafkaClientSettings, timeout_s: Optional[float] = None) -> None:
    """Bootstrap once with these settings; raise KafkaConnectError naming the env vars when it cannot."""
    from kafka import KafkaAdminClient  # lazy: only processes that talk to Kafka pay for it

    timeout_s = settings.kafka_connect_timeout_s if timeout_s is None else timeout_s
    cls = type(settings)
    names = lambda fields: ", ".join(env_name(cls, f) for f in fields)  # noqa: E731
    kwargs = settings.kafka_client_kwargs()
    kwargs["bootstrap_timeout_ms"] = int(timeout_s * 1000)
    client_id = f"line-inspection-preflight-{uuid.uuid4().hex[:8]}"
    outcome: dict = {}
    done = threading.Event()
    failures = _FailureLog(thread_name=f"kafka-io-{client_id}",  # kafka-python names its IO thread so
                           sasl=settings.kafka_security_protocol.startswith("SASL"))

    def connect() -> None:
        try:
            KafkaAdminClient(**kwargs, client_id=client_id).close()
            outcome["ok"] = True
        except Exception as exc:  # reported below with the cause we saw in the log
            outcome["error"] = exc
        finally:
            done.set()
            failures.changed.set()

    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(failures)
    deadline = time.monotonic() + timeout_s + 5.0
    try:
        # A daemon thread: on a fatal cause we answer at once and let the client time out alone.
        threading.Thread(target=connect, name="kafka-preflight", daemon=True).start()
        while not done.is_set() and failures.fatal is None and time.monotonic() < deadline:
            failures.changed.wait(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        kafka_log.removeHandler(failures)
    if outcome.get("ok"):
        return
    servers = settings.kafka_bootstrap_servers
    if failures.fatal is not None:
        text, fields = failures.fatal
        raise KafkaConnectError(f"cannot connect to Kafka at {servers}: {text.rsplit('Error: ', 1)[-1]} "
                                f"-- check {names(fields)}")
    cause = failures.last or repr(outcome.get("error", "no answer"))
    raise KafkaConnectError(
        f"no Kafka broker answered at {servers} within {timeout_s:g} s (last error: {cause}) -- check "
        f"{names(('kafka_bootstrap_servers', 'kafka_security_protocol'))} or raise "
        f"{env_name(cls, 'kafka_connect_timeout_s')}")

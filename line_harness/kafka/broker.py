"""A real single-node Apache Kafka broker (KRaft), run with plain `java` from Maven-fetched jars.

Used by the test fixtures (tests/conftest.py) and, through the CLI, by `make demo`:

    python -m line_harness.kafka fetch|start|stop|status|create-topics|logs|env  (--help)

Standard library only, plus kafka-python for the readiness probe (a real API call, not a sleep).
Everything a broker writes (config, data, logs, pid file, TLS material) lives in its run dir.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Optional

from line_harness.kafka.config import broker_properties, log4j2_properties
from line_harness.paths import DEPLOY_DIR, REPO
from line_harness.processes import die_with_parent, port_is_free, stop_group
from line_runtime.ports import free_ports

KAFKA_DIR = DEPLOY_DIR / "kafka"  # pom.xml; the fetched jars go under its target/
JAR_DIR = KAFKA_DIR / "target" / "dependency"
DEFAULT_RUN_DIR = REPO / "run" / "kafka"
SECURITY_MODES = ("plaintext", "sasl_ssl")
SCRAM_MECHANISM = "SCRAM-SHA-512"
# Deleting a test's topics logs five lines per partition; a failure's cause is never among them, and
# after a busy suite they fill the whole tail.
SEGMENT_CHATTER = re.compile(r" INFO (Deleted (log|offset index|time index) |\[LocalLog [^\]]*\] Deleting segment)")
# The group coordinator's own account of a consumer group: who joined, why it rebalanced, who was dropped.
GROUP_EVENT = re.compile(r"\[GroupCoordinator id=\d+ topic=")


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started, reached or stopped; the message says why."""


def jars_present(jar_dir: Path = JAR_DIR) -> bool:
    """True when the broker and logging jars are already in jar_dir."""
    names = [p.name for p in jar_dir.glob("*.jar")] if jar_dir.is_dir() else []
    return any(n.startswith("kafka_2.13-") for n in names) and any(n.startswith("log4j-core-") for n in names)


def fetch_jars(jar_dir: Path = JAR_DIR, force: bool = False) -> bool:
    """Copy the broker's runtime jars into jar_dir with Maven (skipped when present); True if fetched."""
    if jars_present(jar_dir) and not force:
        return False
    cmd = ["mvn", "-q", "-B", "-f", str(KAFKA_DIR / "pom.xml"), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={jar_dir}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise BrokerError("mvn not found on PATH: install Maven (Debian: apt-get install maven)") from None
    if done.returncode != 0 or not jars_present(jar_dir):
        raise BrokerError(f"fetching Kafka jars failed ({' '.join(cmd)}):\n{(done.stdout + done.stderr)[-2000:]}")
    return True


def read_state(run_dir: Path) -> dict:
    """Ports and security mode a run dir was last started with ({} if never)."""
    try:
        return json.loads((Path(run_dir) / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def _is_our_broker(pid: int, run_dir: Path) -> bool:
    """True if pid is a live `kafka.Kafka` JVM started for run_dir (guards against reused pids)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(run_dir / "server.properties").encode() in cmdline


class LocalKafka:
    """One local broker: `start()`, `stop()`, `restart()`, `bootstrap`, `log_tail()`, `pid`."""

    def __init__(self, run_dir: Path, port: Optional[int] = None, security: str = "plaintext",
                 controller_port: Optional[int] = None, heap: str = "512m", jar_dir: Path = JAR_DIR,
                 die_with_parent: bool = False):
        if security not in SECURITY_MODES:
            raise BrokerError(f"security must be one of {SECURITY_MODES}, got {security!r}")
        self.run_dir = Path(run_dir).resolve()
        self.security = security
        self.heap = heap
        self.jar_dir = jar_dir
        self.die_with_parent = die_with_parent
        self._proc: Optional[subprocess.Popen] = None
        state = read_state(self.run_dir)
        # Storage formatted with --standalone records the controller endpoint, so a run dir keeps its ports.
        kept = {p for p in (port, state.get("port"), controller_port, state.get("controller_port")) if p}
        picked = iter(free_ports(2, avoid=kept))  # both at once: back-to-back picks may repeat a port
        self.port = port or state.get("port") or next(picked)
        self.controller_port = controller_port or state.get("controller_port") or next(picked)
        self._tls = None
        if security == "sasl_ssl":
            from line_harness.kafka.tls import ensure_tls_material
            self._tls = ensure_tls_material(self.run_dir)

    # -- paths and client settings ------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.run_dir / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / "server.log"

    @property
    def bootstrap(self) -> str:
        """host:port of the client listener (localhost for TLS, so the certificate's name matches)."""
        host = "localhost" if self.security == "sasl_ssl" else "127.0.0.1"
        return f"{host}:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        """Process id of the running broker JVM, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_our_broker(pid, self.run_dir) else None

    def client_settings_env(self, prefix: str = "") -> dict[str, str]:
        """Env vars (e.g. prefix 'WORKER_') that point a KafkaClientSettings at this broker; holds the password."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
        if self._tls is not None:
            env.update(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM=SCRAM_MECHANISM,
                       KAFKA_SASL_USERNAME=self._tls.client_user, KAFKA_SASL_PASSWORD=self._tls.client_password,
                       KAFKA_SSL_CAFILE=str(self._tls.ca_file))
        return {prefix + k: v for k, v in env.items()}

    def client_kwargs(self) -> dict:
        """kafka-python keyword arguments for a client of this broker."""
        kw: dict = {"bootstrap_servers": [self.bootstrap]}
        if self._tls is not None:
            kw.update(security_protocol="SASL_SSL", sasl_mechanism=SCRAM_MECHANISM,
                      sasl_plain_username=self._tls.client_user, sasl_plain_password=self._tls.client_password,
                      ssl_cafile=str(self._tls.ca_file))
        return kw

    # -- lifecycle ----------------------------------------------------------------------------
    def is_running(self) -> bool:
        """True while the broker process is alive."""
        if self._proc is not None:
            return self._proc.poll() is None
        return self.pid is not None

    def start(self, timeout_s: float = 60.0) -> float:
        """Format storage if new, start the JVM, wait for a real API answer; return seconds to ready."""
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        if self.is_running():
            raise BrokerError(f"a broker already runs for {self.run_dir} (pid {self.pid}); stop it first")
        if not jars_present(self.jar_dir):
            raise BrokerError(f"Kafka jars missing in {self.jar_dir}: run `make kafka-jars` "
                              "(or `python -m line_harness.kafka fetch`)")
        for port, what in ((self.port, "client"), (self.controller_port, "controller")):
            if not port_is_free(port):
                raise BrokerError(f"{what} port {port} on 127.0.0.1 is in use: pick another with --port "
                                  f"(or stop what listens there)")
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        self._format_storage(props)
        cmd = self._java("kafka.Kafka", str(props))
        out = open(self.run_dir / "logs" / "stdout.log", "ab")
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True,  # own process group: stop() kills it whole
                                          preexec_fn=die_with_parent if self.die_with_parent else None)
        finally:
            out.close()
        self.pid_file.write_text(f"{self._proc.pid}\n")
        try:
            self._wait_ready(deadline)
        except BaseException:
            self.stop(timeout_s=5)
            raise
        return time.monotonic() - t0

    def stop(self, timeout_s: float = 30.0, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL) the broker's process group and wait; SIGKILL if it outlives timeout_s."""
        pid = self._proc.pid if self._proc is not None else self.pid
        if pid is not None:
            stop_group(pid, self._alive, timeout_s, kill)
        self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def restart(self, timeout_s: float = 60.0) -> float:
        """Stop gracefully, start again on the same ports and data; return seconds to ready."""
        self.stop()
        return self.start(timeout_s=timeout_s)

    def log_tail(self, n: int = 80, without_deletions: bool = False) -> str:
        """The last n lines of the broker log (and of the JVM's stdout, where early failures land).

        `without_deletions` leaves out the segment-deletion lines of deleted topics (SEGMENT_CHATTER).
        """
        parts = []
        for path in (self.log_file, self.run_dir / "logs" / "stdout.log"):
            lines = _last_lines(path, n, SEGMENT_CHATTER if without_deletions else None)
            if lines:
                parts.append(f"--- {path} (last {len(lines)} lines{', topic deletions left out' if without_deletions else ''})\n"
                             + "\n".join(lines))
        return "\n".join(parts) or f"(no broker logs in {self.run_dir / 'logs'})"

    def group_events(self, n: int = 40) -> str:
        """The group coordinator's last n lines: joins, rebalances and their reasons, members dropped."""
        lines = _last_lines(self.log_file, n, keep=GROUP_EVENT)
        return "\n".join(lines) or f"(no consumer-group events in {self.log_file})"

    # -- internals ----------------------------------------------------------------------------
    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return _is_our_broker(pid, self.run_dir)

    def _java(self, main_class: str, *args: str) -> list[str]:
        logs = self.run_dir / "logs"
        return ["java", f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.run_dir / 'log4j2.properties'}", f"-Dkafka.logs.dir={logs}",
                "-cp", str(self.jar_dir / "*"), main_class, *args]

    def _write_config(self) -> Path:
        props = self.run_dir / "server.properties"
        text = broker_properties(data_dir=self.run_dir / "data", port=self.port,
                                 controller_port=self.controller_port, tls=self._tls)
        fd = os.open(props, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # may hold the broker's password
        with os.fdopen(fd, "w") as f:
            f.write(text)
        (self.run_dir / "log4j2.properties").write_text(log4j2_properties(self.log_file))
        state = {"port": self.port, "controller_port": self.controller_port, "security": self.security,
                 "bootstrap": self.bootstrap}
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        return props

    def _format_storage(self, props: Path) -> None:
        if (self.run_dir / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        args = ["format", "--standalone", f"--cluster-id={cluster_id}", "-c", str(props)]
        if self._tls is not None:  # SCRAM users must exist before the first start
            for user, password in ((self._tls.broker_user, self._tls.broker_password),
                                   (self._tls.client_user, self._tls.client_password)):
                args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
        done = subprocess.run(self._java("kafka.tools.StorageTool", *args), capture_output=True, text=True)
        if done.returncode != 0:
            raise BrokerError(f"formatting storage in {self.run_dir / 'data'} failed:\n"
                              f"{(done.stdout + done.stderr)[-2000:]}")

    def _wait_ready(self, deadline: float) -> None:
        """Poll until the broker answers a metadata (DescribeCluster) request listing itself."""
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.is_running():
                raise BrokerError(f"broker exited with code {self._proc.returncode if self._proc else '?'} "
                                  f"before it was ready; log tail:\n{self.log_tail(40)}")
            if not self._port_open():
                time.sleep(0.1)
                continue
            try:
                if self._describe_cluster(deadline):
                    return
            except Exception as exc:  # not ready yet: any client error means "ask again"
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise BrokerError(f"broker at {self.bootstrap} not ready before the deadline ({last}); "
                          f"log tail:\n{self.log_tail(40)}")

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _describe_cluster(self, deadline: float) -> bool:
        from kafka import KafkaAdminClient  # lazy: the CLI's fetch/stop/logs work without kafka-python
        budget_ms = int(max(1.0, min(5.0, deadline - time.monotonic())) * 1000)
        admin = KafkaAdminClient(**self.client_kwargs(), request_timeout_ms=budget_ms,
                                 bootstrap_timeout_ms=budget_ms, client_id="localkafka-probe")
        try:
            return bool(admin.describe_cluster().get("brokers"))
        finally:
            admin.close()


def _last_lines(path: Path, n: int, drop: Optional[re.Pattern] = None, keep: Optional[re.Pattern] = None,
                max_bytes: int = 8 << 20) -> list[str]:
    """The last n lines of `path` (read from its last max_bytes) that `keep` matches and `drop` does not."""
    if not path.exists() or not path.stat().st_size:
        return []
    with open(path, "rb") as f:
        # Unfiltered, 200 bytes a line is plenty; filtered, the kept lines may be far apart.
        f.seek(max(0, path.stat().st_size - (max_bytes if drop or keep else 200 * n)))
        lines = f.read().decode("utf-8", "replace").splitlines()
    if keep is not None:
        lines = [ln for ln in lines if keep.search(ln)]
    if drop is not None:
        lines = [ln for ln in lines if not drop.search(ln)]
    return lines[-n:]

"""Several consumer processes in one pod (WORKER_PROCESSES > 1), behind one metrics and health port.

Why: one Python process polls Kafka, builds one event per frame and publishes it under one GIL;
it moves a few hundred PNG frames/s however many cores it has (docs/performance.md, pipeline
ceiling). A GPU judges thousands. Processes, not threads, scale that part, and they all join the
same consumer group, so Kafka spreads the partitions over them as over pods.

The supervisor (`Fleet`) starts `python -m worker` N times with WORKER_PROCESSES=1, the id
`<instance_id>-<n>` (stable, as exactly-once mode needs) and a loopback-only metrics port each.
On the pod's own port it serves /metrics (every child's metrics with a `process` label),
/healthz and /readyz (healthy/ready only when every child is). If a child dies the supervisor
stops the others and exits with the child's code, so the pod restarts as a whole (one dead
process would otherwise leave its partitions' share of the work on a half-working pod).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Iterable, Optional

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from line_runtime.ports import free_ports
from worker.http import MetricsServer
from worker.model import model_threads
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

PROCESS_LABEL = "process"
_SCRAPE_TIMEOUT_S = 3.0


def child_env(settings: WorkerSettings, index: int, port: int, base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The environment of child `index`: one process, its own id and loopback port and its share of the CPUs,
    GPU memory shared."""
    env = dict(os.environ if base is None else base)
    env.update({
        "WORKER_PROCESSES": "1",
        # Each child is one process of N: its model threads are its share of the pod's CPUs, computed here.
        "WORKER_MODEL_THREADS": str(model_threads(settings)),
        "WORKER_INSTANCE_ID": f"{settings.instance_id}-{index}",
        "WORKER_METRICS_HOST": "127.0.0.1",
        "WORKER_METRICS_PORT": str(port),
        # TensorFlow takes all GPU memory by default; the second process would then find none.
        "TF_FORCE_GPU_ALLOW_GROWTH": env.get("TF_FORCE_GPU_ALLOW_GROWTH", "true"),
    })
    return env


def merge_metrics(texts: Iterable[tuple[str, str]]) -> list[Metric]:
    """Families of several children's exposition texts, each sample labelled with its child's `process`."""
    families: dict[str, Metric] = {}
    for process, text in texts:
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                merged.add_sample(sample.name, {**sample.labels, PROCESS_LABEL: process}, sample.value,
                                  sample.timestamp, sample.exemplar)
    return list(families.values())


class _Merged:
    """A prometheus_client collector yielding the families it is handed at each scrape."""

    def __init__(self, fleet: "Fleet"):
        self._fleet = fleet

    def collect(self) -> list[Metric]:
        return merge_metrics(self._fleet.scrape())


class Fleet:
    """Supervises N worker processes; `run()` returns the exit code of the pod."""

    def __init__(self, settings: WorkerSettings, command: Optional[list[str]] = None):
        self.settings = settings
        self._command = command or [sys.executable, "-m", "worker"]
        self._children: list[subprocess.Popen] = []
        self._ports: list[int] = []
        self._stop = threading.Event()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Merged(self))
        self.http: Optional[MetricsServer] = None

    def request_stop(self) -> None:
        """Forward the stop to every child (each drains its in-flight frames within the grace period)."""
        self._stop.set()

    def run(self) -> int:
        """Start the children and serve for them until stopped or one of them exits."""
        s = self.settings
        self.http = MetricsServer(s.metrics_host, s.metrics_port, self.metrics_text, self.live, self.ready)
        self.http.start()
        self._ports = free_ports(s.processes)  # at once: back-to-back picks may repeat a port
        for index, port in enumerate(self._ports):
            # Own session: a Ctrl-C in a terminal reaches only the supervisor, which forwards one SIGTERM
            # (a child that got both would take the second signal as "exit now").
            self._children.append(subprocess.Popen(self._command, env=child_env(s, index, port),
                                                   start_new_session=True, preexec_fn=_die_with_parent))
        log.info("%d worker processes started (pids %s); metrics and health for all on http://%s:%d",
                 len(self._children), ", ".join(str(c.pid) for c in self._children), s.metrics_host, self.http.port)
        try:
            return self._supervise()
        finally:
            self.http.stop()

    def _supervise(self) -> int:
        code = 0
        while not self._stop.wait(0.5):
            exited = [(i, c.returncode) for i, c in enumerate(self._children) if c.poll() is not None]
            if exited:
                index, code = exited[0]
                log.error("worker process %d exited with code %s; stopping the others so the pod restarts whole",
                          index, code)
                code = code or 1  # a child that ends by itself while the pod should run is a failure
                break
        return max(code, self._stop_children())

    def _stop_children(self) -> int:
        for child in self._children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + self.settings.shutdown_grace_s + 5.0
        codes = []
        for child in self._children:
            try:
                codes.append(child.wait(timeout=max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                log.error("worker process %d did not stop within the grace period; killing it", child.pid)
                child.kill()
                codes.append(child.wait())
        return max((c if c >= 0 else 128 - c for c in codes), default=0)

    def scrape(self) -> list[tuple[str, str]]:
        """(process index, exposition text) of every child that answers."""
        out = []
        for index, port in enumerate(self._ports):
            ok, text = _get(port, "/metrics")
            if ok:
                out.append((str(index), text))
        return out

    def metrics_text(self) -> bytes:
        """Every child's metrics, labelled by process."""
        return generate_latest(self._registry)

    def live(self) -> tuple[bool, str]:
        """Healthy only when every child runs and answers /healthz with 200."""
        return self._probe("/healthz")

    def ready(self) -> tuple[bool, str]:
        """Ready only when every child is ready."""
        return self._probe("/readyz")

    def _probe(self, path: str) -> tuple[bool, str]:
        if not self._children:
            return False, "worker processes not started"
        answers, ok = [], True
        for index, (child, port) in enumerate(zip(self._children, self._ports)):
            if child.poll() is not None:
                child_ok, text = False, f"exited with code {child.returncode}"
            else:
                child_ok, text = _get(port, path)
            ok = ok and child_ok
            answers.append(f"process {index}: {text.strip()}")
        return ok, "; ".join(answers)


def _get(port: int, path: str) -> tuple[bool, str]:
    """(status is 200, body) of a child's endpoint; (False, why) when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=_SCRAPE_TIMEOUT_S) as reply:
            return reply.status == 200, reply.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode("utf-8", "replace")
    except OSError as exc:
        return False, f"not answering ({exc.__class__.__name__})"


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the supervisor dies without stopping it (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a killed supervisor leaves its children to the container's end


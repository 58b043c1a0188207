"""`python -m worker` as a real child process, the one wrapper the demo, the benchmark, the fault suite
and the tests start workers with: WORKER_* settings in, /readyz waited for, /metrics scraped, signals,
stop, log tail. CPU and memory readings are `processes.cpu_seconds(worker.pid)` and `rss_bytes`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping, Optional, Union

from line_harness.paths import REPO
from line_harness.processes import Child, free_port

# What the tests pin: the LiteRT backend, small quick batches, a short shutdown, no model polling.
TEST_DEFAULTS: Mapping[str, object] = {"model_backend": "litert", "max_batch_size": 16, "max_batch_wait_ms": 10,
                                       "shutdown_grace_s": 15, "model_poll_interval_s": 0}


class WorkerNotReady(RuntimeError):
    """The worker exited, or did not answer /readyz in time; the message carries its log tail."""


def worker_env(kafka: Union[str, Mapping[str, str]], model_path: Path, topics: tuple[str, str, str], group: str,
               port: int, env: Optional[Mapping[str, str]] = None, defaults: Mapping[str, object] = TEST_DEFAULTS,
               **settings) -> dict[str, str]:
    """The worker's environment; see WorkerProcess for the arguments. Precedence, lowest first: `defaults`,
    WORKER_* already in `env`, the broker and the run's topics/model/port, then `settings`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")} if env is None else dict(env)
    out = {k: v for k, v in base.items() if not k.startswith("WORKER_KAFKA_")}  # the broker comes from `kafka`
    out.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out["PYTHONUNBUFFERED"] = "1"
    for key, value in defaults.items():
        out.setdefault(f"WORKER_{key.upper()}", str(value))
    if isinstance(kafka, str):
        out["WORKER_KAFKA_BOOTSTRAP_SERVERS"] = kafka
    else:
        out.update({f"WORKER_{k}": v for k, v in kafka.items() if k.startswith("KAFKA_")})
    frames, results, dead_letter = topics
    out.update(WORKER_MODEL_PATH=str(model_path), WORKER_FRAMES_TOPIC=frames, WORKER_RESULTS_TOPIC=results,
               WORKER_DEAD_LETTER_TOPIC=dead_letter, WORKER_GROUP_ID=group, WORKER_METRICS_HOST="127.0.0.1",
               WORKER_METRICS_PORT=str(port))
    out.update({f"WORKER_{k.upper()}": str(v) for k, v in settings.items()})
    return out


class WorkerProcess(Child):
    """`python -m worker` in its own process group (dies with this process); log in `log_path`.

    kafka: a bootstrap "host:port", or the broker's KAFKA_* client settings (security included).
    env: the environment to start from (default: this process's, less its WORKER_* variables); WORKER_*
    variables in it are the user's choices and win over `defaults`. settings: WORKER_<NAME> overrides.
    """

    def __init__(self, kafka: Union[str, Mapping[str, str]], model_path: Path, frames: str, results: str,
                 dead_letter: str, group: str, log_path: Path, *, env: Optional[Mapping[str, str]] = None,
                 defaults: Mapping[str, object] = TEST_DEFAULTS, preferred_port: Optional[int] = None,
                 name: str = "worker", **settings):
        self.port = free_port(preferred_port)
        self.env = worker_env(kafka, model_path, (frames, results, dead_letter), group, self.port, env, defaults,
                              **settings)
        self.started_mono = time.monotonic()
        self.ready_mono: Optional[float] = None
        super().__init__(name, [sys.executable, "-m", "worker"], self.env, Path(log_path), REPO)

    @property
    def url(self) -> str:
        """http://host:port of the worker's metrics and health endpoints."""
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of GET path on the worker's HTTP port; (0, error) if it does not answer."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def wait_ready(self, timeout_s: float = 90.0, stop: Optional[threading.Event] = None) -> float:
        """Block until /readyz answers 200 (or `stop` is set); seconds since start. Raises WorkerNotReady."""
        deadline = time.monotonic() + timeout_s
        while self.get("/readyz")[0] != 200:
            if not self.running():
                raise WorkerNotReady(f"the worker exited ({self.proc.returncode}) before it was ready; "
                                     f"log: {self.log_path}\n{self.log_tail()}")
            if stop is not None and stop.is_set():
                return time.monotonic() - self.started_mono
            if time.monotonic() > deadline:
                raise WorkerNotReady(f"the worker was not ready within {timeout_s:g}s; log: {self.log_path}\n"
                                     f"{self.log_tail()}")
            time.sleep(0.2)
        self.ready_mono = time.monotonic()
        return self.ready_mono - self.started_mono

    def samples(self) -> list:
        """Every sample /metrics exposes (prometheus_client Sample); raises RuntimeError if it does not answer."""
        from prometheus_client.parser import text_string_to_metric_families
        status, body = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"worker /metrics answered {status}: {body[:200]}")
        return [sample for family in text_string_to_metric_families(body) for sample in family.samples]

    def metric(self, metric_name: str, **labels) -> float:
        """Sum of the samples of `metric_name` whose labels include `labels` (0.0 when none)."""
        return sum(s.value for s in self.samples()
                   if s.name == metric_name and all(s.labels.get(k) == v for k, v in labels.items()))

    def metric_sum(self, name: str) -> float:
        """Sum of a metric over all its label sets."""
        return self.metric(name)

    def signal(self, sig: int) -> None:
        """Send `sig` to the worker."""
        self.send(sig)

    def log_tail(self, n: int = 60) -> str:
        """The last n lines of the worker's log."""
        return super().log_tail(n)

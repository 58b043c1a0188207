"""`python -m worker` as a real subprocess: start it with WORKER_* settings, wait for /readyz, scrape
/metrics, signal it, tail its log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from line_harness.paths import REPO
from line_harness.processes import free_port


class WorkerProcess:
    """`python -m worker` as a real subprocess with WORKER_* env; log in a file."""

    def __init__(self, bootstrap: str, model_path: Path, frames: str, results: str, dlq: str, group: str,
                 log_path: Path, **settings):
        self.port = free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
        env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
                   WORKER_KAFKA_BOOTSTRAP_SERVERS=bootstrap, WORKER_MODEL_PATH=str(model_path),
                   WORKER_FRAMES_TOPIC=frames, WORKER_RESULTS_TOPIC=results, WORKER_DEAD_LETTER_TOPIC=dlq,
                   WORKER_GROUP_ID=group, WORKER_METRICS_HOST="127.0.0.1", WORKER_METRICS_PORT=str(self.port),
                   WORKER_MODEL_BACKEND="litert", WORKER_MAX_BATCH_SIZE="16", WORKER_MAX_BATCH_WAIT_MS="10",
                   WORKER_SHUTDOWN_GRACE_S="15", WORKER_MODEL_POLL_INTERVAL_S="0")
        env.update({f"WORKER_{k.upper()}": str(v) for k, v in settings.items()})
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of GET path on the worker's HTTP port; (0, error) if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until /readyz answers 200; fail with the log tail otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log_tail()}")
            if self.get("/readyz")[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready within {timeout_s}s:\n{self.log_tail()}")

    def metric(self, metric_name: str, **labels) -> float:
        """Sum of the samples of `metric_name` whose labels include `labels` (0.0 when none)."""
        from prometheus_client.parser import text_string_to_metric_families
        status, body = self.get("/metrics")
        assert status == 200, body
        return sum(sample.value for family in text_string_to_metric_families(body) for sample in family.samples
                   if sample.name == metric_name and all(sample.labels.get(k) == v for k, v in labels.items()))

    def metric_sum(self, name: str) -> float:
        """Sum of a metric over all its label sets."""
        return self.metric(name)

    def signal(self, sig: int) -> None:
        """Send `sig` to the worker."""
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait (SIGKILL if it hangs); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, n: int = 60) -> str:
        """The last n lines of the worker's log."""
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

"""A real Prometheus on a free port, running the project's config and rules against given worker targets.

The config is deploy/prometheus/prometheus.yml itself, with only what must change on this machine
changed: the worker's address, the rule-file paths (made absolute), and optionally the scrape and
evaluation interval (the end-to-end test uses 1s). Used by `make demo` and tests/test_e2e_prometheus.py.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

import yaml

from line_harness.paths import REPO
from line_harness.processes import Child, free_port

PROJECT_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
WORKER_JOB = "line-inspection-worker"  # the alert rules select on this job name


class PrometheusError(RuntimeError):
    """Prometheus could not start, or a query failed; the message says which and why."""


def render_config(targets: list[str], interval: Optional[str] = None, base: Path = PROJECT_CONFIG) -> dict:
    """The project's Prometheus config pointed at `targets` (host:port), rule files absolute."""
    config = yaml.safe_load(base.read_text())
    config["rule_files"] = [str((base.parent / f).resolve()) for f in config.get("rule_files", [])]
    if interval:
        config.setdefault("global", {}).update(scrape_interval=interval, evaluation_interval=interval)
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == WORKER_JOB]
    if not jobs:
        raise PrometheusError(f"{base} has no scrape job named {WORKER_JOB!r}; the alert rules need it")
    jobs[0]["static_configs"] = [{"targets": list(targets)}]
    return config


class PrometheusServer:
    """`start()`, `url`, `query(expr)`, `label_values(label, match)`, `rule_groups()`, `alerts()`, `stop()`."""

    def __init__(self, run_dir: Path, targets: list[str], env: dict[str, str], interval: Optional[str] = None,
                 port: Optional[int] = None, binary: str = "prometheus"):
        self.run_dir = Path(run_dir)
        self.targets = targets
        self.env = env
        self.interval = interval
        self.port = port or free_port(9090)
        self.binary = binary
        self.child: Optional[Child] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.run_dir / "prometheus.yml"

    def start(self, timeout_s: float = 30.0) -> float:
        """Write the config, start Prometheus with fresh storage, wait for /-/ready; return seconds taken."""
        for attempt in range(3):
            try:
                return self._start(timeout_s)
            except PrometheusError as exc:
                # The port was free when picked, but another process may have taken it since.
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                self.stop()
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start(self, timeout_s: float) -> float:
        t0 = time.monotonic()
        binary = shutil.which(self.binary)
        if binary is None:
            raise PrometheusError(f"{self.binary!r} is not on PATH (Debian: apt-get install prometheus)")
        shutil.rmtree(self.run_dir / "data", ignore_errors=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(render_config(self.targets, self.interval), sort_keys=False))
        cmd = [binary, f"--config.file={self.config_file}", f"--storage.tsdb.path={self.run_dir / 'data'}",
               f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d",
               "--log.level=warn"]
        self.child = Child("prometheus", cmd, self.env, self.run_dir / "prometheus.log", REPO)
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            if not self.child.running():
                raise PrometheusError(f"prometheus exited with {self.child.proc.returncode}:\n{self.child.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return time.monotonic() - t0
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise PrometheusError(f"prometheus not ready on {self.url} within {timeout_s:.0f}s:\n{self.child.log_tail()}")

    def _get(self, path: str, params: dict | list) -> object:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:  # bad PromQL answers 400 with the reason in the body
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query; the result vector (raises PrometheusError on a PromQL error)."""
        data = self._get("/api/v1/query", {"query": expr})
        return data["result"] if isinstance(data["result"], list) else [data["result"]]

    def label_values(self, label: str, match: str) -> list[str]:
        """What Grafana's label_values(match, label) shows."""
        return self._get(f"/api/v1/label/{label}/values", [("match[]", match)])

    def targets_up(self) -> list[dict]:
        """Active scrape targets with their health."""
        return self._get("/api/v1/targets", {"state": "active"})["activeTargets"]

    def rule_groups(self) -> list[dict]:
        """Loaded rule groups, each rule with its health and last evaluation error."""
        return self._get("/api/v1/rules", {})["groups"]

    def alerts(self) -> list[dict]:
        """Pending and firing alerts."""
        return self._get("/api/v1/alerts", {})["alerts"]

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop Prometheus (its whole process group)."""
        if self.child is not None:
            self.child.stop(grace_s)

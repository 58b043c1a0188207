"""`make demo` / deploy/demo.sh: broker, topics, model, worker, simulator, live numbers, Prometheus, clean stop.

Order of a run: broker -> topics -> model (built once) -> worker (wait for /readyz) -> Prometheus
(if installed) -> `producer_sim watch` (live numbers) -> `producer_sim run` for DEMO_DURATION_S ->
drain -> summary. Whatever happens (end, error, Ctrl-C, SIGTERM) everything started is stopped in
reverse order, each child by its process group; a second Ctrl-C kills at once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, TypeVar

from line_contracts import topics
from line_harness.demo.evidence import DemoEvidence, viewer_command
from line_harness.demo.settings import DemoSettings
from line_harness.demo.stack import (
    DEMO_WORKER_DEFAULTS,
    DemoBroker,
    DemoFailed,
    ModelBuilder,
    Watch,
    worker_progress,
)
from line_harness.demo.summary import format_summary
from line_harness.paths import REPO
from line_harness.processes import Child, group_alive, tee_lines, wait_until
from line_harness.simulator import sim_env
from line_harness.worker_process import WorkerNotReady, WorkerProcess
from line_runtime.settings import SettingsError, load_settings

TrackedChild = TypeVar("TrackedChild", bound=Child)
EXIT_OK, EXIT_FAILED, EXIT_BAD_SETTINGS, EXIT_INTERRUPTED = 0, 1, 2, 130


def say(text: str) -> None:
    """One line of the demo's own output."""
    print(f"demo: {text}", flush=True)


class Demo:
    """One demo run: `run()` does the work, `shutdown()` (always called) stops everything it started."""

    def __init__(self, settings: DemoSettings):
        self.s = settings
        self.stop = threading.Event()
        self.children: list[Child] = []
        self.broker: Optional[DemoBroker] = None
        self.evidence: Optional[DemoEvidence] = None
        self.prometheus = None
        self.facts: dict = {"settings": json.loads(settings.model_dump_json())}
        self.logs = settings.run_dir / "logs"
        prefix = settings.topic_prefix
        self.topics = {"frames": prefix + topics.FRAMES_TOPIC, "results": prefix + topics.RESULTS_TOPIC,
                       "dead_letter": prefix + topics.DEAD_LETTER_TOPIC}
        self.group = prefix + "line-inspection-demo"
        self.env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
                    "PYTHONUNBUFFERED": "1"}

    # -- signals ------------------------------------------------------------------------------
    def on_signal(self, signum, _frame) -> None:
        """First Ctrl-C/SIGTERM: wind down in order. Second: kill everything now."""
        if self.stop.is_set():
            print("\ndemo: second signal, killing everything now", flush=True)
            self.kill_all()
            os._exit(EXIT_INTERRUPTED)
        print(f"\ndemo: {signal.Signals(signum).name} received, stopping (again to kill at once)", flush=True)
        self.facts["interrupted"] = True
        self.stop.set()

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> int:
        """All steps; returns the exit code (0 when results flowed)."""
        s = self.s
        t0 = time.monotonic()
        for sub in ("logs", "prometheus"):
            shutil.rmtree(s.run_dir / sub, ignore_errors=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.broker = DemoBroker(s.run_dir / "kafka", say)
        client_env = self.broker.start()
        self.facts["broker"] = self.broker.description
        self.sim_env = sim_env(client_env, self.env)
        self.broker.create_topics(self.topics, s.partitions)
        say(f"topics: {self.topics['frames']} ({s.partitions} partitions), {self.topics['results']}, "
            f"{self.topics['dead_letter']}")
        if s.evidence:
            self.evidence = DemoEvidence(s.run_dir / "evidence", s.viewer_port, say, self._track)
            self.evidence.start()
        model_path = ModelBuilder(s, self.env, self.logs, say, self.stop, self._track).ensure()
        if self.stop.is_set():
            return EXIT_INTERRUPTED
        worker = self._start_worker(model_path, client_env)
        if self.stop.is_set():
            return EXIT_INTERRUPTED
        self._start_prometheus(worker)
        if self.evidence is not None:
            self.facts["viewer_url"] = self.evidence.start_viewer(self.env, self.logs / "viewer.log")
        watch = Watch(self._sim_cmd("watch") + ["--json"], self.sim_env, self.logs, self._track)
        if not watch.wait_watching(timeout_s=60):
            raise DemoFailed(f"`producer_sim watch` did not start; log: {watch.child.log_path}\n"
                             f"{watch.child.log_tail()}")
        sim = self._start_simulator(watch)
        while sim.running() and not self.stop.is_set():
            if not worker.running():
                raise DemoFailed(f"the worker exited ({worker.proc.returncode}); log: {worker.log_path}\n"
                                 f"{worker.log_tail()}")
            self.stop.wait(0.5)
        self._finish(sim, watch, worker)
        self.facts["elapsed_s"] = round(time.monotonic() - t0, 1)
        results = (self.facts.get("watch") or {}).get("results", 0)
        if self.facts.get("interrupted"):
            return EXIT_INTERRUPTED
        return EXIT_OK if results > 0 else EXIT_FAILED

    def _finish(self, sim: Child, watch: Watch, worker: WorkerProcess) -> None:
        """Stop the cameras, let the worker judge what is queued, then collect every number."""
        code = sim.stop(grace_s=20, first_signal=signal.SIGINT)  # SIGINT: it flushes and prints its summary
        self.facts["simulator"] = _read_json(self.logs / "simulator.json")
        if code not in (0, None) and not self.stop.is_set():  # 1: frames lost; 2: bad input; 3: Kafka
            say(f"the simulator exited with {code}; log: {sim.log_path}\n{sim.log_tail(8)}")
        sent = (self.facts["simulator"] or {}).get("acked", 0)
        drain_s = min(self.s.drain_s, 5.0) if self.stop.is_set() else self.s.drain_s
        say(f"cameras stopped after {sent} acknowledged frames; waiting up to {drain_s:g}s for the worker to finish")
        done = wait_until(lambda: worker_progress(worker)["accounted"] >= sent, drain_s, 0.5)
        time.sleep(1.5)  # results published just now still have to reach `watch`
        self.facts["drained"] = done
        self.facts["watch"] = watch.finish()
        self.facts["worker_metrics"] = worker_progress(worker)
        if self.prometheus is not None:
            self.facts["prometheus"] = self._prometheus_snapshot()
        if self.evidence is not None and self.evidence.started:
            self.facts["evidence"] = {**self.evidence.snapshot(), "look_again": viewer_command(self.evidence.run_dir)}

    # -- steps --------------------------------------------------------------------------------
    def _start_worker(self, model_path: Path, client_env: dict[str, str]) -> WorkerProcess:
        # 9400 is what deploy/prometheus/prometheus.yml scrapes
        # The store's WORKER_EVIDENCE_* settings go in as the user's (a WORKER_* set by hand wins).
        env = {**(self.evidence.worker_env() if self.evidence else {}), **self.env}
        worker = self._track(WorkerProcess(client_env, model_path, self.topics["frames"], self.topics["results"],
                                           self.topics["dead_letter"], self.group, self.logs / "worker.log",
                                           env=env, defaults=DEMO_WORKER_DEFAULTS, preferred_port=9400))
        say(f"worker starting (model {model_path.relative_to(REPO) if model_path.is_relative_to(REPO) else model_path},"
            f" batches of <= {worker.env['WORKER_MAX_BATCH_SIZE']} frames / {worker.env['WORKER_MAX_BATCH_WAIT_MS']} ms);"
            f" log: {worker.log_path}")
        try:
            seconds = worker.wait_ready(self.s.worker_ready_timeout_s, stop=self.stop)
        except WorkerNotReady as exc:
            raise DemoFailed(f"{exc}\n(the wait is DEMO_WORKER_READY_TIMEOUT_S={self.s.worker_ready_timeout_s:g})") \
                from None
        if self.stop.is_set():
            return worker  # the caller sees the stop flag and winds down
        say(f"worker ready in {seconds:.1f}s; metrics: {worker.url}/metrics (health: /healthz, /readyz)")
        self.facts["metrics_url"] = f"{worker.url}/metrics"
        return worker

    def _start_prometheus(self, worker: WorkerProcess) -> None:
        if not self.s.prometheus:
            return
        if shutil.which("prometheus") is None:
            say("prometheus is not installed: skipping it (Debian: apt-get install prometheus)")
            return
        from line_harness.demo.prometheus import PrometheusError, PrometheusServer
        server = PrometheusServer(self.s.run_dir / "prometheus", [f"127.0.0.1:{worker.port}"], self.env)
        try:
            seconds = server.start()
        except PrometheusError as exc:
            say(f"Prometheus did not start, going on without it: {exc}")
            server.stop()
            return
        self.prometheus = server
        self._track(server.child)
        say(f"Prometheus ready in {seconds:.1f}s: {server.url} (project config and alert rules; "
            f"try {server.url}/alerts)")

    def _prometheus_snapshot(self) -> dict:
        from line_harness.demo.prometheus import PrometheusError
        try:
            judged = self.prometheus.query("sum(inspection_frames_judged_total)")
            alerts = self.prometheus.alerts()
        except PrometheusError as exc:
            return {"url": self.prometheus.url, "error": str(exc)}
        return {"url": self.prometheus.url,
                "frames_judged": float(judged[0]["value"][1]) if judged else 0.0,
                "alerts": sorted({f"{a['labels']['alertname']} ({a['state']})" for a in alerts})}

    def _start_simulator(self, watch: Watch) -> Child:
        """Start the cameras; show the live numbers from the moment they publish (the frame pool takes a while)."""
        s = self.s
        sim = self._track(Child("simulator", self._sim_cmd("run") + self._sim_run_flags(), self.sim_env,
                                self.logs / "simulator.log", REPO, stdout=open(self.logs / "simulator.json", "wb"),
                                stderr=subprocess.PIPE))

        def on_line(line: str) -> None:
            if line.startswith("frame pool ready"):
                say(f"simulator: {line}")
                say(f"{s.lines} lines x {s.cameras_per_line} cameras publish {s.fps:g} frames/s each for "
                    f"{s.duration_s:g}s, {s.defect_rate:.0%} defects, {s.corrupt_rate:.0%} corrupt frames; "
                    "live numbers from `producer_sim watch` (Ctrl-C stops):")
                watch.echo.set()

        tee_lines(sim.proc.stderr, sim.log_path, on_line)
        say("simulator starting (it encodes its frame pool first)")
        return sim

    def _sim_cmd(self, command: str) -> list[str]:
        """`producer_sim watch|run` on the demo's topics (the broker comes from SIM_KAFKA_* in sim_env)."""
        if command == "watch":
            return [sys.executable, "-m", "producer_sim", "watch", "--results-topic", self.topics["results"],
                    "--dead-letter-topic", self.topics["dead_letter"]]
        return [sys.executable, "-m", "producer_sim", "run", "--topic", self.topics["frames"]]

    def _sim_run_flags(self) -> list[str]:
        s = self.s
        return ["--lines", str(s.lines), "--cameras-per-line", str(s.cameras_per_line), "--fps", str(s.fps),
                "--duration", str(s.duration_s), "--defect-rate", str(s.defect_rate),
                "--defect-scale", str(s.defect_scale), "--seed", str(s.seed),
                "--corrupt-rate", str(s.corrupt_rate), "--frame-size", s.frame_size, "--json"]

    def _track(self, child: TrackedChild) -> TrackedChild:
        self.children.append(child)
        return child

    # -- stopping -----------------------------------------------------------------------------
    def shutdown(self) -> list[str]:
        """Stop every child (newest first) and the broker; return the names of any process still alive."""
        grace = {"simulator": 20.0, "watch": 10.0, "worker": 40.0}
        first = {"simulator": signal.SIGINT, "watch": signal.SIGINT}
        for child in reversed(self.children):
            child.stop(grace.get(child.name, 15.0), first.get(child.name, signal.SIGTERM))
        if self.evidence is not None:
            self.evidence.stop()
        if self.broker is not None:
            self.broker.stop()
        left = [c.name for c in self.children if group_alive(c.pid)]
        if self.broker is not None and self.broker.alive():
            left.append("broker")
        if self.evidence is not None and self.evidence.alive():
            left.append("evidence store")
        stopped = [c.name for c in self.children] + (["evidence store"] if self.evidence and self.evidence.started
                                                     else []) + (["broker"] if self.broker and self.broker.started
                                                                 else [])
        self.facts["stopped"] = stopped
        self.facts["left_running"] = left
        return left

    def kill_all(self) -> None:
        """SIGKILL every process group now (second Ctrl-C)."""
        for child in self.children:
            child.send(signal.SIGKILL)
        if self.evidence is not None and self.evidence.store is not None:
            self.evidence.store.stop(kill=True)
        if self.broker is not None:
            self.broker.stop(kill=True)


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main() -> int:
    """Entry point of deploy/demo.sh."""
    try:
        settings = load_settings(DemoSettings)
    except SettingsError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    demo = Demo(settings)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, demo.on_signal)
    code = EXIT_FAILED
    try:
        code = demo.run()
    except DemoFailed as exc:
        print(f"demo: FAILED: {exc}", file=sys.stderr, flush=True)
        code = EXIT_INTERRUPTED if demo.stop.is_set() else EXIT_FAILED
    except Exception as exc:  # an unexpected error must still stop everything below
        print(f"demo: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    finally:
        left = demo.shutdown()
    if left:
        print(f"demo: WARNING: still running: {', '.join(left)}", file=sys.stderr)
        code = code or EXIT_FAILED
    demo.facts["exit_code"] = code
    (settings.run_dir / "summary.json").write_text(json.dumps(demo.facts, indent=2, default=str) + "\n")
    print(format_summary(demo.facts, settings.run_dir), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The pieces the demo starts: the broker (local or existing), the model, the worker's settings, `watch`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from line_harness.demo.settings import REPO, DemoSettings
from line_harness.processes import Child, free_port, group_alive, tee_lines
from line_harness.worker_process import WorkerProcess

Say = Callable[[str], None]
Track = Callable[[Child], Child]
EXTERNAL_BROKER_ENV = "KAFKA_BOOTSTRAP_SERVERS"


class DemoFailed(RuntimeError):
    """A step of the demo failed; the message says which and where its log is."""


class DemoBroker:
    """The local broker in run/demo/kafka, or the one KAFKA_BOOTSTRAP_SERVERS names (left running)."""

    def __init__(self, run_dir: Path, say: Say):
        self.run_dir = run_dir
        self.say = say
        self.kafka = None
        self.pid: Optional[int] = None
        self.client_kwargs: dict = {}
        self.description = ""

    @property
    def started(self) -> bool:
        return self.pid is not None

    def start(self) -> dict[str, str]:
        """Connect to (or start) the broker; return its KAFKA_* client settings."""
        if os.environ.get(EXTERNAL_BROKER_ENV):
            return self._use_existing()
        from line_harness.kafka.broker import LocalKafka, fetch_jars, jars_present
        LocalKafka(self.run_dir).stop()  # a broker left by a demo that was killed with SIGKILL
        shutil.rmtree(self.run_dir, ignore_errors=True)  # fresh topics, no old frames or offsets
        if not jars_present():
            self.say("fetching the Kafka broker jars with Maven (first run only)")
            fetch_jars()
        self.kafka = LocalKafka(self.run_dir, port=free_port(9092), die_with_parent=True)
        seconds = self.kafka.start(timeout_s=90)
        self.pid = self.kafka.pid
        self.client_kwargs = self.kafka.client_kwargs()
        self.description = f"local broker {self.kafka.bootstrap} (pid {self.pid}, data in {self.run_dir})"
        self.say(f"{self.description} ready in {seconds:.1f}s")
        return self.kafka.client_settings_env()

    def _use_existing(self) -> dict[str, str]:
        from line_runtime.kafka_check import KafkaConnectError, check_kafka_connection
        from line_runtime.settings import KafkaClientSettings, SettingsError, load_settings
        try:
            settings = load_settings(KafkaClientSettings)  # the plain KAFKA_* variables
            check_kafka_connection(settings)
        except (SettingsError, KafkaConnectError) as exc:
            raise DemoFailed(f"the broker named by {EXTERNAL_BROKER_ENV} is not usable: {exc}") from None
        self.client_kwargs = settings.kafka_client_kwargs()
        self.description = f"existing broker {settings.kafka_bootstrap_servers} ({EXTERNAL_BROKER_ENV})"
        self.say(f"using the {self.description}; it is left running at the end")
        return {k: v for k, v in os.environ.items() if k.startswith("KAFKA_")}

    def create_topics(self, names: dict[str, str], partitions: int) -> None:
        """Frames and results with `partitions` partitions, dead letters with up to 3 (existing ones are kept)."""
        from line_harness.kafka.topics import create_topics, line_topics
        create_topics(self.client_kwargs, line_topics(partitions, names["frames"], names["results"],
                                                      names["dead_letter"]))

    def stop(self, kill: bool = False) -> None:
        """Stop the local broker (never an existing one)."""
        if self.kafka is not None:
            self.kafka.stop(timeout_s=30, kill=kill)

    def alive(self) -> bool:
        """True while any process of the local broker's group lives."""
        return self.pid is not None and group_alive(self.pid)


class ModelBuilder:
    """Finds the demo's model, building it once when missing (quick: a few minutes; tiny: seconds)."""

    def __init__(self, settings: DemoSettings, env: dict[str, str], logs: Path, say: Say, stop: threading.Event,
                 track: Track):
        self.s = settings
        self.env = env
        self.logs = logs
        self.say = say
        self.stop = stop
        self.track = track

    def ensure(self) -> Path:
        """The model base (or version) folder the worker serves."""
        from line_runtime.model import latest_version
        if self.s.model_path is not None:
            if latest_version(self.s.model_path) is None:
                raise DemoFailed(f"DEMO_MODEL_PATH={self.s.model_path} holds no model version "
                                 "(a folder with metadata.json, or integer sub-folders of such)")
            return self.s.model_path.resolve()
        base = REPO / "models" / ("demo" if self.s.model == "quick" else "demo-tiny")
        version = latest_version(base)
        if version is not None:
            self.say(f"model: {version.relative_to(REPO)} (built earlier; delete {base.relative_to(REPO)} to rebuild)")
            return base
        if self.s.model == "quick":
            self.say(f"building the quick demo model into {base.relative_to(REPO)} (first run only, a few minutes "
                     f"on 2 CPU cores; DEMO_MODEL=tiny builds a test model in seconds)")
            cmd = [sys.executable, "-m", "training", "quick-demo", "--out", str(base)]
        else:
            self.say(f"building the tiny test model into {base.relative_to(REPO)}")
            cmd = [sys.executable, "-c", "import sys; from training.tiny_model import build_tiny_model; "
                   "print(build_tiny_model(sys.argv[1], input_size=(128, 128), name='demo-tiny'))", str(base)]
        self._build(cmd)
        if latest_version(base) is None:
            raise DemoFailed(f"the model build finished but {base} holds no model; log: {self.logs / 'model.log'}")
        return base

    def _build(self, cmd: list[str]) -> None:
        t0 = time.monotonic()
        child = self.track(Child("model-build", cmd, self.env, self.logs / "model.log", REPO, stdout=subprocess.PIPE))
        stamped = re.compile(r"^\d\d:\d\d:\d\d ")  # the training CLI's progress lines
        reader = tee_lines(child.proc.stdout, child.log_path,
                           lambda line: print(f"  training: {line}", flush=True) if stamped.match(line) else None)
        while child.running() and not self.stop.is_set():
            time.sleep(0.3)
        if self.stop.is_set():
            return
        reader.join(5)
        if child.proc.returncode != 0:
            # The training CLI reports user-facing errors as "error: ..." lines; TensorFlow adds pages of noise.
            errors = [ln[:600] for ln in child.log_tail(400).splitlines() if ln.startswith("error:")]
            raise DemoFailed(f"building the model failed ({child.proc.returncode}); log: {child.log_path}\n"
                             + ("\n".join(errors[-3:]) or child.log_tail(15)))
        self.say(f"model built in {time.monotonic() - t0:.0f}s")


# 2-core-friendly batching; tunables only: a WORKER_* variable the user set wins (see docs/demo.md).
DEMO_WORKER_DEFAULTS = {"max_batch_size": 8, "max_batch_wait_ms": 50, "decode_threads": 1, "max_queued_batches": 4,
                        "shutdown_grace_s": 20, "instance_id": "demo-worker-1"}


def worker_progress(worker: WorkerProcess) -> dict:
    """Frames the worker has finished (judged + dead-lettered) and its batching, from its /metrics."""
    try:
        samples = worker.samples()
    except RuntimeError:
        return {"accounted": -1}
    totals: dict[str, float] = {}
    for sample in samples:
        totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    judged = int(totals.get("inspection_frames_judged_total", 0))
    dead = int(totals.get("inspection_frames_dead_lettered_total", 0))
    batches = totals.get("inspection_batch_size_frames_count", 0)
    return {"judged": judged, "dead_lettered": dead, "accounted": judged + dead, "batches": int(batches),
            "mean_batch_frames": round(totals.get("inspection_batch_size_frames_sum", 0) / batches, 2)
            if batches else None}


class Watch:
    """`producer_sim watch` as a child: its live lines go to the terminal once `echo` is set; JSON summary kept."""

    def __init__(self, cmd: list[str], env: dict[str, str], logs: Path, track: Track):
        self.child = track(Child("watch", cmd, env, logs / "watch.log", REPO, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE))
        self.watching = threading.Event()
        self.echo = threading.Event()  # set when the cameras publish, so the screen starts with real numbers
        self.done = threading.Event()  # set when stopping, so the watch's own summary stays in its log
        self._stdout: list[bytes] = []
        self._threads = [tee_lines(self.child.proc.stderr, self.child.log_path, self._on_line),
                         threading.Thread(target=lambda: self._stdout.extend(self.child.proc.stdout), daemon=True)]
        self._threads[1].start()

    def _on_line(self, line: str) -> None:
        if line.startswith("watching "):
            self.watching.set()
        elif self.echo.is_set() and not self.done.is_set():
            print(f"  {line}", flush=True)

    def wait_watching(self, timeout_s: float) -> bool:
        """True once watch has fixed its start offsets (so no result published afterwards is missed)."""
        deadline = time.monotonic() + timeout_s
        while not self.watching.wait(0.2):
            if not self.child.running() or time.monotonic() > deadline:
                return False
        return True

    def finish(self) -> Optional[dict]:
        """Stop watching (SIGINT: it summarises) and return its JSON summary."""
        self.done.set()
        self.child.stop(grace_s=10, first_signal=signal.SIGINT)
        for t in self._threads:
            t.join(5)
        try:
            return json.loads(b"".join(self._stdout).decode())
        except ValueError:
            return None

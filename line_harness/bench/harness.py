"""Shared parts of the benchmark and the fault suite: a broker, topics, worker and simulator
processes, a results reader, and /proc-based CPU and memory readings.

Everything here drives the REAL programs (`python -m worker`, `python -m producer_sim`) as
subprocesses against a real local Kafka broker, so what is measured is what users run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Optional

from line_harness.kafka.broker import LocalKafka, _die_with_parent, fetch_jars
from line_harness.kafka.topics import TopicSpec, create_topics, frames_topic_configs
from line_harness.paths import REPO

PYTHON = sys.executable
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(run_dir: Path) -> LocalKafka:
    """A fresh local broker in run_dir (dies with this process); the caller stops it."""
    fetch_jars()
    kafka = LocalKafka(run_dir, die_with_parent=True, heap="768m")
    kafka.start(timeout_s=90)
    return kafka


def make_topics(client_kwargs: dict, frames_partitions: int, tag: str = "") -> dict[str, str]:
    """Unique frames/results/dlq topics for one run; returns {'frames':..., 'results':..., 'dlq':...}."""
    suffix = f"{tag}-{uuid.uuid4().hex[:8]}" if tag else uuid.uuid4().hex[:8]
    names = {"frames": f"frames-{suffix}", "results": f"results-{suffix}", "dlq": f"dlq-{suffix}"}
    # Retention far above what a run writes (a 20-minute soak writes ~1.5 GB): the check counts frames
    # from offset 0, and results for deleted frames could not be matched to them otherwise.
    create_topics(client_kwargs, [TopicSpec(names["frames"], frames_partitions, frames_topic_configs(16 << 30)),
                                  TopicSpec(names["results"], frames_partitions, {}),
                                  TopicSpec(names["dlq"], 1, {"max.message.bytes": str(4 << 20)})])
    return names


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_rss_bytes(pid: int) -> int:
    """Resident set size of a process in bytes (from /proc/<pid>/statm)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class WorkerProc:
    """`python -m worker` as a subprocess configured with WORKER_* env; log in a file."""

    def __init__(self, bootstrap_env: dict[str, str], model_path: Path, topics: dict[str, str], group: str,
                 log_path: Path, instance_id: str = "bench-worker", **settings):
        self.port = free_port()
        self.log_path = Path(log_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
        env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", WORKER_MODEL_PATH=str(model_path),
                   WORKER_FRAMES_TOPIC=topics["frames"], WORKER_RESULTS_TOPIC=topics["results"],
                   WORKER_DEAD_LETTER_TOPIC=topics["dlq"], WORKER_GROUP_ID=group, WORKER_INSTANCE_ID=instance_id,
                   WORKER_METRICS_HOST="127.0.0.1", WORKER_METRICS_PORT=str(self.port),
                   WORKER_MODEL_POLL_INTERVAL_S="0", WORKER_SHUTDOWN_GRACE_S="20")
        env.update({f"WORKER_{k}": v for k, v in bootstrap_env.items()})
        env.update({f"WORKER_{k.upper()}": str(v) for k, v in settings.items()})
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.started_mono = time.monotonic()
        # Dies with this process (PR_SET_PDEATHSIG), so an interrupted run leaves no worker behind.
        self.proc = subprocess.Popen([PYTHON, "-m", "worker"], cwd=REPO, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self.ready_mono: Optional[float] = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of GET path on the worker's HTTP port; (0, error) if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Block until /readyz answers 200; returns seconds since start. Raises with the log tail otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.log_tail()}")
            if self.get("/readyz")[0] == 200:
                self.ready_mono = time.monotonic()
                return self.ready_mono - self.started_mono
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready within {timeout_s}s:\n{self.log_tail()}")

    def metrics(self) -> dict[str, float]:
        """{sample name + sorted labels: value} of /metrics ({} when it does not answer)."""
        from prometheus_client.parser import text_string_to_metric_families
        status, body = self.get("/metrics")
        if status != 200:
            return {}
        out = {}
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return proc_rss_bytes(self.pid)

    def kill(self) -> None:
        """SIGKILL: no shutdown path runs at all."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._log.close()

    def stop(self, timeout_s: float = 40.0) -> Optional[int]:
        """SIGTERM and wait (SIGKILL if it hangs); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def log_tail(self, n: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def sim_env(bootstrap_env: dict[str, str]) -> dict[str, str]:
    """Environment for `python -m producer_sim` pointing at the broker (SIM_KAFKA_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")}
    env.update({f"SIM_{k}": v for k, v in bootstrap_env.items()})
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return env


def sim_run_args(topic: str, *, frames: Optional[int] = None, duration_s: Optional[float] = None,
                 fps: Optional[float] = None, cameras: int = 6, frame_size: str = "512x512", seed: int = 0,
                 corrupt_rate: float = 0.0, pool_size: int = 200, extra: tuple[str, ...] = ()) -> list[str]:
    """Command line of `producer_sim run` (max rate when fps is None)."""
    cmd = [PYTHON, "-m", "producer_sim", "run", "--topic", topic, "--lines", "1", "--cameras-per-line", str(cameras),
           "--frame-size", frame_size, "--seed", str(seed), "--pool-size", str(pool_size), "--quiet", "--json",
           "--defect-rate", "0.1"]
    cmd += ["--max-rate"] if fps is None else ["--fps", str(fps)]
    if frames is not None:
        cmd += ["--frames", str(frames)]
    if duration_s is not None:
        cmd += ["--duration", str(duration_s)]
    if corrupt_rate:
        cmd += ["--corrupt-rate", str(corrupt_rate)]
    return cmd + list(extra)


def run_sim(bootstrap_env: dict[str, str], args: list[str], timeout_s: float = 600.0) -> dict:
    """Run `producer_sim run` to completion and return its JSON summary (raises on failure)."""
    done = subprocess.run(args, cwd=REPO, env=sim_env(bootstrap_env), capture_output=True, text=True,
                          timeout=timeout_s)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"producer_sim failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def start_sim(bootstrap_env: dict[str, str], args: list[str], log_path: Path) -> subprocess.Popen:
    """Start `producer_sim run` in the background; stdout (the JSON summary) goes to log_path."""
    return subprocess.Popen(args, cwd=REPO, env=sim_env(bootstrap_env), stdout=open(log_path, "w"),
                            stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)


class TopicReader:
    """Reads the results and dead-letter topics from their beginning on a background thread."""

    def __init__(self, client_kwargs: dict, topics: dict[str, str]):
        self._kw = client_kwargs
        self._topics = topics
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.results: list[dict] = []  # per result record: event_id, timings, receive time
        self.dead: list[dict] = []
        self._thread = threading.Thread(target=self._run, name="topic-reader", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("results reader could not assign the topics within 30 s")

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition
        consumer = KafkaConsumer(**self._kw, group_id=None, enable_auto_commit=False,
                                 max_partition_fetch_bytes=8 << 20)
        parts = []
        for key in ("results", "dlq"):
            deadline = time.monotonic() + 20
            while not consumer.partitions_for_topic(self._topics[key]) and time.monotonic() < deadline:
                time.sleep(0.2)
            parts += [TopicPartition(self._topics[key], p) for p in consumer.partitions_for_topic(self._topics[key])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        for tp in parts:
            consumer.position(tp)
        self._ready.set()
        try:
            while not self._stop.is_set():
                for tp, records in consumer.poll(timeout_ms=200, max_records=5000).items():
                    now_ns = time.time_ns()
                    rows = [self._row(tp.topic, r.value, now_ns) for r in records]
                    with self._lock:
                        (self.results if tp.topic == self._topics["results"] else self.dead).extend(rows)
        finally:
            consumer.close()

    def _row(self, topic: str, value: bytes, now_ns: int) -> dict:
        doc = json.loads(value)
        if topic == self._topics["results"]:
            t = doc["timings"]
            return {"id": doc["event_id"], "published_ns": t["published_ns"], "received_ns": now_ns,
                    "latency_ms": t["capture_to_publish_ms"], "inference_ms": t["inference_ms"],
                    "batch": t["batch_size"], "backend": doc["model"]["backend"]}
        return {"id": doc["event_id"], "reason": doc["reason"], "dead_ns": doc["dead_lettered_ns"], "received_ns": now_ns}

    def counts(self) -> tuple[int, int]:
        """(distinct result ids, distinct dead-letter ids) seen so far."""
        with self._lock:
            return len({r["id"] for r in self.results}), len({d["id"] for d in self.dead})

    def wait_for(self, total: int, timeout_s: float, progress_timeout_s: float = 60.0, alive=None) -> bool:
        """Until distinct results + dead letters reach total; gives up after timeout_s, when progress stalls
        or when alive() (e.g. "the worker process still runs") turns false."""
        deadline = time.monotonic() + timeout_s
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline and (alive is None or alive()):
            seen = sum(self.counts())
            if seen >= total:
                return True
            if seen != last:
                last, last_change = seen, time.monotonic()
            elif time.monotonic() - last_change > progress_timeout_s:
                return False
            time.sleep(0.25)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def topic_record_count(client_kwargs: dict, topic: str) -> int:
    """Records ever written to a (non-transactional) topic: the sum of its end offsets."""
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(**client_kwargs, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def topic_event_ids(client_kwargs: dict, topic: str) -> set[str]:
    """'<topic>-<partition>-<offset>' of every record ever written to a non-transactional topic (what
    event_id names), counted from offset 0 so that records deleted by retention still count."""
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(**client_kwargs, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(parts)
        return {f"{topic}-{tp.partition}-{o}" for tp in parts for o in range(ends[tp])}
    finally:
        consumer.close()


def percentile(values: list[float], q: float) -> Optional[float]:
    """Nearest-rank percentile (q in 0..100) of values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def steady_rate(stamps_ns: list[int], trim: float = 0.1) -> float:
    """Events/s between the trim and 1-trim quantiles of their timestamps: leaves out the cold start and
    the tail, which on a short backlog would otherwise dominate the figure."""
    if len(stamps_ns) < 10:
        return 0.0
    ordered = sorted(stamps_ns)
    lo, hi = int(trim * (len(ordered) - 1)), int((1 - trim) * (len(ordered) - 1))
    span = (ordered[hi] - ordered[lo]) / 1e9
    return (hi - lo) / span if span > 0 else 0.0

"""Helpers for the worker tests: produce frames, run `python -m worker` as a real process, read topics.

Also holds a few quick self-checks of these helpers (so a broken helper fails loudly on its own).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from line_contracts.frame import Encoding, FrameHeaders, frame_key

REPO = Path(__file__).resolve().parent.parent
FRAME_SIZE = (64, 64)


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame_image(index: int, size=FRAME_SIZE) -> np.ndarray:
    """Deterministic test frame: smooth noise; every third frame gets a bright spot (the tiny model flags spots)."""
    rng = np.random.default_rng(index)
    img = cv2.GaussianBlur(rng.integers(90, 160, size, dtype=np.uint8), (5, 5), 0)
    if index % 3 == 0:
        cv2.circle(img, (int(rng.integers(12, size[1] - 12)), int(rng.integers(12, size[0] - 12))), 4, 255, -1)
    return img


def frame_headers(index: int, cameras: int = 4, size=FRAME_SIZE, encoding: Encoding = Encoding.PNG,
                  truth: bool = True) -> FrameHeaders:
    """Headers of test frame `index` (camera = index % cameras)."""
    return FrameHeaders(camera_id=f"cam-{index % cameras}", line_id="line-1", frame_seq=index,
                        capture_time_ns=time.time_ns(), encoding=encoding, width=size[1], height=size[0],
                        truth_label=("defect" if index % 3 == 0 else "ok") if truth else None)


def png_bytes(img: np.ndarray) -> bytes:
    """PNG encoding of a mono8 image."""
    return cv2.imencode(".png", img)[1].tobytes()


@dataclass
class Produced:
    """What a test put on the frames topic."""

    count: int = 0
    images: dict[int, np.ndarray] = field(default_factory=dict)  # frame_seq -> image (good frames)
    bad: dict[int, str] = field(default_factory=dict)            # frame_seq -> bad-frame kind


def produce_frames(bootstrap: str, topic: str, indices, bad: Optional[dict[int, str]] = None,
                   produced: Optional[Produced] = None, cameras: int = 4) -> Produced:
    """Publish good PNG frames (and bad ones from producer_sim.faults at the given indices)."""
    from kafka import KafkaProducer

    from producer_sim.faults import make_bad_frame
    produced = produced or Produced()
    rng = np.random.default_rng(7)
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=5, max_request_size=4 << 20)
    try:
        for i in indices:
            img, headers = frame_image(i), frame_headers(i, cameras)
            good = png_bytes(img)
            if bad and i in bad:
                value, kheaders = make_bad_frame(bad[i], rng, headers, good)
                produced.bad[i] = bad[i]
            else:
                value, kheaders = good, headers.to_kafka()
                produced.images[i] = img
            producer.send(topic, value=value, key=frame_key(headers.camera_id), headers=kheaders)
            produced.count += 1
        producer.flush(30)
    finally:
        producer.close(5)
    return produced


def read_topic(bootstrap: str, topic: str, want: int, timeout_s: float = 60.0,
               read_committed: bool = False, until=None) -> list[dict]:
    """JSON values of a topic from the start; returns once `want` records are read (or `until(records)`
    is true) or the time is up."""
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(topic, bootstrap_servers=[bootstrap], auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000,
                             isolation_level="read_committed" if read_committed else "read_uncommitted")
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < want and time.monotonic() < deadline and not (until and until(out)):
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(json.loads(r.value) for r in batch)
    finally:
        consumer.close()
    return out


def committed_lag(bootstrap: str, topic: str, group: str) -> int:
    """Sum over partitions of (end offset - committed offset) for `group`."""
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(parts)
        return sum(ends[tp] - (consumer.committed(tp) or 0) for tp in parts)
    finally:
        consumer.close()


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


def test_frame_images_are_deterministic_and_spotted():
    a, b = frame_image(3), frame_image(3)
    assert np.array_equal(a, b)
    assert frame_image(3).max() == 255 and frame_image(4).max() < 200


def test_frame_headers_round_trip():
    h = frame_headers(5)
    assert FrameHeaders.from_kafka(h.to_kafka()) == h and h.camera_id == "cam-1" and h.truth_label.value == "ok"

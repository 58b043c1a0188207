"""`producer_sim run`: cameras publishing frames on a fixed schedule, with live status and a summary."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Optional, TextIO

import numpy as np

from line_contracts.frame import FrameHeaders, frame_key
from producer_sim import faults
from producer_sim.corrupt import BadFramePool
from producer_sim.delivery import DeliveryTracker
from producer_sim.pacing import Schedule, make_shape
from producer_sim.settings import SimSettings
from producer_sim.sources import FramePool


@dataclass
class RunSummary:
    """What a run did; `--json` prints it, the pacing benchmark checks it."""

    cameras: int
    target_fps_per_camera: Optional[float]
    load_shape: str
    expected_frames: Optional[int]
    attempted: int = 0
    acked: int = 0
    failed: int = 0
    unacknowledged: int = 0
    lost: int = 0
    corrupt_by_kind: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    flush_s: float = 0.0
    rate_span_s: float = 0.0
    achieved_rate: float = 0.0
    behind_schedule_max_ms: float = 0.0
    behind_schedule_last_ms: float = 0.0
    behind_schedule_mean_ms: float = 0.0
    acked_by_camera: dict = field(default_factory=dict)
    sent_per_second: list = field(default_factory=list)
    acked_per_second: list = field(default_factory=list)
    failed_by_error: dict = field(default_factory=dict)
    mean_frame_bytes: float = 0.0
    interrupted: bool = False
    source: str = ""

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


class LineRun:
    """Publishes the pooled frames of every camera at its scheduled instant."""

    def __init__(self, settings: SimSettings, pool: FramePool, producer, stop: threading.Event,
                 status_to: Optional[TextIO] = sys.stderr):
        self.settings = settings
        self.pool = pool
        self.producer = producer
        self.stop = stop
        self.status_to = status_to
        self.cameras = settings.camera_ids()
        self._bad: Optional[BadFramePool] = None
        self._rng = np.random.default_rng([settings.seed, 1])
        if settings.corrupt_rate:
            kinds = faults.BAD_FRAME_KINDS
            if settings.corrupt_kinds:
                kinds = tuple(k.strip() for k in settings.corrupt_kinds.split(",") if k.strip())
            png0 = pool.frames[0]
            self._bad = BadFramePool(kinds, self._rng, pool.good_png, png0.width, png0.height)

    def _schedule(self) -> Schedule:
        s = self.settings
        shape = make_shape(s.load_shape, s.fps, s.ramp_s, s.ramp_start_fraction, s.burst_every_s, s.burst_s,
                           s.burst_factor)
        return Schedule(shape, len(self.cameras), s.fps, s.duration_s, s.frames)

    def run(self) -> RunSummary:
        """Publish until the schedule ends or `stop` is set, then flush and summarise."""
        s = self.settings
        schedule = self._schedule()
        summary = RunSummary(len(self.cameras), None if s.max_rate else s.fps,
                             "max-rate" if s.max_rate else s.load_shape,
                             schedule.expected_frames, source=self.pool.description)
        start = time.monotonic()
        wall_start_ns = time.time_ns()
        tracker = DeliveryTracker([cam for _, cam in self.cameras], start)
        next_status = start + s.status_interval_s
        last_status = (start, 0, dict(tracker.acked_by_camera))
        seqs = [0] * len(self.cameras)
        behind_sum = 0.0
        sent_bytes = 0
        k = 0
        while not self.stop.is_set():
            if s.max_rate:
                if s.frames is not None and k >= s.frames or \
                        s.duration_s is not None and time.monotonic() - start >= s.duration_s:
                    break
                cam_index, due = k % len(self.cameras), None
            else:
                item = schedule.next()
                if item is None:
                    break
                cam_index, _, due = item
            now = time.monotonic()
            while True:
                if now >= next_status:
                    last_status = self._status(summary, tracker, start, now, last_status)
                    next_status += s.status_interval_s * max(1, int((now - next_status) / s.status_interval_s) + 1)
                target = start + due if due is not None else now
                in_flight = k - tracker.acked - tracker.failed
                if (target <= now and in_flight < s.max_in_flight) or self.stop.is_set():
                    break
                wait = target - now if target > now else 0.001  # in-flight bound: let the sender drain
                self.stop.wait(min(wait, next_status - now))
                now = time.monotonic()
            if self.stop.is_set():
                break
            line_id, camera_id = self.cameras[cam_index]
            seq = seqs[cam_index]
            seqs[cam_index] += 1
            capture_s = due if due is not None else now - start
            value, headers = self._frame(line_id, camera_id, seq, wall_start_ns + int(capture_s * 1e9), k, summary)
            behind = 0.0 if due is None else now - (start + due)
            behind_sum += behind
            summary.behind_schedule_last_ms = behind * 1000
            summary.behind_schedule_max_ms = max(summary.behind_schedule_max_ms, behind * 1000)
            second = int(now - start)
            while len(summary.sent_per_second) <= second:
                summary.sent_per_second.append(0)
            summary.sent_per_second[second] += 1
            k += 1
            sent_bytes += len(value)
            try:
                future = self.producer.send(s.frames_topic, value=value, key=frame_key(camera_id), headers=headers)
            except Exception as exc:  # the client refused it outright (too large, buffer timeout, ...)
                tracker.record_failure(camera_id, seq, exc)
                continue
            future.add_callback(tracker.acked_cb(camera_id))
            future.add_errback(tracker.failed_cb(camera_id, seq))
        summary.interrupted = self.stop.is_set()
        summary.attempted = k
        summary.behind_schedule_mean_ms = 1000 * behind_sum / k if k else 0.0
        summary.mean_frame_bytes = sent_bytes / k if k else 0.0
        self._finish(summary, tracker, start)
        return summary

    def _frame(self, line_id: str, camera_id: str, seq: int, capture_ns: int, k: int,
               summary: RunSummary) -> tuple[bytes, list[tuple[str, bytes]]]:
        frame = self.pool[k]
        headers = FrameHeaders(camera_id=camera_id, line_id=line_id, frame_seq=seq, capture_time_ns=capture_ns,
                               encoding=self.pool.encoding, width=frame.width, height=frame.height,
                               truth_label=frame.truth, truth_box=frame.truth_box)
        if self._bad is not None and self._rng.random() < self.settings.corrupt_rate:
            kind, value, kafka_headers = self._bad.draw(headers)
            summary.corrupt_by_kind[kind] = summary.corrupt_by_kind.get(kind, 0) + 1
            return value, kafka_headers
        return frame.value, headers.to_kafka()

    def _status(self, summary: RunSummary, tracker: DeliveryTracker, start: float, now: float,
                last: tuple[float, int, dict]) -> tuple[float, int, dict]:
        acked_by_camera = dict(tracker.acked_by_camera)
        if self.status_to is not None:
            dt = max(now - last[0], 1e-9)
            rates = [(acked_by_camera[c] - last[2][c]) / dt for c in acked_by_camera]
            sent = sum(summary.sent_per_second)
            self.status_to.write(
                f"[{now - start:7.1f}s] sent {sent} ({(sent - last[1]) / dt:.1f}/s; per camera "
                f"{min(rates):.1f}-{max(rates):.1f}/s acked) acked {sum(acked_by_camera.values())} "
                f"errors {tracker.failed} behind {summary.behind_schedule_last_ms:.1f} ms "
                f"(max {summary.behind_schedule_max_ms:.1f} ms)\n")
            self.status_to.flush()
        return now, sum(summary.sent_per_second), acked_by_camera

    def _finish(self, summary: RunSummary, tracker: DeliveryTracker, start: float) -> None:
        summary.elapsed_s = time.monotonic() - start
        try:
            self.producer.flush(timeout=self.settings.flush_timeout_s)
        except Exception as exc:  # a flush timeout leaves frames unacknowledged; counted below
            if self.status_to is not None:
                print(f"flush did not finish within {self.settings.flush_timeout_s}s: {exc}", file=self.status_to)
        summary.flush_s = time.monotonic() - start - summary.elapsed_s
        summary.acked = tracker.acked
        summary.failed = tracker.failed
        summary.unacknowledged = max(0, summary.attempted - summary.acked - summary.failed)
        summary.lost = summary.failed + summary.unacknowledged
        # A bounded schedule's last frame is due just before its end; measure over the whole span.
        span = max(summary.elapsed_s, self.settings.duration_s or 0.0) if not summary.interrupted else summary.elapsed_s
        summary.rate_span_s = span
        summary.achieved_rate = summary.acked / span if span else 0.0
        summary.acked_by_camera = dict(tracker.acked_by_camera)
        summary.acked_per_second = list(tracker.acked_per_second)
        summary.failed_by_error = dict(tracker.failed_by_error)


def format_summary(summary: RunSummary) -> str:
    """Human-readable final summary."""
    span = summary.rate_span_s
    rates = [n / span for n in summary.acked_by_camera.values()] if span else [0.0]
    lines = [
        f"source: {summary.source}",
        f"{'interrupted' if summary.interrupted else 'done'} after {summary.elapsed_s:.1f}s "
        f"(+{summary.flush_s:.1f}s flush): "
        f"{summary.attempted} frames sent by {summary.cameras} cameras"
        + (f" (schedule held {summary.expected_frames})" if summary.expected_frames is not None else ""),
        f"acknowledged {summary.acked}, failed {summary.failed}, unacknowledged {summary.unacknowledged} "
        f"-> lost {summary.lost}",
        f"rate {summary.achieved_rate:.1f} frames/s; per camera {min(rates):.2f}-{max(rates):.2f}/s; "
        f"mean frame {summary.mean_frame_bytes / 1024:.0f} KiB",
        f"behind schedule: max {summary.behind_schedule_max_ms:.1f} ms, mean {summary.behind_schedule_mean_ms:.2f} ms",
    ]
    if summary.corrupt_by_kind:
        lines.append("bad frames sent: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.corrupt_by_kind.items())))
    if summary.failed_by_error:
        lines.append("delivery errors: " + ", ".join(f"{k}={v}" for k, v in summary.failed_by_error.items()))
    return "\n".join(lines)

"""`producer_sim watch`: tail the results and dead-letter topics and show live numbers.

It assigns every partition itself (no consumer group, nothing committed), so it never disturbs
the worker's group and starts reading the instant it prints "watching": the end offsets are
resolved before that line, so every result published afterwards is counted.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional, TextIO

from kafka import TopicPartition

from producer_sim.settings import SimSettings
from producer_sim.watch_state import WatchState


class TopicMissing(RuntimeError):
    """A topic `watch` needs does not exist; the message names it and the setting."""


def consumer_kwargs(settings: SimSettings) -> dict:
    """KafkaConsumer keyword arguments for a group-less, read-only tail."""
    kw = settings.kafka_client_kwargs()
    kw.update(group_id=None, enable_auto_commit=False, client_id="producer-sim-watch",
              isolation_level="read_committed" if settings.read_committed else "read_uncommitted",
              max_partition_fetch_bytes=8 * 1024 * 1024)
    return kw


def _partitions(consumer, topic: str, deadline: float) -> Optional[list[TopicPartition]]:
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def assign(consumer, settings: SimSettings, from_beginning: bool, log: Optional[TextIO]) -> None:
    """Assign all partitions of the results (and dead-letter) topics and fix the start offsets."""
    deadline = time.monotonic() + settings.kafka_connect_timeout_s
    results = _partitions(consumer, settings.results_topic, deadline)
    if results is None:
        raise TopicMissing(f"results topic '{settings.results_topic}' does not exist on "
                           f"{settings.kafka_bootstrap_servers}; create it or set SIM_RESULTS_TOPIC / --results-topic")
    dead = _partitions(consumer, settings.dead_letter_topic, time.monotonic() + 1.0)
    if dead is None and log is not None:
        print(f"warning: dead-letter topic '{settings.dead_letter_topic}' does not exist; counting results only",
              file=log)
    parts = results + (dead or [])
    consumer.assign(parts)
    if from_beginning:
        consumer.seek_to_beginning(*parts)
    else:
        consumer.seek_to_end(*parts)
    for tp in parts:  # resolve now, so "watching" really means "from here on"
        consumer.position(tp)


class Watcher:
    """Polls the assigned topics into a WatchState until a stop condition holds."""

    def __init__(self, settings: SimSettings, consumer, stop: threading.Event, until: Optional[int] = None,
                 duration_s: Optional[float] = None, status_to: Optional[TextIO] = sys.stderr):
        self.settings = settings
        self.consumer = consumer
        self.stop = stop
        self.until = until
        self.duration_s = duration_s
        self.status_to = status_to
        self.state = WatchState()
        self.first_result_mono: Optional[float] = None
        self.last_result_mono: Optional[float] = None

    def run(self) -> dict:
        """Watch until `until` frames are accounted for, `duration_s` passes, or stop is set; return the summary."""
        start = time.monotonic()
        deadline = start + self.duration_s if self.duration_s else None
        next_status = start + self.settings.status_interval_s
        last = (start, 0)
        while not self.stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if self.until is not None and self.state.frames_accounted >= self.until:
                break
            batches = self.consumer.poll(timeout_ms=200, max_records=2000)
            receive_ns = time.time_ns()
            for tp, records in batches.items():
                for record in records:
                    self._ingest(tp.topic, record.value, receive_ns)
            now = time.monotonic()
            if now >= next_status:
                last = self._status(start, now, last)
                next_status = now + self.settings.status_interval_s
        elapsed = time.monotonic() - start
        active = None
        if self.first_result_mono is not None and self.last_result_mono > self.first_result_mono:
            active = self.last_result_mono - self.first_result_mono
        summary = self.state.summary(elapsed, active)
        summary["until"] = self.until
        summary["until_reached"] = None if self.until is None else self.state.frames_accounted >= self.until
        summary["read_committed"] = self.settings.read_committed
        summary["interrupted"] = self.stop.is_set()
        return summary

    def _ingest(self, topic: str, value: Optional[bytes], receive_ns: int) -> None:
        if topic == self.settings.results_topic:
            if self.state.add_result(value, receive_ns) is not None:
                now = time.monotonic()
                self.first_result_mono = self.first_result_mono or now
                self.last_result_mono = now
        else:
            self.state.add_dead_letter(value)

    def _status(self, start: float, now: float, last: tuple[float, int]) -> tuple[float, int]:
        st = self.state
        if self.status_to is not None:
            rate = (st.results - last[1]) / max(now - last[0], 1e-9)
            s = st.summary(now - start)
            lat = s["latency_ms"]["capture_to_receive"]
            truth = s["truth"]
            parts = [f"[{now - start:7.1f}s] results {st.results} ({rate:.1f}/s)",
                     f"defect rate {_pct(s['defect_rate'])}"]
            if lat["count"]:
                parts.append(f"capture->receive p50 {lat['p50']:.0f} p95 {lat['p95']:.0f} p99 {lat['p99']:.0f} ms")
            parts.append(f"dead letters {s['dead_letters']}")
            if truth["frames_with_truth"]:
                parts.append(f"precision {_pct(truth['precision'])} recall {_pct(truth['recall'])} "
                             f"accuracy {_pct(truth['accuracy'])}")
            loc = s["localisation"]
            if loc["with_regions"]:
                parts.append(f"located {_pct(loc['hit_rate'])}")
            self.status_to.write(" | ".join(parts) + "\n")
            self.status_to.flush()
        return now, st.results


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def format_watch_summary(s: dict) -> str:
    """Human-readable final summary of a watch."""
    lines = [f"results {s['results']} in {s['elapsed_s']:.1f}s"
             + (f" ({s['results_per_s']:.1f}/s while results flowed)" if s["results_per_s"] else "")
             + f", defect rate {_pct(s['defect_rate'])}, duplicates ignored {s['duplicates']}"]
    for name, lat in s["latency_ms"].items():
        if lat["count"]:
            lines.append(f"latency {name.replace('_', ' ')}: p50 {lat['p50']:.1f} p95 {lat['p95']:.1f} "
                         f"p99 {lat['p99']:.1f} max {lat['max']:.1f} ms")
    for label, groups in (("line", s["by_line"]), ("camera", s["by_camera"])):
        for name, g in groups.items():
            lines.append(f"  {label} {name}: {g['results']} results, defect rate {_pct(g['defect_rate'])}")
    t = s["truth"]
    if t["frames_with_truth"]:
        lines.append(f"vs truth ({t['frames_with_truth']} frames): precision {_pct(t['precision'])} recall "
                     f"{_pct(t['recall'])} accuracy {_pct(t['accuracy'])} (tp {t['tp']} fp {t['fp']} "
                     f"tn {t['tn']} fn {t['fn']})")
    loc = s["localisation"]
    if loc["frames_with_truth_box"]:
        lines.append(f"localisation ({loc['frames_with_truth_box']} true defects judged defect, with a truth box): "
                     f"strongest region on the truth box {loc['hits']}/{loc['with_regions']} = {_pct(loc['hit_rate'])}"
                     + (f"; {loc['frames_with_truth_box'] - loc['with_regions']} events without regions"
                        if loc["with_regions"] < loc["frames_with_truth_box"] else ""))
    lines.append(f"dead letters {s['dead_letters']}" + "".join(
        f", {reason}={n}" for reason, n in s["dead_letters_by_reason"].items()))
    if s["until"] is not None and not s["until_reached"]:
        lines.append(f"NOT all frames seen: {s['frames_accounted']} of {s['until']} (results + dead letters)")
    return "\n".join(lines)

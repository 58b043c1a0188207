"""`producer_sim watch` against the real broker, on a stream of hand-written results and dead letters."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from kafka import KafkaProducer

from line_contracts.events import DeadLetterReason
from line_harness.sample_events import TRUTH_STREAM, make_dead_letter, make_event
from producer_sim.exit_codes import EXIT_LOST

SIM = [sys.executable, "-m", "producer_sim", "watch"]


def _publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=[bootstrap])
    for v in values:
        producer.send(topic, v)
    producer.flush(10)
    producer.close()


def _watch(bootstrap, results, dlq, *args, timeout=60):
    proc = subprocess.run(SIM + ["--bootstrap-servers", bootstrap, "--results-topic", results, "--dead-letter-topic",
                                 dlq, "--json", "--quiet", *args], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None), proc.stderr


@pytest.fixture
def topics(new_topic):
    return new_topic(partitions=2, name_prefix="results"), new_topic(partitions=1, name_prefix="dlq")


def test_watch_reports_known_latencies_and_truth_scores(kafka_bootstrap, topics):
    results, dlq = topics
    now = time.time_ns()
    events = []
    for i, (verdict, truth) in enumerate(TRUTH_STREAM):
        # worker-side latency 10, 20, ..., 100 ms; captured 1 s before "now"
        events.append(make_event(i, verdict, truth, capture_ns=now - 1_000_000_000, publish_ms=10.0 * (i + 1),
                                 line=f"line-{1 + i % 2}", camera=f"line-{1 + i % 2}-cam-1"))
    values = [e.to_json_bytes() for e in events] + [events[3].to_json_bytes()]  # one redelivery
    _publish(kafka_bootstrap, results, values)
    _publish(kafka_bootstrap, dlq, [make_dead_letter(50, DeadLetterReason.UNDECODABLE).to_json_bytes(),
                                    make_dead_letter(51, DeadLetterReason.TOO_MANY_PIXELS).to_json_bytes()])
    code, s, err = _watch(kafka_bootstrap, results, dlq, "--from-beginning", "--until", "12", "--duration", "30")
    assert code == 0, err
    assert s["until_reached"] and s["results"] == 10 and s["duplicates"] == 1 and s["dead_letters"] == 2
    pub = s["latency_ms"]["capture_to_publish"]
    assert (pub["p50"], pub["p95"], pub["p99"]) == pytest.approx((55.0, 95.5, 99.1))
    recv = s["latency_ms"]["capture_to_receive"]
    assert recv["count"] == 10 and 1000.0 <= recv["p50"] < 31000.0  # captured 1 s before publishing
    t = s["truth"]
    assert (t["precision"], t["recall"], t["accuracy"]) == pytest.approx((0.75, 0.6, 0.7))
    assert s["dead_letters_by_reason"] == {"too_many_pixels": 1, "undecodable": 1}
    assert s["by_line"]["line-1"] == {"results": 5, "defects": 2, "defect_rate": 0.4}  # frames 0 2 4 6 8
    assert s["by_camera"]["line-2-cam-1"]["results"] == 5
    assert s["models"] == {"tiny:1:litert": 10}


def test_watch_from_now_counts_what_arrives_after_it_starts(kafka_bootstrap, topics):
    results, dlq = topics
    _publish(kafka_bootstrap, results, [make_event(900, "ok", "ok").to_json_bytes()])  # before: not counted
    proc = subprocess.Popen(SIM + ["--bootstrap-servers", kafka_bootstrap, "--results-topic", results,
                                   "--dead-letter-topic", dlq, "--until", "5", "--duration", "30", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("watching"):
                break
        _publish(kafka_bootstrap, results, [make_event(i, "defect", "defect", capture_ns=time.time_ns()).to_json_bytes()
                                            for i in range(5)])
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    s = json.loads(out)
    assert s["results"] == 5 and s["truth"]["recall"] == 1.0
    assert 0 <= s["latency_ms"]["capture_to_receive"]["p99"] < 10_000


def test_watch_exits_non_zero_when_until_is_not_reached(kafka_bootstrap, topics):
    results, dlq = topics
    _publish(kafka_bootstrap, results, [make_event(i, "ok", None).to_json_bytes() for i in range(3)])
    t0 = time.monotonic()
    code, s, _ = _watch(kafka_bootstrap, results, dlq, "--from-beginning", "--until", "10", "--duration", "2")
    assert code == EXIT_LOST and s["results"] == 3 and s["until_reached"] is False
    assert time.monotonic() - t0 < 20


def test_read_committed_hides_aborted_results(kafka_bootstrap, topics):
    results, dlq = topics
    producer = KafkaProducer(bootstrap_servers=[kafka_bootstrap], transactional_id=f"tx-{uuid.uuid4().hex[:8]}")
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(2):
        producer.send(results, make_event(i, "defect", "ok").to_json_bytes())
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    for i in range(2, 5):
        producer.send(results, make_event(i, "ok", "ok").to_json_bytes())
    producer.commit_transaction()
    producer.close()
    code, s, err = _watch(kafka_bootstrap, results, dlq, "--from-beginning", "--read-committed", "--duration", "3")
    assert code == 0, err
    assert s["read_committed"] and s["results"] == 3 and s["defects"] == 0
    code, s, err = _watch(kafka_bootstrap, results, dlq, "--from-beginning", "--until", "5", "--duration", "20")
    assert code == 0 and s["results"] == 5 and s["defects"] == 2  # read_uncommitted sees the aborted ones too


def test_watch_reports_the_live_localisation_hit_rate(kafka_bootstrap, topics):
    """Schema-2 events through the broker: the strongest region against the simulator's truth box."""
    from line_contracts.events import Box, DefectRegion, Localisation

    results, dlq = topics
    truth = Box(x=200, y=120, width=60, height=30)

    def located(i: int, strongest: Box | None, verdict: str = "defect", truth_label: str = "defect") -> bytes:
        event = make_event(i, verdict, truth_label)
        update = {"frame": event.frame.model_copy(update={"truth_box": truth})}
        if strongest is not None:
            region = DefectRegion(box=strongest, peak=0.9, area_px=strongest.width * strongest.height)
            update["localisation"] = Localisation(map_height=64, map_width=64, regions=[region])
        return event.model_copy(update=update).to_json_bytes()

    on, off = Box(x=240, y=136, width=32, height=32), Box(x=0, y=0, width=32, height=32)
    values = [located(i, on) for i in range(9)] + [located(9, off), located(10, None),
                                                   located(11, off, verdict="ok")]  # a missed defect: not scored
    _publish(kafka_bootstrap, results, values + [values[0]])  # and one redelivery, counted once
    code, s, err = _watch(kafka_bootstrap, results, dlq, "--from-beginning", "--until", "12", "--duration", "30")
    assert code == 0, err
    assert s["localisation"] == {"frames_with_truth_box": 11, "with_regions": 10, "hits": 9, "hit_rate": 0.9}
    proc = subprocess.run(SIM + ["--bootstrap-servers", kafka_bootstrap, "--results-topic", results, "--dead-letter-topic",
                                 dlq, "--from-beginning", "--until", "12", "--duration", "30"],
                          capture_output=True, text=True, timeout=60)
    assert "strongest region on the truth box 9/10 = 90.0%" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

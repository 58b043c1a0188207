"""`python -m worker` as a real process against the real broker, with a tiny real model.

Frames are 64x64 PNGs and the model is training.tiny_model at 64x64, so the module runs in
about a minute; every score is checked against what the same model gives offline.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter

import numpy as np
import pytest

from line_harness.frames import FRAME_SIZE, produce_frames
from line_harness.readers import committed_lag, read_topic
from line_harness.worker_process import WorkerProcess
from producer_sim.faults import BAD_FRAME_KINDS, EXPECTED_REASON

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def offline(model_base):
    """version -> LoadedModel, the same LiteRT model the worker runs, for offline scores."""
    from line_runtime.model import load_model
    cache = {}

    def get(version: str, base=None, variant: str = "exact"):
        key = (version, str(base or model_base), variant)
        if key not in cache:
            folder = (base or model_base) / version
            cache[key] = load_model(folder / "fast" if variant == "fast" else folder, backend="litert")
        return cache[key]
    return get


@pytest.fixture
def stream(kafka_bootstrap, new_topic, new_group, tmp_path, model_base):
    """Topics + group + a factory starting workers on them; every worker is stopped at the end."""
    topics = dict(frames=new_topic(3, "frames"), results=new_topic(3, "results"), dlq=new_topic(1, "dlq"))
    group = new_group()
    workers: list[WorkerProcess] = []

    def start(model_path=model_base, **settings) -> WorkerProcess:
        w = WorkerProcess(kafka_bootstrap, model_path, topics["frames"], topics["results"], topics["dlq"], group,
                          tmp_path / f"worker-{len(workers)}.log", **settings)
        workers.append(w)
        return w

    yield kafka_bootstrap, topics, group, start
    for w in workers:
        w.stop()
        # pytest shows captured output only for a failing test: the worker's own account of it.
        print(f"--- {w.log_path.name} (last 80 lines)\n{w.log_tail(80)}")


def _check_scores(events, produced, offline, base=None) -> None:
    """Every event's score and verdict are what its model version (and variant) gives for that frame offline."""
    by_version: dict[tuple, list] = {}
    for ev in events:
        by_version.setdefault((ev["model"]["version"], ev["model"]["variant"]), []).append(ev)
    for (version, variant), evs in by_version.items():
        model = offline(version, base, variant)
        frames = np.stack([produced.images[ev["frame"]["frame_seq"]] for ev in evs])[..., None]
        expected = np.concatenate([model.predict(frames[i:i + 64]) for i in range(0, len(frames), 64)])
        got = np.array([ev["score"] for ev in evs])
        np.testing.assert_allclose(got, expected, atol=1e-5)
        threshold = model.metadata.threshold
        clear = np.abs(expected - threshold) > 1e-5
        assert [ev["verdict"] for ev, c in zip(evs, clear) if c] == \
            ["defect" if e >= threshold else "ok" for e, c in zip(expected, clear) if c]


def test_2000_frames_judged_like_offline_committed_and_counted(stream, offline):
    bootstrap, topics, group, start = stream
    produced = produce_frames(bootstrap, topics["frames"], range(2000))
    worker = start()
    worker.wait_ready()
    events = read_topic(bootstrap, topics["results"], 2000, timeout_s=90)
    ids = Counter(ev["event_id"] for ev in events)
    per_partition = Counter(i.rsplit("-", 2)[1] for i in ids)
    assert len(ids) == 2000 and max(ids.values()) == 1, \
        f"results per frames partition {dict(per_partition)}; /healthz {worker.get('/healthz')}"
    assert {ev["frame"]["frame_seq"] for ev in events} == set(range(2000))
    _check_scores(events, produced, offline)
    assert all(ev["worker_id"] and ev["model"]["backend"] == "litert" for ev in events)

    deadline = time.monotonic() + 20
    while committed_lag(bootstrap, topics["frames"], group) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert committed_lag(bootstrap, topics["frames"], group) == 0
    time.sleep(5.5)  # the lag gauge refreshes every 5 s
    verdicts = Counter(ev["verdict"] for ev in events)
    # At-least-once: a rebalance (kafka-python rejoins now and then at start-up) sets aside the frames in
    # flight and polls them again, so consumed may exceed 2000, by exactly the frames counted as redone.
    redone = worker.metric_sum("inspection_frames_redone_total")
    assert worker.metric("inspection_frames_redone_total", reason="halted") == 0
    assert worker.metric_sum("inspection_frames_consumed_total") == 2000 + redone, worker.log_tail(40)
    assert worker.metric("inspection_frames_judged_total", verdict="defect") == verdicts["defect"]
    assert worker.metric("inspection_frames_judged_total", verdict="ok") == verdicts["ok"]
    truth = Counter((ev["verdict"], ev["frame"]["truth_label"]) for ev in events)
    for (verdict, label), n in truth.items():
        assert worker.metric("inspection_verdict_truth_total", verdict=verdict, truth=label) == n
    assert worker.metric("inspection_batch_size_frames_sum") == 2000
    assert worker.metric("inspection_defect_score_count", line="line-1") == 2000
    assert worker.metric_sum("inspection_frames_dead_lettered_total") == 0
    assert worker.metric("inspection_commits_total") >= 1
    assert worker.metric_sum("inspection_consumer_lag_records") == 0
    assert worker.metric("inspection_model_info", name="tiny", version="1", backend="litert") == 1
    assert worker.metric("inspection_ready") == 1 and worker.get("/healthz")[0] == 200
    assert worker.stop() == 0


def test_every_bad_input_kind_is_dead_lettered_with_its_reason(stream, offline):
    bootstrap, topics, group, start = stream
    bad = {5 + 4 * i: kind for i, kind in enumerate(BAD_FRAME_KINDS)}  # each between good neighbours
    total = 5 + 4 * len(bad) + 5
    produced = produce_frames(bootstrap, topics["frames"], range(total), bad)
    worker = start()
    worker.wait_ready()
    events = read_topic(bootstrap, topics["results"], total - len(bad), timeout_s=60)
    letters = read_topic(bootstrap, topics["dlq"], len(bad), timeout_s=30)
    assert sorted(ev["frame"]["frame_seq"] for ev in events) == sorted(produced.images)
    _check_scores(events, produced, offline)
    assert len(letters) == len(bad)
    by_reason = Counter(rec["reason"] for rec in letters)
    assert by_reason == Counter(EXPECTED_REASON[k].value for k in bad.values())
    for rec in letters:
        assert rec["source_topic"] == topics["frames"] and rec["worker_id"] and rec["error"]
        assert rec["event_id"] == f"{topics['frames']}-{rec['source_partition']}-{rec['source_offset']}"
    for reason, n in by_reason.items():
        assert worker.metric("inspection_frames_dead_lettered_total", reason=reason) == n
    deadline = time.monotonic() + 20
    while committed_lag(bootstrap, topics["frames"], group) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert committed_lag(bootstrap, topics["frames"], group) == 0
    assert worker.stop() == 0


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_sigkill_mid_stream_then_restart_loses_nothing(stream, guarantee):
    bootstrap, topics, group, start = stream
    n = 2000
    produce_frames(bootstrap, topics["frames"], range(n))
    eos = guarantee == "exactly_once"
    # Tiny batches and one batch in flight keep the first worker slow enough to be killed mid-stream.
    worker = start(processing_guarantee=guarantee, max_batch_size=2, max_queued_batches=1)
    worker.wait_ready()
    deadline = time.monotonic() + 120  # generous: the shared test machine can be very busy
    while (judged := worker.metric_sum("inspection_frames_judged_total")) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.signal(signal.SIGKILL)
    assert 300 <= judged < n, "not killed mid-stream"
    worker.proc.wait(10)
    second = start(processing_guarantee=guarantee)
    second.wait_ready()
    def complete(evs):
        return len({ev["frame"]["frame_seq"] for ev in evs}) == n
    events = read_topic(bootstrap, topics["results"], 10**9, timeout_s=90, read_committed=eos, until=complete)
    if eos:  # anything more (a duplicate) would arrive right behind
        events += read_topic(bootstrap, topics["results"], 10**9, timeout_s=3, read_committed=True)[len(events):]
    ids = Counter(ev["event_id"] for ev in events)
    assert {ev["frame"]["frame_seq"] for ev in events} == set(range(n)), "a frame has no result"
    if eos:
        assert max(ids.values()) == 1 and len(events) == n, "exactly-once produced a duplicate"
    assert second.stop() == 0


def test_sigterm_mid_stream_exits_0_within_grace_and_loses_nothing(stream):
    bootstrap, topics, group, start = stream
    n = 1500
    produce_frames(bootstrap, topics["frames"], range(n))
    worker = start(model_backend="tensorflow", shutdown_grace_s=20, max_batch_size=2, max_queued_batches=1)
    seen_not_ready = set()
    while True:  # TensorFlow takes seconds to load: /readyz must say no until warm-up is done
        status, body = worker.get("/readyz")
        if status == 200:
            break
        if status == 503:
            seen_not_ready.add(body.strip())
        assert worker.proc.poll() is None, worker.log_tail()
        time.sleep(0.02)
    assert any("model not warmed up" in body for body in seen_not_ready), seen_not_ready
    while worker.metric_sum("inspection_frames_judged_total") < 200:
        time.sleep(0.02)
    worker.signal(signal.SIGTERM)
    t0 = time.monotonic()
    assert worker.proc.wait(25) == 0, worker.log_tail()
    assert time.monotonic() - t0 < 20
    first = read_topic(bootstrap, topics["results"], 10**6, timeout_s=4)
    assert 200 <= len({ev["event_id"] for ev in first}) == len(first) < n, "not stopped mid-stream"
    second = start()
    second.wait_ready()
    events = read_topic(bootstrap, topics["results"], n, timeout_s=60)
    ids = Counter(ev["event_id"] for ev in events)
    assert {ev["frame"]["frame_seq"] for ev in events} == set(range(n))
    assert max(ids.values()) == 1, "a graceful stop committed everything it published: no repeats"
    assert second.stop() == 0


def test_hot_reload_under_load_switches_versions_without_loss_or_doubles(stream, model_base, offline, tmp_path):
    import shutil

    from training.tiny_model import build_tiny_model
    bootstrap, topics, group, start = stream
    base = tmp_path / "models"
    shutil.copytree(model_base, base)
    # version 2 brings a fast variant that matches on its held-out frames: a CPU worker switches to it.
    # Built beforehand and renamed into place under load, as a deploy would (the export takes seconds).
    staged = build_tiny_model(tmp_path / "next", version=2, input_size=FRAME_SIZE, threshold=0.4, seed=5, fast=True)
    worker = start(model_path=base, model_poll_interval_s=0.5)
    worker.wait_ready()
    n = 1600
    produced = produce_frames(bootstrap, topics["frames"], range(400))
    feeder = threading.Thread(target=lambda: [produce_frames(bootstrap, topics["frames"], range(i, i + 100),
                                                             produced=produced) or time.sleep(0.1)
                                              for i in range(400, n, 100)])
    feeder.start()
    while worker.metric_sum("inspection_frames_judged_total") < 200:
        time.sleep(0.05)
    staged.rename(base / "2")
    feeder.join()
    events = read_topic(bootstrap, topics["results"], n, timeout_s=90)
    ids = Counter(ev["event_id"] for ev in events)
    assert len(events) == n and max(ids.values()) == 1
    assert {ev["frame"]["frame_seq"] for ev in events} == set(range(n))
    versions = [ev["model"]["version"] for ev in sorted(events, key=lambda e: e["timings"]["inferred_ns"])]
    assert versions[0] == "1" and versions[-1] == "2" and set(versions) == {"1", "2"}
    assert all(ev["model"]["variant"] == ("fast" if ev["model"]["version"] == "2" else "exact") for ev in events)
    assert all(ev["threshold"] == (0.45 if ev["model"]["version"] == "2" else 0.5) for ev in events)  # the fast one's own
    _check_scores(events, produced, offline, base)
    assert worker.metric("inspection_model_reloads_total", result="success") == 1
    assert worker.metric("inspection_model_info", name="tiny", version="2", backend="litert") == 1
    assert worker.stop() == 0


def test_rebalance_join_and_leave_mid_stream_loses_nothing(stream):
    bootstrap, topics, group, start = stream
    n = 1500
    produce_frames(bootstrap, topics["frames"], range(n))
    first = start(instance_id="w-a", max_batch_size=4)
    first.wait_ready()
    while first.metric_sum("inspection_frames_judged_total") < 200:
        time.sleep(0.05)
    second = start(instance_id="w-b", max_batch_size=4)  # joins: partitions move mid-stream
    second.wait_ready()
    time.sleep(1.0)
    assert first.stop() == 0  # leaves: its partitions move back to the second worker
    events = read_topic(bootstrap, topics["results"], 10**9, timeout_s=90,
                        until=lambda evs: len({ev["frame"]["frame_seq"] for ev in evs}) == n)
    assert {ev["frame"]["frame_seq"] for ev in events} == set(range(n))
    assert {ev["worker_id"] for ev in events} == {"w-a", "w-b"}
    deadline = time.monotonic() + 20
    while committed_lag(bootstrap, topics["frames"], group) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert committed_lag(bootstrap, topics["frames"], group) == 0
    assert second.stop() == 0


def test_second_signal_exits_at_once_and_logs_are_json(kafka_bootstrap, tmp_path, model_base):
    import json
    worker = WorkerProcess(kafka_bootstrap, model_base, "f", "r", "d", "g", tmp_path / "w.log",
                           model_backend="tensorflow", log_format="json", shutdown_grace_s=30,
                           kafka_sasl_password="not-in-any-log")
    while worker.get("/healthz")[0] != 200:  # HTTP is up; the TensorFlow model is still loading
        assert worker.proc.poll() is None, worker.log_tail()
        time.sleep(0.02)
    assert worker.get("/readyz")[0] == 503
    worker.signal(signal.SIGTERM)
    time.sleep(0.3)
    t0 = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.proc.wait(10) == 128 + signal.SIGTERM
    assert time.monotonic() - t0 < 3
    log = worker.log_path.read_text()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any("SIGTERM received" in r["message"] for r in records)
    assert "not-in-any-log" not in log
    worker.stop()

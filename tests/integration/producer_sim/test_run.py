"""`producer_sim run` against the real broker: the frame contract, bad frames, losses, errors, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import cv2
import numpy as np
import pytest
from kafka import KafkaConsumer

from line_contracts.frame import FRAME_SCHEMA_VERSION, Encoding, FrameHeaderError, FrameHeaders, TruthLabel, frame_key
from line_harness.paths import REPO
from line_harness.processes import free_port
from line_runtime.settings import SettingsError
from producer_sim.cli import _settings, build_parser, main
from producer_sim.commands import open_producer
from producer_sim.exit_codes import EXIT_BAD_INPUT, EXIT_KAFKA, EXIT_LOST
from producer_sim.run import LineRun
from producer_sim.settings import SimSettings
from producer_sim.sources import build_pool

SIM = [sys.executable, "-m", "producer_sim"]


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 15.0) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=[bootstrap], auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    records, deadline = [], time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    # one more short poll: nothing beyond what the run reported may be there
    for batch in consumer.poll(timeout_ms=300).values():
        records.extend(batch)
    consumer.close()
    return records


def _run(settings: SimSettings, stop: threading.Event | None = None):
    producer = open_producer(settings)
    try:
        return LineRun(settings, build_pool(settings), producer, stop or threading.Event(), None).run()
    finally:
        producer.close()


def test_frames_follow_the_contract(kafka_bootstrap, new_topic):
    topic = new_topic(partitions=3)
    settings = SimSettings(kafka_bootstrap_servers=kafka_bootstrap, frames_topic=topic, lines=2, cameras_per_line=2,
                           fps=20, duration_s=1.5, pool_size=8, frame_width=80, frame_height=60,
                           defect_rate=0.5, status_interval_s=60)
    before_ns = time.time_ns()
    summary = _run(settings)
    after_ns = time.time_ns()
    assert summary.attempted == summary.acked == 120 and summary.lost == 0
    records = _consume_all(kafka_bootstrap, topic, 120)
    assert len(records) == 120
    by_camera = defaultdict(list)
    for r in records:
        h = FrameHeaders.from_kafka(r.headers)
        assert r.key == frame_key(h.camera_id)
        assert h.schema_version == FRAME_SCHEMA_VERSION
        assert h.camera_id.startswith(h.line_id + "-cam-")
        assert h.encoding is Encoding.PNG and (h.width, h.height) == (80, 60)
        assert cv2.imdecode(np.frombuffer(r.value, np.uint8), cv2.IMREAD_UNCHANGED).shape == (60, 80)
        assert h.truth_label in (TruthLabel.DEFECT, TruthLabel.OK)
        assert before_ns <= h.capture_time_ns <= after_ns
        by_camera[h.camera_id].append((r.partition, r.offset, h))
    assert sorted(by_camera) == ["line-1-cam-1", "line-1-cam-2", "line-2-cam-1", "line-2-cam-2"]
    for frames in by_camera.values():
        assert len({p for p, _, _ in frames}) == 1  # one camera, one partition: its frames stay ordered
        frames.sort(key=lambda f: f[1])
        assert [h.frame_seq for _, _, h in frames] == list(range(30))
        gaps = np.diff([h.capture_time_ns for _, _, h in frames]) / 1e6
        assert np.allclose(gaps, 50.0, atol=0.01)  # scheduled capture instants, 1/20 s apart, no drift


def test_corrupt_frames_are_mixed_in(kafka_bootstrap, new_topic):
    topic = new_topic(partitions=1)
    settings = SimSettings(kafka_bootstrap_servers=kafka_bootstrap, frames_topic=topic, fps=200, frames=60,
                           pool_size=4, frame_width=64, frame_height=64, corrupt_rate=0.5,
                           corrupt_kinds="empty_value,missing_header,unknown_encoding", status_interval_s=60)
    summary = _run(settings)
    assert summary.acked == 60 and summary.lost == 0
    bad = sum(summary.corrupt_by_kind.values())
    assert 15 <= bad <= 45 and set(summary.corrupt_by_kind) <= {"empty_value", "missing_header", "unknown_encoding"}
    records = _consume_all(kafka_bootstrap, topic, 60)
    problems = defaultdict(int)
    for r in records:
        if not r.value:
            problems["empty_value"] += 1
            continue
        try:
            FrameHeaders.from_kafka(r.headers)
        except FrameHeaderError as exc:
            problems["missing_header" if exc.header == "capture_time_ns" else "unknown_encoding"] += 1
    assert dict(problems) == summary.corrupt_by_kind


def test_every_bad_frame_kind_is_accepted_by_the_broker(kafka_bootstrap, new_topic):
    from producer_sim.faults import BAD_FRAME_KINDS

    topic = new_topic(partitions=1)
    settings = SimSettings(kafka_bootstrap_servers=kafka_bootstrap, frames_topic=topic, fps=100, frames=40,
                           pool_size=2, corrupt_rate=1.0, seed=5, status_interval_s=60)
    summary = _run(settings)
    assert summary.lost == 0 and summary.acked == 40
    assert len(summary.corrupt_by_kind) >= len(BAD_FRAME_KINDS) - 3  # 40 draws over 12 kinds


def test_rejected_frames_are_counted_lost_and_exit_non_zero(kafka_bootstrap, new_topic):
    topic = new_topic(partitions=1, name_prefix="tiny", configs={"max.message.bytes": "20000"})  # < one frame
    proc = subprocess.run(SIM + ["run", "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--fps", "50",
                                 "--frames", "10", "--pool-size", "2", "--json", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_LOST, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["attempted"] == 10 and summary["acked"] == 0 and summary["lost"] == 10
    assert summary["failed_by_error"]
    assert "delivery failed" in proc.stderr and "lost 10" in proc.stderr


@pytest.mark.parametrize("command", ["run", "watch"])
def test_unreachable_broker_fails_fast_and_clearly(command):
    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc = subprocess.run(SIM + [command, "--bootstrap-servers", address, "--connect-timeout", "2", "--quiet"]
                          + (["--pool-size", "2"] if command == "run" else []),
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == EXIT_KAFKA
    assert address in proc.stderr and "SIM_KAFKA_BOOTSTRAP_SERVERS" in proc.stderr
    assert elapsed < 20, f"took {elapsed:.1f}s for a 2 s connect timeout"


def test_ctrl_c_stops_cleanly_after_flush(kafka_bootstrap, new_topic):
    topic = new_topic(partitions=2)
    proc = subprocess.Popen(SIM + ["run", "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--fps", "40",
                                   "--cameras-per-line", "2", "--pool-size", "4", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # wait for the first live status line: frames are flowing
            if line.startswith("[") and "sent" in line:
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["interrupted"] is True and summary["lost"] == 0 and summary["attempted"] > 40
    assert len(_consume_all(kafka_bootstrap, topic, summary["attempted"])) == summary["attempted"]


def test_flags_override_env_and_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("SIM_FPS", "7")
    monkeypatch.setenv("SIM_LINES", "3")
    parser = build_parser()
    s = _settings(parser.parse_args(["run", "--fps", "9", "--frame-size", "320x240"]))
    assert s.fps == 9 and s.lines == 3 and (s.frame_width, s.frame_height) == (320, 240)
    monkeypatch.setenv("SIM_FPS", "-1")
    with pytest.raises(SettingsError, match="SIM_FPS"):
        _settings(parser.parse_args(["run"]))
    assert main(["run", "--quiet"]) == EXIT_BAD_INPUT
    with pytest.raises(SettingsError, match="frame-size"):
        _settings(parser.parse_args(["run", "--fps", "3", "--frame-size", "big"]))


def test_bad_source_exits_with_a_clear_error(tmp_path, capsys):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(["run", "--source-dir", str(tmp_path), "--quiet"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "no images" in err
    # in-process: the stop handlers are gone again, the caller's Ctrl-C is its own
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_help_never_shows_secret_values(monkeypatch, capsys):
    monkeypatch.setenv("SIM_KAFKA_SASL_PASSWORD", "hunter2-do-not-print")
    monkeypatch.setenv("SIM_KAFKA_BOOTSTRAP_SERVERS", "secret-host.example:9092")
    for command in ("run", "watch"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "SIM_KAFKA_SASL_PASSWORD" in out or command == "watch"
        assert "hunter2" not in out and "secret-host" not in out


def test_docs_settings_table_is_current():

    from line_runtime.settings import settings_table

    doc = (REPO / "docs" / "producer_sim.md").read_text()
    table = doc.split("<!-- settings-table:start -->\n", 1)[1].split("<!-- settings-table:end -->", 1)[0]
    assert table.strip() == settings_table(SimSettings, markdown=True).strip(), \
        "docs/producer_sim.md settings table is stale: regenerate it with settings_table(SimSettings, markdown=True)"


def test_bad_frames_are_prebuilt_and_stamped_with_the_frame_identity():
    from line_contracts.frame import H_CAPTURE_TIME_NS, H_SEQUENCE
    from producer_sim.corrupt import BadFramePool
    from producer_sim.faults import BAD_FRAME_KINDS

    pool = build_pool(SimSettings(pool_size=1, frame_width=64, frame_height=64))
    bad = BadFramePool(BAD_FRAME_KINDS, np.random.default_rng(0), pool.good_png, 64, 64)
    headers = FrameHeaders(camera_id="line-3-cam-2", line_id="line-3", frame_seq=41, capture_time_ns=1234,
                           encoding=Encoding.PNG, width=64, height=64)
    seen = set()
    t0 = time.monotonic()
    for _ in range(600):
        kind, value, kafka_headers = bad.draw(headers)
        seen.add(kind)
        h = dict(kafka_headers)
        assert h["camera_id"] == b"line-3-cam-2" and h["line_id"] == b"line-3"
        if kind == "missing_header":
            assert H_CAPTURE_TIME_NS not in h
        else:
            assert h[H_CAPTURE_TIME_NS] == b"1234"
        assert h[H_SEQUENCE] == (b"not-a-number" if kind == "wrong_typed_header" else b"41")
        if kind == "huge_png":
            assert int(h["width"]) > 10000  # the kind's own header survives the stamping
    assert seen == set(BAD_FRAME_KINDS)
    assert time.monotonic() - t0 < 1.0  # 600 draws: no encoding in the hot loop
    with pytest.raises(ValueError, match="SIM_CORRUPT_KINDS"):
        BadFramePool(("not_a_kind",), np.random.default_rng(0), pool.good_png, 64, 64)

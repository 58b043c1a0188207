"""The chart's topics hook (`python -m line_runtime.topics`) against the real broker: it creates missing
topics with the documented settings, accepts fitting ones, and refuses topics with too few partitions or a
too small max.message.bytes with a message that names the topic, the values and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from line_harness.paths import REPO
from line_runtime.topics import (
    FRAMES_MAX_MESSAGE_BYTES,
    TopicMismatch,
    TopicSpec,
    _config_values,
    create_topics,
    ensure_topics,
    line_topics,
)


@pytest.fixture
def names(kafka_client_kwargs):
    """Three unique topic names (frames, results, dlq), deleted after the test."""
    tag = uuid.uuid4().hex[:8]
    out = {"frames": f"hook-frames-{tag}", "results": f"hook-results-{tag}", "dlq": f"hook-dlq-{tag}"}
    yield out
    from kafka import KafkaAdminClient
    admin = KafkaAdminClient(**kafka_client_kwargs)
    try:
        existing = set(admin.list_topics())
        admin.delete_topics([n for n in out.values() if n in existing], timeout_ms=10000)
    except Exception:
        pass  # cleanup only
    finally:
        admin.close()


def specs(names: dict, partitions: int = 4) -> list[TopicSpec]:
    return line_topics(partitions, names["frames"], names["results"], names["dlq"], max_frame_bytes=900_000,
                       dead_letter_max_value_bytes=524_288)


def describe(kafka_client_kwargs, topic: str) -> tuple[int, int]:
    """(partition count, max.message.bytes) of a topic, read back from the broker."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType
    admin = KafkaAdminClient(**kafka_client_kwargs)
    try:
        (info,) = admin.describe_topics([topic])
        limit = _config_values(admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"),
                               "max.message.bytes")[topic]
        return len(info["partitions"]), int(limit)
    finally:
        admin.close()


def test_missing_topics_are_created_with_the_documented_settings(kafka_client_kwargs, names):
    created = ensure_topics(kafka_client_kwargs, specs(names), replication_factor=1)
    assert sorted(created) == sorted(names.values())
    assert describe(kafka_client_kwargs, names["frames"]) == (4, FRAMES_MAX_MESSAGE_BYTES)
    assert describe(kafka_client_kwargs, names["dlq"]) == (3, FRAMES_MAX_MESSAGE_BYTES)
    # results carry no frames: the broker's limit applies (described as a default, and still checked)
    assert describe(kafka_client_kwargs, names["results"]) == (4, FRAMES_MAX_MESSAGE_BYTES)
    # a second run (the pre-upgrade hook) finds them fitting and creates nothing
    assert ensure_topics(kafka_client_kwargs, specs(names), replication_factor=1) == []


def test_too_few_partitions_fail_with_the_fix(kafka_client_kwargs, names):
    create_topics(kafka_client_kwargs, [TopicSpec(names["frames"], 2, {"max.message.bytes": str(FRAMES_MAX_MESSAGE_BYTES)})])
    with pytest.raises(TopicMismatch) as err:
        ensure_topics(kafka_client_kwargs, specs(names, partitions=6), replication_factor=1)
    text = str(err.value)
    assert f"topic {names['frames']} has 2 partitions, fewer than kafka.framesPartitions=6" in text
    assert "--partitions 6" in text
    # nothing was created on the way: a failed check leaves the broker as it was
    from kafka import KafkaAdminClient
    admin = KafkaAdminClient(**kafka_client_kwargs)
    try:
        assert names["results"] not in set(admin.list_topics())
    finally:
        admin.close()


def test_small_max_message_bytes_fails(kafka_client_kwargs, names):
    create_topics(kafka_client_kwargs, [TopicSpec(names["frames"], 4, {"max.message.bytes": "100000"})])
    with pytest.raises(TopicMismatch) as err:
        ensure_topics(kafka_client_kwargs, specs(names), replication_factor=1)
    assert f"topic {names['frames']} has max.message.bytes=100000, below the {900_000 + 64 * 1024} bytes" in str(err.value)


def run_hook(kafka_client_kwargs, names, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m line_runtime.topics` as the hook Job runs it: settings from TOPICS_* env vars."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TOPICS_")}
    base.update({"TOPICS_KAFKA_BOOTSTRAP_SERVERS": ",".join(kafka_client_kwargs["bootstrap_servers"]),
                 "TOPICS_KAFKA_SECURITY_PROTOCOL": kafka_client_kwargs.get("security_protocol", "PLAINTEXT"),
                 "TOPICS_FRAMES_TOPIC": names["frames"], "TOPICS_RESULTS_TOPIC": names["results"],
                 "TOPICS_DEAD_LETTER_TOPIC": names["dlq"], "TOPICS_REPLICATION_FACTOR": "1", **env})
    return subprocess.run([sys.executable, "-m", "line_runtime.topics", *args], capture_output=True, text=True,
                          env=base, cwd=REPO, timeout=120)


@pytest.mark.skipif(bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")), reason="the entry point test uses the local PLAINTEXT broker")
def test_entry_point_creates_then_refuses_a_partition_count_above_the_topic(kafka_client_kwargs, names):
    check = run_hook(kafka_client_kwargs, names, "--check", TOPICS_FRAMES_PARTITIONS="3")
    assert check.returncode == 1 and "do not exist" in check.stderr, check.stderr
    first = run_hook(kafka_client_kwargs, names, TOPICS_FRAMES_PARTITIONS="3")
    assert first.returncode == 0, first.stderr
    assert f"{names['frames']}: created" in first.stdout
    again = run_hook(kafka_client_kwargs, names, TOPICS_FRAMES_PARTITIONS="3")
    assert again.returncode == 0 and f"{names['frames']}: exists, fits" in again.stdout, again.stderr
    more = run_hook(kafka_client_kwargs, names, TOPICS_FRAMES_PARTITIONS="8")
    assert more.returncode == 1
    assert f"topic {names['frames']} has 3 partitions, fewer than kafka.framesPartitions=8" in more.stderr


def test_entry_point_names_the_setting_when_the_broker_is_unreachable(kafka_client_kwargs, names):
    proc = run_hook(kafka_client_kwargs, names, TOPICS_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
                    TOPICS_KAFKA_SECURITY_PROTOCOL="PLAINTEXT", TOPICS_KAFKA_CONNECT_TIMEOUT_S="2")
    assert proc.returncode == 1 and "TOPICS_KAFKA_BOOTSTRAP_SERVERS" in proc.stderr, proc.stderr

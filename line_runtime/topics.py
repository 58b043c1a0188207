"""The line's Kafka topics: their documented settings, creating the missing ones, checking existing ones.

One source for the local broker tooling (line_harness.kafka) and for clusters: the Helm chart runs
`python -m line_runtime.topics` as a pre-install/pre-upgrade hook Job in the worker image, so a
release fails, before any worker starts, when a topic cannot carry what the workers expect.

    python -m line_runtime.topics            # create missing topics, check all (env TOPICS_*)
    python -m line_runtime.topics --check    # only check; a missing topic is an error too

kafka-python is imported lazily, so importing this module stays cheap.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from line_contracts.topics import DEAD_LETTER_TOPIC, FRAMES_TOPIC, RESULTS_TOPIC
from line_runtime.kafka_check import KafkaConnectError, check_kafka_connection
from line_runtime.settings import KafkaClientSettings, SettingsError, load_settings

log = logging.getLogger("line_runtime.topics")

# Frames are 100-300 KB PNGs typically, but a camera may send 1-3 MB raw frames; 10 MiB leaves room.
# Producers of frames must raise kafka-python's max_request_size (default 1 MiB) to this too.
FRAMES_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
# Record batch header, record headers and key around a frame's bytes: room a topic needs beyond the value.
RECORD_OVERHEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class TopicSpec:
    """One topic: name, partition count, topic-level configs, and what an existing one must at least offer."""

    name: str
    partitions: int = 3
    configs: dict[str, str] = field(default_factory=dict)
    # An existing topic with fewer partitions caps the workers (a consumer beyond them gets nothing).
    min_partitions: int = 1
    # Largest record the line writes to this topic; an existing topic must accept it. 0: not checked.
    min_message_bytes: int = 0


def frames_topic_configs(retention_bytes_per_partition: int = 1 << 30) -> dict[str, str]:
    """Configs of a frames topic: room for 1-3 MB frames, and bounded disk (frames are big and short-lived)."""
    return {"max.message.bytes": str(FRAMES_MAX_MESSAGE_BYTES),
            "retention.bytes": str(retention_bytes_per_partition),
            "retention.ms": str(6 * 3600 * 1000),
            "segment.bytes": str(64 << 20)}


def line_topics(partitions: int = 6, frames: str = FRAMES_TOPIC, results: str = RESULTS_TOPIC,
                dead_letter: str = DEAD_LETTER_TOPIC, max_frame_bytes: int = 0,
                dead_letter_max_value_bytes: int = 0) -> list[TopicSpec]:
    """The three topics of one line: frames, results, dead letters (which carry frame bytes too).

    max_frame_bytes / dead_letter_max_value_bytes (the worker's settings) set what an existing topic
    must accept; 0 skips that check."""
    def need(value_bytes: int) -> int:
        return value_bytes + RECORD_OVERHEAD_BYTES if value_bytes else 0
    return [TopicSpec(frames, partitions, frames_topic_configs(), min_partitions=partitions,
                      min_message_bytes=need(max_frame_bytes)),
            TopicSpec(results, partitions, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
            TopicSpec(dead_letter, max(1, min(partitions, 3)), {"max.message.bytes": str(FRAMES_MAX_MESSAGE_BYTES)},
                      min_message_bytes=need(dead_letter_max_value_bytes))]


class TopicMismatch(RuntimeError):
    """An existing topic cannot carry what the line needs; the message names the topic, the values and the fix."""


def create_topics(client_kwargs: dict, specs: list[TopicSpec], timeout_s: float = 30.0,
                  replication_factor: int = 1) -> list[str]:
    """Create the topics that do not exist yet and wait until each has a leader; return the created names."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    admin = KafkaAdminClient(**client_kwargs, client_id="line-topics")
    try:
        created = _create_missing(admin, specs, set(admin.list_topics()), replication_factor, timeout_s)
        wait_for_leaders(admin, [s.name for s in specs], deadline)
        return created
    finally:
        admin.close()


def _create_missing(admin, specs: list[TopicSpec], existing: set[str], replication_factor: int,
                    timeout_s: float) -> list[str]:
    from kafka.admin import NewTopic

    todo = [s for s in specs if s.name not in existing]
    if todo:
        admin.create_topics([NewTopic(s.name, s.partitions, replication_factor, topic_configs=dict(s.configs))
                             for s in todo], timeout_ms=int(timeout_s * 1000))
    return [s.name for s in todo]


def wait_for_leaders(admin, topics: list[str], deadline: float) -> None:
    """Block until every partition of every topic has a leader (producing right after creation then works)."""
    pending = list(topics)
    while pending:
        described = admin.describe_topics(pending)
        # kafka-python 3 says name/leader_id, 2.x said topic/leader.
        pending = [t.get("name", t.get("topic")) for t in described
                   if t.get("error_code") or not t["partitions"]
                   or any(p.get("leader_id", p.get("leader", -1)) < 0 for p in t["partitions"])]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {pending} have no leader yet; is the broker healthy?")
        time.sleep(0.1)


def topic_problems(admin, specs: list[TopicSpec]) -> list[str]:
    """What is wrong with the existing topics of `specs`, one sentence each (missing topics are not listed)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    existing = set(admin.list_topics())
    present = [s for s in specs if s.name in existing]
    if not present:
        return []
    partitions = {t.get("name", t.get("topic")): len(t["partitions"])
                  for t in admin.describe_topics([s.name for s in present])}
    problems = []
    for spec in present:
        have = partitions.get(spec.name, 0)
        if have < spec.min_partitions:
            problems.append(
                f"topic {spec.name} has {have} partitions, fewer than kafka.framesPartitions={spec.min_partitions}: "
                f"workers beyond {have} would get no partition; add partitions "
                f"(kafka-topics.sh --alter --topic {spec.name} --partitions {spec.min_partitions}) or lower "
                f"kafka.framesPartitions and the worker counts")
    checked = [s for s in present if s.min_message_bytes]
    if checked:
        resources = [ConfigResource(ConfigResourceType.TOPIC, s.name, configs=["max.message.bytes"]) for s in checked]
        # "all": a topic without its own max.message.bytes has the broker's message.max.bytes, listed as a default.
        limits = _config_values(admin.describe_configs(resources, config_filter="all"), "max.message.bytes")
        for spec in checked:
            limit = int(limits.get(spec.name, 0))
            if limit < spec.min_message_bytes:
                problems.append(
                    f"topic {spec.name} has max.message.bytes={limit}, below the {spec.min_message_bytes} bytes its "
                    f"largest records need (the worker's max frame size plus {RECORD_OVERHEAD_BYTES} bytes of "
                    f"record overhead); raise it (kafka-configs.sh --alter --entity-type topics --entity-name "
                    f"{spec.name} --add-config max.message.bytes={FRAMES_MAX_MESSAGE_BYTES}) or lower "
                    f"worker.settings.max_frame_bytes / dead_letter_max_value_bytes")
    return problems


def _config_values(described, key: str) -> dict[str, str]:
    """{topic: value of `key`} from KafkaAdminClient.describe_configs (kafka-python 3: a nested dict)."""
    # {"topic": {name: {config: {"value": ...}}}}
    return {name: configs[key]["value"] for name, configs in described.get("topic", {}).items() if key in configs}


def ensure_topics(client_kwargs: dict, specs: list[TopicSpec], create: bool = True, replication_factor: int = -1,
                  timeout_s: float = 30.0) -> list[str]:
    """Create missing topics (when `create`), then check every topic; return the created names.

    Raises TopicMismatch naming every problem, so one run reports them all."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    admin = KafkaAdminClient(**client_kwargs, client_id="line-topics")
    try:
        existing = set(admin.list_topics())
        missing = [s.name for s in specs if s.name not in existing]
        if missing and not create:
            raise TopicMismatch(f"topics {', '.join(missing)} do not exist and creating them is off "
                                f"(topics.create=false); create them or turn topics.create on")
        problems = topic_problems(admin, specs)
        if problems:
            raise TopicMismatch("the Kafka topics do not fit this release:\n  - " + "\n  - ".join(problems))
        created = _create_missing(admin, specs, existing, replication_factor, timeout_s)
        wait_for_leaders(admin, [s.name for s in specs], deadline)
        return created
    finally:
        admin.close()


class TopicSettings(KafkaClientSettings):
    """Settings of the topics hook (env TOPICS_*): the Kafka connection and the line's topics."""

    model_config = SettingsConfigDict(env_prefix="TOPICS_", extra="ignore", validate_default=True)

    frames_topic: str = Field(FRAMES_TOPIC, min_length=1, description="Topic the camera frames are written to.")
    results_topic: str = Field(RESULTS_TOPIC, min_length=1, description="Topic the result events are written to.")
    dead_letter_topic: str = Field(DEAD_LETTER_TOPIC, min_length=1, description="Topic of frames that cannot be judged.")
    frames_partitions: int = Field(6, ge=1, description="Partitions of the frames topic; an existing one needs at least this many.")
    max_frame_bytes: int = Field(900_000, ge=0, description="The worker's max_frame_bytes: the frames topic must accept such records.")
    dead_letter_max_value_bytes: int = Field(524_288, ge=0, description="The worker's dead_letter_max_value_bytes.")
    create: bool = Field(True, description="Create missing topics; false: a missing topic is an error.")
    replication_factor: int = Field(-1, description="Replication factor of created topics; -1: the broker default.")
    timeout_s: float = Field(60.0, gt=0, description="Give up after this many seconds.")


def main(argv: Optional[list[str]] = None) -> int:
    """Create and check the line's topics from TOPICS_* env vars; exit 1 with the reason when they do not fit."""
    parser = argparse.ArgumentParser(description="Create missing line topics and check existing ones (env TOPICS_*).")
    parser.add_argument("--check", action="store_true", help="only check; a missing topic is an error")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings(TopicSettings)
    except SettingsError as exc:
        print(f"line_runtime.topics: {exc}", file=sys.stderr)
        return 2
    specs = line_topics(settings.frames_partitions, settings.frames_topic, settings.results_topic,
                        settings.dead_letter_topic, settings.max_frame_bytes, settings.dead_letter_max_value_bytes)
    try:
        check_kafka_connection(settings)  # names the env var to fix when the broker cannot be reached
        created = ensure_topics(settings.kafka_client_kwargs(), specs, create=settings.create and not args.check,
                                replication_factor=settings.replication_factor, timeout_s=settings.timeout_s)
    except TopicMismatch as exc:
        print(f"line_runtime.topics: {exc}", file=sys.stderr)
        return 1
    except KafkaConnectError as exc:
        print(f"line_runtime.topics: {exc}", file=sys.stderr)
        return 1
    for spec in specs:
        state = "created" if spec.name in created else "exists, fits"
        print(f"line_runtime.topics: {spec.name}: {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

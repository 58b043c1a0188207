"""Create the line's topics (or any topic) on a broker, with partitions and topic configs.

Usable from Python (`create_topics(client_kwargs, specs)`) and through
`python -m line_harness.kafka create-topics`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from line_contracts.topics import DEAD_LETTER_TOPIC, FRAMES_TOPIC, RESULTS_TOPIC
from line_harness.kafka.config import MAX_MESSAGE_BYTES

# Producers of frames must raise kafka-python's max_request_size (default 1 MiB) to this too.
FRAMES_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create: name, partition count, topic-level configs."""

    name: str
    partitions: int = 3
    configs: dict[str, str] = field(default_factory=dict)


def frames_topic_configs(retention_bytes_per_partition: int = 1 << 30) -> dict[str, str]:
    """Configs of a frames topic: room for 1-3 MB frames, and bounded disk (frames are big and short-lived)."""
    return {"max.message.bytes": str(FRAMES_MAX_MESSAGE_BYTES),
            "retention.bytes": str(retention_bytes_per_partition),
            "retention.ms": str(6 * 3600 * 1000),
            "segment.bytes": str(64 << 20)}


def line_topics(partitions: int = 6, frames: str = FRAMES_TOPIC, results: str = RESULTS_TOPIC,
                dead_letter: str = DEAD_LETTER_TOPIC) -> list[TopicSpec]:
    """The three topics of one line: frames, results, dead letters (which carry frame bytes too)."""
    return [TopicSpec(frames, partitions, frames_topic_configs()),
            TopicSpec(results, partitions, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
            TopicSpec(dead_letter, max(1, min(partitions, 3)), {"max.message.bytes": str(FRAMES_MAX_MESSAGE_BYTES)})]


def create_topics(client_kwargs: dict, specs: list[TopicSpec], timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet and wait until each has a leader; return the created names."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    deadline = time.monotonic() + timeout_s
    admin = KafkaAdminClient(**client_kwargs, client_id="localkafka-topics")
    try:
        existing = set(admin.list_topics())
        todo = [s for s in specs if s.name not in existing]
        if todo:
            admin.create_topics([NewTopic(s.name, s.partitions, 1, topic_configs=dict(s.configs)) for s in todo],
                                timeout_ms=int(timeout_s * 1000))
        wait_for_leaders(admin, [s.name for s in specs], deadline)
        return [s.name for s in todo]
    finally:
        admin.close()


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


def run_topics(client_kwargs: dict, frames_partitions: int, tag: str = "") -> dict[str, str]:
    """Unique frames/results/dlq topics for one benchmark or fault run: {'frames':..., 'results':..., 'dlq':...}."""
    suffix = f"{tag}-{uuid.uuid4().hex[:8]}" if tag else uuid.uuid4().hex[:8]
    names = {"frames": f"frames-{suffix}", "results": f"results-{suffix}", "dlq": f"dlq-{suffix}"}
    # Retention far above what a run writes (a 20-minute soak writes ~1.5 GB): the check counts frames
    # from offset 0, and results for deleted frames could not be matched to them otherwise.
    create_topics(client_kwargs, [TopicSpec(names["frames"], frames_partitions, frames_topic_configs(16 << 30)),
                                  TopicSpec(names["results"], frames_partitions, {}),
                                  TopicSpec(names["dlq"], 1, {"max.message.bytes": str(4 << 20)})])
    return names

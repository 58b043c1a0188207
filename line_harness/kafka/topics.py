"""Create the line's topics (or any topic) on a broker, with partitions and topic configs.

Usable from Python (`create_topics(client_kwargs, specs)`) and through
`python -m line_harness.kafka create-topics`.
"""

from __future__ import annotations

import uuid

# The topic settings and creation live in the runtime layer, shared with the Helm chart's topics hook Job.
from line_runtime.topics import (  # noqa: F401
    FRAMES_MAX_MESSAGE_BYTES,
    TopicSpec,
    create_topics,
    frames_topic_configs,
    line_topics,
    wait_for_leaders,
)


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

"""A worker joining its group on a just-created frames topic joins once: the group leader does not re-join
right after its first assignment (kafka-python was seen to hang in that re-join; worker/consumer.py
ConsumerLoop._join). Judged from the worker's log and, with the local broker, its group-coordinator log."""

from __future__ import annotations

import time

import pytest

from line_harness.frames import produce_frames
from line_harness.readers import read_topic
from line_harness.worker_process import WorkerProcess

pytestmark = pytest.mark.timeout(180)

LEADER_REJOIN = "re-joining group during Stable"


def test_a_worker_on_a_new_topic_joins_its_group_without_a_leader_rejoin(kafka_broker, kafka_bootstrap, new_topic,
                                                                         new_group, tmp_path, model_base):
    group = new_group()
    frames, results, dlq = new_topic(4, "frames"), new_topic(4, "results"), new_topic(1, "dlq")
    # Two starts: without the metadata refresh after subscribe(), 10 starts in 11 re-joined.
    for start in range(2):
        worker = WorkerProcess(kafka_bootstrap, model_base, frames, results, dlq, group, tmp_path / f"join{start}.log")
        try:
            worker.wait_ready(timeout_s=120)
            produce_frames(kafka_bootstrap, frames, range(start * 20, start * 20 + 20), cameras=4)
            time.sleep(1.0)  # the re-join came 0.1-0.2 s after the first assignment
        finally:
            assert worker.stop() == 0, worker.log_tail(40)
        # The worker's own account, with any broker: one assignment for its whole life (the lone member's
        # re-join shows as a second "partitions assigned" line, after a revoke).
        assigned = [line for line in worker.log_path.read_text().splitlines() if "partitions assigned:" in line]
        assert len(assigned) == 1, "\n".join(assigned)
    if kafka_broker is not None:  # the local broker's log also says why a group rebalanced
        events = [line for line in kafka_broker.group_events(400).splitlines() if f"group {group} " in line]
        assert any("Stabilized group" in line for line in events), events  # the filter does see this group
        assert not [line for line in events if LEADER_REJOIN in line], "\n".join(events)
    judged = read_topic(kafka_bootstrap, results, 40, timeout_s=60)
    assert sorted(ev["frame"]["frame_seq"] for ev in judged) == list(range(40))

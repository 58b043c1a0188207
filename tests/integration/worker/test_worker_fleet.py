"""WORKER_PROCESSES=2: one pod, two real consumer processes on the real broker, one port for all."""

from __future__ import annotations

import pytest

from line_harness.frames import produce_frames
from line_harness.readers import read_topic
from line_harness.worker_process import WorkerProcess

pytestmark = pytest.mark.timeout(240)


def test_two_processes_share_the_partitions_and_judge_every_frame_once(kafka_bootstrap, new_topic, new_group,
                                                                         tmp_path, model_base):
    frames, results, dlq = new_topic(4, "frames"), new_topic(4, "results"), new_topic(1, "dlq")
    worker = WorkerProcess(kafka_bootstrap, model_base, frames, results, dlq, new_group(), tmp_path / "fleet.log",
                           processes=2, instance_id="pod-x")
    try:
        # Frames go in only once the pod is ready, i.e. both processes hold partitions: a backlog produced
        # before could be drained by the first process alone before the second joins the group. 8 cameras'
        # keys land on all 4 partitions (4 cameras' keys hash to only 2 of them).
        worker.wait_ready(timeout_s=150)
        produce_frames(kafka_bootstrap, frames, range(400), cameras=8)
        events = read_topic(kafka_bootstrap, results, 400, timeout_s=150)
        by_seq = {}
        for ev in events:
            by_seq.setdefault(ev["frame"]["frame_seq"], []).append(ev["worker_id"])
        assert sorted(by_seq) == list(range(400))
        # Both processes judged frames (each owns two of the four partitions), under their own ids.
        assert {ids[0] for ids in by_seq.values()} == {"pod-x-0", "pod-x-1"}
        per_process: dict[str, float] = {}
        for s in worker.samples():  # the pod's one /metrics port speaks for both processes
            if s.name == "inspection_frames_judged_total":
                per_process[s.labels["process"]] = per_process.get(s.labels["process"], 0.0) + s.value
        assert set(per_process) == {"0", "1"} and all(v > 0 for v in per_process.values())
        assert sum(per_process.values()) >= 400
    finally:
        code = worker.stop()
        print(worker.log_tail(60))
    assert code == 0

"""What a failed Kafka test shows of the broker log: the tail without topic-deletion chatter, and the group events.

No broker runs here: the log is written in the broker's own line formats (Kafka 4, seen in its server.log).
"""

from __future__ import annotations

from line_harness.kafka.broker import LocalKafka

DELETION = [
    "[2026-12-02 16:20:11,381] INFO Deleted offset index /r/data/results-b-0.d-delete/00000000000000000000.index.deleted. "
    "(org.apache.kafka.storage.internals.log.LogSegment)",
    "[2026-12-02 16:20:11,382] INFO Deleted log for partition results-b-0 in /r/data/results-b-0.d-delete. (kafka.log.LogManager)",
    "[2026-12-02 16:20:11,382] INFO [LocalLog partition=dlq-2-0, dir=/r/data/dlq-2-0] Deleting segments as the log has been "
    "deleted: LogSegment(baseOffset=0, size=0) (org.apache.kafka.storage.internals.log.LocalLog)",
    "[2026-12-02 16:20:11,382] INFO [LocalLog partition=dlq-2-0, dir=/r/data/dlq-2-0] Deleting segment files "
    "LogSegment(baseOffset=0, size=0) (org.apache.kafka.storage.internals.log.LocalLog)",
    "[2026-12-02 16:20:11,382] INFO Deleted log /r/data/dlq-2-0.f-delete/00000000000000000000.log.deleted. "
    "(org.apache.kafka.storage.internals.log.LogSegment)",
    "[2026-12-02 16:20:11,382] INFO Deleted time index /r/data/dlq-2-0.f-delete/00000000000000000000.timeindex.deleted. "
    "(org.apache.kafka.storage.internals.log.LogSegment)",
]
REBALANCE = ("[2026-12-02 16:20:00,010] INFO [GroupCoordinator id=1 topic=__consumer_offsets partition=3] Preparing to "
             "rebalance group g-1 in state PreparingRebalance with old generation 1 (reason: Adding new member m-2 with "
             "group instance id null; client reason: not provided). (org.apache.kafka.coordinator.group.GroupMetadataManager)")
DROPPED = ("[2026-12-02 16:20:11,990] INFO [GroupCoordinator id=1 topic=__consumer_offsets partition=3] Member m-2 in group "
           "g-1 has failed, removing it from the group. (org.apache.kafka.coordinator.group.GroupMetadataManager)")
OTHER = "[2026-12-02 16:20:05,000] WARN [Controller id=1] something a test would want to see (kafka.controller)"


def _broker_with_log(tmp_path, lines):
    kafka = LocalKafka(tmp_path / "broker")
    kafka.log_file.parent.mkdir(parents=True, exist_ok=True)
    kafka.log_file.write_text("\n".join(lines) + "\n")
    return kafka


def test_the_tail_can_leave_out_topic_deletions_that_would_fill_it(tmp_path):
    kafka = _broker_with_log(tmp_path, [REBALANCE, OTHER, DROPPED] + DELETION * 100)
    plain = kafka.log_tail(20)
    assert OTHER not in plain and plain.count("Deleted") >= 10  # as before: 600 deletion lines bury the rest
    filtered = kafka.log_tail(20, without_deletions=True)
    assert all(line in filtered for line in (REBALANCE, OTHER, DROPPED))
    assert "Deleted" not in filtered and "Deleting segment" not in filtered
    assert "topic deletions left out" in filtered


def test_group_events_are_the_coordinators_lines_only_and_the_last_n(tmp_path):
    kafka = _broker_with_log(tmp_path, [REBALANCE] + DELETION * 50 + [OTHER, DROPPED])
    assert kafka.group_events(40).splitlines() == [REBALANCE, DROPPED]
    assert kafka.group_events(1).splitlines() == [DROPPED]
    empty = _broker_with_log(tmp_path / "quiet", [OTHER])
    assert "no consumer-group events" in empty.group_events()


def test_the_logs_command_prints_the_group_events_or_the_tail_without_deletions(tmp_path, capsys):
    from line_harness.kafka.cli import main

    kafka = _broker_with_log(tmp_path, [REBALANCE, OTHER] + DELETION * 20 + [DROPPED])
    assert main(["--run-dir", str(kafka.run_dir), "logs", "--groups"]) == 0
    assert capsys.readouterr().out.splitlines() == [REBALANCE, DROPPED]
    assert main(["--run-dir", str(kafka.run_dir), "logs", "-n", "3", "--no-deletions"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [REBALANCE, OTHER, DROPPED]

"""The check every fault scenario ends with.

frames produced (records on the frames topic) = distinct frames with a result + frames
dead-lettered; zero lost; no frame both judged and dead-lettered; duplicates counted
(at-least-once) or zero (exactly-once, reading results with read_committed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from line_harness.readers import committed_offsets, event_ids, read_to_end


@dataclass
class Accounting:
    """Outcome of the check for one scenario."""

    produced: int
    judged: int            # distinct frames with a result
    dead_lettered: int     # distinct frames in the dead-letter topic
    lost: int              # produced, but neither judged nor dead-lettered
    result_records: int
    duplicates: int        # result records beyond one per frame (redeliveries)
    judged_and_dead: int   # frames with both a result and a dead letter (must be 0)
    unknown: int           # results/dead letters naming no produced frame (must be 0)
    exactly_once: bool
    dead_by_reason: dict = field(default_factory=dict)
    # Of the lost frames: offsets the group already committed past (truly lost) vs not yet
    # committed (would be redone by the next owner: a stall, not a loss). Ids of the first few.
    lost_committed: int = 0
    lost_ids: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Zero lost, nothing judged twice over (EOS) or both ways, and the sums agree."""
        return (self.lost == 0 and self.judged_and_dead == 0 and self.unknown == 0
                and self.produced == self.judged + self.dead_lettered
                and (not self.exactly_once or self.duplicates == 0))

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def line(self) -> str:
        return (f"produced {self.produced} = judged {self.judged} + dead-lettered {self.dead_lettered}; "
                f"lost {self.lost}; duplicates {self.duplicates}"
                f"{' (must be 0: exactly-once)' if self.exactly_once else ' (at-least-once)'}; "
                f"judged+dead {self.judged_and_dead}; unknown {self.unknown} -> {'OK' if self.ok else 'FAILED'}"
                + (f" (lost: {self.lost_committed} committed past, e.g. {self.lost_ids[:5]})" if self.lost else ""))


def account(client_kwargs: dict, topics: dict[str, str], exactly_once: bool = False,
            group: str | None = None) -> Accounting:
    """Compare the frames topic with the results and dead-letter topics (and, given the group, say
    whether lost frames were committed past)."""
    produced = event_ids(client_kwargs, topics["frames"])
    results = [doc["event_id"] for doc in read_to_end(client_kwargs, topics["results"], exactly_once)]
    dead = {(doc["event_id"], doc["reason"]) for doc in read_to_end(client_kwargs, topics["dlq"], exactly_once)}
    judged = set(results)
    dead_ids = {i for i, _ in dead}
    reasons = Counter(reason for _, reason in dead)
    lost = sorted(produced - judged - dead_ids, key=lambda i: (int(i.rsplit("-", 2)[1]), int(i.rsplit("-", 1)[1])))
    lost_committed = 0
    if lost and group:
        committed = committed_offsets(client_kwargs, topics["frames"], group)
        lost_committed = sum(1 for i in lost if int(i.rsplit("-", 1)[1]) < committed[int(i.rsplit("-", 2)[1])])
    return Accounting(produced=len(produced), judged=len(judged & produced), dead_lettered=len(dead_ids & produced),
                      lost=len(lost), result_records=len(results),
                      duplicates=len(results) - len(judged), judged_and_dead=len(judged & dead_ids),
                      unknown=len((judged | dead_ids) - produced), exactly_once=exactly_once,
                      dead_by_reason=dict(reasons), lost_committed=lost_committed, lost_ids=lost[:20])

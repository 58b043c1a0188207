"""Micro-batching on an injected clock: a batch closes at max size or when its oldest good frame is
due; a backlog still fills it; dead letters ride along and never wait for company."""

from __future__ import annotations

import queue

from line_contracts.events import DeadLetterReason
from tests.unit.worker.fakes import FakeClock, good_frame, work_item
from worker.batching import END_OF_STREAM, Batcher
from worker.decode import Rejected


def _batcher(items, clock, size=4, wait_ms=20.0):
    return Batcher(items, max_batch_size=size, max_batch_wait_ms=wait_ms, idle_wait_s=0.01, clock=clock)


def test_batch_closes_at_max_size():
    clock, items = FakeClock(), queue.Queue()
    for off in range(10):
        items.put(work_item(off, good_frame(), clock()))
    batcher = _batcher(items, clock, size=4, wait_ms=10_000)
    assert [len(batcher.next_batch().frames) for _ in range(2)] == [4, 4]


def test_batch_of_a_due_frame_closes_without_waiting_for_more():
    clock, items = FakeClock(), queue.Queue()
    items.put(work_item(0, good_frame(), clock()))
    clock.advance(0.020)  # the frame has waited max_batch_wait_ms since it was polled
    batch = _batcher(items, clock, size=32, wait_ms=20).next_batch()
    assert len(batch.frames) == 1 and batch.closed_mono == clock()


def test_overdue_backlog_still_fills_the_batch_and_rejects_ride_along():
    clock, items = FakeClock(), queue.Queue()
    long_ago = clock() - 5
    items.put(work_item(0, Rejected(DeadLetterReason.EMPTY_VALUE, "empty"), long_ago))
    for off in range(1, 7):
        items.put(work_item(off, good_frame(), long_ago))
    items.put(END_OF_STREAM)
    batcher = _batcher(items, clock, size=4, wait_ms=10)
    first = batcher.next_batch()
    assert len(first.frames) == 4 and len(first.rejected) == 1
    second = batcher.next_batch()
    assert len(second.frames) == 2 and batcher.ended


def test_a_dead_letter_alone_goes_out_at_once_and_an_idle_queue_gives_an_empty_batch():
    clock, items = FakeClock(), queue.Queue()
    batcher = _batcher(items, clock)
    assert len(batcher.next_batch()) == 0 and not batcher.ended
    items.put(work_item(0, Rejected(DeadLetterReason.EMPTY_VALUE, "empty"), clock()))
    batch = batcher.next_batch()
    assert len(batch.rejected) == 1 and not batch.frames


def test_a_decode_past_its_budget_is_dead_lettered_and_the_pool_told():
    from concurrent.futures import Future

    from worker.batching import WorkItem

    clock, items, stuck = FakeClock(), queue.Queue(), []
    never: Future = Future()  # a decode that never finishes (cv2.imdecode cannot be interrupted)
    items.put(WorkItem(work_item(0, None, 0).source, 0, 1, None, b"x", [], 0, clock(), never))
    items.put(work_item(1, good_frame(), clock()))
    clock.advance(10.0)  # the budget is counted from the poll: nothing is left of it
    batcher = Batcher(items, 4, 10, idle_wait_s=0.01, clock=clock, decode_timeout_s=10.0,
                      on_decode_timeout=lambda: stuck.append(1))
    batch = batcher.next_batch()
    assert [r.reason for _, r in batch.rejected] == [DeadLetterReason.DECODE_TIMEOUT]
    assert "WORKER_DECODE_TIMEOUT_S" in batch.rejected[0][1].error
    assert len(batch.frames) == 1 and stuck == [1]  # the frame behind it was not held up

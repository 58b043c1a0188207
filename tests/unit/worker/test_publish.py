"""Publishers against a fake producer: an offset becomes committable only after the broker
acknowledged its frame's record; failed deliveries are re-sent after the back-off; a transaction
holds a batch's records and offsets and is retried as a whole."""

from __future__ import annotations

from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError
from prometheus_client import CollectorRegistry

from tests.unit.worker.fakes import TP, FakeClock, FakeProducer
from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker
from worker.publish import AtLeastOncePublisher, OutRecord, Publisher
from worker.transactions import TransactionalPublisher


def _setup(offsets=(0, 1, 2)):
    tracker = OffsetTracker()
    tracker.assign([TP])
    gens = {off: tracker.register(TP, off) for off in offsets}
    records = [OutRecord("results", b"k", b"v%d" % off, TP, off, gens[off]) for off in offsets]
    return tracker, records


def test_at_least_once_commits_only_what_the_broker_acknowledged_in_order():
    tracker, records = _setup()
    producer = FakeProducer()
    publisher: Publisher = AtLeastOncePublisher(producer, tracker, WorkerMetrics(CollectorRegistry()))
    publisher.publish(records)
    assert len(producer.sent) == 3 and tracker.to_commit() == {}  # handed over is not done
    producer.ack(1)
    producer.ack(2)
    assert tracker.to_commit() == {}  # offset 0 has no result on the broker yet
    producer.ack(0)
    assert tracker.to_commit() == {TP: 3}


def test_a_failed_delivery_is_resent_after_the_backoff_and_only_then_committed():
    tracker, records = _setup((0,))
    producer, clock = FakeProducer(), FakeClock()
    metrics = WorkerMetrics(CollectorRegistry())
    publisher = AtLeastOncePublisher(producer, tracker, metrics, retry_backoff_s=0.5, clock=clock)
    publisher.publish(records)
    producer.fail(0, KafkaTimeoutError("broker away"))
    publisher.publish([])
    assert len(producer.sent) == 1 and publisher.pending_retries() == 1  # back-off not over
    clock.advance(0.5)
    publisher.publish([])
    assert len(producer.sent) == 2 and metrics.registry.get_sample_value("inspection_publish_retries_total") == 1
    assert tracker.to_commit() == {}
    producer.ack(1)
    assert tracker.to_commit() == {TP: 1}


def test_a_denied_topic_keeps_the_worker_up_uncommitted_and_alarmed_until_it_works():
    tracker, records = _setup((0, 1))
    producer, clock = FakeProducer(), FakeClock()
    metrics = WorkerMetrics(CollectorRegistry())
    publisher = AtLeastOncePublisher(producer, tracker, metrics, retry_backoff_s=0.5, clock=clock)
    publisher.publish(records)
    producer.fail(0, TopicAuthorizationFailedError("denied"))  # not retriable, yet not fatal
    producer.fail(1, TopicAuthorizationFailedError("denied"))
    publisher.check()
    assert publisher.fatal is None and tracker.to_commit() == {}
    assert metrics.registry.get_sample_value("inspection_publish_failing") == 1
    assert "publishing failing" in publisher.describe() and "results" in publisher.describe()
    clock.advance(1.0)  # the back-off grows with consecutive failures (0.5 s, 1 s, ...)
    publisher.publish([])
    assert len(producer.sent) == 4
    producer.ack(2)
    producer.ack(3)  # the ACL was fixed
    assert tracker.to_commit() == {TP: 2} and publisher.describe() == ""
    assert metrics.registry.get_sample_value("inspection_publish_failing") == 0


def test_a_missing_topic_blocks_send_once_per_round_not_once_per_record():
    tracker, records = _setup((0, 1, 2))

    class NoMetadata(FakeProducer):
        def send(self, topic, value=None, key=None, headers=None):
            self.calls.append(f"send {topic}")
            raise KafkaTimeoutError("Failed to update metadata after 5.0 secs.")

    producer, clock = NoMetadata(), FakeClock()
    publisher = AtLeastOncePublisher(producer, tracker, WorkerMetrics(CollectorRegistry()), clock=clock)
    publisher.publish(records)
    assert producer.calls == ["send results"] and publisher.pending_retries() == 3
    publisher.publish(records[:1])  # a new record for the failing topic waits for the back-off too
    assert producer.calls == ["send results"] and publisher.pending_retries() == 4


def test_transaction_holds_records_then_offsets_and_is_retried_as_a_whole():
    tracker, records = _setup()
    producer = FakeProducer(fail_commits=1)
    slept: list[float] = []
    publisher: Publisher = TransactionalPublisher(producer, tracker, WorkerMetrics(CollectorRegistry()),
                                                  lambda: "gm", sleep=slept.append, clock=FakeClock())
    publisher.publish(records)
    attempt = ["begin", "send results", "send results", "send results", "offsets [(0, 3)]"]
    assert producer.calls == ["init", *attempt, "abort", *attempt, "commit"]
    assert slept == [0.5]
    assert tracker.in_flight() == 0 and tracker.to_commit() == {}  # the transaction committed offset 3 itself


class _IdState:
    """kafka-python's transaction manager as the publisher reads it: fatal or not, producer id or not."""

    def __init__(self, has_id: bool):
        self.has_id = has_id

    def has_fatal_error(self):
        return False

    def has_producer_id(self):
        return self.has_id


class _ClosableProducer(FakeProducer):
    def __init__(self, has_id: bool):
        super().__init__()
        self._transaction_manager = _IdState(has_id)
        self.closed = False

    def close(self, timeout=None):
        self.closed = True


def test_a_producer_without_a_producer_id_past_the_delivery_timeout_is_replaced():
    # kafka-python 3.0: a batch expiring while the broker is away drops the producer id for good
    # (python -m line_harness.chaos.producer_stall); the publisher must start a fresh producer.
    tracker, records = _setup((0, 1))
    clock, stuck, fresh = FakeClock(), _ClosableProducer(has_id=False), _ClosableProducer(has_id=True)
    publisher = AtLeastOncePublisher(stuck, tracker, WorkerMetrics(CollectorRegistry()), clock=clock,
                                     new_producer=lambda: fresh, stalled_after_s=120.0)
    publisher.publish(records)  # handed to the stuck producer, which will never answer for them
    clock.advance(60)
    publisher.publish([])
    assert publisher.producer is stuck  # a producer still fetching its id at start-up is left alone
    clock.advance(61)
    publisher.publish([])
    assert publisher.producer is fresh and stuck.closed
    clock.advance(5)  # the back-off
    publisher.publish([])
    assert len(fresh.sent) == 2 and tracker.to_commit() == {}  # the stranded records go out again
    fresh.ack(0)
    fresh.ack(1)
    assert tracker.to_commit() == {TP: 2}
    stuck.ack(0)  # a late answer of the abandoned producer changes nothing
    assert tracker.to_commit() == {TP: 2}


def test_a_producer_that_gets_its_id_back_is_kept():
    tracker, _ = _setup(())
    clock, producer = FakeClock(), _ClosableProducer(has_id=False)
    publisher = AtLeastOncePublisher(producer, tracker, WorkerMetrics(CollectorRegistry()), clock=clock,
                                     new_producer=lambda: _ClosableProducer(has_id=True), stalled_after_s=120.0)
    publisher.publish([])
    clock.advance(100)
    producer._transaction_manager.has_id = True
    publisher.publish([])
    producer._transaction_manager.has_id = False
    clock.advance(100)  # 200 s since the first look, but only 100 s without an id this time
    publisher.publish([])
    assert publisher.producer is producer

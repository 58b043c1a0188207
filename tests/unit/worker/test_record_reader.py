"""A record whose header name is not UTF-8 made kafka-python raise inside poll() for it and every
record behind it in the batch; with worker.record_reader installed the batch reads, and the name
comes through as the contract's NON_UTF8_NAME_PREFIX + hex, which the frame contract refuses."""

from __future__ import annotations

import pytest
from kafka.errors import CorruptRecordError
from kafka.record import MemoryRecords, default_records
from kafka.record.default_records import DefaultRecordBatchBuilder

from line_contracts.frame import FrameHeaderError, FrameHeaders
from line_harness.frames import frame_headers
from producer_sim.faults import RawHeaderName
from worker import record_reader


def _batch() -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    builder.append(0, timestamp=1, key=b"cam-0", value=b"v0", headers=[("ok", b"1")])
    builder.append(1, timestamp=2, key=b"cam-1", value=b"v1", headers=[(RawHeaderName(b"\xff\xfe"), b"2")])
    builder.append(2, timestamp=3, key=None, value=b"v2", headers=[])
    return bytes(builder.build())


def _read(raw: bytes):
    return [(r.offset, r.key, r.value, r.headers) for r in MemoryRecords(raw).next_batch()]


def test_a_non_utf8_header_name_no_longer_breaks_the_batch(monkeypatch):
    raw = _batch()
    monkeypatch.setattr(default_records.DefaultRecordBatch, "_read_msg", record_reader._ORIGINAL)
    with pytest.raises(CorruptRecordError):
        _read(raw)  # what kafka-python does on its own
    record_reader.install()
    records = _read(raw)
    assert [r[0] for r in records] == [0, 1, 2] and records[2][2] == b"v2"
    name = records[1][3][0][0]
    assert record_reader.raw_header_name(name) == b"\xff\xfe" and records[1][3][0][1] == b"2"
    with pytest.raises(FrameHeaderError, match="not UTF-8"):
        FrameHeaders.from_kafka(frame_headers(1).to_kafka() + [(name, b"2")])

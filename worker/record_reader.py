"""Records kafka-python cannot parse must not stop the line.

1. A header *name* that is not UTF-8 (other clients can send one) made kafka-python raise inside
   `poll()`, every time, for every record behind it in the batch. `install()` makes the record
   parser fall back, for such a record only, to a tolerant reading of the v2 record format
   (length, attributes, timestamp delta, offset delta, key, value, headers as varint-prefixed
   fields) that keeps the raw name as `NON_UTF8_NAME_PREFIX + hex`; the worker then dead-letters
   the record as bad_header with every byte of it.
2. Anything else `poll()` raises for a record (a corrupt batch, say) is located with
   `unreadable_record()`: the partition whose records were being parsed and its position, so the
   consumer can dead-letter that offset and seek past it.
kafka-python 3.0 internals are used read-only and checked by tests/unit/worker/test_record_reader.py.
"""

from __future__ import annotations

import logging
from typing import Optional

from kafka import TopicPartition
from kafka.record import default_records
from kafka.record.util import decode_varint

from line_contracts.frame import NON_UTF8_NAME_PREFIX

log = logging.getLogger(__name__)

_ORIGINAL = default_records.DefaultRecordBatch._read_msg


def install() -> None:
    """Make kafka-python's record parser tolerate non-UTF-8 header names (idempotent)."""
    default_records.DefaultRecordBatch._read_msg = _read_msg_tolerant


def raw_header_name(name: str) -> Optional[bytes]:
    """The raw bytes of a header name that was not UTF-8 (None for a normal name)."""
    if not name.startswith(NON_UTF8_NAME_PREFIX):
        return None
    try:
        return bytes.fromhex(name[len(NON_UTF8_NAME_PREFIX):])
    except ValueError:
        return b""


def _read_msg_tolerant(self, *args, **kwargs):
    try:
        return _ORIGINAL(self, *args, **kwargs)
    except UnicodeDecodeError:
        return _read_with_raw_names(self)  # self._pos is only advanced on success: read it again


def _read_with_raw_names(batch):
    buf, pos = batch._buffer, batch._pos
    length, pos = decode_varint(buf, pos)
    start = pos
    _attributes, pos = decode_varint(buf, pos)
    ts_delta, pos = decode_varint(buf, pos)
    offset_delta, pos = decode_varint(buf, pos)
    key, pos = _nullable_bytes(buf, pos)
    value, pos = _nullable_bytes(buf, pos)
    count, pos = decode_varint(buf, pos)
    if count < 0:
        raise ValueError(f"negative header count {count}")
    headers = []
    for _ in range(count):
        name_len, pos = decode_varint(buf, pos)
        if name_len < 0:
            raise ValueError(f"negative header name size {name_len}")
        raw = bytes(buf[pos:pos + name_len])
        pos += name_len
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            name = NON_UTF8_NAME_PREFIX + raw.hex()
        header_value, pos = _nullable_bytes(buf, pos)
        headers.append((name, header_value))
    if pos - start != length:
        raise ValueError(f"record size {length} but {pos - start} bytes read")
    batch._pos = pos
    timestamp = batch.max_timestamp if batch.timestamp_type == batch.LOG_APPEND_TIME \
        else batch.first_timestamp + ts_delta
    offset = batch.base_offset + offset_delta
    log.warning("record at offset %d has a header name that is not UTF-8; it will be dead-lettered", offset)
    return default_records.DefaultRecord(length, offset, timestamp, batch.timestamp_type, key, value, headers)


def _nullable_bytes(buf, pos: int) -> tuple[Optional[bytes], int]:
    size, pos = decode_varint(buf, pos)
    if size < 0:
        return None, pos
    return bytes(buf[pos:pos + size]), pos + size


def unreadable_record(consumer) -> Optional[tuple[TopicPartition, int]]:
    """After `poll()` raised for a record: (partition, offset) of the record it could not read, if known."""
    fetcher = getattr(consumer, "_fetcher", None)
    part = getattr(fetcher, "_next_partition_records", None)
    tp = getattr(part, "topic_partition", None)
    if tp is None:
        assigned = consumer.assignment() - consumer.paused()
        if len(assigned) != 1:
            return None
        tp = next(iter(assigned))
    try:
        offset = consumer.position(tp, timeout_ms=1000)
    except Exception:  # noqa: BLE001 - best effort: no position, no skip
        return None
    return None if offset is None else (tp, offset)

"""The shared contracts: committed JSON Schemas match the models; bad headers name the header."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from line_contracts import schemas
from line_contracts.events import (
    DeadLetterReason,
    DeadLetterRecord,
    DefectEvent,
    ModelRef,
    Timings,
    Verdict,
    event_id,
    frame_ref,
)
from line_contracts.frame import Encoding, FrameHeaderError, FrameHeaders, TruthLabel, frame_key
from line_harness.paths import REPO

SCHEMA_DIR = REPO / "docs" / "schemas"
REGENERATE = "regenerate with `python -m line_contracts.schemas` and commit docs/schemas/"


def _headers(**overrides) -> list[tuple[str, bytes]]:
    good = FrameHeaders(camera_id="cam-1", line_id="line-1", frame_seq=7, capture_time_ns=1_700_000_000_000_000_000,
                        encoding=Encoding.PNG, width=512, height=512, truth_label=TruthLabel.OK).to_kafka()
    out = [(k, v) for k, v in good if k not in overrides]
    out += [(k, v) for k, v in overrides.items() if v is not None]
    return out


@pytest.mark.parametrize("name", sorted(schemas.SCHEMAS))
def test_committed_schema_matches_the_model(name):
    committed = SCHEMA_DIR / name
    assert committed.is_file(), f"{committed} is missing: {REGENERATE}"
    assert committed.read_text() == schemas.render(schemas.SCHEMAS[name]), f"{name} drifted from the model: {REGENERATE}"


def test_no_stale_schema_files():
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(schemas.SCHEMAS)


def test_render_notices_a_model_change():
    class Changed(DefectEvent):
        extra_field: int = 0

    assert schemas.render(Changed) != schemas.render(DefectEvent)
    json.loads(schemas.render(DefectEvent))  # valid JSON


def test_headers_round_trip_through_kafka_form():
    raw = _headers()
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in raw)
    parsed = FrameHeaders.from_kafka(raw)
    assert parsed.camera_id == "cam-1" and parsed.frame_seq == 7 and parsed.encoding is Encoding.PNG
    assert FrameHeaders.from_kafka(parsed.to_kafka()) == parsed
    assert frame_key("cam-1") == b"cam-1"


@pytest.mark.parametrize("header, value, words", [
    ("encoding", b"bmp", "encoding"),                  # unknown enum value
    ("truth_label", b"maybe", "truth_label"),          # unknown enum value
    ("width", b"wide", "integer"),                     # wrong type
    ("capture_time_ns", b"12.5", "integer"),           # wrong type
    ("frame_seq", b"-1", "greater than or equal"),     # malformed: out of range
    ("height", b"0", "greater than"),                  # malformed: out of range
    ("schema_version", b"99", "less than or equal"),   # a schema this code does not know
    ("camera_id", b"", "at least 1"),                  # empty
    ("line_id", b"\xff\xfe", "UTF-8"),                 # not text
])
def test_bad_header_value_names_the_header(header, value, words):
    with pytest.raises(FrameHeaderError) as err:
        FrameHeaders.from_kafka(_headers(**{header: value}))
    assert err.value.header == header
    assert f"'{header}'" in str(err.value) and words in str(err.value)


@pytest.mark.parametrize("header", ["camera_id", "line_id", "frame_seq", "capture_time_ns", "encoding", "width",
                                    "height"])
def test_missing_required_header_is_named(header):
    with pytest.raises(FrameHeaderError, match=f"'{header}': required header is missing") as err:
        FrameHeaders.from_kafka(_headers(**{header: None}))
    assert err.value.header == header


def test_duplicate_and_absent_headers():
    with pytest.raises(FrameHeaderError, match="'width': appears more than once"):
        FrameHeaders.from_kafka(_headers() + [("width", b"64")])
    with pytest.raises(FrameHeaderError, match="required header is missing"):
        FrameHeaders.from_kafka(None)
    assert FrameHeaders.from_kafka(_headers(traceparent=b"00-abc")).camera_id == "cam-1"  # unknown names ignored


def _event(**overrides) -> DefectEvent:
    headers = FrameHeaders.from_kafka(_headers())
    fields = dict(event_id=event_id("line.frames", 2, 41), frame=frame_ref("line.frames", 2, 41, headers),
                  verdict=Verdict.DEFECT, score=0.93, threshold=0.5,
                  model=ModelRef(name="dagm-class8", version="3", backend="litert"), worker_id="worker-0",
                  timings=Timings(consumed_ns=1, inferred_ns=2, published_ns=3, capture_to_publish_ms=12.5,
                                  inference_ms=4.0, batch_size=8))
    fields.update(overrides)
    return DefectEvent(**fields)


def test_result_event_json_round_trip():
    event = _event()
    assert event.event_id == "line.frames-2-41"
    assert DefectEvent.model_validate_json(event.to_json_bytes()) == event


@pytest.mark.parametrize("field, value", [("score", "high"), ("score", 1.5), ("verdict", "maybe")])
def test_result_event_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValidationError) as err:
        _event(**{field: value})
    assert err.value.errors()[0]["loc"][0] == field


def test_dead_letter_record_carries_bytes_as_base64():
    record = DeadLetterRecord(event_id=event_id("line.frames", 0, 5), reason=DeadLetterReason.UNDECODABLE,
                              error="not a PNG", source_topic="line.frames", source_partition=0, source_offset=5,
                              source_key=b"cam-1", original_headers={"encoding": b"png"},
                              original_value=b"\x89PNG\x00\xff", original_value_size=6, worker_id="worker-0",
                              dead_lettered_ns=10)
    wire = json.loads(record.to_json_bytes())
    assert wire["original_value"] == "iVBORwD/" and wire["original_headers"] == {"encoding": "cG5n"}
    assert DeadLetterRecord.model_validate_json(record.to_json_bytes()) == record

"""Events the worker publishes: one result event per frame, or one dead-letter record."""

from __future__ import annotations

import base64
from enum import Enum
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from line_contracts.frame import FrameHeaders, TruthLabel

# 2: adds `localisation` (defect regions), `evidence` (object-store keys) and frame.truth_box; all optional,
# so a version-1 reader ignores them and this model still reads version-1 events.
RESULT_SCHEMA_VERSION = 2
DEAD_LETTER_SCHEMA_VERSION = 1


def event_id(topic: str, partition: int, offset: int) -> str:
    """Deterministic id of the frame at topic/partition/offset: a redelivery gets the same id."""
    return f"{topic}-{partition}-{offset}"


class Verdict(str, Enum):
    """The worker's decision for one frame."""

    DEFECT = "defect"
    OK = "ok"


class Box(BaseModel):
    """An axis-aligned rectangle in frame pixels (at the camera's size, origin top-left)."""

    model_config = ConfigDict(frozen=True)

    x: int = Field(ge=0, description="Left edge, pixels.")
    y: int = Field(ge=0, description="Top edge, pixels.")
    width: int = Field(gt=0, description="Width, pixels.")
    height: int = Field(gt=0, description="Height, pixels.")

    def overlaps(self, other: "Box") -> bool:
        """True when the two rectangles share at least one pixel."""
        return (self.x < other.x + other.width and other.x < self.x + self.width
                and self.y < other.y + other.height and other.y < self.y + self.height)


class DefectRegion(BaseModel):
    """One connected area of the model's defect map, mapped to frame pixels."""

    model_config = ConfigDict(frozen=True)

    box: Box = Field(description="Bounding box of the region's map cells, in frame pixels.")
    peak: float = Field(ge=0.0, le=1.0, description="Highest defect-map value in the region.")
    area_px: int = Field(gt=0, description="Frame pixels covered by the region's cells.")


class Localisation(BaseModel):
    """Where the model saw the defect: regions of its defect map, strongest first."""

    model_config = ConfigDict(frozen=True)

    map_height: int = Field(gt=0, description="Rows of the model's defect map (its own resolution).")
    map_width: int = Field(gt=0, description="Columns of the model's defect map.")
    regions: list[DefectRegion] = Field(default_factory=list, description="Regions, highest peak first; at most the "
                                        "worker's configured number.")


class EvidenceStatus(str, Enum):
    """What became of a frame's evidence when its event was published."""

    QUEUED = "queued"    # handed to the writer; the objects appear in the store within seconds
    MISSING = "missing"  # not kept: the store was down or slow (queue full); counted by a metric


class Evidence(BaseModel):
    """The claim check: where the frame, its overlay and its event are kept in the object store."""

    model_config = ConfigDict(frozen=True)

    status: EvidenceStatus = Field(description="'queued' or 'missing'.")
    bucket: str = Field(description="Object-store bucket.")
    frame_key: str = Field(description="Key of the original frame bytes (as the camera sent them).")
    overlay_key: str = Field(description="Key of the overlay PNG (frame, defect map and boxes).")
    event_key: str = Field(description="Key of this event as JSON.")
    reason: Optional[str] = Field(None, description="Why the evidence is missing, when it is.")


class FrameRef(BaseModel):
    """Where and what a frame was: its source record and its identity headers."""

    model_config = ConfigDict(frozen=True)

    topic: str = Field(description="Source topic of the frame.")
    partition: int = Field(ge=0, description="Source partition.")
    offset: int = Field(ge=0, description="Source offset.")
    camera_id: str = Field(description="Camera that took the frame.")
    line_id: str = Field(description="Production line.")
    frame_seq: int = Field(ge=0, description="Per-camera frame sequence number.")
    capture_time_ns: int = Field(ge=0, description="Capture time, ns since the Unix epoch.")
    truth_label: Optional[TruthLabel] = Field(None, description="Ground truth, when the simulator sent one.")
    truth_box: Optional[Box] = Field(None, description="Ground-truth defect box, when the simulator sent one.")


class Timings(BaseModel):
    """Wall-clock instants (ns since the epoch) along the frame's path, and derived latency."""

    model_config = ConfigDict(frozen=True)

    consumed_ns: int = Field(description="When the worker received the record.")
    inferred_ns: int = Field(description="When the model returned this frame's score.")
    published_ns: int = Field(description="When the worker handed the event to the producer.")
    capture_to_publish_ms: float = Field(description="published_ns - capture_time_ns, in milliseconds.")
    inference_ms: float = Field(description="Wall time of the whole batch inference call, in milliseconds.")
    batch_size: int = Field(ge=1, description="Frames in the batch this frame was judged in.")


class ModelRef(BaseModel):
    """The model that judged a frame."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    name: str = Field(description="Model name from its metadata.")
    version: str = Field(description="Model version from its metadata.")
    backend: str = Field(description="Runtime that executed it: 'tensorflow' or 'litert'.")
    variant: str = Field("exact", description="'exact', or 'fast': the version's cheaper variant (lower working "
                                              "resolution) that training found as good on its held-out frames.")


class DefectEvent(BaseModel):
    """Result event: the verdict for one frame, published to the results topic as JSON."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    schema_version: int = Field(RESULT_SCHEMA_VERSION, description="Result event schema version.")
    event_id: str = Field(description="Deterministic '<topic>-<partition>-<offset>' of the source frame.")
    frame: FrameRef = Field(description="The judged frame.")
    verdict: Verdict = Field(description="'defect' when score >= threshold, else 'ok'.")
    score: float = Field(ge=0.0, le=1.0, description="Model's defect score in [0, 1].")
    threshold: float = Field(ge=0.0, le=1.0, description="Decision threshold the verdict used.")
    model: ModelRef = Field(description="Model name, version and backend.")
    worker_id: str = Field(description="Worker instance that judged the frame.")
    timings: Timings = Field(description="Timestamps and latency.")
    localisation: Optional[Localisation] = Field(None, description="Defect regions, for a 'defect' verdict of a "
                                                 "model that has a defect map (schema 2).")
    evidence: Optional[Evidence] = Field(None, description="Object-store keys, for defects and sampled good frames "
                                         "when the worker has an evidence store (schema 2).")

    def to_json_bytes(self) -> bytes:
        """Serialise as compact UTF-8 JSON, the wire form on the results topic."""
        return self.model_dump_json().encode("utf-8")


class DeadLetterReason(str, Enum):
    """Why a frame could not be judged. Each bad-input kind has its own reason."""

    EMPTY_VALUE = "empty_value"
    TOO_MANY_BYTES = "too_many_bytes"
    MISSING_HEADER = "missing_header"
    BAD_HEADER = "bad_header"
    UNKNOWN_ENCODING = "unknown_encoding"
    UNDECODABLE = "undecodable"            # random bytes, not the image its encoding header names
    TRUNCATED = "truncated"                # PNG/JPEG cut short (no IEND / EOI): a transport or camera fault
    RAW_SIZE_MISMATCH = "raw_size_mismatch"
    TOO_MANY_PIXELS = "too_many_pixels"
    NOT_GRAYSCALE = "not_grayscale"        # colour image
    UNSUPPORTED_DEPTH = "unsupported_depth"  # e.g. 16-bit PNG
    SIZE_MISMATCH = "size_mismatch"        # differs from the model input and policy says reject
    HEADER_MISMATCH = "header_mismatch"    # decoded size differs from width/height headers
    INFERENCE_FAILED = "inference_failed"  # no longer sent: a failing model halts judging (fail closed)
    HEADERS_TOO_LARGE = "headers_too_large"  # more headers or header bytes than a frame may carry
    KEY_TOO_LARGE = "key_too_large"        # record key longer than a camera id can be
    UNREADABLE_RECORD = "unreadable_record"  # the Kafka client could not parse the record (e.g. a non-UTF-8 header name)
    DECODE_TOO_COSTLY = "decode_too_costly"  # the image's structure makes decoding too expensive (JPEG scans)
    DECODE_TIMEOUT = "decode_timeout"      # decoding ran past the worker's time budget
    EVENT_INVALID = "event_invalid"        # the frame's result event could not be built from its headers


class DeadLetterRecord(BaseModel):
    """A frame the worker could not judge, with the original bytes and headers and the reason."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = Field(DEAD_LETTER_SCHEMA_VERSION, description="Dead-letter schema version.")
    event_id: str = Field(description="Deterministic '<topic>-<partition>-<offset>' of the source frame.")
    reason: DeadLetterReason = Field(description="Machine-readable reason.")
    error: str = Field(description="Human-readable error text.")
    source_topic: str = Field(description="Topic the frame was read from.")
    source_partition: int = Field(ge=0, description="Partition the frame was read from.")
    source_offset: int = Field(ge=0, description="Offset of the frame.")
    source_key: Optional[bytes] = Field(None, description="Original record key, base64 in JSON (cut to the "
                                        "worker's limit, see source_key_truncated).")
    source_key_size: int = Field(0, ge=0, description="Size of the original key in bytes, before any cut.")
    source_key_truncated: bool = Field(False, description="True when source_key was cut.")
    original_headers: dict[str, bytes] = Field(default_factory=dict,
                                               description="Original record headers, values base64 in JSON (only "
                                                           "the first ones, each value cut, when they were too large).")
    original_headers_truncated: bool = Field(False, description="True when original_headers is not all of them, "
                                             "or a value was cut.")
    original_value: bytes = Field(b"", description="Original record value (base64 in JSON), cut to the worker's "
                                  "dead-letter size limit so the record always fits the topic.")
    original_value_size: int = Field(0, ge=0, description="Size of the original value in bytes, before any cut.")
    original_value_truncated: bool = Field(False, description="True when original_value was cut.")
    worker_id: str = Field(description="Worker instance that dead-lettered the frame.")
    dead_lettered_ns: int = Field(description="When the worker dead-lettered it, ns since the epoch.")

    @field_serializer("source_key", "original_value", when_used="json")
    def _b64(self, value: Optional[bytes]) -> Optional[str]:
        return None if value is None else base64.b64encode(value).decode("ascii")

    @field_serializer("original_headers", when_used="json")
    def _b64_headers(self, value: dict[str, bytes]) -> dict[str, str]:
        return {k: base64.b64encode(v).decode("ascii") for k, v in value.items()}

    @field_validator("source_key", "original_value", mode="before")
    @classmethod
    def _from_b64(cls, value):
        return base64.b64decode(value) if isinstance(value, str) else value

    @field_validator("original_headers", mode="before")
    @classmethod
    def _headers_from_b64(cls, value):
        if isinstance(value, dict):
            return {k: base64.b64decode(v) if isinstance(v, str) else v for k, v in value.items()}
        return value

    def to_json_bytes(self) -> bytes:
        """Serialise as compact UTF-8 JSON, the wire form on the dead-letter topic."""
        return self.model_dump_json().encode("utf-8")


def frame_ref(topic: str, partition: int, offset: int, headers: FrameHeaders) -> FrameRef:
    """Build the FrameRef of a decoded frame."""
    box = headers.truth_xywh()
    return FrameRef(topic=topic, partition=partition, offset=offset, camera_id=headers.camera_id,
                    line_id=headers.line_id, frame_seq=headers.frame_seq,
                    capture_time_ns=headers.capture_time_ns, truth_label=headers.truth_label,
                    truth_box=None if box is None or 0 in box[2:] else Box(x=box[0], y=box[1], width=box[2], height=box[3]))

"""The frame message on the frames topic: value = encoded image bytes, identity in headers.

Headers are Kafka record headers (name -> bytes). Values are UTF-8 text so that any client
(and `kafka-console-consumer`) can read them; numbers are decimal strings.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FRAME_SCHEMA_VERSION = 1

# Header names, in one place: the simulator writes them, the worker reads them.
H_SCHEMA_VERSION = "schema_version"
H_CAMERA_ID = "camera_id"
H_LINE_ID = "line_id"
H_SEQUENCE = "frame_seq"
H_CAPTURE_TIME_NS = "capture_time_ns"
H_ENCODING = "encoding"


class Encoding(str, Enum):
    """How the frame's bytes are encoded."""

    PNG = "png"
    JPEG = "jpeg"
    RAW = "raw"  # mono8, row-major, width*height bytes


class TruthLabel(str, Enum):
    """Ground truth a simulator (never a real camera) may attach to a frame."""

    DEFECT = "defect"
    OK = "ok"


class FrameHeaderError(ValueError):
    """A frame's headers are missing, malformed or of the wrong type; the message names the header."""

    def __init__(self, header: str, problem: str):
        self.header = header
        self.problem = problem
        super().__init__(f"frame header '{header}': {problem}")


class MissingHeaderError(FrameHeaderError):
    """A required header is absent."""


class UnknownEncodingError(FrameHeaderError):
    """The encoding header names no known Encoding."""


class FrameHeaders(BaseModel):
    """Identity and format of one frame, carried in the Kafka record headers."""

    # Unknown header names are ignored (tracing headers and the like); unknown *values* are errors.
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = Field(FRAME_SCHEMA_VERSION, ge=1, le=FRAME_SCHEMA_VERSION,
                                description="Frame header schema version.")
    camera_id: str = Field(min_length=1, max_length=128, description="Camera that took the frame; also the record key.")
    line_id: str = Field(min_length=1, max_length=128, description="Production line the camera watches.")
    frame_seq: int = Field(ge=0, description="Per-camera frame sequence number, increasing by one per frame.")
    capture_time_ns: int = Field(ge=0, description="Capture time, nanoseconds since the Unix epoch.")
    encoding: Encoding = Field(description="Encoding of the record value.")
    width: int = Field(gt=0, le=65535, description="Frame width in pixels.")
    height: int = Field(gt=0, le=65535, description="Frame height in pixels.")
    truth_label: Optional[TruthLabel] = Field(None, description="Ground truth, set only by simulators.")

    def to_kafka(self) -> list[tuple[str, bytes]]:
        """Encode as Kafka record headers."""
        out = []
        for name, value in self.model_dump(mode="json").items():
            if value is not None:
                out.append((name, str(value).encode("utf-8")))
        return out

    @classmethod
    def from_kafka(cls, headers: Optional[Iterable[Tuple[str, Optional[bytes]]]]) -> "FrameHeaders":
        """Decode Kafka record headers; raise FrameHeaderError naming the first bad header."""
        raw: dict[str, str] = {}
        for name, value in headers or ():
            if name in raw:
                raise FrameHeaderError(name, "appears more than once")
            try:
                raw[name] = (value or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise FrameHeaderError(name, "value is not UTF-8 text") from None
        raw.setdefault(H_SCHEMA_VERSION, str(FRAME_SCHEMA_VERSION))
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            header = str(err["loc"][0]) if err["loc"] else "?"
            if err["type"] == "missing":
                raise MissingHeaderError(header, "required header is missing") from None
            got = raw.get(header)
            error = UnknownEncodingError if header == H_ENCODING else FrameHeaderError
            raise error(header, f"{err['msg']} (got {got!r})") from None


def frame_key(camera_id: str) -> bytes:
    """Record key for a camera's frames: one camera's frames stay in one partition, in order."""
    return camera_id.encode("utf-8")

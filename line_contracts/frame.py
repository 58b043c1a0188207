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
H_TRUTH_BOX = "truth_box"

# Bounds every frame record is held to: the worker refuses a record beyond them before any other work
# (numbers any int64 consumer can hold; ids that are safe as metric labels and in logs).
INT64_MAX = 2**63 - 1
MAX_HEADER_COUNT = 64
MAX_HEADERS_BYTES = 16 * 1024  # all names + values (room for tracing headers such as W3C baggage)
MAX_KEY_BYTES = 512
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
TRUTH_BOX_PATTERN = r"^[0-9]{1,5},[0-9]{1,5},[0-9]{1,5},[0-9]{1,5}$"
# Header names must be UTF-8. A reader that meets one that is not (Kafka allows any bytes from other
# clients) represents it as this prefix + the hex of its bytes, so it can be reported, never guessed.
NON_UTF8_NAME_PREFIX = "\x00non-utf8-header:"


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


class HeaderLimitError(FrameHeaderError):
    """The record carries more headers, or more header bytes, than a frame may (MAX_HEADER_COUNT, MAX_HEADERS_BYTES)."""


class FrameHeaders(BaseModel):
    """Identity and format of one frame, carried in the Kafka record headers."""

    # Unknown header names are ignored (tracing headers and the like); unknown *values* are errors.
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = Field(FRAME_SCHEMA_VERSION, ge=1, le=FRAME_SCHEMA_VERSION,
                                description="Frame header schema version.")
    camera_id: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN,
                           description="Camera that took the frame; also the record key. ASCII letters, digits "
                                       "and _ . : - only.")
    line_id: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN,
                         description="Production line the camera watches. ASCII letters, digits and _ . : - only.")
    frame_seq: int = Field(ge=0, le=INT64_MAX, description="Per-camera frame sequence number, increasing by one "
                           "per frame (fits a signed 64-bit integer).")
    capture_time_ns: int = Field(ge=0, le=INT64_MAX, description="Capture time, nanoseconds since the Unix epoch "
                                 "(fits a signed 64-bit integer).")
    encoding: Encoding = Field(description="Encoding of the record value.")
    width: int = Field(gt=0, le=65535, description="Frame width in pixels.")
    height: int = Field(gt=0, le=65535, description="Frame height in pixels.")
    truth_label: Optional[TruthLabel] = Field(None, description="Ground truth, set only by simulators.")
    truth_box: Optional[str] = Field(None, max_length=64, pattern=TRUTH_BOX_PATTERN,
                                     description="Ground-truth box of the defect 'x,y,width,height' in frame pixels, set "
                                                 "only by simulators (scores the worker's regions live).")

    def truth_xywh(self) -> Optional[tuple[int, int, int, int]]:
        """The truth box as (x, y, width, height), or None when the frame has none."""
        if self.truth_box is None:
            return None
        x, y, w, h = (int(v) for v in self.truth_box.split(","))
        return x, y, w, h

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
        headers = list(headers or ())
        if len(headers) > MAX_HEADER_COUNT:
            raise HeaderLimitError("*", f"{len(headers)} headers, more than the {MAX_HEADER_COUNT} a frame may carry")
        size = sum(len(name.encode("utf-8", "surrogatepass")) + len(value or b"") for name, value in headers)
        if size > MAX_HEADERS_BYTES:
            raise HeaderLimitError("*", f"headers take {size} bytes, more than the {MAX_HEADERS_BYTES} a frame may "
                                        "carry")
        for name, value in headers:
            if name.startswith(NON_UTF8_NAME_PREFIX):
                raise FrameHeaderError(name[len(NON_UTF8_NAME_PREFIX):], "header name is not UTF-8 (hex shown)")
            if name in raw:
                raise FrameHeaderError(name, "appears more than once")
            try:
                raw[name] = (value or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise FrameHeaderError(name, "value is not UTF-8 text") from None
        raw.setdefault(H_SCHEMA_VERSION, str(FRAME_SCHEMA_VERSION))
        if len(raw.get(H_SEQUENCE, "")) > 32 or len(raw.get(H_CAPTURE_TIME_NS, "")) > 32:
            # int() of a huge digit string is slow (and Python refuses past 4300 digits): refuse it first
            header = H_SEQUENCE if len(raw.get(H_SEQUENCE, "")) > 32 else H_CAPTURE_TIME_NS
            raise FrameHeaderError(header, f"number has {len(raw[header])} characters; at most 19 digits fit int64")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            header = str(err["loc"][0]) if err["loc"] else "?"
            if err["type"] == "missing":
                raise MissingHeaderError(header, "required header is missing") from None
            got = raw.get(header)
            if isinstance(got, str) and len(got) > 80:
                got = got[:80] + "..."
            error = UnknownEncodingError if header == H_ENCODING else FrameHeaderError
            raise error(header, f"{err['msg']} (got {got!r})") from None


def is_valid_id(value: str) -> bool:
    """Whether `value` is a valid camera or line id (length and charset)."""
    return 0 < len(value) <= 128 and all(c.isascii() and (c.isalnum() or c in "_.:-") for c in value)


def frame_key(camera_id: str) -> bytes:
    """Record key for a camera's frames: one camera's frames stay in one partition, in order."""
    return camera_id.encode("utf-8")

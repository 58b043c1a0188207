"""Bad frames on purpose: one generator per bad-input kind the worker must dead-letter.

The simulator mixes these into a stream (`--corrupt-rate`); the worker tests and the chaos suite
use `EXPECTED_REASON` to check that each kind lands in the dead-letter topic with its own reason.
`BAD_FRAME_KINDS` are the classic kinds (the simulator's default mix); `HOSTILE_KINDS` are crafted
to break a worker rather than merely fail a check (issue 11: numbers beyond int64, non-UTF-8
header names, huge keys and headers, decode bombs, ids unfit for labels). `huge_key` changes the
record key, so it is made with `make_bad_record` (the simulator's mix cannot send it).
Assumes the worker's default limits: `WORKER_MAX_FRAME_BYTES` below `OVERSIZE_FRAME_BYTES` (and
above the ~0.4 MB of the huge PNG), `WORKER_MAX_FRAME_PIXELS` below `HUGE_PNG_SIDE`**2.
"""

from __future__ import annotations

import functools
import struct
import zlib

import cv2
import numpy as np

from line_contracts.events import DeadLetterReason
from line_contracts.frame import (
    H_CAMERA_ID,
    H_CAPTURE_TIME_NS,
    H_ENCODING,
    H_SEQUENCE,
    MAX_KEY_BYTES,
    NON_UTF8_NAME_PREFIX,
    Encoding,
    FrameHeaders,
    frame_key,
)

HUGE_PNG_SIDE = 20000
# Above the worker's default byte limit yet below Kafka's default 1 MB record limit, so the
# broker still accepts it and the worker (not the producer) has to refuse it.
OVERSIZE_FRAME_BYTES = 960_000

EXPECTED_REASON: dict[str, DeadLetterReason] = {
    "empty_value": DeadLetterReason.EMPTY_VALUE,
    "random_bytes": DeadLetterReason.UNDECODABLE,
    "truncated_png": DeadLetterReason.TRUNCATED,
    "truncated_jpeg": DeadLetterReason.TRUNCATED,
    "huge_png": DeadLetterReason.TOO_MANY_PIXELS,
    "png_16bit": DeadLetterReason.UNSUPPORTED_DEPTH,
    "colour_image": DeadLetterReason.NOT_GRAYSCALE,
    "missing_header": DeadLetterReason.MISSING_HEADER,
    "wrong_typed_header": DeadLetterReason.BAD_HEADER,
    "unknown_encoding": DeadLetterReason.UNKNOWN_ENCODING,
    "raw_size_mismatch": DeadLetterReason.RAW_SIZE_MISMATCH,
    "too_many_bytes": DeadLetterReason.TOO_MANY_BYTES,
}
BAD_FRAME_KINDS: tuple[str, ...] = tuple(EXPECTED_REASON)
EXPECTED_REASON.update({
    "oversized_number": DeadLetterReason.BAD_HEADER,       # capture_time_ns far beyond 64 bits
    "non_utf8_header_name": DeadLetterReason.BAD_HEADER,   # Kafka allows any bytes; kafka-python raised in poll()
    "huge_headers": DeadLetterReason.HEADERS_TOO_LARGE,    # 40 headers of 12 KB
    "decode_bomb": DeadLetterReason.DECODE_TOO_COSTLY,     # progressive JPEG of thousands of scans
    "bad_id": DeadLetterReason.BAD_HEADER,                 # a camera id no metric label or log line should carry
    "float_width": DeadLetterReason.BAD_HEADER,            # a number of the wrong type
    "huge_key": DeadLetterReason.KEY_TOO_LARGE,            # a 600 KB record key
})
HOSTILE_KINDS: tuple[str, ...] = tuple(k for k in EXPECTED_REASON if k not in BAD_FRAME_KINDS)
ALL_KINDS: tuple[str, ...] = BAD_FRAME_KINDS + HOSTILE_KINDS
FRAME_LEVEL_KINDS: tuple[str, ...] = tuple(k for k in ALL_KINDS if k != "huge_key")  # (value, headers) only
BOMB_SIDE = 1024
BOMB_SCANS = 5000  # 66 KB; cv2.imdecode takes ~3 s of CPU on it (1024x1024), the scan check ~3 ms
HUGE_KEY_BYTES = 600_000


class RawHeaderName(str):
    """A header name whose wire bytes are not UTF-8.

    kafka-python's producer writes `name.encode("utf-8")`; this returns the raw bytes instead. The
    str value is what a reader that meets such a name reports (the contract's NON_UTF8_NAME_PREFIX
    + hex), so the kind can be checked without a broker too.
    """

    def __new__(cls, raw: bytes):
        obj = str.__new__(cls, NON_UTF8_NAME_PREFIX + raw.hex())
        obj.raw = raw
        return obj

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:  # noqa: ARG002
        return self.raw


def make_bad_frame(kind: str, rng: np.random.Generator, headers: FrameHeaders,
                   good_png: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(record value, kafka headers) of one bad frame of `kind`, derived from a good PNG frame."""
    if kind not in EXPECTED_REASON:
        raise ValueError(f"unknown bad-frame kind {kind!r}; choose one of {', '.join(ALL_KINDS)}")
    return _MAKERS[kind](rng, headers, good_png)


def make_bad_record(kind: str, rng: np.random.Generator, headers: FrameHeaders,
                    good_png: bytes) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(record key, value, kafka headers) of one bad frame of `kind`: every kind, huge_key included."""
    if kind == "huge_key":
        key = frame_key(headers.camera_id) * (HUGE_KEY_BYTES // len(frame_key(headers.camera_id)) + 1)
        assert len(key) > MAX_KEY_BYTES
        return key[:HUGE_KEY_BYTES], good_png, headers.to_kafka()
    value, kafka_headers = make_bad_frame(kind, rng, headers, good_png)
    return frame_key(headers.camera_id), value, kafka_headers


def _kafka(headers: FrameHeaders, **update) -> list[tuple[str, bytes]]:
    return headers.model_copy(update=update).to_kafka()


def _replace(kafka_headers: list[tuple[str, bytes]], name: str, value: bytes | None) -> list[tuple[str, bytes]]:
    out = [(n, v) for n, v in kafka_headers if n != name]
    return out if value is None else out + [(name, value)]


def _gray(good_png: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(good_png, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError("good_png is not a decodable PNG")
    return img


def _empty(rng, headers, good_png):
    return b"", headers.to_kafka()


def _random_bytes(rng, headers, good_png):
    return rng.integers(0, 256, size=max(64, len(good_png) // 4), dtype=np.uint8).tobytes(), headers.to_kafka()


def _truncated_png(rng, headers, good_png):
    cut = int(rng.integers(len(good_png) // 4, len(good_png) * 3 // 4))
    return good_png[:cut], headers.to_kafka()


def _truncated_jpeg(rng, headers, good_png):
    ok, jpg = cv2.imencode(".jpg", _gray(good_png), [cv2.IMWRITE_JPEG_QUALITY, 90])
    data = jpg.tobytes()
    cut = int(rng.integers(len(data) // 4, len(data) * 3 // 4))
    return data[:cut], _kafka(headers, encoding=Encoding.JPEG)


@functools.lru_cache(maxsize=1)
def _huge_png_bytes(side: int) -> bytes:
    # Built chunk by chunk, never as a 400 MB array: all-zero rows deflate ~1000:1.
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte 0 + one row of black mono8 pixels
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _huge_png(rng, headers, good_png):
    return _huge_png_bytes(HUGE_PNG_SIDE), _kafka(headers, width=HUGE_PNG_SIDE, height=HUGE_PNG_SIDE)


def _png_16bit(rng, headers, good_png):
    ok, png = cv2.imencode(".png", _gray(good_png).astype(np.uint16) * 257)
    return png.tobytes(), headers.to_kafka()


def _colour(rng, headers, good_png):
    bgr = cv2.cvtColor(_gray(good_png), cv2.COLOR_GRAY2BGR)
    bgr[..., 2] = 200  # a genuinely coloured image (not three equal channels) that still compresses
    ok, png = cv2.imencode(".png", bgr)
    return png.tobytes(), headers.to_kafka()


def _missing_header(rng, headers, good_png):
    return good_png, _replace(headers.to_kafka(), H_CAPTURE_TIME_NS, None)


def _wrong_typed_header(rng, headers, good_png):
    return good_png, _replace(headers.to_kafka(), H_SEQUENCE, b"not-a-number")


def _unknown_encoding(rng, headers, good_png):
    return good_png, _replace(headers.to_kafka(), H_ENCODING, b"webp")


def _raw_size_mismatch(rng, headers, good_png):
    raw = _gray(good_png).tobytes()
    return raw[: len(raw) - 1 - int(rng.integers(0, 64))], _kafka(headers, encoding=Encoding.RAW)


def _too_many_bytes(rng, headers, good_png):
    pad = max(0, OVERSIZE_FRAME_BYTES - len(good_png))
    return good_png + rng.integers(0, 256, size=pad, dtype=np.uint8).tobytes(), headers.to_kafka()


def _oversized_number(rng, headers, good_png):
    return good_png, _replace(headers.to_kafka(), H_CAPTURE_TIME_NS, str(10**30 + int(rng.integers(1000))).encode())


def _non_utf8_header_name(rng, headers, good_png):
    return good_png, headers.to_kafka() + [(RawHeaderName(b"\xff\xfetrace-\xc3"), b"1")]


def _huge_headers(rng, headers, good_png):
    return good_png, headers.to_kafka() + [(f"x-pad-{i}", b"p" * 12_000) for i in range(40)]


def _bad_id(rng, headers, good_png):
    return good_png, _replace(headers.to_kafka(), H_CAMERA_ID, "cam 1\n\u202e<x>".encode())


def _float_width(rng, headers, good_png):
    return good_png, _replace(headers.to_kafka(), "width", b"64.5")


@functools.lru_cache(maxsize=1)
def _bomb_bytes(side: int, scans: int) -> bytes:
    # A valid progressive JPEG of a black image whose last (AC refinement) scan is repeated: each
    # repeat is ~12 bytes on the wire and one more pass over every block for the decoder.
    ok, jpg = cv2.imencode(".jpg", np.zeros((side, side), np.uint8),
                           [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 90])
    data = jpg.tobytes()
    last_scan = data.rindex(b"\xff\xda")
    return data[:-2] + data[last_scan:-2] * scans + b"\xff\xd9"


def _decode_bomb(rng, headers, good_png):
    return _bomb_bytes(BOMB_SIDE, BOMB_SCANS), _kafka(headers, encoding=Encoding.JPEG, width=BOMB_SIDE,
                                                      height=BOMB_SIDE)


_MAKERS = {
    "oversized_number": _oversized_number, "non_utf8_header_name": _non_utf8_header_name,
    "huge_headers": _huge_headers, "decode_bomb": _decode_bomb, "bad_id": _bad_id, "float_width": _float_width,
    "huge_key": lambda rng, headers, good_png: (good_png, headers.to_kafka()),
    "empty_value": _empty, "random_bytes": _random_bytes, "truncated_png": _truncated_png,
    "truncated_jpeg": _truncated_jpeg, "huge_png": _huge_png, "png_16bit": _png_16bit,
    "colour_image": _colour, "missing_header": _missing_header, "wrong_typed_header": _wrong_typed_header,
    "unknown_encoding": _unknown_encoding, "raw_size_mismatch": _raw_size_mismatch,
    "too_many_bytes": _too_many_bytes,
}

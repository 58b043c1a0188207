"""Bad frames on purpose: one generator per bad-input kind the worker must dead-letter.

The simulator mixes these into a stream (`--corrupt-rate`); the worker tests and the chaos suite
use `EXPECTED_REASON` to check that each kind lands in the dead-letter topic with its own reason.
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
from line_contracts.frame import H_CAPTURE_TIME_NS, H_ENCODING, H_SEQUENCE, Encoding, FrameHeaders

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


def make_bad_frame(kind: str, rng: np.random.Generator, headers: FrameHeaders,
                   good_png: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(record value, kafka headers) of one bad frame of `kind`, derived from a good PNG frame."""
    if kind not in EXPECTED_REASON:
        raise ValueError(f"unknown bad-frame kind {kind!r}; choose one of {', '.join(BAD_FRAME_KINDS)}")
    return _MAKERS[kind](rng, headers, good_png)


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


_MAKERS = {
    "empty_value": _empty, "random_bytes": _random_bytes, "truncated_png": _truncated_png,
    "truncated_jpeg": _truncated_jpeg, "huge_png": _huge_png, "png_16bit": _png_16bit,
    "colour_image": _colour, "missing_header": _missing_header, "wrong_typed_header": _wrong_typed_header,
    "unknown_encoding": _unknown_encoding, "raw_size_mismatch": _raw_size_mismatch,
    "too_many_bytes": _too_many_bytes,
}

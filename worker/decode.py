"""Turn one frame record into a model-ready image, or into a dead-letter verdict with a reason.

Cheap checks run first and never allocate the image: byte count, headers, pixel count from the
headers, then the PNG/JPEG header itself (dimensions, bit depth, channels, truncation). Only a
frame that passes them all is handed to `cv2.imdecode`, which releases the GIL, so a small
thread pool decodes in parallel.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from line_contracts.events import DeadLetterReason
from line_contracts.frame import (
    MAX_KEY_BYTES,
    Encoding,
    FrameHeaderError,
    FrameHeaders,
    HeaderLimitError,
    MissingHeaderError,
    UnknownEncodingError,
)
from line_runtime.framing import fit_to_frame, stretch_to_frame

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"IEND\xaeB`\x82"
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class DecodeLimits:
    """What the decoder accepts, and the model input size frames must end up at."""

    max_frame_bytes: int
    max_frame_pixels: int
    input_height: int
    input_width: int
    size_policy: str  # WORKER_SIZE_MISMATCH_POLICY: fit, resize or reject (line_runtime/framing.py)
    max_jpeg_scans: int = 64


@dataclass(frozen=True)
class DecodedFrame:
    """A frame ready for the model: `image` uint8 [input_height, input_width].

    `camera` is the frame as the camera sent it when its size differs from the model's (fitted or
    stretched into `image`), so a hot reload to another input size starts again from the camera's
    pixels and the evidence overlay shows them; None when `image` is the camera frame itself.
    """

    headers: FrameHeaders
    image: np.ndarray
    decode_seconds: float
    camera: Optional[np.ndarray] = None

    @property
    def camera_image(self) -> np.ndarray:
        """The frame in the camera's own pixels."""
        return self.image if self.camera is None else self.camera


@dataclass(frozen=True)
class Rejected:
    """A frame that cannot be judged; `headers` is None when they were the problem."""

    reason: DeadLetterReason
    error: str
    headers: Optional[FrameHeaders] = None


class FrameRejected(Exception):
    """Raised inside decoding: the frame cannot be judged, for `reason` (the message says why)."""

    def __init__(self, reason: DeadLetterReason, error: str):
        super().__init__(error)
        self.reason = reason


# Header errors of the frame contract, by type; any other FrameHeaderError is a bad_header.
_HEADER_REASONS: dict[type, DeadLetterReason] = {MissingHeaderError: DeadLetterReason.MISSING_HEADER,
                                                 UnknownEncodingError: DeadLetterReason.UNKNOWN_ENCODING,
                                                 HeaderLimitError: DeadLetterReason.HEADERS_TOO_LARGE}


def decode_frame(value: Optional[bytes], kafka_headers: Sequence[Tuple[str, bytes]],
                 limits: DecodeLimits, key: Optional[bytes] = None) -> Union[DecodedFrame, Rejected]:
    """Validate and decode one frame record; never raises for bad input."""
    start = time.perf_counter()
    headers = None
    try:
        if key is not None and len(key) > MAX_KEY_BYTES:
            raise FrameRejected(DeadLetterReason.KEY_TOO_LARGE, f"record key has {len(key)} bytes; a frame's key is "
                                f"its camera id, at most {MAX_KEY_BYTES} bytes")
        headers = _parse_headers(value, kafka_headers, limits)
        camera = _decode(value, headers, limits)
        image = fit_to_model(camera, limits.input_height, limits.input_width, limits.size_policy)
    except FrameRejected as rej:
        return Rejected(rej.reason, str(rej), headers)
    except Exception as exc:  # an OpenCV corner case must dead-letter the frame, not kill the worker
        return Rejected(DeadLetterReason.UNDECODABLE, f"decoder error: {exc!r}", headers)
    return DecodedFrame(headers, image, time.perf_counter() - start, None if image is camera else camera)


def _parse_headers(value, kafka_headers, limits: DecodeLimits) -> FrameHeaders:
    if not value:
        raise FrameRejected(DeadLetterReason.EMPTY_VALUE, "record value is empty")
    if len(value) > limits.max_frame_bytes:
        raise FrameRejected(DeadLetterReason.TOO_MANY_BYTES, f"record value has {len(value)} bytes, more than "
                      f"WORKER_MAX_FRAME_BYTES={limits.max_frame_bytes}")
    try:
        headers = FrameHeaders.from_kafka(kafka_headers)
    except FrameHeaderError as exc:
        reason = _HEADER_REASONS.get(type(exc), DeadLetterReason.BAD_HEADER)
        hint = f"; known encodings: {', '.join(e.value for e in Encoding)}" \
            if isinstance(exc, UnknownEncodingError) else ""
        raise FrameRejected(reason, f"{exc}{hint}") from None
    pixels = headers.width * headers.height
    if pixels > limits.max_frame_pixels:
        raise FrameRejected(DeadLetterReason.TOO_MANY_PIXELS, f"headers say {headers.width}x{headers.height} = {pixels} "
                      f"pixels, more than WORKER_MAX_FRAME_PIXELS={limits.max_frame_pixels}")
    return headers


def _decode(value: bytes, headers: FrameHeaders, limits: DecodeLimits) -> np.ndarray:
    if headers.encoding is Encoding.RAW:
        expected = headers.width * headers.height
        if len(value) != expected:
            raise FrameRejected(DeadLetterReason.RAW_SIZE_MISMATCH, f"raw mono8 frame has {len(value)} bytes, "
                          f"headers say {headers.width}x{headers.height} = {expected}")
        return np.frombuffer(value, np.uint8).reshape(headers.height, headers.width)
    if headers.encoding is Encoding.PNG:
        width, height, depth, channels = _png_info(value)
    else:
        width, height, depth, channels = _jpeg_info(value)
        scans = jpeg_scan_count(value)
        if scans > limits.max_jpeg_scans:
            raise FrameRejected(DeadLetterReason.DECODE_TOO_COSTLY, f"JPEG has {scans} scans, more than "
                                f"WORKER_MAX_JPEG_SCANS={limits.max_jpeg_scans} (each scan is a pass over the image)")
    name = headers.encoding.value.upper()
    if width * height > limits.max_frame_pixels:
        raise FrameRejected(DeadLetterReason.TOO_MANY_PIXELS, f"{name} is {width}x{height} = {width * height} pixels, "
                      f"more than WORKER_MAX_FRAME_PIXELS={limits.max_frame_pixels}")
    if depth != 8:
        raise FrameRejected(DeadLetterReason.UNSUPPORTED_DEPTH, f"{name} has {depth}-bit samples; only 8-bit mono is "
                      "supported")
    if channels != 1:
        raise FrameRejected(DeadLetterReason.NOT_GRAYSCALE, f"{name} has {channels} channels; only grayscale is supported")
    if (width, height) != (headers.width, headers.height):
        raise FrameRejected(DeadLetterReason.HEADER_MISMATCH, f"{name} is {width}x{height} but headers say "
                      f"{headers.width}x{headers.height}")
    image = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8 or image.ndim != 2 or image.shape != (height, width):
        got = "nothing" if image is None else f"{image.dtype} {image.shape}"
        raise FrameRejected(DeadLetterReason.UNDECODABLE, f"OpenCV could not decode the {name} (got {got})")
    return image


def _png_info(value: bytes) -> tuple[int, int, int, int]:
    if len(value) < 33 or not value.startswith(PNG_SIGNATURE) or value[12:16] != b"IHDR":
        raise FrameRejected(DeadLetterReason.UNDECODABLE, "value is not a PNG (bad signature or no IHDR chunk)")
    width, height, depth, colour_type = struct.unpack(">IIBB", value[16:26])
    if not value.endswith(PNG_IEND):
        raise FrameRejected(DeadLetterReason.TRUNCATED, f"PNG of {len(value)} bytes is cut short (no IEND chunk at the end)")
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour_type, 0)  # palette counts as colour
    return width, height, depth, channels


def _jpeg_info(value: bytes) -> tuple[int, int, int, int]:
    if len(value) < 4 or value[:2] != b"\xff\xd8":
        raise FrameRejected(DeadLetterReason.UNDECODABLE, "value is not a JPEG (no SOI marker)")
    pos, n = 2, len(value)
    info = None
    while pos + 4 <= n:
        if value[pos] != 0xFF:
            raise FrameRejected(DeadLetterReason.UNDECODABLE, f"JPEG marker expected at byte {pos}")
        marker = value[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        seg_len = struct.unpack(">H", value[pos + 2:pos + 4])[0]
        if marker in _SOF_MARKERS:
            if pos + 10 > n:
                break
            depth, height, width, channels = struct.unpack(">BHHB", value[pos + 4:pos + 10])
            info = (width, height, depth, channels)
            break
        if marker == 0xDA:  # start of scan without a frame header
            break
        pos += 2 + seg_len
    if info is None:
        raise FrameRejected(DeadLetterReason.UNDECODABLE if pos + 4 <= n else DeadLetterReason.TRUNCATED,
                      "JPEG has no frame header (SOF)")
    if not value.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise FrameRejected(DeadLetterReason.TRUNCATED, f"JPEG of {len(value)} bytes is cut short (no EOI marker at the end)")
    return info


def jpeg_scan_count(value: bytes) -> int:
    """Start-of-scan markers in a JPEG, found by walking its marker segments (entropy-coded data skipped).

    A baseline JPEG has one scan per component; a progressive one typically 6-12. Inside entropy-coded
    data 0xFF is always followed by 0x00 (stuffing) or a restart marker, so the next other 0xFFxx is
    the next marker.
    """
    pos, n, scans = 2, len(value), 0
    while pos + 4 <= n:
        if value[pos] != 0xFF:
            return scans
        marker = value[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xD9:
            return scans
        seg_len = struct.unpack(">H", value[pos + 2:pos + 4])[0]
        pos += 2 + seg_len
        if marker != 0xDA:
            continue
        scans += 1
        while True:  # skip the entropy-coded data after the scan header
            pos = value.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= n:
                return scans
            following = value[pos + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                pos += 2
                continue
            break
    return scans


def fit_to_model(image: np.ndarray, input_height: int, input_width: int, size_policy: str) -> np.ndarray:
    """The image at the model input size: unchanged, fitted or stretched (by policy), or FrameRejected (reject).

    The worker's one resize path: at decode time, and again when a hot reload changed the input size.
    `fit` is training's own rule for images of another size (line_runtime/framing.py).
    """
    height, width = image.shape
    if (height, width) == (input_height, input_width):
        return image
    if size_policy == "fit":
        return fit_to_frame(image, (input_height, input_width))
    if size_policy == "resize":
        return stretch_to_frame(image, (input_height, input_width))
    raise FrameRejected(DeadLetterReason.SIZE_MISMATCH, f"frame is {width}x{height}, the model takes "
                        f"{input_width}x{input_height} and WORKER_SIZE_MISMATCH_POLICY={size_policy}")

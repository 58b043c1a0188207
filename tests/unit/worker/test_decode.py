"""Decoding rules: each bad input kind gets its own reason (from typed errors), good frames decode,
and one resize path fits frames to the model."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from line_contracts.events import DeadLetterReason
from line_contracts.frame import Encoding, FrameHeaderError, FrameHeaders, MissingHeaderError, UnknownEncodingError
from line_harness.frames import frame_headers, frame_image, png_bytes
from producer_sim.faults import ALL_KINDS, EXPECTED_REASON, make_bad_record
from training.frames import fit_to_frame as training_fit_to_frame
from worker.decode import (
    DecodedFrame,
    DecodeLimits,
    FrameRejected,
    Rejected,
    decode_frame,
    fit_to_model,
    jpeg_scan_count,
)
from worker.settings import WorkerSettings

LIMITS = DecodeLimits(900_000, 4096 * 4096, 64, 64, size_policy="resize")


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_each_bad_frame_kind_is_rejected_with_its_reason_before_any_costly_step(kind):
    key, value, headers = make_bad_record(kind, np.random.default_rng(0), frame_headers(1),
                                          png_bytes(frame_image(1)))
    start = time.process_time()
    result = decode_frame(value, headers, LIMITS, key)
    assert isinstance(result, Rejected) and result.reason == EXPECTED_REASON[kind], result
    assert result.error and len(result.error) < 2000
    assert time.process_time() - start < 0.5  # the decode bomb alone costs ~3 s of CPU when decoded


def test_the_scan_limit_is_what_stops_the_decode_bomb():
    _, bomb, headers = make_bad_record("decode_bomb", np.random.default_rng(0), frame_headers(1), b"")
    assert jpeg_scan_count(bomb) > 5000
    progressive = cv2.imencode(".jpg", frame_image(1), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert 1 < jpeg_scan_count(progressive) <= 12  # an honest progressive JPEG passes
    lenient = DecodeLimits(900_000, 4096 * 4096, 64, 64, "fit", max_jpeg_scans=10**6)
    start = time.process_time()
    decoded = decode_frame(bomb, headers, lenient)
    assert time.process_time() - start > 0.5 and isinstance(decoded, DecodedFrame)  # it really is a bomb


@pytest.mark.parametrize("encoding", [Encoding.PNG, Encoding.JPEG, Encoding.RAW])
def test_good_frames_decode_in_every_encoding(encoding):
    img = frame_image(2)
    value = {Encoding.PNG: png_bytes(img), Encoding.RAW: img.tobytes(),
             Encoding.JPEG: cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()}[encoding]
    result = decode_frame(value, frame_headers(2, encoding=encoding).to_kafka(), LIMITS)
    assert isinstance(result, DecodedFrame) and result.image.shape == (64, 64)
    if encoding is not Encoding.JPEG:
        assert np.array_equal(result.image, img)


def test_size_mismatch_is_fitted_as_training_fits_it_by_default():
    """The default policy gives the model what `train` gave it for an image of another size, bit for bit,
    and keeps the camera's pixels for the overlay and for a hot reload to another input size."""
    wide = np.random.default_rng(5).integers(0, 256, (40, 100), np.uint8)  # too wide for 64x64: shrunk, then padded
    small = np.random.default_rng(6).integers(0, 256, (30, 50), np.uint8)   # fits: padded, never enlarged
    fitted = DecodeLimits(900_000, 4096 * 4096, 64, 64, "fit")
    assert WorkerSettings().size_mismatch_policy == "fit"
    for image in (wide, small):
        headers = frame_headers(5, size=image.shape).to_kafka()
        result = decode_frame(png_bytes(image), headers, fitted)
        assert isinstance(result, DecodedFrame) and result.image.shape == (64, 64)
        assert np.array_equal(result.image, training_fit_to_frame(image, (64, 64)))
        assert np.array_equal(result.camera_image, image)
    top = (64 - 30) // 2
    assert np.array_equal(result.image[top:top + 30, 7:57], small)  # the small frame unscaled, centred
    assert np.array_equal(result.image[top - 1, 7:57], small[0])    # the border mirrors the surface
    same = decode_frame(png_bytes(frame_image(5)), frame_headers(5).to_kafka(), fitted)
    assert same.camera is None and same.camera_image is same.image  # one copy when the size already fits


def test_size_mismatch_is_resized_or_rejected_by_policy():
    big = cv2.resize(frame_image(3), (128, 96))
    headers = frame_headers(3, size=(96, 128)).to_kafka()
    resized = decode_frame(png_bytes(big), headers, LIMITS)
    assert isinstance(resized, DecodedFrame) and resized.image.shape == (64, 64)
    strict = DecodeLimits(900_000, 4096 * 4096, 64, 64, size_policy="reject")
    rejected = decode_frame(png_bytes(big), headers, strict)
    assert isinstance(rejected, Rejected) and rejected.reason == DeadLetterReason.SIZE_MISMATCH
    assert "WORKER_SIZE_MISMATCH_POLICY" in rejected.error


def test_one_resize_path_area_when_shrinking_linear_when_enlarging():
    img = np.zeros((8, 8), np.uint8)
    img[::2, ::2] = 255  # a fine checkerboard: area averages it to grey, nearest/linear sampling would not
    small = fit_to_model(img, 4, 4, size_policy="resize")
    assert np.array_equal(small, cv2.resize(img, (4, 4), interpolation=cv2.INTER_AREA))
    large = fit_to_model(img, 16, 16, size_policy="resize")
    assert np.array_equal(large, cv2.resize(img, (16, 16), interpolation=cv2.INTER_LINEAR))
    assert fit_to_model(img, 8, 8, size_policy="reject") is img
    with pytest.raises(FrameRejected) as rej:
        fit_to_model(img, 4, 4, size_policy="reject")
    assert rej.value.reason == DeadLetterReason.SIZE_MISMATCH


def test_image_size_differing_from_headers_is_header_mismatch():
    result = decode_frame(png_bytes(frame_image(4)), frame_headers(4, size=(60, 64)).to_kafka(), LIMITS)
    assert isinstance(result, Rejected) and result.reason == DeadLetterReason.HEADER_MISMATCH


@pytest.mark.parametrize("change,error,reason", [
    ({"capture_time_ns": None}, MissingHeaderError, DeadLetterReason.MISSING_HEADER),
    ({"encoding": b"webp"}, UnknownEncodingError, DeadLetterReason.UNKNOWN_ENCODING),
    ({"encoding": None}, MissingHeaderError, DeadLetterReason.MISSING_HEADER),
    ({"frame_seq": b"missing"}, FrameHeaderError, DeadLetterReason.BAD_HEADER),  # the word in a value is no reason
])
def test_header_reasons_come_from_the_error_type_not_its_text(change, error, reason):
    headers = dict(frame_headers(5).to_kafka())
    for name, value in change.items():
        headers.pop(name) if value is None else headers.__setitem__(name, value)
    with pytest.raises(FrameHeaderError) as exc:
        FrameHeaders.from_kafka(headers.items())
    assert type(exc.value) is error
    result = decode_frame(png_bytes(frame_image(5)), list(headers.items()), LIMITS)
    assert isinstance(result, Rejected) and result.reason == reason

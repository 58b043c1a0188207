"""The harness's deterministic test frames."""

import numpy as np

from line_contracts.frame import FrameHeaders
from line_harness.frames import frame_headers, frame_image


def test_frame_images_are_deterministic_and_spotted():
    a, b = frame_image(3), frame_image(3)
    assert np.array_equal(a, b)
    assert frame_image(3).max() == 255 and frame_image(4).max() < 200


def test_frame_headers_round_trip():
    h = frame_headers(5)
    assert FrameHeaders.from_kafka(h.to_kafka()) == h and h.camera_id == "cam-1" and h.truth_label.value == "ok"

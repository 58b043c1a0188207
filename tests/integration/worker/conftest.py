"""Fixtures of the worker's integration tests."""

import pytest

from line_harness.frames import FRAME_SIZE


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    """Model base folder holding tiny model version 1 at the test frame size."""
    from training.tiny_model import build_tiny_model
    base = tmp_path_factory.mktemp("models")
    build_tiny_model(base, version=1, input_size=FRAME_SIZE)
    return base

"""Fixtures shared by the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_backbone(tmp_path_factory):
    """A real EfficientNet-B0 cut the project builds itself (no download): stem + first two MBConv stages, stride 4."""
    from training.backbone import build_backbone

    return build_backbone(tmp_path_factory.mktemp("backbone") / "b0_stride4", "stride4")

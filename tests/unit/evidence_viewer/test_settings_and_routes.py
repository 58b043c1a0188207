"""Settings that stop startup naming the variable, and requests the page refuses before reading the store."""

from __future__ import annotations

import pytest

from evidence_viewer.app import Routes
from evidence_viewer.settings import ViewerSettings
from evidence_viewer.store import SERVABLE_KEY, EvidenceReader
from line_runtime.settings import SettingsError, load_settings


@pytest.fixture
def settings(monkeypatch):
    for name in ("VIEWER_ENDPOINT", "VIEWER_BUCKET", "VIEWER_PORT"):
        monkeypatch.delenv(name, raising=False)
    return load_settings(ViewerSettings, endpoint="http://127.0.0.1:8333/", bucket="line-evidence")


def test_missing_or_bad_settings_name_the_variable(monkeypatch):
    monkeypatch.delenv("VIEWER_ENDPOINT", raising=False)
    monkeypatch.setenv("VIEWER_BUCKET", "Bad_Bucket")
    monkeypatch.setenv("VIEWER_PORT", "70000")
    with pytest.raises(SettingsError) as err:
        load_settings(ViewerSettings)
    text = str(err.value)
    assert "VIEWER_ENDPOINT" in text and "VIEWER_BUCKET" in text and "VIEWER_PORT" in text


def test_endpoint_loses_its_trailing_slash(settings):
    assert settings.endpoint == "http://127.0.0.1:8333"


@pytest.mark.parametrize("query, needle", [
    ({"line": ["line-1"], "camera": ["a/b"]}, "camera='a/b'"),
    ({"line": [""], "camera": ["c"]}, "line=''"),
    ({"line": ["l"], "camera": ["c"], "page": ["x"]}, "page='x'"),
    ({"line": ["l"], "camera": ["c"], "limit": ["0"]}, "limit=0"),
    ({"line": ["l"], "camera": ["c"], "show": ["everything"]}, "show='everything'"),
])
def test_bad_query_parameters_are_a_400_naming_the_parameter(settings, query, needle):
    status, _, body, _ = Routes(settings, reader=None).handle("/camera", query)  # refused before any read
    assert status == 400
    assert needle.replace("'", "&#x27;") in body.decode()


def test_unknown_path_is_a_404(settings):
    assert Routes(settings, reader=None).handle("/admin", {})[0] == 404


@pytest.mark.parametrize("key", [
    "line-1/cam-1/2026-12-01/line.frames-0-7/event.json",   # events are shown, never served raw
    "line-1/cam-1/2026-12-01/line.frames-0-7/../../x/overlay.png",
    "other/thing.png",
    "line-1/cam-1/latest/line.frames-0-7/frame.png",
])
def test_only_frames_and_overlays_are_served(key):
    assert not SERVABLE_KEY.match(key)
    with pytest.raises(KeyError):
        EvidenceReader(client=None, bucket="b").read_object(key)


def test_frame_and_overlay_keys_are_served():
    for name in ("frame.png", "frame.jpg", "frame.raw", "overlay.png"):
        assert SERVABLE_KEY.match(f"line-1/cam-1/2026-12-01/line.frames-0-7/{name}")

"""The page's HTML without a store: escaping of ids from cameras, links, times, missing and raw evidence."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from evidence_viewer import page
from evidence_viewer.store import EvidenceItem
from line_contracts.events import Box
from line_harness.viewer import make_event

HOSTILE = 'cam"><script>alert(1)</script><img src=x onerror=alert(2)>&amp;'


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def item(camera="line-1-cam-1", line="line-1", frame="png", overlay=True, score=0.9):
    event = make_event(line, camera, 7, 1_764_590_400_123_000_000, score, box=Box(x=10, y=20, width=30, height=40))
    prefix = f"{line}/{camera}/2025-12-01/{event.event_id}/"
    return EvidenceItem(event=event, frame_key=prefix + f"frame.{frame}" if frame else None,
                        overlay_key=prefix + "overlay.png" if overlay else None)


def test_hostile_ids_are_text_not_markup():
    html = page.document("t", page.camera_section("line<1>", HOSTILE, [item(camera=HOSTILE, line="line<1>")]))
    tags = parse(html)
    assert not [t for t, _ in tags.tags if t == "script"]
    assert all("onerror" not in attrs for _, attrs in tags.tags)
    assert HOSTILE in "".join(tags.text)  # shown exactly as the camera sent it
    images = [attrs["src"] for tag, attrs in tags.tags if tag == "img"]
    assert len(images) == 2
    for src in images:  # the key survives the round trip through the URL
        key = parse_qs(urlsplit(src).query)["key"][0]
        assert key.startswith(f"line<1>/{HOSTILE}/2025-12-01/")
    link = next(attrs["href"] for tag, attrs in tags.tags if tag == "a" and attrs["href"].startswith("camera?"))
    assert parse_qs(urlsplit(link).query) == {"line": ["line<1>"], "camera": [HOSTILE]}


def test_card_shows_score_model_time_and_region():
    html = page.card(item(score=0.93))
    text = " ".join(parse(html).text)
    assert "0.930" in text and "defect-demo v3 (litert)" in text
    assert "2025-12-01 12:00:00.123 UTC" in text
    assert re.search(r"x 10, y 20, 30.40 px", text)


def test_raw_frame_is_a_download_and_missing_objects_say_so():
    html = page.card(item(frame="raw", overlay=False))
    tags = parse(html)
    assert [t for t, _ in tags.tags if t == "img"] == []
    assert any(t == "a" and "download" in a and a["href"].endswith("frame.raw") for t, a in tags.tags)
    assert "no overlay stored" in " ".join(tags.text)


def test_pager_links_keep_the_camera_and_the_filter():
    nav = parse(page.pager("line-1", "c&1", 2, True, show_ok=True))
    links = {a["rel"]: parse_qs(urlsplit(a["href"]).query) for t, a in nav.tags if t == "a"}
    assert links["prev"] == {"line": ["line-1"], "camera": ["c&1"], "show": ["all"]}
    assert links["next"] == {"line": ["line-1"], "camera": ["c&1"], "page": ["3"], "show": ["all"]}
    assert "older" not in page.pager("l", "c", 1, False, show_ok=False)

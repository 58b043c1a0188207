"""The operator page in a real headless Chromium (Debian's package), reading a real S3 server (SeaweedFS).

Evidence is written to the store under the contract's key layout, `python -m evidence_viewer` serves the
page, and the browser loads it: what is checked is what an operator sees (cards in order, the numbers on
them, images that decoded, ids shown as text), not the HTML source.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid

import cv2
import pytest

from evidence_viewer.page import capture_time
from line_contracts.events import Box
from line_harness.browser import HeadlessChromium, find_chromium
from line_harness.paths import REPO
from line_harness.viewer import ViewerProcess, draw_overlay, make_event, put_evidence, sample_evidence
from surface_images.synthetic import SyntheticFrames

pytestmark = pytest.mark.timeout(300)
T0 = 1_764_590_400_000_000_000  # 2025-12-01 12:00 UTC

# What the operator sees, per camera section, per card.
CARDS_JS = """
Array.from(document.querySelectorAll('section.camera')).map(s => ({
  line: s.dataset.line, camera: s.dataset.camera, heading: s.querySelector('h2').textContent,
  cards: Array.from(s.querySelectorAll('article.card')).map(c => ({
    id: c.dataset.eventId, score: c.querySelector('.score').textContent,
    model: c.querySelector('.model').textContent, time: c.querySelector('time.captured').textContent,
    images: Array.from(c.querySelectorAll('img')).map(i => [i.className, i.complete, i.naturalWidth])}))}))
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    assert find_chromium(), "chromium is not installed: run `make tools`"
    with HeadlessChromium(tmp_path_factory.mktemp("chromium"), width=1400, height=900) as chromium:
        yield chromium


@pytest.fixture
def bucket(evidence_store):
    """(client, bucket, tag): the run's bucket, and a tag that starts this test's line ids.

    Tests share the bucket (each new bucket costs the local store volume slots); a test reads only the
    sections of its own lines.
    """
    return evidence_store.client(), evidence_store.bucket, uuid.uuid4().hex[:8]


def mine(sections: list[dict], tag: str) -> list[dict]:
    """The sections of this test's lines."""
    return [s for s in sections if s["line"].startswith(tag)]


@pytest.fixture
def viewer(evidence_store, bucket, tmp_path):
    """Factory: viewer(**VIEWER_settings) starts the page on the test's bucket."""
    started = []
    env = {**os.environ, "AWS_ACCESS_KEY_ID": evidence_store.access_key,
           "AWS_SECRET_ACCESS_KEY": evidence_store.secret_key}

    def start(**settings) -> ViewerProcess:
        settings.setdefault("refresh_s", 0)
        page = ViewerProcess(evidence_store.endpoint, bucket[1], env, tmp_path / f"viewer{len(started)}.log",
                             **settings)
        started.append(page)
        page.wait_ready(60)
        return page

    yield start
    for page in started:
        page.stop(10)


def _frame(seed: int):
    image = SyntheticFrames(seed=seed, size=(96, 128), defect_rate=1.0, defect_scale=4.0).sample(0).image
    return image, cv2.imencode(".png", image)[1].tobytes()


def _write(client, name, line, camera, offset, capture_ns, score, version="3"):
    image, png = _frame(offset)
    box = Box(x=10, y=12, width=20, height=30)
    event = make_event(line, camera, offset, capture_ns, score, model_version=version, box=box)
    return put_evidence(client, name, event, png, draw_overlay(image, box))


def test_each_camera_shows_its_defects_newest_first_with_frame_overlay_score_model_and_time(
        bucket, viewer, browser, tmp_path):
    client, name, tag = bucket
    captures = [T0 + i * 1_500_000_000 for i in range(6)]
    order = list(range(6))
    random.Random(3).shuffle(order)  # written out of capture order
    written = {}
    for i in order:
        event = _write(client, name, f"{tag}-line-1", "cam-1", 100 + i, captures[i], 0.6 + i * 0.05, version=str(i))
        written[event.event_id] = event
    _write(client, name, f"{tag}-line-1", "cam-1", 100 + 2, captures[2], 0.7, version="2")  # a redelivery
    good = _write(client, name, f"{tag}-line-1", "cam-1", 200, T0 + 10**12, 0.1)  # sampled good frame, newest
    for i in range(2):
        _write(client, name, f"{tag}-line-2", "cam-1", 300 + i, T0 + i * 10**9, 0.95)

    page = viewer(per_camera=4)
    browser.open(page.url)
    sections = mine(browser.evaluate(CARDS_JS), tag)
    assert [(s["line"], s["camera"]) for s in sections] == [(f"{tag}-line-1", "cam-1"), (f"{tag}-line-2", "cam-1")]
    cam1 = sections[0]["cards"]
    # newest capture first, only the 4 newest, the good frame left out, the redelivery shown once
    assert [c["id"] for c in cam1] == [f"line.frames-0-{100 + i}" for i in (5, 4, 3, 2)]
    for card in cam1:
        event = written[card["id"]]
        assert card["score"] == f"{event.score:.3f}"
        assert card["model"] == f"defect-demo v{event.model.version} (litert)"
        assert card["time"] == capture_time(event.frame.capture_time_ns)
        # both images fetched through the page from the store and decoded at the frame's size
        assert card["images"] == [["frame", True, 128], ["overlay", True, 128]]
    assert len(sections[1]["cards"]) == 2
    assert browser.evaluate("document.scripts.length") == 0
    shot = browser.screenshot(tmp_path / "operator-page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    browser.open(page.url + "?show=all")  # the sampled good frames too
    ids = [c["id"] for c in mine(browser.evaluate(CARDS_JS), tag)[0]["cards"]]
    assert ids[0] == good.event_id and len(ids) == 4


def test_a_cameras_pages_go_back_in_time_without_gaps_or_repeats(bucket, viewer, browser):
    client, name, tag = bucket
    for i in range(27):
        _write(client, name, f"{tag}-line-1", "cam-2", i, T0 + i * 10**9, 0.9)
    page = viewer(page_size=12)
    browser.open(page.url)
    browser.open(browser.evaluate(f"document.querySelector('section.camera[data-line^=\"{tag}\"] h2 a').href"))
    seen = []
    for expected in (12, 12, 3):
        cards = browser.evaluate(CARDS_JS)[0]["cards"]
        assert len(cards) == expected
        seen += [c["id"] for c in cards]
        older = browser.evaluate("(document.querySelector('a[rel=next]') || {}).href || null")
        if expected == 3:
            assert older is None
        else:
            browser.open(older)
    assert seen == [f"line.frames-0-{i}" for i in range(26, -1, -1)]


def test_odd_ids_from_cameras_are_shown_as_text_and_their_images_load(bucket, viewer, browser):
    client, name, tag = bucket
    # Markup, entities, URL syntax and quotes; never '/', which no id can hold (it separates key parts).
    camera = 'cam"><script>window.pwned=1<script x="<img src=x onerror="window.pwned=2">&amp;%2F?#\' '
    line = f"{tag} line <b>1<b>"
    event = _write(client, name, line, camera, 1, T0, 0.8)
    page = viewer()
    browser.open(page.url)
    sections = mine(browser.evaluate(CARDS_JS), tag)
    assert sections[0]["line"] == line and sections[0]["camera"] == camera
    assert sections[0]["heading"] == f"{line} / {camera}"
    assert sections[0]["cards"][0]["id"] == event.event_id
    assert sections[0]["cards"][0]["images"] == [["frame", True, 128], ["overlay", True, 128]]
    assert browser.evaluate("typeof window.pwned") == "undefined"
    assert browser.evaluate("document.querySelectorAll('b, script').length") == 0
    browser.open(browser.evaluate(f"document.querySelector('section.camera[data-line^=\"{tag}\"] h2 a').href"))
    assert browser.evaluate(CARDS_JS)[0]["camera"] == camera


def test_the_page_says_when_the_store_is_down_and_recovers(new_evidence_store, browser, tmp_path):
    store = new_evidence_store()
    sample_evidence(store.client(), store.bucket, lines=1, cameras_per_line=1, per_camera=2)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
    page = ViewerProcess(store.endpoint, store.bucket, env, tmp_path / "viewer.log", refresh_s=0, timeout_s=2)
    try:
        page.wait_ready(60)
        store.stop()
        browser.open(page.url)
        text = browser.evaluate("document.body.innerText")
        assert "could not be read" in text and f"VIEWER_ENDPOINT={store.endpoint}" in text
        store.start(timeout_s=120)
        browser.open(page.url)
        assert len(browser.evaluate(CARDS_JS)[0]["cards"]) == 2
    finally:
        page.stop(10)


def test_a_missing_bucket_stops_startup_naming_the_setting(evidence_store):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": evidence_store.access_key,
           "AWS_SECRET_ACCESS_KEY": evidence_store.secret_key, "VIEWER_ENDPOINT": evidence_store.endpoint,
           "VIEWER_BUCKET": "no-such-bucket-here"}
    done = subprocess.run([sys.executable, "-m", "evidence_viewer"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "VIEWER_BUCKET=no-such-bucket-here: no such bucket" in done.stderr

"""The headless browser the page tests use: Debian's Chromium over the DevTools pipe, and that its image
check can fail (a broken image has naturalWidth 0), so a passing page test means the images decoded."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from line_harness.browser import BrowserError, HeadlessChromium, find_chromium

pytestmark = pytest.mark.timeout(120)


def test_chromium_renders_a_page_and_tells_a_decoded_image_from_a_broken_one(tmp_path):
    assert find_chromium(), "chromium is not installed: run `make tools`"
    png = base64.b64encode(cv2.imencode(".png", np.full((20, 30), 128, np.uint8))[1].tobytes()).decode()
    page = tmp_path / "page.html"
    page.write_text(f'<title>t&lt;</title><img id="good" src="data:image/png;base64,{png}">'
                    f'<img id="broken" src="data:image/png;base64,bm90IGFuIGltYWdl">')
    with HeadlessChromium(tmp_path / "chromium", width=400, height=300) as browser:
        browser.open(page.as_uri())
        assert browser.evaluate("document.title") == "t<"
        assert browser.evaluate("[good.naturalWidth, good.naturalHeight, broken.complete, broken.naturalWidth]") \
            == [30, 20, True, 0]
        shot = browser.screenshot(tmp_path / "shot.png")
        assert cv2.imread(str(shot)).shape[:2] == (300, 400)
        with pytest.raises(BrowserError, match="ReferenceError"):
            browser.evaluate("no_such_name")
    assert browser.proc is None

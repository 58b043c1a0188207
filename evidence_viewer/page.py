"""The HTML of the operator page. Every value shown or put in a link is escaped here, nowhere else.

Line and camera ids, event ids and model names come from cameras and workers, so they are untrusted
text: text goes through html.escape, URL parts through urllib.parse.quote first. The page has no
script at all, and the app sends a Content-Security-Policy that forbids one, in case escaping is
ever missed.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Optional
from urllib.parse import urlencode

from evidence_viewer.store import EvidenceItem

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 18px;display:flex;gap:18px;align-items:baseline}
header h1{font-size:18px;margin:0} header a{color:#9cc3ff}
main{padding:8px 18px} h2{font-size:16px;margin:18px 0 6px} h2 a{color:inherit}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #d5d9e0;border-radius:6px;padding:8px;width:330px}
.card.ok{border-color:#9fd3a8}
.images{display:flex;gap:6px} figure{margin:0;flex:1} figcaption{font-size:11px;color:#667}
img{width:100%;aspect-ratio:1;object-fit:contain;background:#222;display:block}
.noimg{width:100%;aspect-ratio:1;background:#ddd;display:flex;align-items:center;justify-content:center;
 font-size:12px;color:#555;text-align:center}
dl{display:grid;grid-template-columns:auto 1fr;gap:1px 8px;margin:6px 0 0;font-size:12px}
dt{color:#667} dd{margin:0;overflow-wrap:anywhere}
.score{font-weight:600;color:#b3261e} .ok .score{color:#1e7b34}
.empty,.error{color:#667;font-style:italic} .error{color:#b3261e}
nav.pages{margin:12px 0;display:flex;gap:14px}
"""


def capture_time(ns: int) -> str:
    """UTC capture time as shown on the page, to the millisecond."""
    t = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d} UTC"


def evidence_url(key: str) -> str:
    """Where the page's images come from: the app itself reads the object from the store."""
    return "evidence?" + urlencode({"key": key})


def camera_url(line: str, camera: str, page: int = 1, show_ok: bool = False) -> str:
    """Link to one camera's pages."""
    query = {"line": line, "camera": camera}
    if page > 1:
        query["page"] = str(page)
    if show_ok:
        query["show"] = "all"
    return "camera?" + urlencode(query)


def _image(key: Optional[str], kind: str, event_id: str) -> str:
    if key is None:
        return f'<figure><div class="noimg {kind}">no {kind} stored</div><figcaption>{kind}</figcaption></figure>'
    if key.endswith(".raw"):  # mono8 bytes without a header: a browser cannot show them
        return (f'<figure><div class="noimg {kind}"><a href="{escape(evidence_url(key))}" download>raw frame '
                f'(download)</a></div><figcaption>{kind}</figcaption></figure>')
    return (f'<figure><img class="{kind}" src="{escape(evidence_url(key))}" alt="{kind} of {escape(event_id)}">'
            f'<figcaption>{kind}</figcaption></figure>')


def card(item: EvidenceItem) -> str:
    """One judged frame: frame, overlay, score, model, capture time, ids, strongest region."""
    e = item.event
    region = ""
    if e.localisation and e.localisation.regions:
        top = e.localisation.regions[0]
        b = top.box
        region = (f"<dt>region</dt><dd class=\"region\">x {b.x}, y {b.y}, {b.width}&times;{b.height} px, "
                  f"peak {top.peak:.2f} ({len(e.localisation.regions)} found)</dd>")
    return (
        f'<article class="card {escape(e.verdict.value)}" data-event-id="{escape(e.event_id)}">'
        f'<div class="images">{_image(item.frame_key, "frame", e.event_id)}'
        f'{_image(item.overlay_key, "overlay", e.event_id)}</div><dl>'
        f'<dt>score</dt><dd><span class="score">{e.score:.3f}</span> '
        f'<span class="verdict">{escape(e.verdict.value)}</span> (threshold {e.threshold:.3f})</dd>'
        f'<dt>model</dt><dd class="model">{escape(e.model.name)} v{escape(e.model.version)} '
        f'({escape(e.model.backend)})</dd>'
        f'<dt>captured</dt><dd><time class="captured" datetime="{_iso(e.frame.capture_time_ns)}">'
        f'{capture_time(e.frame.capture_time_ns)}</time></dd>'
        f'<dt>camera</dt><dd class="camera">{escape(e.frame.line_id)} / {escape(e.frame.camera_id)} '
        f'#{e.frame.frame_seq}</dd>'
        f'<dt>event</dt><dd class="event-id">{escape(e.event_id)}</dd>{region}</dl></article>')


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).isoformat(timespec="milliseconds")


def camera_section(line: str, camera: str, items: list[EvidenceItem], error: Optional[str] = None,
                   show_ok: bool = False) -> str:
    """A camera's heading (linking to its own pages) and its cards."""
    head = (f'<section class="camera" data-line="{escape(line)}" data-camera="{escape(camera)}">'
            f'<h2><a href="{escape(camera_url(line, camera, show_ok=show_ok))}">{escape(line)} / '
            f'{escape(camera)}</a></h2>')
    if error:
        return head + f'<p class="error">{escape(error)}</p></section>'
    if not items:
        return head + '<p class="empty">no defects stored</p></section>'
    return head + '<div class="cards">' + "".join(card(i) for i in items) + "</div></section>"


def document(title: str, body: str, refresh_s: int = 0, toggle: Optional[tuple[str, str]] = None) -> str:
    """A whole page around body; toggle = (label, url) of the same view with or without good frames."""
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    link = f'<a class="toggle" href="{escape(toggle[1])}">{escape(toggle[0])}</a>' if toggle else ""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\">{refresh}<title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><header><h1>{escape(title)}</h1>"
            f"<a href=\"./\">all cameras</a>{link}<span>newest first</span></header><main>{body}</main>"
            "</body></html>")


def pager(line: str, camera: str, page: int, has_more: bool, show_ok: bool) -> str:
    """Newer / older links of one camera's pages."""
    links = []
    if page > 1:
        links.append(f'<a rel="prev" href="{escape(camera_url(line, camera, page - 1, show_ok))}">newer</a>')
    links.append(f"<span>page {page}</span>")
    if has_more:
        links.append(f'<a rel="next" href="{escape(camera_url(line, camera, page + 1, show_ok))}">older</a>')
    return '<nav class="pages">' + "".join(links) + "</nav>"


def message(title: str, text: str) -> str:
    """A page that only says something (an error, an empty store)."""
    return document(title, f'<p class="error">{escape(text)}</p>')

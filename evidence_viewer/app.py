"""The operator page's web server (stdlib http.server, one thread per request).

Routes: `/` newest defects of every line and camera; `/camera?line=&camera=&page=&limit=` one camera,
page by page; `/evidence?key=` a frame or overlay read from the store; `/healthz` the process answers;
`/readyz` the bucket answers. `show=all` on the first two adds the sampled good frames.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from evidence_viewer import page
from evidence_viewer.settings import ViewerSettings
from evidence_viewer.store import EvidenceReader

log = logging.getLogger("evidence_viewer")
# No script, no frames, images and styles only from this page: injected markup could do nothing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class BadRequest(ValueError):
    """A query parameter the page cannot use; the message names it."""


def store_failure(settings: ViewerSettings, exc: Exception) -> str:
    """What the operator reads when the store cannot be read: the cause and the settings to check."""
    return (f"the evidence store could not be read ({type(exc).__name__}: {exc}); check VIEWER_ENDPOINT="
            f"{settings.endpoint}, VIEWER_BUCKET={settings.bucket} and the store's credentials")


def _int_param(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name, [str(default)])[0]
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise BadRequest(f"query parameter {name}={value} is outside {low}..{high}")
    return value


class Routes:
    """Turns a path and query into (status, content type, body); kept apart from HTTP for clarity."""

    def __init__(self, settings: ViewerSettings, reader: EvidenceReader):
        self.s = settings
        self.reader = reader
        self.title = settings.title or f"Defects — {settings.bucket}"

    def handle(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes, dict[str, str]]:
        """Answer one GET."""
        routes: dict[str, Callable] = {"/": self.overview, "/camera": self.camera, "/evidence": self.evidence,
                                       "/healthz": self.healthz, "/readyz": self.readyz}
        route = routes.get(path)
        if route is None:
            return self._html(HTTPStatus.NOT_FOUND, page.message(self.title, f"no page at {path}"))
        try:
            return route(query)
        except BadRequest as exc:
            return self._html(HTTPStatus.BAD_REQUEST, page.message(self.title, str(exc)))
        except (BotoCoreError, ClientError) as exc:  # the store is down or refuses: say so, keep serving
            log.warning("store read failed on %s: %s", path, exc)
            return self._html(HTTPStatus.SERVICE_UNAVAILABLE, page.message(self.title, store_failure(self.s, exc)))
        except Exception:  # a bug of the page: logged with its traceback, the operator gets a plain 500
            log.exception("failed to answer %s", path)
            return self._html(HTTPStatus.INTERNAL_SERVER_ERROR,
                              page.message(self.title, "the page failed; its log has the details"))

    def _html(self, status: int, text: str) -> tuple[int, str, bytes, dict[str, str]]:
        return status, "text/html; charset=utf-8", text.encode("utf-8"), {"Cache-Control": "no-store"}

    def _show_ok(self, query) -> bool:
        show = query.get("show", ["defects"])[0]
        if show not in ("defects", "all"):
            raise BadRequest(f"query parameter show={show!r} must be 'defects' or 'all'")
        return show == "all"

    def overview(self, query):
        """Every line and camera with its newest defects."""
        show_ok = self._show_ok(query)
        limit = _int_param(query, "limit", self.s.per_camera, 1, 100)
        sections = []
        for line in self.reader.lines():
            for camera in self.reader.cameras(line):
                items = self.reader.latest(line, camera, limit, include_ok=show_ok).items
                sections.append(page.camera_section(line, camera, items, show_ok=show_ok))
        body = "".join(sections) or '<p class="empty">no evidence in the store yet</p>'
        toggle = ("defects only", "./") if show_ok else ("with sampled good frames", "./?show=all")
        return self._html(HTTPStatus.OK, page.document(self.title, body, self.s.refresh_s, toggle))

    def camera(self, query):
        """One camera's defects, a page at a time, newest first."""
        line, camera = (query.get(k, [""])[0] for k in ("line", "camera"))
        for name, value in (("line", line), ("camera", camera)):
            if not value or "/" in value:
                raise BadRequest(f"query parameter {name}={value!r} must be a {name} id (non-empty, no '/')")
        show_ok = self._show_ok(query)
        number = _int_param(query, "page", 1, 1, 100000)
        limit = _int_param(query, "limit", self.s.page_size, 1, 200)
        result = self.reader.latest(line, camera, limit, skip=(number - 1) * limit, include_ok=show_ok)
        body = (page.camera_section(line, camera, result.items, show_ok=show_ok)
                + page.pager(line, camera, number, result.has_more, show_ok))
        other = page.camera_url(line, camera, show_ok=not show_ok)
        toggle = ("defects only", other) if show_ok else ("with sampled good frames", other)
        refresh = self.s.refresh_s if number == 1 else 0  # an older page does not change
        return self._html(HTTPStatus.OK, page.document(f"{self.title}: {line} / {camera}", body, refresh, toggle))

    def evidence(self, query):
        """A frame or overlay object, streamed from the store."""
        key = query.get("key", [""])[0]
        try:
            body, content_type = self.reader.read_object(key)
        except KeyError:
            return self._html(HTTPStatus.NOT_FOUND, page.message(self.title, f"no frame or overlay at {key!r}"))
        headers = {"Cache-Control": "private, max-age=3600"}  # evidence of an event id only changes on redelivery
        if content_type == "application/octet-stream":
            headers["Content-Disposition"] = 'attachment; filename="frame.raw"'
        return HTTPStatus.OK, content_type, body, headers

    def healthz(self, _query):
        """The process answers."""
        return HTTPStatus.OK, "text/plain; charset=utf-8", b"ok\n", {}

    def readyz(self, _query):
        """The bucket answers (503 from the handler's store-failure path otherwise)."""
        self.reader.client.head_bucket(Bucket=self.reader.bucket)
        return HTTPStatus.OK, "text/plain; charset=utf-8", b"ready\n", {}


def make_server(settings: ViewerSettings, reader: EvidenceReader, port: Optional[int] = None) -> ThreadingHTTPServer:
    """A bound (not yet serving) HTTP server for the page; port 0 picks a free one."""
    routes = Routes(settings, reader)

    class Handler(BaseHTTPRequestHandler):
        server_version = "evidence-viewer"

        def do_GET(self):  # noqa: N802 (http.server's naming)
            url = urlsplit(self.path)
            status, content_type, body, extra = routes.handle(url.path, parse_qs(url.query))
            self.send_response(status)
            for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)),
                                **SECURITY_HEADERS, **extra}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            log.debug("%s " + fmt, self.address_string(), *args)

    server = ThreadingHTTPServer((settings.host, settings.port if port is None else port), Handler)
    server.daemon_threads = True
    return server

"""One small HTTP server for /metrics, /healthz (loops make progress) and /readyz (can judge frames).

What the endpoints say is decided by the callables it is given (worker.health.Health and the
metrics registry for one worker, worker.fleet for a pod of several); this module only serves it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.health import Health
from worker.metrics import WorkerMetrics

Probe = Callable[[], tuple[bool, str]]


class _Handler(BaseHTTPRequestHandler):
    server: "MetricsServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.server.metrics_text(), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            ok, text = self.server.live() if path == "/healthz" else self.server.ready()
            self._send(200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8")
        else:
            self._send(404, b"try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args) -> None:  # scrapes every few seconds would flood the log
        pass


class MetricsServer(ThreadingHTTPServer):
    """Serves metrics and health on (host, port) from a daemon thread."""

    daemon_threads = True

    def __init__(self, host: str, port: int, metrics_text: Callable[[], bytes], live: Probe, ready: Probe):
        super().__init__((host, port), _Handler)
        self.metrics_text = metrics_text
        self.live = live
        self.ready = ready
        self._thread = threading.Thread(target=self.serve_forever, name="metrics-http", daemon=True)

    @classmethod
    def for_worker(cls, host: str, port: int, metrics: WorkerMetrics, health: Health) -> "MetricsServer":
        """The server of one worker process: its registry and its Health."""

        def metrics_text() -> bytes:
            health.ready()  # refresh the inspection_ready gauge on every scrape
            return generate_latest(metrics.registry)

        return cls(host, port, metrics_text, health.live, health.ready)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self.server_address[1]

    def start(self) -> None:
        """Start serving in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()

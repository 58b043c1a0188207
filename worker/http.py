"""One small HTTP server for /metrics, /healthz (loops make progress) and /readyz (can judge frames).

What the health endpoints say is decided by worker.health.Health; this module only serves it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.health import Health
from worker.metrics import WorkerMetrics


class _Handler(BaseHTTPRequestHandler):
    server: "MetricsServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self.server.health.ready()  # refresh the inspection_ready gauge on every scrape
            self._send(200, generate_latest(self.server.metrics.registry), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            ok, text = self.server.health.live() if path == "/healthz" else self.server.health.ready()
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

    def __init__(self, host: str, port: int, metrics: WorkerMetrics, health: Health):
        super().__init__((host, port), _Handler)
        self.metrics = metrics
        self.health = health
        self._thread = threading.Thread(target=self.serve_forever, name="metrics-http", daemon=True)

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

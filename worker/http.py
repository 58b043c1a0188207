"""One small HTTP server for /metrics, /healthz (loops make progress) and /readyz (can judge frames)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.metrics import WorkerMetrics

# A loop that has not ticked for this long is stuck (a poll or a batch takes well under a second;
# model warm-up happens before the loops are watched).
STALL_AFTER_S = 60.0


class Health:
    """Heartbeats of the worker's loops and the readiness conditions."""

    def __init__(self, metrics: WorkerMetrics, stall_after_s: float = STALL_AFTER_S):
        self._lock = threading.Lock()
        self._beats: dict[str, float] = {}
        self._stall_after_s = stall_after_s
        self._metrics = metrics
        self.model_ready = False
        self.partitions_assigned = False
        self.stopping = False
        self.consumer_stall = ""  # set by the ConsumerWatchdog: frames wait but the consumer gets none

    def beat(self, loop: str) -> None:
        """Loop `loop` made progress now."""
        self._beats[loop] = time.monotonic()  # dict item assignment is atomic under the GIL

    def live(self) -> tuple[bool, str]:
        """(ok, explanation): every registered loop ticked within the stall window and the consumer is not stalled."""
        now = time.monotonic()
        stale = [f"{name} silent for {now - t:.0f}s" for name, t in list(self._beats.items())
                 if now - t > self._stall_after_s]
        if self.consumer_stall:
            stale.append(self.consumer_stall)
        return (not stale, "; ".join(stale) or f"{len(self._beats)} loops alive")

    def ready(self) -> tuple[bool, str]:
        """(ok, explanation): model loaded and warmed, partitions assigned, not shutting down."""
        missing = [what for what, ok in (("model not warmed up", self.model_ready),
                                         ("no partitions assigned", self.partitions_assigned),
                                         ("shutting down", not self.stopping)) if not ok]
        ok = not missing
        self._metrics.ready.set(1 if ok else 0)
        return ok, "; ".join(missing) or "ready"


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

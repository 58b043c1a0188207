"""Evidence (claim-check): the frame, its overlay and its event, kept in an S3-compatible object store.

The store never stops the line. `EvidenceWriter.claim` runs on the inference thread and only
decides and enqueues: a bounded queue, read by the writer's own thread, which renders the overlay
and writes the three objects. So the event is published at once, carrying the keys and
  - status `queued` when the objects were handed to the writer (they appear within seconds), or
  - status `missing` with a reason: `queue_full` (the store is slower than the defects arrive) or
    `store_down` (the last write failed and no write has succeeded since), decided without waiting.
A queued frame whose writes fail is retried with back-off for `retry_s`, then dropped and counted
(`write_failed`); so an outage shorter than that loses only the evidence of frames judged during it.
While the store is down and nothing is queued, the thread probes it, so writes resume by themselves.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from line_contracts.events import DefectEvent, Evidence, EvidenceStatus, Localisation, Verdict
from line_contracts.evidence import EVENT_NAME, OVERLAY_NAME, evidence_prefix, frame_object_name
from line_contracts.frame import Encoding
from line_runtime.framing import Placement
from worker.batching import WorkItem
from worker.decode import DecodedFrame
from worker.metrics import EvidenceMetrics
from worker.overlay import render_overlay

log = logging.getLogger(__name__)

WRITER_NICE = 10  # added to the writer thread's nice value: evidence is never urgent, verdicts are

_CONTENT_TYPE = {Encoding.PNG: "image/png", Encoding.JPEG: "image/jpeg", Encoding.RAW: "application/octet-stream"}


@dataclass
class _Pending:
    """One frame's evidence on its way to the store."""

    prefix: str
    frame_name: str
    encoding: Encoding
    frame_bytes: bytes
    image: np.ndarray
    frame_height: int
    frame_width: int
    defect_map: Optional[np.ndarray]
    localisation: Optional[Localisation]
    event_json: bytes
    claimed_mono: float
    placement: Optional[Placement] = None  # where the frame lies in the map's model input
    overlay: Optional[bytes] = field(default=None)  # rendered once, kept across retries


def sampled(event_id: str, rate: float) -> bool:
    """Whether an ok frame is kept for audit: a hash of its event id, so a redelivery decides the same."""
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < rate


class EvidenceWriter:
    """Decides which frames keep evidence, hands them to its own thread, and writes them to one bucket."""

    def __init__(self, client, bucket: str, metrics: EvidenceMetrics, sample_ok: float = 0.0, queue_size: int = 256,
                 retry_s: float = 300.0, backoff_s: tuple[float, float] = (0.5, 5.0),
                 clock: Callable[[], float] = time.monotonic, overlay_max_side: int = 0):
        self._client = client
        self._overlay_max_side = overlay_max_side
        self.bucket = bucket
        self._metrics = metrics
        self._sample_ok = sample_ok
        self._queue: "queue.Queue[Optional[_Pending]]" = queue.Queue(maxsize=queue_size)
        self._retry_s = retry_s
        self._backoff = backoff_s
        self._clock = clock
        self._down_since: Optional[float] = None  # set by the writer thread, read by claim()
        self._abandon = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def store_down(self) -> bool:
        """True from a failed write (or probe) until the next successful one."""
        return self._down_since is not None

    # -- inference thread ---------------------------------------------------------------------
    def on_judged(self, event: DefectEvent, item: WorkItem, frame: DecodedFrame,
                  defect_map: Optional[np.ndarray], placement: Optional[Placement] = None) -> DefectEvent:
        """The inference loop's hook (worker.inference.JudgedHook): claim() with the frame's parts."""
        h = frame.headers
        try:
            return self.claim(event, item.value or b"", frame.camera_image, h.height, h.width, h.encoding, defect_map,
                              placement)
        except Exception:  # noqa: BLE001 - evidence must never cost a frame its result event
            log.exception("evidence of %s could not be claimed; the event goes out without it", event.event_id)
            return event

    def claim(self, event: DefectEvent, frame_bytes: bytes, image: np.ndarray, frame_height: int, frame_width: int,
              encoding: Encoding, defect_map: Optional[np.ndarray] = None,
              placement: Optional[Placement] = None) -> DefectEvent:
        """The event, with its evidence keys when this frame keeps evidence (and the objects queued).

        `placement`: where the frame lies in the model input the map covers; None when the map covers the frame.
        """
        if event.verdict is not Verdict.DEFECT and not sampled(event.event_id, self._sample_ok):
            return event
        f = event.frame
        prefix = evidence_prefix(f.line_id, f.camera_id, f.capture_time_ns, event.event_id)
        frame_name = frame_object_name(encoding)
        reason = "store_down" if self.store_down else None
        evidence = Evidence(status=EvidenceStatus.QUEUED, bucket=self.bucket, frame_key=prefix + frame_name,
                            overlay_key=prefix + OVERLAY_NAME, event_key=prefix + EVENT_NAME)
        if reason is None:
            event = event.model_copy(update={"evidence": evidence})
            # An ok frame's map points at nothing the model reported: its overlay is the plain frame.
            shown_map = defect_map if event.verdict is Verdict.DEFECT else None
            pending = _Pending(prefix, frame_name, Encoding(encoding), frame_bytes, image, frame_height, frame_width,
                               shown_map, event.localisation, event.to_json_bytes(), self._clock(), placement)
            try:
                self._queue.put_nowait(pending)
                self._metrics.queue_depth.set(self._queue.qsize())
                return event
            except queue.Full:
                reason = "queue_full"
        self._metrics.missing.labels(reason).inc()
        missing = evidence.model_copy(update={"status": EvidenceStatus.MISSING, "reason": reason})
        return event.model_copy(update={"evidence": missing})

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread."""
        if not self.store_down:
            self._metrics.store_up.set(1)
        self._thread = threading.Thread(target=self._run, name="evidence-writer", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float) -> int:
        """Write what is queued for at most timeout_s, then stop; returns the frames left unwritten."""
        if self._thread is None:
            return 0
        deadline = time.monotonic() + max(0.0, timeout_s)
        try:
            self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            pass
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._abandon.set()  # a thread still retrying gives up at its next wait
        self._thread.join(timeout=5.0)
        left = 0
        while True:
            try:
                if self._queue.get_nowait() is not None:
                    left += 1
            except queue.Empty:
                break
        if left:
            self._metrics.missing.labels("shutdown").inc(left)
            log.warning("evidence of %d frames not written before shutdown", left)
        return left

    # -- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        try:  # the writer yields the CPU to the judging threads when they compete (Linux: per-thread nice)
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WRITER_NICE))
        except (AttributeError, OSError):
            pass
        while not self._abandon.is_set():
            try:  # while the store is down and nothing waits, wake up to probe it
                pending = self._queue.get(timeout=self._backoff[1] if self.store_down else None)
            except queue.Empty:
                self._probe()
                continue
            self._metrics.queue_depth.set(self._queue.qsize())
            if pending is None:
                return
            self._write_with_retry(pending)

    def _write_with_retry(self, pending: _Pending) -> None:
        delay = self._backoff[0]
        while True:
            try:
                start = time.perf_counter()
                self._write(pending)
            except Exception as exc:  # noqa: BLE001 - any client or store error: the store is not usable now
                self.mark_down(f"{type(exc).__name__}: {str(exc)[:200]}")
                if self._clock() - pending.claimed_mono >= self._retry_s or self._abandon.is_set():
                    reason = "shutdown" if self._abandon.is_set() else "write_failed"
                    self._metrics.missing.labels(reason).inc()
                    log.error("evidence %s dropped after %.0f s of failed writes (%s)", pending.prefix,
                              self._clock() - pending.claimed_mono, reason)
                    return
                if self._abandon.wait(delay):
                    continue  # one last attempt, then counted as shutdown
                delay = min(delay * 2.0, self._backoff[1])
            else:
                self._metrics.write_seconds.observe(time.perf_counter() - start)
                self._metrics.written.inc()
                self._mark_up()
                return

    def _write(self, p: _Pending) -> None:
        if p.overlay is None:
            if p.defect_map is None and p.localisation is None and p.encoding is Encoding.PNG:
                p.overlay = p.frame_bytes  # nothing to draw: the camera's PNG is the plain picture
            else:
                p.overlay = render_overlay(p.image, p.frame_height, p.frame_width, p.defect_map, p.localisation,
                                           self._overlay_max_side, p.placement)
        put = self._client.put_object
        put(Bucket=self.bucket, Key=p.prefix + p.frame_name, Body=p.frame_bytes, ContentType=_CONTENT_TYPE[p.encoding])
        put(Bucket=self.bucket, Key=p.prefix + OVERLAY_NAME, Body=p.overlay, ContentType="image/png")
        # The event last: a reader that finds event.json finds the frame and the overlay too.
        put(Bucket=self.bucket, Key=p.prefix + EVENT_NAME, Body=p.event_json, ContentType="application/json")

    def _probe(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001 - still down
            self.mark_down(f"{type(exc).__name__}: {str(exc)[:200]}")
        else:
            self._mark_up()

    def mark_down(self, why: str) -> None:
        """Treat the store as down (new evidence is marked missing) until a write or probe succeeds."""
        if self._down_since is None:
            self._down_since = self._clock()
            self._metrics.store_up.set(0)
            log.warning("evidence store unusable (%s); new events carry evidence status 'missing' until a write "
                        "succeeds", why)

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.info("evidence store usable again after %.1f s", self._clock() - self._down_since)
            self._down_since = None
            self._metrics.store_up.set(1)

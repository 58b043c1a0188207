"""The operator page as a real child process, and evidence written the way the worker lays it out.

    viewer = ViewerProcess(store.endpoint, store.bucket, env, log_path)   # `python -m evidence_viewer`
    viewer.wait_ready(30); viewer.url
    put_evidence(client, bucket, event, frame_bytes, overlay_png)         # the key layout of line_contracts
    sample_evidence(client, bucket, ...)                                  # synthetic frames with boxes

Used by `make demo`, the browser tests and `python -m line_harness.viewer screenshot` (docs/operator.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping, Optional

import cv2
import numpy as np

from line_contracts.events import (
    Box,
    DefectEvent,
    DefectRegion,
    Evidence,
    EvidenceStatus,
    FrameRef,
    Localisation,
    ModelRef,
    Timings,
    Verdict,
)
from line_contracts.evidence import EVENT_NAME, OVERLAY_NAME, evidence_prefix, frame_object_name
from line_contracts.frame import Encoding
from line_harness.paths import REPO
from line_harness.processes import Child, free_port


class ViewerNotReady(RuntimeError):
    """The page exited or did not answer in time; the message carries its log tail."""


class ViewerProcess(Child):
    """`python -m evidence_viewer` on a free port of 127.0.0.1, in its own process group."""

    def __init__(self, endpoint: str, bucket: str, env: Mapping[str, str], log_path: Path,
                 preferred_port: Optional[int] = None, **settings):
        self.port = free_port(preferred_port)
        full = {k: v for k, v in env.items() if not k.startswith("VIEWER_")}
        full.update(PYTHONUNBUFFERED="1", VIEWER_ENDPOINT=endpoint, VIEWER_BUCKET=bucket, VIEWER_HOST="127.0.0.1",
                    VIEWER_PORT=str(self.port), **{f"VIEWER_{k.upper()}": str(v) for k, v in settings.items()})
        self.env = full
        super().__init__("viewer", [sys.executable, "-m", "evidence_viewer"], full, log_path, REPO)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait_ready(self, timeout_s: float = 30.0) -> float:
        """Wait until /readyz answers 200 (the bucket is readable); return the seconds it took."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if not self.running():
                raise ViewerNotReady(f"evidence_viewer exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return time.monotonic() - t0
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise ViewerNotReady(f"evidence_viewer not ready on {self.url} within {timeout_s:g}s:\n{self.log_tail()}")


def put_evidence(client, bucket: str, event: DefectEvent, frame_bytes: Optional[bytes],
                 overlay_png: Optional[bytes], encoding: Encoding = Encoding.PNG) -> DefectEvent:
    """Write a frame's objects under the contract's key layout; return the event with its evidence keys."""
    f = event.frame
    prefix = evidence_prefix(f.line_id, f.camera_id, f.capture_time_ns, event.event_id)
    evidence = Evidence(status=EvidenceStatus.QUEUED, bucket=bucket, frame_key=prefix + frame_object_name(encoding),
                        overlay_key=prefix + OVERLAY_NAME, event_key=prefix + EVENT_NAME)
    event = event.model_copy(update={"evidence": evidence})
    if frame_bytes is not None:
        client.put_object(Bucket=bucket, Key=evidence.frame_key, Body=frame_bytes)
    if overlay_png is not None:
        client.put_object(Bucket=bucket, Key=evidence.overlay_key, Body=overlay_png, ContentType="image/png")
    client.put_object(Bucket=bucket, Key=evidence.event_key, Body=event.to_json_bytes(),
                      ContentType="application/json")
    return event


def make_event(line: str, camera: str, offset: int, capture_ns: int, score: float, model_version: str = "3",
               box: Optional[Box] = None, threshold: float = 0.5, topic: str = "line.frames") -> DefectEvent:
    """A result event as the worker publishes it (regions when a box is given)."""
    verdict = Verdict.DEFECT if score >= threshold else Verdict.OK
    localisation = None
    if box is not None and verdict == Verdict.DEFECT:
        localisation = Localisation(map_height=32, map_width=32, regions=[
            DefectRegion(box=box, peak=round(score, 3), area_px=box.width * box.height)])
    return DefectEvent(
        event_id=f"{topic}-0-{offset}", verdict=verdict, score=score, threshold=threshold,
        frame=FrameRef(topic=topic, partition=0, offset=offset, camera_id=camera, line_id=line, frame_seq=offset,
                       capture_time_ns=capture_ns),
        model=ModelRef(name="defect-demo", version=model_version, backend="litert"), worker_id="worker-1",
        timings=Timings(consumed_ns=capture_ns, inferred_ns=capture_ns + 20_000_000,
                        published_ns=capture_ns + 30_000_000, capture_to_publish_ms=30.0, inference_ms=18.0,
                        batch_size=4),
        localisation=localisation)


def draw_overlay(image: np.ndarray, box: Optional[Box]) -> bytes:
    """PNG of a grey frame with its box in red (a stand-in for the worker's heat-map overlay)."""
    picture = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if box is not None:
        cv2.rectangle(picture, (box.x, box.y), (box.x + box.width - 1, box.y + box.height - 1), (0, 0, 255), 3)
    return cv2.imencode(".png", picture)[1].tobytes()


def sample_evidence(client, bucket: str, lines: int = 2, cameras_per_line: int = 2, per_camera: int = 4,
                    start_ns: Optional[int] = None, seed: int = 0) -> list[DefectEvent]:
    """Synthetic defective frames (and one good one per camera) with overlays, written to the store."""
    from surface_images.synthetic import SyntheticFrames
    frames = SyntheticFrames(seed=seed, size=(256, 256), defect_rate=1.0, defect_scale=4.0)
    start_ns = start_ns or time.time_ns() - 3600 * 10**9
    written, offset = [], 0
    for li in range(1, lines + 1):
        for ci in range(1, cameras_per_line + 1):
            line, camera = f"line-{li}", f"line-{li}-cam-{ci}"
            for k in range(per_camera + 1):
                sample = frames.sample(offset)
                ys, xs = np.nonzero(sample.mask)
                box = Box(x=int(xs.min()), y=int(ys.min()), width=int(np.ptp(xs)) + 1, height=int(np.ptp(ys)) + 1) \
                    if len(xs) else None
                score = 0.2 if k == per_camera else round(0.6 + 0.39 * ((offset * 37) % 100) / 100, 3)
                event = make_event(line, camera, offset, start_ns + offset * 7_300_000_000, score, box=box)
                png = cv2.imencode(".png", sample.image)[1].tobytes()
                written.append(put_evidence(client, bucket, event, png, draw_overlay(sample.image, box)))
                offset += 1
    return written


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m line_harness.viewer screenshot OUT.png`: a local store with sample evidence, the page, a
    screenshot taken by headless Chromium (the picture in docs/operator.md)."""
    import argparse
    import tempfile

    from line_harness.browser import HeadlessChromium
    from line_harness.evidence_store.server import LocalObjectStore
    parser = argparse.ArgumentParser(prog="python -m line_harness.viewer", description=main.__doc__)
    parser.add_argument("command", choices=["screenshot"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="viewer-shot-") as tmp:
        store = LocalObjectStore(Path(tmp) / "store", die_with_parent=True)
        store.start(timeout_s=120)
        viewer = None
        try:
            events = sample_evidence(store.client(), store.bucket, per_camera=3)
            env = {**os.environ, "AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
            viewer = ViewerProcess(store.endpoint, store.bucket, env, Path(tmp) / "viewer.log", per_camera=3,
                                   refresh_s=0, title="Defects — line-evidence")
            viewer.wait_ready()
            with HeadlessChromium(Path(tmp) / "chromium", width=1400, height=900) as browser:
                browser.open(viewer.url)
                browser.screenshot(args.out)
            print(json.dumps({"screenshot": str(args.out), "events": len(events)}))
        finally:
            if viewer is not None:
                viewer.stop(10)
            store.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

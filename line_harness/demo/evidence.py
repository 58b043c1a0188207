"""The demo's evidence store and operator page: a local SeaweedFS in run/demo/evidence, the worker's
WORKER_EVIDENCE_* settings pointing at it, and `python -m evidence_viewer` on it (port 8088 when free).

The store keeps its data between runs (the operator can look at earlier runs' defects); the page
stops with the demo. Without the `weed` binary (`make evidence-server` builds it) the demo goes on
without evidence and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from line_harness.viewer import ViewerNotReady, ViewerProcess

Say = Callable[[str], None]


class DemoEvidence:
    """`start()` the store, `worker_env()` for the worker, `start_viewer()`, `snapshot()`, `stop()`."""

    def __init__(self, run_dir: Path, viewer_port: int, say: Say, track: Callable):
        self.run_dir = run_dir
        self.viewer_port = viewer_port
        self.say = say
        self.track = track
        self.store = None
        self.viewer: Optional[ViewerProcess] = None

    @property
    def started(self) -> bool:
        return self.store is not None

    def start(self) -> bool:
        """Start the store (False, said why, when it cannot run here)."""
        from line_harness.evidence_store.server import LocalObjectStore, StoreError
        store = LocalObjectStore(self.run_dir, die_with_parent=True)
        store.stop()  # one left by a demo that was killed with SIGKILL
        try:
            seconds = store.start(timeout_s=120)
        except StoreError as exc:
            self.say(f"no evidence store, going on without evidence and operator page: {exc}")
            store.stop()
            return False
        self.store = store
        self.say(f"evidence store (SeaweedFS S3) {store.endpoint}, bucket {store.bucket}, ready in {seconds:.1f}s "
                 f"(data in {self.run_dir})")
        return True

    def worker_env(self) -> dict[str, str]:
        """WORKER_EVIDENCE_ENDPOINT, WORKER_EVIDENCE_BUCKET and the store's AWS_* credentials."""
        return self.store.client_env("WORKER_") if self.store else {}

    def start_viewer(self, env: dict[str, str], log_path: Path) -> Optional[str]:
        """Start the operator page; its URL, or None (said why) when it does not come up."""
        if self.store is None:
            return None
        viewer_env = {**env, "AWS_ACCESS_KEY_ID": self.store.access_key,
                      "AWS_SECRET_ACCESS_KEY": self.store.secret_key}
        self.viewer = self.track(ViewerProcess(self.store.endpoint, self.store.bucket, viewer_env, log_path,
                                               preferred_port=self.viewer_port, refresh_s=10))
        try:
            self.viewer.wait_ready(60)
        except ViewerNotReady as exc:
            self.say(f"the operator page did not start, going on without it: {exc}")
            return None
        self.say(f"operator page: open {self.viewer.url} (latest defects per line and camera: frame, overlay, "
                 f"score, model, time; it reloads every 10 s)")
        return self.viewer.url

    def snapshot(self) -> dict:
        """Where the evidence is and how much was kept (objects in the bucket)."""
        if self.store is None:
            return {}
        facts = {"endpoint": self.store.endpoint, "bucket": self.store.bucket, "data": str(self.run_dir),
                 "viewer_url": self.viewer.url if self.viewer else None}
        try:
            pages = self.store.client().get_paginator("list_objects_v2").paginate(Bucket=self.store.bucket)
            keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
            facts["events_kept"] = sum(k.endswith("/event.json") for k in keys)
            facts["objects"] = len(keys)
        except Exception as exc:  # the summary reports it; the demo's result does not depend on it
            facts["error"] = f"{type(exc).__name__}: {exc}"
        return facts

    def stop(self) -> None:
        """Stop the store (the page is a tracked child, stopped with the others)."""
        if self.store is not None:
            self.store.stop()

    def alive(self) -> bool:
        """True while the store's server process still runs."""
        return self.store is not None and self.store.is_running()


def viewer_command(run_dir: Path) -> str:
    """How to look at a finished demo's evidence again (printed in the summary)."""
    return (f"python -m line_harness.evidence_store --run-dir {run_dir} start && set -a && . {run_dir}/client.env "
            f"&& set +a && python -m evidence_viewer --endpoint $WORKER_EVIDENCE_ENDPOINT --bucket "
            f"$WORKER_EVIDENCE_BUCKET")

"""The evidence store goes away mid-stream: `python -m line_harness.chaos.run --only evidence`.

A worker judges a steady simulator stream and keeps evidence (every defect, 5% of ok frames) in a
real SeaweedFS; a real Prometheus scrapes it every second with the project's rules. The store is
SIGKILLed for `outage_s` and started again on the same port and data. Checked:
  - nothing lost from the results topic (the usual accounting);
  - an event says evidence `missing` only if it was published while the store was away (from the
    kill until the store answered again, plus the writer's back-off to notice: RECOVERY_GRACE_S);
  - every event that says `queued` has its three objects in the store, also the ones queued just
    before the kill (retried until the store came back);
  - writes resume by themselves: events published after the recovery are queued and kept;
  - InspectionEvidenceMissing fires in Prometheus (its `for: 1m` runs from the first missing evidence,
    so a shorter outage fires too, after it).
"""

from __future__ import annotations

import os
import time
import uuid

from line_contracts.events import DefectEvent
from line_harness.chaos.accounting import account
from line_harness.chaos.scenarios import CHAOS_WORKER_DEFAULTS, Ctx, _end_stream, _stream
from line_harness.demo.prometheus import PrometheusServer
from line_harness.evidence_store.server import LocalObjectStore
from line_harness.kafka.topics import run_topics
from line_harness.processes import wait_until
from line_harness.readers import OutcomeReader, read_to_end, record_count
from line_harness.worker_process import WorkerProcess

ALERT = "InspectionEvidenceMissing"
RECOVERY_GRACE_S = 10.0  # the writer's longest back-off (5 s) plus a write timeout or two
SAMPLE_OK = 0.05


def _alert_state(prom: PrometheusServer) -> str:
    states = [a["state"] for a in prom.alerts() if a["labels"].get("alertname") == ALERT]
    return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"


def _stored_keys(store: LocalObjectStore) -> set[str]:
    keys: set[str] = set()
    for page in store.client().get_paginator("list_objects_v2").paginate(Bucket=store.bucket):
        keys |= {o["Key"] for o in page.get("Contents", [])}
    return keys


def evidence_outage(ctx: Ctx, outage_s: float = 60.0, before_s: float = 10.0, after_s: float = 20.0,
                    fps: float = 10.0, want_alert: tuple[str, ...] = ("firing",), log=print) -> dict:
    """Run the scenario; the result has 'passed', 'check' and the numbers behind them."""
    store = LocalObjectStore(ctx.out_dir / f"evidence-store-{uuid.uuid4().hex[:8]}", die_with_parent=True)
    store.start(timeout_s=120)
    topics, group = run_topics(ctx.client_kwargs, 3, "evidence"), f"chaos-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")} | store.client_env("WORKER_")
    worker = WorkerProcess(ctx.kafka_env, ctx.model, topics["frames"], topics["results"], topics["dlq"], group,
                           ctx.out_dir / "evidence-worker.log", env=env, defaults=CHAOS_WORKER_DEFAULTS,
                           name="evidence-worker", instance_id="evidence-worker", evidence_sample_ok=SAMPLE_OK)
    prom = PrometheusServer(ctx.out_dir / f"prometheus-evidence-{uuid.uuid4().hex[:8]}", [f"127.0.0.1:{worker.port}"],
                            dict(os.environ), interval="1s")
    sim = None
    try:
        worker.wait_ready(120)
        prom.start()
        sim = _stream(ctx, topics, fps, "evidence")
        time.sleep(before_s)
        down_ns = time.time_ns()
        store.stop(kill=True)
        log(f"   evidence store killed; away for {outage_s:.0f} s")
        time.sleep(outage_s)
        store.start(timeout_s=120)
        up_ns = time.time_ns()
        log(f"   evidence store answering again after {(up_ns - down_ns) / 1e9:.0f} s")
        alert_deadline = time.monotonic() + 90.0  # `for: 1m` after the first missing evidence, 1 s evaluation
        time.sleep(after_s)
        wait_until(lambda: _alert_state(prom) in want_alert, max(0.0, alert_deadline - time.monotonic()), 1.0)
        alert = _alert_state(prom)
        summary = _end_stream(ctx, sim, "evidence")
        sim = None
        produced = record_count(ctx.client_kwargs, topics["frames"])
        reader = OutcomeReader(ctx.client_kwargs, topics)
        try:
            drained = reader.wait_for(produced, timeout_s=180, progress_timeout_s=60)
        finally:
            reader.close()
        written = wait_until(lambda: worker.metric("inspection_evidence_queue_frames") == 0
                             and worker.metric("inspection_evidence_store_up") == 1, 60)
        missing_metric = {r: worker.metric("inspection_evidence_missing_total", reason=r)
                          for r in ("store_down", "queue_full", "write_failed", "shutdown")}
        code = worker.stop(40)
    finally:
        if sim is not None:
            _end_stream(ctx, sim, "evidence")
        worker.stop()
        prom.stop()
    acc = account(ctx.client_kwargs, topics, False, group)
    events = [DefectEvent.model_validate(d) for d in read_to_end(ctx.client_kwargs, topics["results"])]
    keys = _stored_keys(store)
    store.stop(timeout_s=5)
    return _judge(acc, events, keys, down_ns, up_ns, alert, want_alert, drained, written, missing_metric, code,
                  summary, outage_s)


def _judge(acc, events, keys, down_ns, up_ns, alert, want_alert, drained, written, missing_metric, code, summary,
           outage_s) -> dict:
    grace_ns = int(RECOVERY_GRACE_S * 1e9)
    kept = [e for e in events if e.evidence is not None]
    missing = [e for e in kept if e.evidence.status.value == "missing"]
    queued = [e for e in kept if e.evidence.status.value == "queued"]
    outside = [e.event_id for e in missing if not down_ns <= e.timings.published_ns <= up_ns + grace_ns]
    absent = [e.event_id for e in queued
              if not {e.evidence.frame_key, e.evidence.overlay_key, e.evidence.event_key} <= keys]
    before = [e for e in queued if e.timings.published_ns < down_ns]
    resumed = [e for e in queued if e.timings.published_ns > up_ns + grace_ns]
    checks = {
        "nothing lost from the results topic": acc.ok and drained,
        "evidence missing only for frames published during the outage": not outside,
        "some evidence missing during the outage": bool(missing),
        "every queued event's objects are in the store": not absent,
        "writes resumed by themselves": bool(resumed) and written,
        f"{ALERT} {'/'.join(want_alert)} in Prometheus": alert in want_alert,
        "worker exit 0": code == 0,
    }
    failed = [name for name, ok in checks.items() if not ok]
    return {"scenario": f"evidence store away {outage_s:.0f} s", "passed": not failed,
            "check": f"{acc.line()}; evidence: {len(queued)} queued (all kept: {not absent}), {len(missing)} missing "
                     f"(outside the outage: {len(outside)}), {len(resumed)} queued after it; alert {alert}"
                     + (f"; FAILED: {failed}" if failed else ""),
            "checks": checks, "accounting": acc.to_dict(), "drained": drained, "evidence_frames": len(kept),
            "queued": len(queued), "queued_before_outage": len(before), "missing": len(missing),
            "missing_outside_outage": outside[:10], "queued_not_in_store": absent[:10],
            "queued_after_recovery": len(resumed), "missing_metric": missing_metric,
            "outage_s": round((up_ns - down_ns) / 1e9, 1), "alert": alert, "last_exit_code": code,
            "sim_lost": summary.get("lost") if isinstance(summary, dict) else None}

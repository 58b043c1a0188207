"""The demo's final summary, from the facts it collected (also written to run/demo/summary.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _simulator(sim: Optional[dict]) -> list[str]:
    if not sim:
        return ["simulator: no summary (it did not finish; see logs/simulator.log)"]
    bad = sum(sim.get("corrupt_by_kind", {}).values())
    return [f"simulator:   {sim['attempted']} frames sent by {sim['cameras']} cameras "
            f"({sim['achieved_rate']:.1f} frames/s), {bad} of them corrupt, acknowledged {sim['acked']}, "
            f"lost {sim['lost']}"]


def _watch(w: Optional[dict], sim: Optional[dict]) -> list[str]:
    if not w:
        return ["results:     no summary from `producer_sim watch` (see logs/watch.log)"]
    per_line = ", ".join(f"{name} {_pct(g['defect_rate'])}" for name, g in w["by_line"].items())
    lines = [f"throughput:  {w['results_per_s'] or 0:.1f} frames/s judged ({w['results']} results)",
             f"defect rate: {_pct(w['defect_rate'])}" + (f" ({per_line})" if per_line else "")]
    lat = w["latency_ms"]["capture_to_publish"]
    if lat["count"]:
        lines.append(f"latency:     capture -> result published p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, "
                     f"p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms")
    t = w["truth"]
    if t["frames_with_truth"]:
        lines.append(f"vs truth:    precision {_pct(t['precision'])}, recall {_pct(t['recall'])}, accuracy "
                     f"{_pct(t['accuracy'])} over {t['frames_with_truth']} frames "
                     f"(tp {t['tp']} fp {t['fp']} tn {t['tn']} fn {t['fn']})")
    reasons = ", ".join(f"{r} {n}" for r, n in w["dead_letters_by_reason"].items())
    lines.append(f"dead letters: {w['dead_letters']}" + (f" ({reasons})" if reasons else ""))
    if sim:
        lines.append(f"accounted:   {w['frames_accounted']} of {sim['acked']} frames sent have a result or a "
                     f"dead letter" + ("" if w["frames_accounted"] >= sim["acked"] else
                                       " (the rest were still queued when the demo stopped)"))
    if w.get("models"):
        lines.append("model:       " + ", ".join(f"{m} ({n} results)" for m, n in w["models"].items()))
    return lines


def format_summary(facts: dict, run_dir: Path) -> str:
    """Human-readable end-of-demo report."""
    lines = ["", f"=== line inspection demo: summary ({facts.get('elapsed_s', '?')} s) ==="]
    if facts.get("broker"):
        lines.append(f"broker:      {facts['broker']}")
    if "simulator" in facts:
        lines += _simulator(facts.get("simulator"))
    if "watch" in facts:
        lines += _watch(facts.get("watch"), facts.get("simulator"))
    wm = facts.get("worker_metrics") or {}
    if wm.get("batches"):
        lines.append(f"worker:      {wm['judged']} judged + {wm['dead_lettered']} dead-lettered in {wm['batches']} "
                     f"batches (mean {wm['mean_batch_frames']} frames); metrics were at {facts.get('metrics_url')}")
    prom = facts.get("prometheus")
    if prom:
        if "error" in prom:
            lines.append(f"prometheus:  {prom['url']}: {prom['error']}")
        else:
            lines.append(f"prometheus:  {prom['url']} scraped {prom['frames_judged']:.0f} judged frames; alerts "
                         f"pending/firing: {', '.join(prom['alerts']) or 'none'}")
    ev = facts.get("evidence")
    if ev:
        kept = f"{ev['events_kept']} frames kept ({ev['objects']} objects)" if "events_kept" in ev else ev.get("error")
        lines.append(f"evidence:    bucket {ev['bucket']} at {ev['endpoint']}: {kept}; data in {ev['data']}")
        lines.append(f"operator page: was at {ev.get('viewer_url') or '(did not start)'}; to look again: "
                     f"{ev['look_again']}")
    left = facts.get("left_running", [])
    stopped = ", ".join(facts.get("stopped", [])) or "nothing was started"
    lines.append(f"stopped:     {stopped}" + (f"; STILL RUNNING: {', '.join(left)}" if left else
                                              "; no process left behind"))
    lines.append(f"logs:        {run_dir / 'logs'}  (summary.json next to them)")
    if facts.get("interrupted"):
        lines.append("(interrupted by a signal)")
    return "\n".join(lines)

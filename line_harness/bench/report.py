"""The benchmark's ratios and its printed table (from the results dict run.py writes as JSON)."""

from __future__ import annotations

from typing import Optional


def _q(latency: dict, q: int):
    """A percentile from a latency dict whose keys are ints (live) or strings (read back from JSON)."""
    return latency.get(q, latency.get(str(q)))


def _best_ceiling(results: dict, backend: Optional[str] = None) -> Optional[dict]:
    rows = [r for r in results.get("ceiling", []) if backend is None or r["backend"] == backend]
    return max(rows, key=lambda r: r["frames_per_s"], default=None)


def _ceiling_at_batch(results: dict, worker: dict) -> Optional[dict]:
    """The model-alone row of the worker's backend at the worker's largest batch (else the next larger one)."""
    rows = [r for r in results.get("ceiling", []) if r["backend"] == worker["backend"] and r["batch"] >= worker["batch_max"]]
    return min(rows, key=lambda r: r["batch"], default=None)


def ratios(results: dict) -> dict:
    """worker/ceiling (same backend), worker/naive, and p99 against max_batch_wait_ms + 3 x batch time."""
    out: dict = {}
    worker = results.get("worker")
    if not worker:
        return out
    ceil = _best_ceiling(results, worker["backend"])
    if ceil:
        out["worker_over_ceiling"] = worker["frames_per_s"] / ceil["frames_per_s"]
        out["ceiling_used"] = {k: ceil[k] for k in ("backend", "batch", "frames_per_s")}
    worker_per_cpu = worker["frames_per_s"] / worker["cpu_cores"] if worker.get("cpu_cores") else None
    out["worker_frames_per_cpu_s"] = worker_per_cpu
    same = _ceiling_at_batch(results, worker)
    if same:  # the goal's measure: the worker against the model alone at the batch size the worker ran
        out["at_batch"] = {k: same[k] for k in ("backend", "batch", "frames_per_s", "frames_per_cpu_s")}
        out["worker_over_ceiling_at_batch"] = worker["frames_per_s"] / same["frames_per_s"]
        if worker_per_cpu and same.get("frames_per_cpu_s"):
            out["worker_over_ceiling_at_batch_per_cpu"] = worker_per_cpu / same["frames_per_cpu_s"]
    for row in results.get("pipeline_ceiling", []):
        out.setdefault("pipeline_over_decode", {})[row["encoding"]] = {
            "wall": row["worker_over_decode"], "per_cpu_s": row.get("worker_over_decode_per_cpu")}
    best_cpu = max((r for r in results.get("ceiling", []) if r.get("frames_per_cpu_s") and
                    r["backend"] == worker["backend"]), key=lambda r: r["frames_per_cpu_s"], default=None)
    if best_cpu and worker_per_cpu:
        out["worker_over_ceiling_per_cpu"] = worker_per_cpu / best_cpu["frames_per_cpu_s"]
    naive = results.get("naive")
    if naive and naive.get("frames_per_s"):
        out["worker_over_naive"] = worker["frames_per_s"] / naive["frames_per_s"]
        if naive.get("frames_per_cpu_s") and worker_per_cpu:
            out["worker_over_naive_per_cpu"] = worker_per_cpu / naive["frames_per_cpu_s"]
    lat = results.get("latency")
    if lat and _q(lat["latency_ms"], 99) is not None:
        wait = float(worker["settings"].get("max_batch_wait_ms", 20.0))
        batch_ms = worker["full_batch_inference_ms_p50"]
        bound = wait + 3 * batch_ms
        out["p99_ms"] = _q(lat["latency_ms"], 99)
        out["p99_bound_ms"] = bound
        out["p99_bound_formula"] = f"max_batch_wait_ms {wait:g} + 3 x full-batch inference {batch_ms:.0f} ms"
        out["p99_within_bound"] = out["p99_ms"] <= bound
    return out


def _f(x, spec=".1f") -> str:
    return "-" if x is None else format(x, spec)


def format_table(results: dict) -> str:
    """The human-readable summary printed at the end of a run."""
    m = results["machine"]
    lines = [f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, GPU: {'yes' if m['gpu'] else 'no'}; "
             f"load average at start {m['load_average_at_start'][0]:.1f}", f"model: {results['model']}", ""]
    if results.get("ceiling"):
        lines.append("ceiling (model alone, decoded frames)   frames/s   ms/batch")
        for r in results["ceiling"]:
            lines.append(f"  {r['backend']:10s} batch {r['batch']:3d}            {r['frames_per_s']:8.1f}   "
                         f"{r['batch_ms_mean']:8.1f}")
    w = results.get("worker")
    if w:
        lines += ["", f"worker ({w['frames']} frames, cold start {w['ready_s']:.1f} s to ready): "
                      f"{w['frames_per_s']:.1f} frames/s, backend {w['backend']}, batch mean {w['batch_mean']:.1f} "
                      f"(max {w['batch_max']}), full batch {w['full_batch_inference_ms_p50']:.0f} ms, "
                      f"CPU {_f(w['cpu_cores'], '.2f')} cores, RSS max {_f(w['rss_mb_max'], '.0f')} MB"]
    n = results.get("naive")
    if n:
        lines.append(f"naive ({n['frames']} frames one at a time): {n['frames_per_s']:.2f} frames/s, "
                     f"backend {n['backend']}")
    lat = results.get("latency")
    if lat:
        q = {k: _q(lat["latency_ms"], k) for k in (50, 95, 99)}
        lines.append(f"latency at {lat['offered_fps']:.1f} frames/s offered for {lat['seconds']:.0f} s "
                     f"({lat['judged']} frames): capture->publish p50 {_f(q[50], '.0f')} p95 {_f(q[95], '.0f')} "
                     f"p99 {_f(q[99], '.0f')} ms, batch mean {_f(lat['batch_mean'])}, CPU {_f(lat['cpu_cores'], '.2f')}"
                     f" cores, RSS {_f(lat['rss_mb_max'], '.0f')} MB")
    if results.get("sweep"):
        lines += ["", "sweep  max_batch_size  max_batch_wait_ms  backlog frames/s  live batch  p50 ms  p99 ms"]
        for p in results["sweep"]:
            s, q = p["settings"], {k: _q(p["latency_ms"], k) for k in (50, 99)}
            lines.append(f"       {s['max_batch_size']:14d}  {s['max_batch_wait_ms']:17g}  "
                         f"{_f(p['backlog_frames_per_s']):>16s}  {_f(p['batch_mean']):>10s}  {_f(q[50], '.0f'):>6s}  "
                         f"{_f(q[99], '.0f'):>6s}")
    r = results.get("ratios", {})
    if r:
        at = r.get("at_batch")
        if at:
            lines += ["", f"worker / model alone at the worker's batch ({at['backend']} batch {at['batch']}): wall clock "
                          f"{r['worker_over_ceiling_at_batch']:.2f}, per CPU-second "
                          f"{_f(r.get('worker_over_ceiling_at_batch_per_cpu'), '.2f')} (goal >= 0.9); worker "
                          f"{_f(r['worker_frames_per_cpu_s'])} frames per CPU-second, model alone "
                          f"{_f(at['frames_per_cpu_s'])}"]
        for enc, pc in r.get("pipeline_over_decode", {}).items():
            lines.append(f"pipeline ceiling {enc} (null-model worker / decode-only): wall clock {pc['wall']:.2f}, "
                         f"per CPU-second {_f(pc['per_cpu_s'], '.2f')} (goal >= 0.85 on PNG)")
        lines += ["", "ratios: " + ", ".join(filter(None, [
            f"worker/ceiling {r['worker_over_ceiling']:.2f} (vs {r['ceiling_used']['backend']} batch "
            f"{r['ceiling_used']['batch']})" if "worker_over_ceiling" in r else None,
            f"per CPU-second {r['worker_over_ceiling_per_cpu']:.2f}" if "worker_over_ceiling_per_cpu" in r else None,
            f"worker/naive {r['worker_over_naive']:.1f}x" if "worker_over_naive" in r else None,
            f"per CPU-second {r['worker_over_naive_per_cpu']:.1f}x" if "worker_over_naive_per_cpu" in r else None,
            f"p99 at {results.get('latency', {}).get('offered_fps', 0):.1f} frames/s offered {r['p99_ms']:.0f} ms vs "
            f"bound {r['p99_bound_ms']:.0f} ms ({r['p99_bound_formula']}): "
            f"{'within' if r['p99_within_bound'] else 'OVER'}"
            if "p99_ms" in r else None]))]
    return "\n".join(lines)

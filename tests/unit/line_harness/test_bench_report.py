"""The benchmark report's ratios: worker against the model alone at its own batch size, pipeline ceiling, p99 bound."""

from __future__ import annotations

from line_harness.bench.report import format_table, ratios


def _results():
    ceiling = [{"backend": "litert", "batch": b, "frames_per_s": f, "frames_per_cpu_s": c, "batch_ms_mean": 1000 * b / f}
               for b, f, c in ((1, 20.0, 20.0), (4, 18.0, 18.0), (32, 13.0, 13.5))]
    worker = {"frames": 600, "ready_s": 5.0, "frames_per_s": 9.0, "backend": "litert", "batch_mean": 3.9,
              "batch_max": 4, "full_batch_inference_ms_p50": 400.0, "cpu_cores": 0.6, "rss_mb_max": 500.0,
              "settings": {}}
    latency = {"offered_fps": 6.3, "seconds": 20, "judged": 120, "latency_ms": {"50": 300, "95": 900, "99": 1100},
               "batch_mean": 2.0, "cpu_cores": 0.5, "rss_mb_max": 480.0}
    pipeline = [{"encoding": "png", "worker_over_decode": 0.86, "worker_over_decode_per_cpu": 0.81}]
    machine = {"cpus": 2, "cpu_model": "x", "memory_gib": 8, "gpu": False, "load_average_at_start": (1.0, 1.0, 1.0)}
    return {"machine": machine, "model": "m", "ceiling": ceiling, "worker": worker, "latency": latency,
            "pipeline_ceiling": pipeline}


def test_worker_is_compared_with_the_model_alone_at_its_own_batch_size():
    results = _results()
    r = ratios(results)
    assert r["at_batch"]["batch"] == 4
    assert r["worker_over_ceiling_at_batch"] == 9.0 / 18.0
    assert r["worker_over_ceiling_at_batch_per_cpu"] == (9.0 / 0.6) / 18.0
    assert r["worker_over_ceiling"] == 9.0 / 20.0  # the best point stays reported
    assert r["pipeline_over_decode"]["png"] == {"wall": 0.86, "per_cpu_s": 0.81}
    assert r["p99_bound_ms"] == 20.0 + 3 * 400.0 and r["p99_within_bound"]
    results["ratios"] = r
    table = format_table(results)
    assert "at the worker's batch (litert batch 4): wall clock 0.50, per CPU-second 0.83" in table
    assert "pipeline ceiling png" in table and "within" in table


def test_a_worker_batch_larger_than_every_ceiling_row_gives_no_at_batch_ratio():
    results = _results()
    results["worker"]["batch_max"] = 64
    r = ratios(results)
    assert "worker_over_ceiling_at_batch" not in r and "worker_over_ceiling" in r
    results["ratios"] = r
    assert "at the worker's batch" not in format_table(results)

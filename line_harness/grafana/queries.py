"""PromQL behind every dashboard panel, kept apart from the layout (build.py) so both stay readable.

Each entry maps a panel key to its targets: (legend, expr). Grafana variables used: $namespace, $job
(every query is scoped to them, so two releases never mix), $line, $camera, $instance, $__rate_interval,
$__range. Metric names are the worker's, exactly (see docs/observability.md), plus the NVIDIA DCGM
exporter's GPU metrics (DCGM_FI_DEV_*), joined to the worker pods by (namespace, pod).
"""

from __future__ import annotations

# Every worker series is selected by release: the namespace and the scrape job (the worker Service name).
SCOPE = 'namespace=~"$namespace", job=~"$job"'
LINE = f'{SCOPE}, line=~"$line"'
CAM = 'camera=~"$camera"'
INST = f'{SCOPE}, instance=~"$instance"'
RATE = "[$__rate_interval]"
# DCGM exporter series carry the GPU's pod and namespace (its Kubernetes mapping on, scraped with
# honorLabels); `and on (namespace, pod)` keeps the GPUs of the selected workers only.
WORKER_PODS = 'inspection_ready{namespace=~"$namespace", job=~"$job", instance=~"$instance"}'


def _sel(metric: str, selector: str) -> str:
    return f"{metric}{{{selector}}}" if selector else f"{metric}{{{SCOPE}}}"


def gpu(metric: str, agg: str) -> str:
    """A DCGM metric per worker pod of the selected release."""
    return f'{agg} by (pod) ({metric}{{namespace=~"$namespace"}} and on (namespace, pod) {WORKER_PODS})'


def quantiles(metric: str, selector: str, by: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[tuple[str, str]]:
    """One histogram_quantile target per quantile of `metric` (a histogram's base name)."""
    group = f"le, {by}" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [(f"{prefix}p{int(q * 100)}",
             f"histogram_quantile({q}, sum by ({group}) (rate({_sel(metric + '_bucket', selector)}{RATE})))")
            for q in qs]


def mean(metric: str, selector: str, by: str = "") -> str:
    """Mean of a histogram over the rate window: rate(sum) / rate(count)."""
    grp = f" by ({by})" if by else ""
    return (f"sum{grp} (rate({_sel(metric + '_sum', selector)}{RATE})) / "
            f"sum{grp} (rate({_sel(metric + '_count', selector)}{RATE}))")


def _truth(verdict: str = "", truth: str = "") -> str:
    parts = [LINE] + ([f'verdict="{verdict}"'] if verdict else []) + ([f'truth="{truth}"'] if truth else [])
    return f"sum(increase(inspection_verdict_truth_total{{{', '.join(parts)}}}[$__range]))"


OVERVIEW: dict[str, list[tuple[str, str]]] = {
    "frames_per_second": [
        ("frames/s", f"sum(rate(inspection_frames_judged_total{{{LINE}, {CAM}}}{RATE}))")],
    "defect_rate_total": [
        ("defect rate", f'sum(rate(inspection_frames_judged_total{{verdict="defect", {LINE}, {CAM}}}{RATE})) / '
                        f"sum(rate(inspection_frames_judged_total{{{LINE}, {CAM}}}{RATE}))")],
    "p99_latency": quantiles("inspection_capture_to_publish_seconds", LINE, qs=(0.99,)),
    "ready_workers": [("ready", f"sum(inspection_ready{{{SCOPE}}})"), ("running", f"count(up{{{SCOPE}}} == 1)")],
    "precision": [("precision", f'{_truth("defect", "defect")} / {_truth(verdict="defect")}')],
    "recall": [("recall", f'{_truth("defect", "defect")} / {_truth(truth="defect")}')],
    "throughput": [
        ("{{line}} / {{camera}}",
         f"sum by (line, camera) (rate(inspection_frames_consumed_total{{{LINE}, {CAM}}}{RATE}))")],
    "defect_rate": [
        ("{{line}} / {{camera}}",
         f'sum by (line, camera) (rate(inspection_frames_judged_total{{verdict="defect", {LINE}, {CAM}}}{RATE})) / '
         f"sum by (line, camera) (rate(inspection_frames_judged_total{{{LINE}, {CAM}}}{RATE}))")],
    "latency": quantiles("inspection_capture_to_publish_seconds", LINE),
    "latency_by_line": quantiles("inspection_capture_to_publish_seconds", LINE, by="line", qs=(0.99,)),
    "batch_size": [("mean", mean("inspection_batch_size_frames", ""))]
    + quantiles("inspection_batch_size_frames", "", qs=(0.5, 0.95)),
    "consumer_lag": [("{{topic}}[{{partition}}]",
                      f"max by (topic, partition) (inspection_consumer_lag_records{{{SCOPE}}})")],
    "dead_letters": [("{{reason}}", f"sum by (reason) (rate(inspection_frames_dead_lettered_total{{{SCOPE}}}{RATE}))")],
    "dead_letters_range": [("{{reason}}",
                            f"sum by (reason) (increase(inspection_frames_dead_lettered_total{{{SCOPE}}}[$__range]))")],
    "model_version": [("{{name}} v{{version}} ({{backend}})",
                       f"count by (name, version, backend) (inspection_model_info{{{SCOPE}}})")],
    "defect_score": quantiles("inspection_defect_score", LINE, by="line", qs=(0.5, 0.95)),
    "precision_recall_by_line": [
        ("{{line}} precision",
         f'sum by (line) (increase(inspection_verdict_truth_total{{verdict="defect", truth="defect", {LINE}}}[$__range])) / '
         f'sum by (line) (increase(inspection_verdict_truth_total{{verdict="defect", {LINE}}}[$__range]))'),
        ("{{line}} recall",
         f'sum by (line) (increase(inspection_verdict_truth_total{{verdict="defect", truth="defect", {LINE}}}[$__range])) / '
         f'sum by (line) (increase(inspection_verdict_truth_total{{truth="defect", {LINE}}}[$__range]))'),
    ],
    # Defect frames in the time range by the 4x4 cell of the frame holding their strongest region
    # (worker/regions.py); the panel pivots (row, col) into a grid.
    "defect_regions": [("row {{row}} col {{col}}",
                        f"sum by (row, col) (increase(inspection_defect_regions_total{{{LINE}}}[$__range]))")],
}

INTERNALS: dict[str, list[tuple[str, str]]] = {
    "decode": quantiles("inspection_decode_seconds", INST),
    "inference": quantiles("inspection_inference_seconds", INST),
    "queue_wait": quantiles("inspection_queue_wait_seconds", INST),
    "batch_fill": [("{{instance}}", mean("inspection_batch_size_frames", INST, by="instance"))],
    "batch_size_heatmap": [("{{le}}", f"sum by (le) (increase(inspection_batch_size_frames_bucket{{{INST}}}{RATE}))")],
    "pod_throughput": [("{{instance}}", f"sum by (instance) (rate(inspection_frames_consumed_total{{{INST}}}{RATE}))")],
    "pod_inference_p95": [("{{instance}}", "histogram_quantile(0.95, sum by (le, instance) "
                                           f"(rate(inspection_inference_seconds_bucket{{{INST}}}{RATE})))")],
    "pod_inference_mean_per_frame": [
        ("{{instance}}", f"sum by (instance) (rate(inspection_inference_seconds_sum{{{INST}}}{RATE})) / "
                         f"sum by (instance) (rate(inspection_batch_size_frames_sum{{{INST}}}{RATE}))")],
    "pod_ready_paused": [("{{instance}} ready", f"inspection_ready{{{INST}}}"),
                         ("{{instance}} paused", f"inspection_paused{{{INST}}}")],
    "pod_lag": [("{{instance}}", f"sum by (instance) (inspection_consumer_lag_records{{{INST}}})")],
    "publish_commit": [("{{instance}} commits/s", f"sum by (instance) (rate(inspection_commits_total{{{INST}}}{RATE}))"),
                       ("{{instance}} publish retries/s",
                        f"sum by (instance) (rate(inspection_publish_retries_total{{{INST}}}{RATE}))")],
    "model_reloads": [("{{instance}} {{result}}",
                       f"sum by (instance, result) (increase(inspection_model_reloads_total{{{INST}}}[$__range]))")],
    # GPU or host side? High GPU utilisation with lag means the GPU is the limit; low utilisation with
    # lag points at decode, batching or the broker (compare with decode and queue wait above).
    "gpu_utilisation": [("{{pod}}", gpu("DCGM_FI_DEV_GPU_UTIL", "avg"))],
    "gpu_memory": [("{{pod}} used", gpu("DCGM_FI_DEV_FB_USED", "sum")),
                   ("{{pod}} total", f'{gpu("DCGM_FI_DEV_FB_USED", "sum")} + {gpu("DCGM_FI_DEV_FB_FREE", "sum")}')],
}

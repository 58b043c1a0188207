"""Build the Grafana dashboards (dashboards/*.json) from queries.py plus the layout below.

Run python -m line_harness.grafana.build` after changing a query or the layout; `--check` exits 1 when the
committed JSON differs from what this script generates (tests/test_dashboards.py runs the same check).
The JSON is committed so Grafana provisioning, the compose stack and the Helm chart need no Python.
"""

from __future__ import annotations

import argparse
import json
import sys

from line_harness.grafana import queries
from line_harness.paths import REPO

OUT_DIR = REPO / "deploy" / "grafana" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}

# Panel layout: rows of (query key, title, panel type, unit, width). Heights are per row.
OVERVIEW_LAYOUT = [
    (4, [("frames_per_second", "Frames judged per second", "stat", "fps", 4),
         ("defect_rate_total", "Defect rate", "stat", "percentunit", 4),
         ("p99_latency", "p99 capture-to-result", "stat", "s", 4),
         ("ready_workers", "Workers ready / running", "stat", "none", 4),
         ("precision", "Live precision (frames with ground truth)", "stat", "percentunit", 4),
         ("recall", "Live recall (frames with ground truth)", "stat", "percentunit", 4)]),
    (8, [("throughput", "Throughput per line / camera", "timeseries", "fps", 12),
         ("defect_rate", "Defect rate per line / camera", "timeseries", "percentunit", 12)]),
    (8, [("latency", "Capture-to-result latency (all selected lines)", "timeseries", "s", 12),
         ("latency_by_line", "p99 capture-to-result per line", "timeseries", "s", 12)]),
    (8, [("batch_size", "Batch size (frames)", "timeseries", "none", 8),
         ("consumer_lag", "Consumer lag per partition (records)", "timeseries", "short", 8),
         ("dead_letters", "Dead letters per second by reason", "timeseries", "short", 8)]),
    (8, [("model_version", "Model version served (pods)", "table", "none", 8),
         ("dead_letters_range", "Dead letters in the time range by reason", "bargauge", "short", 8),
         ("defect_score", "Defect score per line", "timeseries", "none", 8)]),
    (8, [("precision_recall_by_line", "Live precision / recall per line (time range)", "bargauge",
          "percentunit", 12),
         ("defect_regions", "Defects by region of the frame (4x4 grid, time range)", "grid", "short", 12)]),
]

INTERNALS_LAYOUT = [
    (8, [("decode", "Decode time per frame", "timeseries", "s", 8),
         ("inference", "Inference time per batch", "timeseries", "s", 8),
         ("queue_wait", "Queue wait before inference", "timeseries", "s", 8)]),
    (8, [("batch_fill", "Batch fill: mean frames per batch, per pod", "timeseries", "none", 12),
         ("batch_size_heatmap", "Batch size distribution", "heatmap", "none", 12)]),
    (8, [("pod_throughput", "Frames consumed per second, per pod", "timeseries", "fps", 8),
         ("pod_inference_p95", "p95 inference time per batch, per pod", "timeseries", "s", 8),
         ("pod_inference_mean_per_frame", "Mean inference time per frame, per pod", "timeseries", "s", 8)]),
    (8, [("pod_ready_paused", "Ready / paused by backpressure, per pod", "timeseries", "none", 8),
         ("pod_lag", "Consumer lag owned, per pod", "timeseries", "short", 8),
         ("publish_commit", "Commits and publish retries per second", "timeseries", "short", 8)]),
    (8, [("gpu_utilisation", "GPU utilisation per worker pod (DCGM exporter)", "timeseries", "percent", 12),
         ("gpu_memory", "GPU memory per worker pod (DCGM exporter)", "timeseries", "decmbytes", 12)]),
    (8, [("model_reloads", "Model reloads in the time range", "bargauge", "short", 24)]),
]


def _variable_query(name: str, label: str, query: str, include_all: bool = True) -> dict:
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"{name}-values", "qryType": 1},
        "definition": query, "refresh": 2, "sort": 1, "multi": True, "includeAll": include_all,
        "allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


def _datasource_variable() -> dict:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": ""}


def _panel(panel_id: int, key: str, title: str, kind: str, unit: str, grid: dict,
           targets: list[tuple[str, str]]) -> dict:
    panel = {
        "id": panel_id, "type": kind, "title": title, "datasource": DS, "gridPos": grid,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                     "range": kind not in ("table",), "instant": kind == "table"}
                    for i, (legend, expr) in enumerate(targets)],
        "description": f"query key: {key} (line_harness/grafana/queries.py)",
        "options": {},
    }
    if kind == "stat":
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area"}
    elif kind == "bargauge":
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "orientation": "horizontal", "displayMode": "gradient"}
        panel["targets"] = [dict(t, range=False, instant=True) for t in panel["targets"]]
    elif kind == "heatmap":
        panel["targets"] = [dict(t, format="heatmap") for t in panel["targets"]]
        panel["options"] = {"calculate": False, "yAxis": {"unit": unit}}
    elif kind == "table":
        panel["transformations"] = [{"id": "labelsToFields", "options": {"mode": "columns"}}]
    elif kind == "grid":
        _grid_table(panel)
    return panel


def _grid_table(panel: dict) -> None:
    """A table whose rows and columns are the `row` and `col` labels (a frame seen as a 4x4 grid),
    cells coloured by count: a defect that keeps landing in one cell points at a machine upstream."""
    panel["type"] = "table"
    panel["targets"] = [dict(t, range=False, instant=True, format="table") for t in panel["targets"]]
    panel["transformations"] = [
        {"id": "groupingToMatrix", "options": {"columnField": "col", "rowField": "row", "valueField": "Value",
                                               "emptyValue": "zero"}},
        {"id": "sortBy", "options": {"sort": [{"field": "row\\col"}]}},
    ]
    panel["fieldConfig"]["defaults"].update({
        "custom": {"align": "center", "cellOptions": {"type": "color-background", "mode": "gradient"}},
        "color": {"mode": "continuous-YlRd"},
    })
    panel["options"] = {"showHeader": True, "cellHeight": "lg"}
    panel["description"] += ("; rows: frame row 0 (top) to 3, columns: frame column 0 (left) to 3; cells: defect "
                             "frames whose strongest region is centred there")


def build_dashboard(uid: str, title: str, layout: list, query_set: dict, variables: list[dict],
                    description: str) -> dict:
    """A complete Grafana dashboard model: panels placed row by row from `layout`."""
    panels, y, panel_id = [], 0, 1
    for height, row in layout:
        x = 0
        for key, ptitle, kind, unit, width in row:
            grid = {"x": x, "y": y, "w": width, "h": height}
            panels.append(_panel(panel_id, key, ptitle, kind, unit, grid, query_set[key]))
            x, panel_id = x + width, panel_id + 1
        y += height
    return {
        "uid": uid, "title": title, "description": description, "tags": ["line-inspection"],
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "10s", "timezone": "browser",
        "templating": {"list": variables}, "annotations": {"list": []}, "links": [
            {"title": "Line inspection", "type": "dashboards", "tags": ["line-inspection"], "asDropdown": False}],
        "panels": panels,
    }


def dashboards() -> dict[str, dict]:
    """File name -> dashboard model for every dashboard we ship."""
    # namespace and job pick one release (or several); every panel query is scoped to them. The dropdowns
    # themselves list values of all releases: tests/integration/deploy/test_e2e_prometheus.py resolves a
    # variable query with only $line filled in, so only $camera may depend on another variable.
    namespace_var = _variable_query("namespace", "Namespace", "label_values(inspection_ready, namespace)")
    job_var = _variable_query("job", "Release (job)", "label_values(inspection_ready, job)")
    line_var = _variable_query("line", "Line", "label_values(inspection_frames_consumed_total, line)")
    camera_var = _variable_query("camera", "Camera",
                                 'label_values(inspection_frames_consumed_total{line=~"$line"}, camera)')
    instance_var = _variable_query("instance", "Worker pod", "label_values(inspection_ready, instance)")
    return {
        "line-overview.json": build_dashboard(
            "line-inspection-overview", "Line inspection / Line overview", OVERVIEW_LAYOUT, queries.OVERVIEW,
            [_datasource_variable(), namespace_var, job_var, line_var, camera_var],
            "Throughput, defects, latency, lag, dead letters and live precision/recall of the inspection line."),
        "worker-internals.json": build_dashboard(
            "line-inspection-internals", "Line inspection / Worker internals", INTERNALS_LAYOUT, queries.INTERNALS,
            [_datasource_variable(), namespace_var, job_var, instance_var],
            "Where a worker spends its time (decode, queue, inference), how full its batches are, pod by pod."),
    }


def render(model: dict) -> str:
    """The exact text committed for a dashboard model (stable key order, trailing newline)."""
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write dashboards/*.json, or with --check report which committed files are stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, model in dashboards().items():
        path, text = OUT_DIR / name, render(model)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python -m line_harness.grafana.build): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

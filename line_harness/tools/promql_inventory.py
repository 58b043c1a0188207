"""Every PromQL expression we ship (dashboard panels, recording rules, alert rules), for tests that run
them against a live Prometheus.

Use from a test:
    from line_harness.tools.promql_inventory import all_expressions
    for e in all_expressions(): ...   # e.source, e.name, e.expr, e.must_return_data

Grafana variables are replaced by `variables` (default: all lines/cameras/pods, 1m rate window, 5m range).
Alert conditions are empty on a healthy system, so they only have to evaluate without error
(must_return_data False); their signals are recording rules, which must return data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from line_harness.paths import REPO

DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
RULES = REPO / "deploy" / "prometheus" / "rules"
VARIABLE_DEFAULTS = {"$__rate_interval": "1m", "$__range": "5m", "$line": ".*", "$camera": ".*", "$instance": ".*",
                     "$namespace": ".*", "$job": ".*"}
# Series from other exporters than the worker (the DCGM exporter's GPU metrics): a panel on them may be
# empty where that exporter does not run (no GPU, the local demo), so it only has to evaluate.
EXTERNAL_METRIC_PREFIXES = ("DCGM_",)


@dataclass(frozen=True)
class PromQLExpression:
    """One expression and where it comes from."""

    source: str            # file it lives in, relative to the repository
    name: str              # panel title + legend, recording rule name, or alert name
    expr: str              # ready to send to /api/v1/query (variables replaced)
    must_return_data: bool  # a panel or a recording rule that is empty on a running system is a bug


def substitute(expr: str, variables: dict[str, str] | None = None) -> str:
    """Replace Grafana variables, longest name first so $__range does not eat $__rate_interval."""
    values = {**VARIABLE_DEFAULTS, **(variables or {})}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    return expr


def dashboard_expressions(variables: dict[str, str] | None = None, external: bool = False) -> list[PromQLExpression]:
    """Every panel target of every committed dashboard on the worker's series; with `external`, also the
    panels on other exporters' series (DCGM GPU panels), which a stack without that exporter leaves empty."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        model = json.loads(path.read_text())
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                other_exporter = any(prefix in target["expr"] for prefix in EXTERNAL_METRIC_PREFIXES)
                if other_exporter and not external:
                    continue
                out.append(PromQLExpression(str(path.relative_to(REPO)),
                                            f"{model['uid']} / {panel['title']} / {target['legendFormat']}",
                                            substitute(target["expr"], variables), not other_exporter))
    return out


def rule_expressions() -> list[PromQLExpression]:
    """Every recording rule (must return data) and alert condition (may be empty) in deploy/prometheus/rules."""
    out = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                recording = "record" in rule
                out.append(PromQLExpression(str(path.relative_to(REPO)), rule.get("record") or rule["alert"],
                                            rule["expr"].strip(), recording))
    return out


def all_expressions(variables: dict[str, str] | None = None, external: bool = False) -> list[PromQLExpression]:
    """Dashboard targets plus rule expressions (`external`: see dashboard_expressions)."""
    return dashboard_expressions(variables, external) + rule_expressions()


if __name__ == "__main__":
    for e in all_expressions():
        print(f"{'DATA ' if e.must_return_data else 'EVAL '} {e.name}\n      {e.expr}")

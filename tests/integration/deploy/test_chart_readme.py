"""The chart README is generated from values.yaml comments (line_harness/tools/chart_readme.py) and current."""

from __future__ import annotations

import subprocess
import sys

from line_harness.paths import REPO
from line_harness.tools.chart_readme import README, documented_values, render_readme
from line_harness.tools.chart_render import CHART


def test_committed_readme_is_current():
    proc = subprocess.run([sys.executable, "-m", "line_harness.tools.chart_readme", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert README.read_text() == render_readme()


def test_every_documented_value_is_a_row_with_its_default():
    text = (CHART / "values.yaml").read_text()
    docs = documented_values(text)
    assert len(docs) == text.count("# --")  # no `# --` comment is lost
    readme = README.read_text()
    for v in docs:
        assert f"| `{v.key}` |" in readme, v.key
    keys = {v.key: v for v in docs}
    assert keys["kafka.framesPartitions"].default == 6
    assert keys["global.imageRegistry"].description.startswith("Registry for every image")
    assert keys["autoscaling.keda.fallback.replicas"].default == 2


def test_comment_parsing_follows_nesting_and_continuation_lines():
    text = "a:\n  # -- first line\n  # second line\n  b: 1\n  # plain comment, not documentation\n  c: 2\n# -- top\nd: [x]\n"
    docs = documented_values(text)
    assert [(v.key, v.default, v.description) for v in docs] == [
        ("a.b", 1, "first line second line"), ("d", ["x"], "top")]

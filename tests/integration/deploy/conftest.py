"""Fixtures of the chart tests: the chart rendered once per session with the real helm."""

import pytest

from line_harness.tools.chart_render import render_scenarios


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Every ci/ scenario plus the minimal values, rendered once."""
    return render_scenarios()

"""The regions cost benchmark's summary: medians per configuration and the two ratios the goal is read from."""

from __future__ import annotations

import pytest

from line_harness.bench.regions import format_summary, summarise


def _run(rate, config, cpu, share=0.05):
    return {"defect_rate": rate, "config": config, "cpu_ms_per_frame": cpu, "defect_share": share}


def test_summary_takes_medians_and_gives_on_over_off_and_on_over_no_map():
    runs = [_run(0.05, "no-map", c) for c in (10.0, 12.0, 11.0)] + [_run(0.05, "off", c) for c in (11.0, 50.0, 11.0)] \
        + [_run(0.05, "on", c) for c in (12.1, 12.1, 9.0)]
    (row,) = summarise(runs)
    assert row["cpu_ms_per_frame"] == {"no-map": 11.0, "off": 11.0, "on": 12.1}  # one outlier does not move a median
    assert row["on_over_off"] == pytest.approx(1.1) and row["on_over_no_map"] == pytest.approx(1.1)
    text = format_summary({"frames": 3, "models": {"map": "a", "no-map": "b"}, "summary": [row],
                           "load_average_at_start": (1.0,), "load_average_at_end": (2.0,)})
    assert "1.100" in text and "5%" in text

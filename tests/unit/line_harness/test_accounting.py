"""The fault suite's check and rate (no broker): what counts as a pass."""

from __future__ import annotations

from line_harness.chaos.accounting import Accounting
from line_harness.chaos.scenarios import steady_rate


def test_accounting_flags_loss_duplicates_and_overlap():
    base = dict(produced=10, judged=9, dead_lettered=1, lost=0, result_records=9, duplicates=0,
                judged_and_dead=0, unknown=0, exactly_once=True)
    assert Accounting(**base).ok
    assert not Accounting(**{**base, "judged": 8, "lost": 1}).ok
    assert not Accounting(**{**base, "duplicates": 2, "result_records": 11}).ok
    assert Accounting(**{**base, "duplicates": 2, "result_records": 11, "exactly_once": False}).ok
    assert not Accounting(**{**base, "judged_and_dead": 1}).ok


def test_steady_rate_leaves_out_a_slow_start_and_tail():
    stamps = [0, 5_000_000_000] + [6_000_000_000 + i * 10_000_000 for i in range(100)] + [20_000_000_000]
    assert 95 <= steady_rate(stamps) <= 105  # 100 events/s in the middle, whatever the ends do
    assert steady_rate(stamps[:5]) == 0.0

"""available_cpus: the affinity, capped by a container's CPU quota (cgroup v2 or v1), read from files we write."""

from __future__ import annotations

import os

from line_runtime.cpus import available_cpus


def test_the_affinity_capped_by_a_cgroup_quota(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("max 100000\n")
    assert available_cpus(v2) == cpus  # no limit: the affinity
    (v2 / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(v2) == 1  # half a CPU: one thread
    (v2 / "cpu.max").write_text(f"{100000 * (cpus + 5)} 100000\n")
    assert available_cpus(v2) == cpus  # a limit above the affinity changes nothing
    (v2 / "cpu.max").write_text("garbage\n")
    assert available_cpus(v2) == cpus  # unreadable: the affinity alone
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path / "v1") == cpus
    (v1 / "cpu.cfs_quota_us").write_text("150000\n")
    assert available_cpus(tmp_path / "v1") == min(cpus, 2)  # 1.5 CPUs: two threads, never more than the affinity
    assert available_cpus(tmp_path / "none") == cpus  # no cgroup files: the affinity

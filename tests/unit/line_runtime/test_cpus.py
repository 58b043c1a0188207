"""available_cpus: the affinity, capped by a container's CPU quota (cgroup v2 or v1), read from files we write;
configure_tensorflow_threads in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

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


def test_tensorflow_threads_are_capped_before_its_first_op_and_left_alone_after():
    # A fresh interpreter: TensorFlow's thread settings are per process and fixed once it runs.
    code = ("from line_runtime.cpus import configure_tensorflow_threads as c\n"
            "import tensorflow as tf\n"
            "first = c(3)\n"
            "tf.constant(1.0) + 1.0\n"
            "print(first, c(5), tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False", "3", "1"]

"""How many CPUs this process may really use: its affinity, capped by a container's CPU quota.

Both training (TensorFlow's threads) and the worker (the LiteRT interpreter's, or TensorFlow's on a CPU) size
their thread pools by it. A pod limited to 4 CPUs on a 64-core node still sees 64 cores in `os.cpu_count()`; 64 threads
there are throttled by the quota and run slower than 4.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def available_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: its CPU affinity, capped by the cgroup's CPU quota (v2 or v1), at least 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = None
    try:
        if (cgroup / "cpu.max").is_file():  # v2: "max 100000" or "<quota> <period>"
            limit, period = (cgroup / "cpu.max").read_text().split()[:2]
            quota = None if limit == "max" else float(limit) / float(period)
        elif (cgroup / "cpu" / "cpu.cfs_quota_us").is_file():  # v1: -1 = no limit
            limit = float((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
            quota = None if limit <= 0 else limit / float((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        quota = None  # unreadable: the affinity alone
    return max(1, min(cpus, math.ceil(quota))) if quota else max(1, cpus)


def configure_tensorflow_threads(threads: int) -> bool:
    """Cap TensorFlow's CPU threads at `threads` (ops one at a time, each on up to `threads` threads).

    Must run before TensorFlow's first op: its own default is every core it sees, which in a container
    without a CPU limit is every core of the node. Returns False (settings unchanged) when TensorFlow was
    already initialised in this process.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        return False
    return True

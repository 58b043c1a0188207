"""Measure broker start-to-ready: jar fetch into an empty Maven repo (cold), then start/restart per mode.

    .venv/bin/python -m line_harness.kafka.measure_start [--keep-m2]

Uses its own jar dir, Maven repository and run dirs (all removed afterwards), so it never touches
the project's jars or a running broker. Downloads ~43 MB from Maven Central unless --keep-m2.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from line_harness.kafka.broker import LocalKafka, fetch_jars
from line_harness.paths import REPO


def main(argv: list[str]) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="kafka-measure-"))
    jars, run_dir = scratch / "jars", REPO / "run" / f"measure-{os.getpid()}"
    if "--keep-m2" not in argv:  # an empty local Maven repository: a fresh machine's first fetch
        os.environ["MAVEN_OPTS"] = f"{os.environ.get('MAVEN_OPTS', '')} -Dmaven.repo.local={scratch / 'm2'}"
    try:
        t0 = time.monotonic()
        fetch_jars(jars)
        print(f"jar fetch: {time.monotonic() - t0:.1f} s", flush=True)
        t0 = time.monotonic()
        fetch_jars(jars)
        print(f"jar fetch when present: {time.monotonic() - t0:.2f} s", flush=True)
        for security in ("plaintext", "sasl_ssl"):
            kafka = LocalKafka(run_dir / security, security=security, jar_dir=jars, die_with_parent=True)
            try:
                first = kafka.start()
                restarts = [kafka.restart() for _ in range(2)]
            finally:
                kafka.stop()
            print(f"{security}: first start {first:.1f} s, restarts "
                  f"{', '.join(f'{s:.1f} s' for s in restarts)}", flush=True)
        print(f"load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

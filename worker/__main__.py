"""`python -m worker`: the inspection worker. Configured only by WORKER_* environment variables."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Optional

from line_runtime.settings import SettingsError, load_settings, settings_table
from worker.settings import WorkerSettings

EXIT_BAD_SETTINGS = 2
log = logging.getLogger("worker")


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m worker", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Consume camera frames from Kafka, judge them in micro-batches with the defect model, "
                    "publish one result event per frame (bad frames to the dead-letter topic).",
        epilog="settings (environment variables):\n" + settings_table(WorkerSettings))


def main(argv: Optional[list[str]] = None) -> int:
    """Parse --help, load settings (exit 2 naming the bad variable), run the worker until signalled."""
    _parser().parse_args(argv)
    try:
        settings = load_settings(WorkerSettings)
    except SettingsError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from worker.logs import configure_logging
    configure_logging(settings.log_level, settings.log_format)
    if settings.processes > 1:
        from worker.fleet import Fleet  # the children are `python -m worker` with WORKER_PROCESSES=1
        runner = Fleet(settings)
        # The children have the grace period; the supervisor waits for them a little longer.
        _install_signals(runner, settings.shutdown_grace_s + 10.0)
    else:
        from worker.app import Worker  # after logging: imports kafka and the model loader
        runner = Worker(settings)
        _install_signals(runner, settings.shutdown_grace_s)
    try:
        return runner.run()
    except Exception as exc:
        log.exception("worker failed: %s", exc)
        return 1


def _install_signals(worker, grace_s: float) -> None:
    seen = {"count": 0}

    def handle(signum, _frame):
        seen["count"] += 1
        if seen["count"] > 1:
            os._exit(128 + signum)  # second signal: the operator wants it gone now
        log.info("%s received: finishing in-flight frames (grace %.0fs)", signal.Signals(signum).name, grace_s)
        worker.request_stop()
        # Last resort if the graceful path hangs (a broker that never answers, say).
        timer = threading.Timer(grace_s, os._exit, args=(1,))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


if __name__ == "__main__":
    sys.exit(main())

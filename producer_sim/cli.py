"""Command line of the simulator: `run` and `watch`. Flags override SIM_* env vars.

Exit codes: 0 ok; 1 frames lost (run) or fewer than --until frames seen (watch);
2 bad settings or image source; 3 Kafka unreachable or a topic missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator, Optional, Sequence

from line_runtime.settings import SettingsError, env_name, load_settings, settings_table
from producer_sim.exit_codes import EXIT_BAD_INPUT
from producer_sim.settings import SimSettings

COMMON = [("--bootstrap-servers", "kafka_bootstrap_servers", str),
          ("--connect-timeout", "kafka_connect_timeout_s", float),
          ("--status-interval", "status_interval_s", float)]
RUN_FLAGS = [("--topic", "frames_topic", str), ("--lines", "lines", int),
             ("--cameras-per-line", "cameras_per_line", int), ("--fps", "fps", float),
             ("--duration", "duration_s", float), ("--frames", "frames", int),
             ("--source-dir", "source_dir", Path), ("--split", "source_split", str),
             ("--defect-rate", "defect_rate", float), ("--defect-scale", "defect_scale", float), ("--seed", "seed", int), ("--pool-size", "pool_size", int),
             ("--encoding", "encoding", str), ("--jpeg-quality", "jpeg_quality", int),
             ("--png-compression", "png_compression", int),
             ("--load-shape", "load_shape", str), ("--ramp-s", "ramp_s", float),
             ("--ramp-start-fraction", "ramp_start_fraction", float), ("--burst-every-s", "burst_every_s", float),
             ("--burst-s", "burst_s", float), ("--burst-factor", "burst_factor", float),
             ("--max-in-flight", "max_in_flight", int), ("--corrupt-rate", "corrupt_rate", float),
             ("--corrupt-kinds", "corrupt_kinds", str), ("--acks", "acks", str), ("--linger-ms", "linger_ms", int),
             ("--batch-size", "batch_size", int), ("--compression", "compression_type", str),
             ("--max-request-size", "max_request_size", int), ("--flush-timeout", "flush_timeout_s", float)]
WATCH_FLAGS = [("--results-topic", "results_topic", str), ("--dead-letter-topic", "dead_letter_topic", str)]


def _add(parser: argparse.ArgumentParser, flags) -> None:
    for flag, field, typ in flags:
        info = SimSettings.model_fields[field]
        # default=None: an unset flag leaves the env var (or the field default) in charge,
        # and --help never prints a value that came from the environment.
        metavar = {int: "N", float: "X", Path: "DIR"}.get(typ, "TEXT")
        parser.add_argument(flag, dest=field, type=typ, default=None, metavar=metavar,
                            help=f"{info.description} [{env_name(SimSettings, field)}]".replace("%", "%%"))


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of `python -m producer_sim`."""
    parser = argparse.ArgumentParser(prog="python -m producer_sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate cameras publishing frames",
                         epilog="environment variables:\n" + settings_table(SimSettings),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _add(run, COMMON + RUN_FLAGS)
    run.add_argument("--frame-size", metavar="WxH", default=None, help="resize frames, e.g. 512x512 "
                     "[SIM_FRAME_WIDTH, SIM_FRAME_HEIGHT]")
    run.add_argument("--max-rate", dest="max_rate", action="store_const", const=True, default=None,
                     help="publish as fast as the client allows, ignoring --fps [SIM_MAX_RATE]")
    run.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")
    run.add_argument("--quiet", action="store_true", help="no live status lines")
    watch = sub.add_parser("watch", help="tail results and dead letters, show live numbers",
                           epilog="environment variables: the SIM_* list of `run --help`; "
                           "watch uses SIM_KAFKA_*, SIM_RESULTS_TOPIC, SIM_DEAD_LETTER_TOPIC, SIM_READ_COMMITTED.",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add(watch, COMMON + WATCH_FLAGS)
    watch.add_argument("--until", type=int, default=None, metavar="N",
                       help="stop once N frames are accounted for (results + dead letters, redeliveries once)")
    watch.add_argument("--duration", dest="watch_duration", type=float, default=None, metavar="S",
                       help="stop after S seconds")
    watch.add_argument("--from-beginning", action="store_true", help="read the topics from their start, not the end")
    watch.add_argument("--read-committed", dest="read_committed", action="store_const", const=True, default=None,
                       help="read only committed results (exactly-once workers) [SIM_READ_COMMITTED]")
    watch.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")
    watch.add_argument("--quiet", action="store_true", help="no live status lines")
    return parser


def _settings(args: argparse.Namespace) -> SimSettings:
    fields = {k: v for k, v in vars(args).items() if k in SimSettings.model_fields}
    size = getattr(args, "frame_size", None)
    if size:
        try:
            w, h = (int(p) for p in size.lower().split("x"))
        except ValueError:
            raise SettingsError(f"--frame-size must look like 512x512 (width x height), got {size!r}") from None
        fields.update(frame_width=w, frame_height=h)
    return load_settings(SimSettings, **fields)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM only set a flag; the loop flushes and exits. A second Ctrl-C aborts.

    The previous handlers come back on the way out, so `main()` called in-process (tests, a host program)
    leaves no handler behind that would swallow the caller's Ctrl-C.
    """
    stop = threading.Event()

    def handler(signum, _frame):
        stop.set()
        signal.signal(signum, signal.SIG_DFL)

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, handler)
    try:
        yield stop
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `python -m producer_sim` and `line-sim`."""
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from producer_sim import commands  # after argument parsing: --help stays fast

    status_to = None if args.quiet else sys.stderr
    with _stop_on_signals() as stop:
        if args.command == "run":
            code, summary, text = commands.run(settings, stop, status_to)
        else:
            code, summary, text = commands.watch(settings, stop, status_to, args.until, args.watch_duration,
                                                 args.from_beginning)
    if text:
        print(text, file=sys.stderr)
    if args.json and summary is not None:
        print(json.dumps(summary, indent=2))
    return code

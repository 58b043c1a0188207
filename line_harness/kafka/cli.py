"""Command line of the local broker: `python -m line_harness.kafka COMMAND [options]`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from line_harness.kafka.broker import (
    DEFAULT_RUN_DIR,
    SECURITY_MODES,
    BrokerError,
    LocalKafka,
    fetch_jars,
    jars_present,
    read_state,
)


def _broker(args, **extra) -> LocalKafka:
    return LocalKafka(Path(args.run_dir), port=getattr(args, "port", None), security=_security(args), **extra)


def _security(args) -> str:
    """--security, else what the run dir was last started with, else plaintext."""
    if getattr(args, "security", None):
        return args.security
    return read_state(Path(args.run_dir)).get("security", "plaintext")


def cmd_fetch(args) -> int:
    t0 = time.monotonic()
    fetched = fetch_jars(force=args.force)
    print(f"Kafka jars {'fetched' if fetched else 'already present'} ({time.monotonic() - t0:.1f} s)")
    return 0


def cmd_start(args) -> int:
    if not jars_present():
        cmd_fetch(argparse.Namespace(force=False))
    kafka = _broker(args, heap=args.heap)
    if kafka.pid is not None:
        print(f"broker already running: pid {kafka.pid}, bootstrap {kafka.bootstrap}")
        return 0
    seconds = kafka.start(timeout_s=args.timeout)
    env_file = kafka.run_dir / "client.env"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the SASL password in TLS mode
    with os.fdopen(fd, "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in kafka.client_settings_env().items())
    print(f"broker ready in {seconds:.1f} s: pid {kafka.pid}, bootstrap {kafka.bootstrap}, "
          f"security {kafka.security}, logs {kafka.log_file}")
    print(f"client settings (prefix them with WORKER_ / SIM_): {env_file}")
    return 0


def cmd_stop(args) -> int:
    kafka = _broker(args)
    pid = kafka.pid
    kafka.stop(timeout_s=args.timeout)
    print(f"broker stopped (pid {pid})" if pid else "no broker running (stale pid file removed if any)")
    return 0


def cmd_status(args) -> int:
    kafka = _broker(args)
    if kafka.pid is None:
        print(f"not running ({kafka.run_dir})")
        return 1
    print(f"running: pid {kafka.pid}, bootstrap {kafka.bootstrap}, security {kafka.security}")
    return 0


def cmd_create_topics(args) -> int:
    from line_harness.kafka.topics import TopicSpec, create_topics, line_topics

    kafka = _broker(args)
    if kafka.pid is None and not args.bootstrap:
        raise BrokerError(f"no broker running for {kafka.run_dir}: run `make kafka-start` first")
    client = {"bootstrap_servers": [args.bootstrap]} if args.bootstrap else kafka.client_kwargs()
    specs = line_topics(partitions=args.partitions)
    specs += [TopicSpec(name, args.partitions) for name in args.extra]
    created = create_topics(client, specs)
    for spec in specs:
        state = f"created, {spec.partitions} partitions" if spec.name in created else "exists (left as it is)"
        print(f"  {spec.name:<24} {state}")
    return 0


def cmd_logs(args) -> int:
    kafka = _broker(args)
    print(kafka.group_events(args.lines) if args.groups else kafka.log_tail(args.lines, without_deletions=args.no_deletions))
    return 0


def cmd_env(args) -> int:
    for key, value in _broker(args).client_settings_env(args.prefix).items():
        print(f"{key}={value}")
    return 0


def main(argv: list[str]) -> int:
    """Parse argv and run one command; errors print one clear line and exit 1."""
    p = argparse.ArgumentParser(prog="python -m line_harness.kafka", description="Run a local single-node Kafka broker.")
    p.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR), help="config, data, logs, pid file (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("fetch", help="copy the broker jars with Maven (skipped when present)")
    s.add_argument("--force", action="store_true", help="fetch even when present")
    s.set_defaults(func=cmd_fetch)
    s = sub.add_parser("start", help="start the broker in the background and wait until it answers")
    s.add_argument("--port", type=int, default=int(os.environ.get("LOCALKAFKA_PORT", "9092")),
                   help="client port on 127.0.0.1 (default: $LOCALKAFKA_PORT or 9092)")
    s.add_argument("--security", choices=SECURITY_MODES, help="plaintext (default) or sasl_ssl (TLS + SCRAM)")
    s.add_argument("--heap", default="512m", help="JVM max heap (default: %(default)s)")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")
    s.set_defaults(func=cmd_start)
    s = sub.add_parser("stop", help="stop the broker (also a stale one from an earlier session)")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    s.set_defaults(func=cmd_stop)
    sub.add_parser("status", help="exit 0 when running").set_defaults(func=cmd_status)
    s = sub.add_parser("create-topics", help="create the line's frames/results/dead-letter topics")
    s.add_argument("--partitions", type=int, default=6, help="partitions of frames and results (default: %(default)s)")
    s.add_argument("--bootstrap", help="another (plaintext) broker instead of the local one")
    s.add_argument("extra", nargs="*", help="more topic names to create")
    s.set_defaults(func=cmd_create_topics)
    s = sub.add_parser("logs", help="print the tail of the broker log")
    s.add_argument("-n", "--lines", type=int, default=80)
    s.add_argument("--no-deletions", action="store_true", help="leave out the segment-deletion lines of deleted topics")
    s.add_argument("--groups", action="store_true",
                   help="only the group coordinator's lines: joins, rebalances with their reasons, members dropped")
    s.set_defaults(func=cmd_logs)
    s = sub.add_parser("env", help="print KAFKA_* client settings (includes the SASL password in sasl_ssl mode)")
    s.add_argument("--prefix", default="", help="env prefix, e.g. WORKER_ or SIM_")
    s.set_defaults(func=cmd_env)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Command line of the local evidence store: `python -m line_harness.evidence_store COMMAND [options]`.

    build    build SeaweedFS's `weed` into ~/.cache/line-inspection (skipped when cached)
    start    start it in the background (S3 on --port, default 8333), create the bucket, write
             <run-dir>/client.env (WORKER_EVIDENCE_ENDPOINT, WORKER_EVIDENCE_BUCKET, AWS_ACCESS_KEY_ID,
             AWS_SECRET_ACCESS_KEY) for the worker and readers
    stop     stop it (data and credentials stay in the run dir for the next start)
    status   exit 0 when running, printing the endpoint and bucket
    env      print the client settings (holds the secret key)
    logs     tail of the server log
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from line_harness.evidence_store.server import (
    DEFAULT_BUCKET,
    DEFAULT_RUN_DIR,
    LocalObjectStore,
    StoreError,
    weed_binary,
)


def _store(args) -> LocalObjectStore:
    return LocalObjectStore(Path(args.run_dir), port=getattr(args, "port", None),
                            bucket=getattr(args, "bucket", None) or _state_bucket(args))


def _state_bucket(args) -> str:
    state = LocalObjectStore(Path(args.run_dir))._read_state()
    return state.get("bucket", DEFAULT_BUCKET)


def cmd_build(args) -> int:
    print(f"weed: {weed_binary()}")
    return 0


def cmd_start(args) -> int:
    store = _store(args)
    if store.pid is not None:
        print(f"object store already running: pid {store.pid}, endpoint {store.endpoint}, bucket {store.bucket}")
        return 0
    seconds = store.start(timeout_s=args.timeout)
    env_file = store.run_dir / "client.env"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the secret key
    with os.fdopen(fd, "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in store.client_env(args.prefix).items())
    print(f"object store ready in {seconds:.1f} s: pid {store.pid}, endpoint {store.endpoint}, bucket {store.bucket}, "
          f"logs {store.log_file}")
    print(f"client settings: {env_file}")
    return 0


def cmd_stop(args) -> int:
    store = _store(args)
    pid = store.pid
    store.stop()
    print(f"object store stopped (pid {pid})" if pid else "no object store running")
    return 0


def cmd_status(args) -> int:
    store = _store(args)
    if store.pid is None:
        print(f"not running ({store.run_dir})")
        return 1
    print(f"running: pid {store.pid}, endpoint {store.endpoint}, bucket {store.bucket}")
    return 0


def cmd_env(args) -> int:
    for key, value in _store(args).client_env(args.prefix).items():
        print(f"{key}={value}")
    return 0


def cmd_logs(args) -> int:
    print(_store(args).log_tail(args.lines))
    return 0


def main(argv: list[str]) -> int:
    """Parse argv and run one command; errors print one clear line and exit 1."""
    p = argparse.ArgumentParser(prog="python -m line_harness.evidence_store",
                                description="Run a local S3-compatible object store (SeaweedFS) for evidence.")
    p.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR), help="config, data, logs (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the weed binary (skipped when cached)").set_defaults(func=cmd_build)
    s = sub.add_parser("start", help="start in the background and wait until a write works")
    s.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_S3_PORT", "8333")),
                   help="S3 port on 127.0.0.1 (default: $LOCAL_S3_PORT or 8333); other ports are picked free")
    s.add_argument("--bucket", default=None, help=f"bucket to create (default: {DEFAULT_BUCKET})")
    s.add_argument("--prefix", default="WORKER_", help="env prefix of client.env (default: %(default)s)")
    s.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    s.set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop the server").set_defaults(func=cmd_stop)
    sub.add_parser("status", help="exit 0 when running").set_defaults(func=cmd_status)
    s = sub.add_parser("env", help="print the client settings (includes the secret key)")
    s.add_argument("--prefix", default="WORKER_", help="env prefix (default: %(default)s)")
    s.set_defaults(func=cmd_env)
    s = sub.add_parser("logs", help="print the tail of the server log")
    s.add_argument("-n", "--lines", type=int, default=60)
    s.set_defaults(func=cmd_logs)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

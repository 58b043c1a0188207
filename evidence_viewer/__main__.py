"""`python -m evidence_viewer`: serve the operator page. Settings: VIEWER_* variables or the flags below."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Optional

from evidence_viewer.settings import ViewerSettings
from line_runtime.settings import SettingsError, load_settings, settings_table

EXIT_BAD_SETTINGS = 2
log = logging.getLogger("evidence_viewer")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evidence_viewer", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve a page of the latest defects per line and camera (frame, overlay, score, model, "
                    "time), read from the evidence store the worker writes to.",
        epilog="settings (environment variables; a flag wins over its variable):\n" + settings_table(ViewerSettings)
               + "\n  credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or boto3's other sources)")
    parser.add_argument("--endpoint", help="VIEWER_ENDPOINT")
    parser.add_argument("--bucket", help="VIEWER_BUCKET")
    parser.add_argument("--host", help="VIEWER_HOST")
    parser.add_argument("--port", type=int, help="VIEWER_PORT")
    return parser


def store_client(settings: ViewerSettings):
    """A boto3 S3 client for the store, with the page's timeouts and path-style addressing."""
    import boto3
    from botocore.config import Config
    config = Config(connect_timeout=settings.timeout_s, read_timeout=settings.timeout_s,
                    retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=settings.endpoint, region_name=settings.region, config=config)


def check_store(client, settings: ViewerSettings) -> Optional[str]:
    """None when the bucket answers, else what is wrong, naming the setting to fix."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    try:
        client.head_bucket(Bucket=settings.bucket)
        return None
    except NoCredentialsError:
        return "no credentials for the evidence store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            return f"VIEWER_BUCKET={settings.bucket}: no such bucket at {settings.endpoint}"
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return (f"the store at {settings.endpoint} refuses these credentials for bucket {settings.bucket} "
                    f"({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        return f"VIEWER_ENDPOINT={settings.endpoint}: the store answered {code}: {exc}"
    except BotoCoreError as exc:
        return f"VIEWER_ENDPOINT={settings.endpoint}: the store does not answer ({exc})"


def main(argv: Optional[list[str]] = None) -> int:
    """Load settings, check the bucket (exit 2 naming what to fix), serve until SIGTERM/Ctrl-C."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(ViewerSettings, endpoint=args.endpoint, bucket=args.bucket, host=args.host,
                                 port=args.port)
    except SettingsError as exc:
        print(f"evidence_viewer: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    client = store_client(settings)
    problem = check_store(client, settings)
    if problem:
        print(f"evidence_viewer: {problem}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    from evidence_viewer.app import make_server
    from evidence_viewer.store import EvidenceReader
    reader = EvidenceReader(client, settings.bucket, settings.max_days, settings.cache_events)
    try:
        server = make_server(settings, reader)
    except OSError as exc:
        print(f"evidence_viewer: cannot listen on VIEWER_HOST={settings.host} VIEWER_PORT={settings.port}: {exc}",
              file=sys.stderr)
        return EXIT_BAD_SETTINGS
    host, port = server.server_address[:2]
    # SIGTERM (Kubernetes, the demo) ends serve_forever from another thread; it must not run in the handler.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"evidence_viewer: serving http://{host}:{port}/ (bucket {settings.bucket} at {settings.endpoint})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

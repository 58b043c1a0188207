"""Connect the evidence writer to its store at start: the S3 client, and a check that names what to fix.

A store that refuses the bucket or the credentials is a configuration error and stops the start;
a store that does not answer is not: the worker starts, and the writer marks evidence missing
until the store answers (the store never stops the line).
"""

from __future__ import annotations

import logging
from typing import Optional

from worker.evidence import EvidenceWriter
from worker.evidence_s3 import EvidenceStoreClient
from worker.metrics import EvidenceMetrics
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


class EvidenceStoreRefused(RuntimeError):
    """The store answered but refused the bucket or the credentials; the message names the setting."""


def s3_client(settings: WorkerSettings):
    """A boto3 S3 client with short timeouts and no retries of its own (the writer retries, with back-off)."""
    import boto3
    from botocore.config import Config

    timeout = settings.evidence_timeout_s
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"},
                    s3={"addressing_style": "path"}, max_pool_connections=4)
    return boto3.client("s3", endpoint_url=settings.evidence_endpoint, region_name=settings.evidence_region,
                        config=config)


def store_client(settings: WorkerSettings) -> EvidenceStoreClient:
    """The writer's own client: the same endpoint, region, credentials and timeouts, at half the CPU per PUT."""
    return EvidenceStoreClient(settings.evidence_endpoint, settings.evidence_region, settings.evidence_timeout_s)


def check_bucket(client, settings: WorkerSettings) -> bool:
    """True when the bucket answers; False when the store cannot be reached; raises when it refuses."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, endpoint = settings.evidence_bucket, settings.evidence_endpoint
    try:
        client.head_bucket(Bucket=bucket)
        return True
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise EvidenceStoreRefused(f"bucket {bucket!r} does not exist at {endpoint}: create it (docs/deploy.md, "
                                       f"evidence store) or fix WORKER_EVIDENCE_BUCKET") from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise EvidenceStoreRefused(f"the evidence store at {endpoint} refused the credentials for bucket "
                                       f"{bucket!r} ({code}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY") from None
        log.warning("evidence store at %s answered %s; starting with evidence marked missing until it works",
                    endpoint, code)
        return False
    except (BotoCoreError, OSError) as exc:
        log.warning("evidence store at %s not reachable (%s); starting with evidence marked missing until it answers",
                    endpoint, exc)
        return False


def open_evidence_writer(settings: WorkerSettings, metrics: EvidenceMetrics) -> Optional[EvidenceWriter]:
    """The started evidence writer, or None when WORKER_EVIDENCE_ENDPOINT is empty."""
    if not settings.evidence_endpoint:
        return None
    # boto3 for the check at start (its errors name what to fix); the writer's own client for the writes.
    reachable = check_bucket(s3_client(settings), settings)
    writer = EvidenceWriter(store_client(settings), settings.evidence_bucket, metrics, settings.evidence_sample_ok,
                            settings.evidence_queue_size, settings.evidence_retry_s,
                            overlay_max_side=settings.evidence_overlay_max_side)
    if not reachable:
        writer.mark_down("not reachable at start")
    writer.start()
    log.info("evidence to %s bucket %s (defects, and %.1f%% of ok frames)", settings.evidence_endpoint,
             settings.evidence_bucket, settings.evidence_sample_ok * 100)
    return writer

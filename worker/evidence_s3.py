"""The evidence writer's store client: S3 PUT and HEAD over one kept-alive urllib3 pool, signed by botocore.

The writer needs two S3 calls, `put_object` and `head_bucket`. Through a boto3 client each PUT costs
about 1.9 ms of CPU (its event hooks, parameter validation, checksum and XML layers), three per kept
frame; here the same request is signed with botocore's own SigV4 signer and sent on a reused
connection, about half of that (docs/performance.md, Evidence). Same credentials (botocore's chain,
refreshed when they expire), same region, same timeouts, no retries of its own (the writer retries,
with back-off). https is verified against the CA bundle boto3 would use (AWS_CA_BUNDLE or the
`ca_bundle` of the AWS config, else botocore's default bundle).
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import quote

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.httpsession import get_cert_path
from botocore.session import get_session


class EvidenceStoreError(RuntimeError):
    """The store answered a request with an error status; the message carries the S3 error code."""

    def __init__(self, method: str, key: str, status: int, code: str):
        super().__init__(f"{method} {key}: HTTP {status} {code}".rstrip())
        self.status = status
        self.code = code


class EvidenceStoreClient:
    """put_object / head_bucket with boto3's argument names, for one endpoint; used by one writer thread."""

    def __init__(self, endpoint: str, region: str, timeout_s: float, credentials=None, ca_bundle: Optional[str] = None):
        session = get_session()
        self._credentials = credentials if credentials is not None else session.get_credentials()
        if self._credentials is None:
            raise ValueError("no credentials for the evidence store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                             "(chart: evidence.existingSecret)")
        self._endpoint = endpoint.rstrip("/")
        self._region = region
        timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        if self._endpoint.startswith("https://"):
            ca = ca_bundle or session.get_config_variable("ca_bundle") or get_cert_path(True)
            self._pool = urllib3.PoolManager(num_pools=1, maxsize=1, timeout=timeout, retries=False,
                                             cert_reqs="CERT_REQUIRED", ca_certs=ca)
        else:
            self._pool = urllib3.PoolManager(num_pools=1, maxsize=1, timeout=timeout, retries=False)

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:  # noqa: N803 - boto3's names
        """Write one object (path-style URL); raises EvidenceStoreError or urllib3's errors on failure."""
        self._send("PUT", f"/{Bucket}/{quote(Key, safe='/~')}", Key, Body, {"Content-Type": ContentType})

    def head_bucket(self, Bucket: str) -> None:  # noqa: N803 - boto3's names
        """Succeeds when the bucket answers; raises like put_object otherwise."""
        self._send("HEAD", f"/{Bucket}", Bucket, b"", {})

    def _send(self, method: str, path: str, what: str, body: bytes, headers: dict) -> None:
        url = self._endpoint + path
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        # botocore signs the payload's SHA-256 too (no Content-MD5 here), so the store checks what arrived.
        # Frozen per request: refreshable credentials (a web identity) renew themselves here.
        S3SigV4Auth(self._credentials.get_frozen_credentials(), "s3", self._region).add_auth(request)
        response = self._pool.request(method, url, body=body or None, headers=dict(request.headers.items()),
                                      preload_content=True)
        if response.status >= 300:
            found = re.search(rb"<Code>([^<]{1,64})</Code>", response.data or b"")
            raise EvidenceStoreError(method, what, response.status, found.group(1).decode() if found else "")

    def close(self) -> None:
        """Close the kept-alive connection."""
        self._pool.clear()

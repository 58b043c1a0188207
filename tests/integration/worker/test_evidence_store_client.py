"""The evidence writer's own S3 client (worker/evidence_s3.py) against the real store (SeaweedFS): what it
writes reads back byte for byte through boto3, with its content type, under keys that need quoting; a
refused credential, an unknown bucket and a stopped store are errors the writer sees (and retries), and
the same client works again once the store is back."""

from __future__ import annotations

import os

import pytest
from botocore.credentials import Credentials

from worker.evidence_s3 import EvidenceStoreClient, EvidenceStoreError

pytestmark = pytest.mark.timeout(300)


def _client(store, **kw) -> EvidenceStoreClient:
    creds = Credentials(store.access_key, store.secret_key)
    return EvidenceStoreClient(store.endpoint, "us-east-1", 2.0, credentials=kw.pop("credentials", creds), **kw)


def test_objects_written_read_back_through_boto3(evidence_store):
    client, s3 = _client(evidence_store), evidence_store.client()
    body = os.urandom(70_000)
    keys = ["line-1/cam-0/2026-12-01/ev 1+2/frame.png", "line-1/cam-0/2026-12-01/ev-3/event.json"]
    for key in keys:
        client.put_object(Bucket=evidence_store.bucket, Key=key, Body=body, ContentType="image/png")
    client.put_object(Bucket=evidence_store.bucket, Key=keys[1], Body=b"{}", ContentType="application/json")
    got = s3.get_object(Bucket=evidence_store.bucket, Key=keys[0])
    assert got["Body"].read() == body and got["ContentType"] == "image/png"
    got = s3.get_object(Bucket=evidence_store.bucket, Key=keys[1])  # a second PUT overwrites
    assert got["Body"].read() == b"{}" and got["ContentType"] == "application/json"
    client.head_bucket(Bucket=evidence_store.bucket)


def test_refusals_are_errors_with_the_status_and_code(evidence_store):
    stranger = _client(evidence_store, credentials=Credentials("nobody", "wrong"))
    with pytest.raises(EvidenceStoreError, match="403") as refused:
        stranger.put_object(Bucket=evidence_store.bucket, Key="k", Body=b"1", ContentType="text/plain")
    assert refused.value.status == 403 and refused.value.code
    with pytest.raises(EvidenceStoreError, match="404"):
        _client(evidence_store).head_bucket(Bucket="no-such-bucket")


def test_a_stopped_store_is_an_error_and_the_same_client_writes_again_after(new_evidence_store):
    store = new_evidence_store()
    client = _client(store)
    client.put_object(Bucket=store.bucket, Key="before", Body=b"1", ContentType="text/plain")
    store.stop(kill=True)
    with pytest.raises(Exception):  # noqa: B017 - a refused connection, however urllib3 names it
        client.put_object(Bucket=store.bucket, Key="during", Body=b"2", ContentType="text/plain")
    store.start(timeout_s=120)
    client.put_object(Bucket=store.bucket, Key="after", Body=b"3", ContentType="text/plain")
    assert store.client().get_object(Bucket=store.bucket, Key="after")["Body"].read() == b"3"


def test_https_verifies_against_a_ca_bundle():
    client = EvidenceStoreClient("https://store.invalid:9443", "us-east-1", 1.0,
                                 credentials=Credentials("a", "b"), ca_bundle="/nonexistent/ca.pem")
    pool = client._pool.connection_from_url("https://store.invalid:9443")
    assert pool.cert_reqs == "CERT_REQUIRED" and pool.ca_certs == "/nonexistent/ca.pem"

"""The local evidence store is a real S3 server: objects round-trip, wrong credentials and unknown buckets
are refused, and a stop and start keeps the data, the port and the credentials (the outage tests rely on it)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from line_harness.evidence_store.cli import main as cli_main
from line_harness.evidence_store.server import LocalObjectStore

pytestmark = pytest.mark.timeout(300)


def test_objects_round_trip_and_the_store_refuses_strangers(evidence_store):
    s3 = evidence_store.client()
    s3.put_object(Bucket=evidence_store.bucket, Key="line-1/cam-0/t/frame.png", Body=b"\x89PNG" + bytes(range(256)))
    got = s3.get_object(Bucket=evidence_store.bucket, Key="line-1/cam-0/t/frame.png")["Body"].read()
    assert got == b"\x89PNG" + bytes(range(256))
    listed = s3.list_objects_v2(Bucket=evidence_store.bucket, Prefix="line-1/")["Contents"]
    assert [o["Key"] for o in listed] == ["line-1/cam-0/t/frame.png"]
    stranger = boto3.client("s3", endpoint_url=evidence_store.endpoint, aws_access_key_id="nobody",
                            aws_secret_access_key="wrong", region_name="us-east-1")
    with pytest.raises(ClientError, match="403"):
        stranger.head_bucket(Bucket=evidence_store.bucket)
    with pytest.raises(ClientError, match="404"):
        s3.head_bucket(Bucket="no-such-bucket")
    env = evidence_store.client_env("WORKER_")
    assert env["WORKER_EVIDENCE_ENDPOINT"] == evidence_store.endpoint and env["AWS_ACCESS_KEY_ID"]


def test_a_stopped_store_starts_again_with_its_data_port_and_credentials(new_evidence_store, capsys):
    store = new_evidence_store()
    store.client().put_object(Bucket=store.bucket, Key="kept", Body=b"1")
    endpoint, key = store.endpoint, store.access_key
    store.stop(kill=True)
    assert not store.is_running()
    again = LocalObjectStore(store.run_dir)  # as a new process (the CLI) would see it
    assert (again.endpoint, again.access_key) == (endpoint, key)
    assert cli_main(["--run-dir", str(store.run_dir), "status"]) == 1
    store.start(timeout_s=120)
    assert store.client().get_object(Bucket=store.bucket, Key="kept")["Body"].read() == b"1"
    assert cli_main(["--run-dir", str(store.run_dir), "status"]) == 0
    assert endpoint in capsys.readouterr().out

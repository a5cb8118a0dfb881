"""The KeyValueStore client: ETag on every write, retried on conflict, batches of 50."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from functions.admission.kvs import UPDATE_MAX, BotoKeyValueStore

ARN = "arn:aws:cloudfront::123456789012:key-value-store/0f7f1e4b-1111-2222-3333-444455556666"


@pytest.fixture
def client():
    return boto3.client(
        "cloudfront-keyvaluestore",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def described(etag: str) -> dict:
    return {
        "KvsARN": ARN,
        "Created": "2028-01-01T00:00:00Z",
        "ETag": etag,
        "ItemCount": 1,
        "TotalSizeInBytes": 10,
    }


def updated(etag: str) -> dict:
    return {"ItemCount": 1, "TotalSizeInBytes": 10, "ETag": etag}


def test_a_conflicting_write_is_retried_with_the_new_etag(client) -> None:
    store = BotoKeyValueStore(client, ARN)
    with Stubber(client) as stub:
        stub.add_response("describe_key_value_store", described("e1"), {"KvsARN": ARN})
        stub.add_client_error("update_keys", "ConflictException", http_status_code=409)
        stub.add_response("describe_key_value_store", described("e2"), {"KvsARN": ARN})
        stub.add_response(
            "update_keys",
            updated("e3"),
            {
                "KvsARN": ARN,
                "IfMatch": "e2",
                "Puts": [{"Key": "room", "Value": "{}"}],
                "Deletes": [{"Key": "key.old"}],
            },
        )
        store.apply({"room": "{}"}, ["key.old"])
        stub.assert_no_pending_responses()


def test_large_changes_go_in_batches_of_fifty(client) -> None:
    store = BotoKeyValueStore(client, ARN)
    puts = {f"revoked.v{i}": "1" for i in range(UPDATE_MAX + 1)}
    with Stubber(client) as stub:
        for etag in ("e1", "e2"):
            stub.add_response("describe_key_value_store", described(etag), {"KvsARN": ARN})
            stub.add_response("update_keys", updated(etag + "x"))
        store.apply(puts, [])
        stub.assert_no_pending_responses()


def test_items_reads_every_page(client) -> None:
    store = BotoKeyValueStore(client, ARN)
    with Stubber(client) as stub:
        stub.add_response("list_keys", {"Items": [{"Key": "room", "Value": "a"}], "NextToken": "n"})
        stub.add_response("list_keys", {"Items": [{"Key": "key.k0", "Value": "b"}]})
        assert store.items() == {"room": "a", "key.k0": "b"}

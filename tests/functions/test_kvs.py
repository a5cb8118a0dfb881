"""The KeyValueStore client: ETag on every write, retried on conflict, batches of 50."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from functions.admission.kvs import BotoKeyValueStore

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


UPDATE_KEYS_MAX = 50
"""AWS's quota: one UpdateKeys call changes at most 50 keys (puts and deletes together), or a
3 MB payload, whichever comes first; a store holds at most 5 MB. Sources: "Quotas - Amazon
CloudFront", section "Quotas on key value stores"
(https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html),
as restated by the Pulumi registry's aws.cloudfront.KeyvaluestoreKeysExclusive `maxBatchSize`
("AWS has a default quota of 50 keys or a 3 MB payload, whichever is reached first"); "File
format for key-value pairs - Amazon CloudFront" (5 MB, keys 512, values 1,024 characters)."""


def test_large_changes_go_in_batches_of_fifty(client) -> None:
    """Catches a batch past AWS's 50 keys per UpdateKeys (the store would refuse the call and
    the edge keep stale keys): 51 puts go as 50, then 1, each with its own fresh ETag."""
    puts = {f"revoked.v{i:02d}": "1" for i in range(UPDATE_KEYS_MAX + 1)}
    listed = [{"Key": k, "Value": v} for k, v in puts.items()]
    store = BotoKeyValueStore(client, ARN)
    with Stubber(client) as stub:
        for etag, batch in (("e1", listed[:50]), ("e2", listed[50:])):
            stub.add_response("describe_key_value_store", described(etag), {"KvsARN": ARN})
            stub.add_response(
                "update_keys",
                updated(etag + "x"),
                {"KvsARN": ARN, "IfMatch": etag, "Puts": batch, "Deletes": []},
            )
        store.apply(puts, [])
        stub.assert_no_pending_responses()


def test_puts_and_deletes_share_the_fifty_keys_of_one_call(client) -> None:
    """Catches puts and deletes batched apart (50 of each in one call is 100 keys): 30 puts
    and 30 deletes go as 30 puts + 20 deletes, then the other 10 deletes."""
    puts = {f"revoked.new{i:02d}": "1" for i in range(30)}
    deletes = [f"revoked.old{i:02d}" for i in range(30)]
    listed = [{"Key": k, "Value": v} for k, v in puts.items()]
    gone = [{"Key": k} for k in deletes]
    store = BotoKeyValueStore(client, ARN)
    with Stubber(client) as stub:
        for etag, batch_puts, batch_deletes in (("e1", listed, gone[:20]), ("e2", [], gone[20:])):
            stub.add_response("describe_key_value_store", described(etag), {"KvsARN": ARN})
            stub.add_response(
                "update_keys",
                updated(etag + "x"),
                {"KvsARN": ARN, "IfMatch": etag, "Puts": batch_puts, "Deletes": batch_deletes},
            )
        store.apply(puts, deletes)
        stub.assert_no_pending_responses()


def test_a_write_that_keeps_conflicting_is_raised_not_dropped(client) -> None:
    """Catches the last conflict swallowed: after 5 conflicting attempts the write fails loudly
    (the inlet's run fails and is retried next minute) instead of the edge silently keeping
    the old state, keys or revocations."""
    store = BotoKeyValueStore(client, ARN)
    with Stubber(client) as stub:
        for attempt in range(5):
            stub.add_response("describe_key_value_store", described(f"e{attempt}"), {"KvsARN": ARN})
            stub.add_client_error("update_keys", "ConflictException", http_status_code=409)
        with pytest.raises(client.exceptions.ConflictException):
            store.apply({"room": "{}"}, [])
        stub.assert_no_pending_responses()


def test_items_reads_every_page(client) -> None:
    store = BotoKeyValueStore(client, ARN)
    with Stubber(client) as stub:
        stub.add_response("list_keys", {"Items": [{"Key": "room", "Value": "a"}], "NextToken": "n"})
        stub.add_response("list_keys", {"Items": [{"Key": "key.k0", "Value": "b"}]})
        assert store.items() == {"room": "a", "key.k0": "b"}

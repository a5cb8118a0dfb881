"""The moto stand-in keeps DynamoDB's per-item atomicity: an ADD returns its own new value."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from moto.dynamodb.models.dynamo_type import Item

from tests.moto_server import atomic_item_writes, moto_thread


def test_concurrent_adds_each_return_their_own_value(monkeypatch) -> None:
    """moto's handler renders ReturnValues from the live item after the backend returns: two
    joins could read one counter value (the e2e test's 'two visitors, one place')."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    atomic_item_writes(monkeypatch.setattr)
    # Widen the window a busy machine opens by chance: rendering an item yields the GIL.
    to_json = Item.to_json
    monkeypatch.setattr(Item, "to_json", lambda self: (time.sleep(0.002), to_json(self))[1])
    with moto_thread() as url:
        dynamodb = boto3.client("dynamodb", region_name="ca-central-1", endpoint_url=url)
        dynamodb.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )

        def add(_: int) -> int:
            answer = dynamodb.update_item(
                TableName="t",
                Key={"pk": {"S": "count"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
            return int(answer["Attributes"]["n"]["N"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            seen = list(pool.map(add, range(400)))
    assert sorted(seen) == list(range(1, 401))

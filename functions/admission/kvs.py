"""The CloudFront KeyValueStore data plane, as the room uses it.

The `cloudfront-keyvaluestore` API is signed with SigV4A, which botocore does only with awscrt
installed: the Lambda functions carry it in a layer (`make layer`). Writes are optimistic: each
carries the store's ETag and is retried on a conflict. Limits: keys up to 512 bytes, values up
to 1 KB, 5 MB per store; UpdateKeys takes at most 50 puts and deletes per call.
"""

from __future__ import annotations

from typing import Any

UPDATE_MAX = 50
CONFLICT_RETRIES = 5


class BotoKeyValueStore:
    """A KeyValueStore (see room.KeyValueStore) over a boto3 `cloudfront-keyvaluestore` client."""

    def __init__(self, client: Any, arn: str) -> None:
        self.client, self.arn = client, arn

    def items(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for page in self.client.get_paginator("list_keys").paginate(KvsARN=self.arn):
            found.update({item["Key"]: item["Value"] for item in page.get("Items", [])})
        return found

    def apply(self, puts: dict[str, str], deletes: list[str]) -> None:
        changes: list[tuple[str, str | None]] = [*puts.items(), *((k, None) for k in deletes)]
        for start in range(0, len(changes), UPDATE_MAX):
            batch = changes[start : start + UPDATE_MAX]
            for attempt in range(CONFLICT_RETRIES):
                etag = self.client.describe_key_value_store(KvsARN=self.arn)["ETag"]
                try:
                    self.client.update_keys(
                        KvsARN=self.arn,
                        IfMatch=etag,
                        Puts=[{"Key": k, "Value": v} for k, v in batch if v is not None],
                        Deletes=[{"Key": k} for k, v in batch if v is None],
                    )
                    break
                except self.client.exceptions.ConflictException:
                    if attempt == CONFLICT_RETRIES - 1:
                        raise

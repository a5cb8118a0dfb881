"""Receipts: what a submitter can check, and the record that makes a submission's effect happen
once however often SQS delivers it.

The accept path has no code of Floodgate's but the inbox's CloudFront Function
(functions/edge/inbox.js): it derives the receipt id, which the HTTP API's SQS integration
carries as a message attribute, and on the way back signs `<id>.<received_at>.<mac>` into the
`Location` the client polls. Ids are derived, not drawn, so a repeated post with the same
idempotency key gets the same id, and its second message is recognised by the consumer:

- with a key (header `Idempotency-Key`, or `idempotency_key` in the form's action URL: the edge
  cannot read a body): sha256("fg-inbox|" + path + "|" + key), so the same key on another path
  is another submission;
- without one: sha256("fg-inbox-request|" + CloudFront's request id), unique per request.

Why not a FIFO queue's deduplication: its window is five minutes, and a person who retries a
form the next morning, or a client that retries after an outage longer than that, would be
acted on twice; a conditional write on the receipt has no window but the receipt's own life.

The record (`receipt#<id>` in the inbox table) goes received -> processing (a lease) -> done or
failed. `claim` is the one conditional write that lets a consumer work on it: never when done
or failed, never while another consumer's lease runs. A consumer that dies mid-work leaves a
lease that expires, and the next delivery (after the visibility timeout) claims it again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

Status = Literal["received", "processing", "done", "failed"]
STATUSES: tuple[Status, ...] = ("received", "processing", "done", "failed")
KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")
"""An idempotency key: 8-64 URL-safe characters (a UUID, a ULID, a random token)."""
ID = re.compile(r"[0-9a-f]{32}")
RECEIPT = re.compile(r"(?P<id>[0-9a-f]{32})\.(?P<at>\d{10})\.(?P<mac>[0-9a-f]{32})")
RECEIPT_ATTRIBUTE = "receipt"
"""The SQS message attribute that carries the receipt id, tagged by the edge (`tag`)."""
KEY_ATTRIBUTE = "idempotencyKey"
"""The message attribute that carries the client's key, when it gave one."""


def receipt_id(path: str, key: str | None, request_id: str) -> str:
    """The receipt id of a submission to `path` (functions/edge/inbox.js computes the same)."""
    seed = f"fg-inbox|{path}|{key}" if key is not None else f"fg-inbox-request|{request_id}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def tag(receipt: str, secret: str) -> str:
    """The receipt attribute the edge sends with the message, `<id>.<mac>`: the consumer acts
    only on messages the edge made, not on one posted to the API around CloudFront."""
    mac = hmac.new(secret.encode(), f"fg-inbox-id|{receipt}".encode(), "sha256")
    return f"{receipt}.{mac.hexdigest()[:32]}"


def untag(value: str, secrets: list[str]) -> str | None:
    """The receipt id of an attribute `tag` made with any of `secrets`, else None."""
    receipt = value.split(".", 1)[0]
    if not ID.fullmatch(receipt):
        return None
    if any(hmac.compare_digest(tag(receipt, secret), value) for secret in secrets):
        return receipt
    return None


def sign(receipt: str, received_at: int, secret: str) -> str:
    """The receipt a client polls: the id, when the edge saw SQS take it, and a MAC over both
    (HMAC-SHA256 truncated to 128 bits) so that no one is told an id they made up was received."""
    mac = hmac.new(secret.encode(), f"fg-receipt|{receipt}|{received_at}".encode(), "sha256")
    return f"{receipt}.{received_at}.{mac.hexdigest()[:32]}"


def verify(token: str, secrets: list[str]) -> tuple[str, int] | None:
    """(id, received_at) of a receipt signed with any of `secrets`, else None."""
    match = RECEIPT.fullmatch(token)
    if match is None:
        return None
    at = int(match["at"])
    for secret in secrets:
        if hmac.compare_digest(sign(match["id"], at, secret), token):
            return match["id"], at
    return None


@dataclass(frozen=True)
class Record:
    receipt: str
    status: Status
    received_at: int
    updated_at: int
    attempts: int
    error: str | None = None

    def public(self) -> dict[str, Any]:
        """What `GET /inbox/receipts/<receipt>` answers (times in epoch seconds)."""
        body: dict[str, Any] = {
            "receipt": self.receipt,
            "status": self.status,
            "received_at": self.received_at,
            "updated_at": self.updated_at,
        }
        if self.status == "failed":
            body["error"] = self.error or "the back office refused it"
        return body


Claim = Literal["claimed", "finished", "busy"]
"""`claimed`: this consumer works on it now; `finished`: done or failed already (a duplicate:
delete the message, do nothing); `busy`: another consumer holds a live lease (try later)."""


class Receipts:
    """The receipt records in the inbox table (`pk` = `receipt#<id>`, TTL `expires_at`)."""

    def __init__(self, table: Any, keep_s: int) -> None:
        self.table, self.keep_s = table, keep_s

    def get(self, receipt: str) -> Record | None:
        item = self.table.get_item(Key={"pk": f"receipt#{receipt}"}, ConsistentRead=True).get(
            "Item"
        )
        return None if item is None else _record(item)

    def claim(self, receipt: str, received_at: int, now: int, lease_s: int) -> Claim:
        """Take the lease on `receipt` for `lease_s` (the consumer's timeout) unless it is
        finished or leased to someone else; the first claim creates the record."""
        try:
            self.table.update_item(
                Key={"pk": f"receipt#{receipt}"},
                UpdateExpression=(
                    "SET #s = :processing, lease_until = :lease, updated_at = :now, "
                    "received_at = if_not_exists(received_at, :received_at), "
                    "expires_at = if_not_exists(expires_at, :expires) ADD attempts :one"
                ),
                ConditionExpression=(
                    "attribute_not_exists(pk) OR "
                    "(#s IN (:received, :processing) AND lease_until < :now)"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":processing": "processing",
                    ":received": "received",
                    ":lease": now + lease_s,
                    ":now": now,
                    ":received_at": received_at,
                    ":one": 1,
                    ":expires": received_at + self.keep_s,
                },
            )
            return "claimed"
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        record = self.get(receipt)
        return "finished" if record is not None and record.status in ("done", "failed") else "busy"

    def finish(
        self, receipt: str, status: Literal["done", "failed"], now: int, error: str = ""
    ) -> None:
        """Mark a claimed receipt done or failed (permanently: the back office refused it)."""
        values: dict[str, Any] = {":s": status, ":now": now, ":processing": "processing"}
        update = "SET #s = :s, updated_at = :now REMOVE lease_until"
        if error:
            update = "SET #s = :s, updated_at = :now, #e = :e REMOVE lease_until"
            values[":e"] = error[:200]
        self.table.update_item(
            Key={"pk": f"receipt#{receipt}"},
            UpdateExpression=update,
            ConditionExpression="#s = :processing",
            ExpressionAttributeNames={"#s": "status", **({"#e": "error"} if error else {})},
            ExpressionAttributeValues=values,
        )

    def release(self, receipt: str, now: int) -> None:
        """Give a lease back after a failure worth retrying: the next delivery claims at once."""
        self.table.update_item(
            Key={"pk": f"receipt#{receipt}"},
            UpdateExpression="SET #s = :received, lease_until = :now, updated_at = :now",
            ConditionExpression="#s = :processing",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":received": "received",
                ":processing": "processing",
                ":now": now,
            },
        )


def _record(item: dict[str, Any]) -> Record:
    return Record(
        receipt=str(item["pk"]).removeprefix("receipt#"),
        status=item["status"],
        received_at=int(item["received_at"]),
        updated_at=int(item["updated_at"]),
        attempts=int(item.get("attempts", 0)),
        error=item.get("error"),
    )

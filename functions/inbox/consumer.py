"""The reference consumer: take a batch from the inbox queue, hand each submission to the back
office once, and say which ones to deliver again.

Small enough to adopt: for each message, claim its receipt (functions/inbox/receipts.py), fetch
the body (inline, or from S3 when the message names a key), POST it to the back office with
`Idempotency-Key: <receipt id>`, then mark it done. What the back office must do: treat the key
as unique (a second POST with a key it has seen answers 2xx or 409 and changes nothing). A
consumer that dies after the back office took a submission but before marking it done leaves
a lease that runs out; the next delivery posts it again with the same key. That is the one case
the back office sees twice, and the key makes it harmless: at-least-once delivery, exactly-once
effect.

Outcomes, per message: done (2xx, or 409: seen before) and deleted; refused (another 4xx):
marked failed, copied to the dead-letter queue for an operator, and deleted; anything else
(5xx, a timeout, no connection, a lease another consumer holds) is reported as a batch item
failure (ReportBatchItemFailures), so SQS delivers it again after the visibility timeout and,
after `max_receive_count` deliveries, moves it to the dead-letter queue itself.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .receipts import KEY_ATTRIBUTE, RECEIPT_ATTRIBUTE, Receipts, untag

BODY_KEY_ATTRIBUTE = "bodyKey"
"""The message attribute naming the S3 object of a body too large for the message."""
PATH_ATTRIBUTE = "path"
TYPE_ATTRIBUTE = "contentType"

Verdict = Literal["done", "refused", "retry"]


class BackOffice(Protocol):
    def submit(self, submission: Submission) -> Verdict: ...


@dataclass(frozen=True)
class Submission:
    receipt: str
    path: str
    content_type: str
    body: bytes
    received_at: int
    idempotency_key: str | None


class HttpBackOffice:
    """POSTs a submission to `url`; the verdict from the status (2xx/409 done, other 4xx
    refused, anything else retry)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url, self.timeout_s = url, timeout_s

    def submit(self, submission: Submission) -> Verdict:
        request = urllib.request.Request(
            self.url,
            data=submission.body,
            method="POST",
            headers={
                "Content-Type": submission.content_type,
                "Idempotency-Key": submission.receipt,
                "X-Floodgate-Path": submission.path,
                "X-Floodgate-Received-At": str(submission.received_at),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                return "done" if 200 <= answer.status < 300 else "retry"
        except urllib.error.HTTPError as error:
            if error.code == 409:
                return "done"
            return "refused" if 400 <= error.code < 500 and error.code != 429 else "retry"
        except (urllib.error.URLError, TimeoutError, OSError):
            return "retry"


class RetryLaterError(Exception):
    """Deliver this message again later."""


@dataclass
class Consumer:
    """One batch at a time; `clock` in epoch seconds."""

    receipts: Receipts
    back_office: BackOffice
    sqs: Any
    dlq_url: str
    s3: Any
    bucket: str | None
    """Where bodies too large for a message are kept (None: the stack takes none, and a message
    naming one is kept in the dead-letter queue)."""
    lease_s: int
    clock: Callable[[], float]
    secrets: Callable[[], list[str]]
    """The receipt secret's values (current first): the edge tags each message with it."""

    def consume(self, records: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
        """Lambda's SQS event: the batch item failures to deliver again."""
        failures = []
        for record in records:
            try:
                self.handle(record)
            except RetryLaterError:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    def handle(self, record: dict[str, Any]) -> Verdict | Literal["duplicate"]:
        attributes = record.get("messageAttributes", {})
        tagged = _attribute(attributes, RECEIPT_ATTRIBUTE)
        receipt = None if tagged is None else untag(tagged, self.secrets())
        if receipt is None:
            # Not a message the edge made (posted around CloudFront, or mangled): keep it for
            # an operator, never act on it, never drop it.
            self._dead_letter(record, "no receipt the edge made")
            return "refused"
        received_at = int(record["attributes"]["SentTimestamp"]) // 1000
        now = int(self.clock())
        claim = self.receipts.claim(receipt, received_at, now, self.lease_s)
        if claim == "finished":
            return "duplicate"
        if claim == "busy":
            raise RetryLaterError(receipt)
        try:
            if self.bucket is None and _attribute(attributes, BODY_KEY_ATTRIBUTE) is not None:
                self._dead_letter(record, "a body in S3, and no bucket configured")
                self.receipts.finish(receipt, "failed", int(self.clock()), "body not found")
                return "refused"
            submission = Submission(
                receipt=receipt,
                path=_attribute(attributes, PATH_ATTRIBUTE) or "",
                content_type=_attribute(attributes, TYPE_ATTRIBUTE) or "application/octet-stream",
                body=self._body(record, attributes),
                received_at=received_at,
                idempotency_key=_attribute(attributes, KEY_ATTRIBUTE),
            )
            verdict = self.back_office.submit(submission)
        except Exception as error:
            self.receipts.release(receipt, int(self.clock()))
            raise RetryLaterError(receipt) from error
        if verdict == "retry":
            self.receipts.release(receipt, int(self.clock()))
            raise RetryLaterError(receipt)
        if verdict == "refused":
            self._dead_letter(record, "the back office refused it")
            self.receipts.finish(receipt, "failed", int(self.clock()), "the back office refused it")
        else:
            self.receipts.finish(receipt, "done", int(self.clock()))
        return verdict

    def _body(self, record: dict[str, Any], attributes: dict[str, Any]) -> bytes:
        key = _attribute(attributes, BODY_KEY_ATTRIBUTE)
        if key is None:
            return str(record["body"]).encode()
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def _dead_letter(self, record: dict[str, Any], why: str) -> None:
        """A copy in the dead-letter queue, with why, before the message is deleted."""
        attributes = {
            name: {"DataType": "String", "StringValue": value["stringValue"]}
            for name, value in record.get("messageAttributes", {}).items()
            if "stringValue" in value
        }
        attributes["failure"] = {"DataType": "String", "StringValue": why}
        self.sqs.send_message(
            QueueUrl=self.dlq_url, MessageBody=record["body"], MessageAttributes=attributes
        )


def _attribute(attributes: dict[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    return None if value is None else value.get("stringValue")


def event_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A ReceiveMessage message as Lambda's SQS event hands it over (lower-case keys)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {"stringValue": value.get("StringValue"), "dataType": value["DataType"]}
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "eventSourceARN": queue_arn,
    }

"""The reference consumer: take a batch from the inbox queue, hand each submission to the back
office once, and say which ones to deliver again.

Small enough to adopt: for each message, claim its receipt (functions/inbox/receipts.py), fetch
the body (the message's own, or an upload's from S3 when the message is the bucket's event for
uploads/<receipt id>; it is deleted once done), POST it to the back office with
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

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Literal, Protocol

from .receipts import KEY_ATTRIBUTE, RECEIPT_ATTRIBUTE, Receipts, untag

PATH_ATTRIBUTE = "path"
TYPE_ATTRIBUTE = "contentType"
UPLOAD_PREFIX = "uploads/"
"""Where the edge writes a body above the inline limit: uploads/<receipt id>."""
UPLOAD_METADATA = "floodgate-"
"""The uploaded object's metadata the edge set (x-amz-meta-floodgate-receipt, -path, -key)."""
_UPLOAD_KEY = re.compile(r"^uploads/([0-9a-f]{32})$")

Verdict = Literal["done", "refused", "retry"]


class BackOffice(Protocol):
    def submit(self, submission: Submission) -> Verdict: ...


@dataclass(frozen=True)
class Submission:
    receipt: str
    path: str
    content_type: str
    body: bytes | IO[bytes]
    """The body itself, or an uploaded one as S3 streams it (read it once)."""
    length: int
    """The body's size in bytes."""
    received_at: int
    idempotency_key: str | None

    def read(self) -> bytes:
        """The whole body (an uploaded one read from its stream)."""
        return self.body if isinstance(self.body, bytes) else self.body.read()


class HttpBackOffice:
    """POSTs a submission to `url`; the verdict from the status (2xx/409 done, other 4xx
    refused, anything else retry). An uploaded body streams from S3 as it is sent."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url, self.timeout_s = url, timeout_s

    def submit(self, submission: Submission) -> Verdict:
        request = urllib.request.Request(
            self.url,
            data=submission.body,
            method="POST",
            headers={
                "Content-Type": submission.content_type,
                "Content-Length": str(submission.length),
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


class _KeepError(Exception):
    """Keep this message in the dead-letter queue, with why, and never act on it."""


class _FinishedError(Exception):
    """The message's submission is done or failed already (its upload deleted since)."""


@dataclass(frozen=True)
class _Message:
    """What a message asks for: the edge's tagged receipt and the submission's parts."""

    tagged: str | None
    path: str
    content_type: str
    idempotency_key: str | None
    upload: str | None
    """The S3 key of an uploaded body (None: the body is the message's)."""


@dataclass
class Consumer:
    """One batch at a time; `clock` in epoch seconds."""

    receipts: Receipts
    back_office: BackOffice
    sqs: Any
    dlq_url: str
    s3: Any
    bucket: str | None
    """The uploads bucket (None: the stack takes no uploads, and an upload's event is kept in
    the dead-letter queue)."""
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

    def handle(self, record: dict[str, Any]) -> Verdict | Literal["duplicate", "ignored"]:
        try:
            message = self._read(record)
            if message is None:
                return "ignored"  # S3's test event, sent when the notification is set
            receipt = None if message.tagged is None else untag(message.tagged, self.secrets())
            if receipt is None or (message.upload not in (None, UPLOAD_PREFIX + receipt)):
                # Not a message the edge made (posted around CloudFront, or mangled): keep it
                # for an operator, never act on it, never drop it.
                raise _KeepError("no receipt the edge made")
        except _KeepError as kept:
            self._dead_letter(record, str(kept))
            return "refused"
        except _FinishedError:
            return "duplicate"
        received_at = int(record["attributes"]["SentTimestamp"]) // 1000
        now = int(self.clock())
        claim = self.receipts.claim(receipt, received_at, now, self.lease_s)
        if claim == "finished":
            return "duplicate"
        if claim == "busy":
            raise RetryLaterError(receipt)
        try:
            body, length = self._body(record, message)
            submission = Submission(
                receipt=receipt,
                path=message.path,
                content_type=message.content_type,
                body=body,
                length=length,
                received_at=received_at,
                idempotency_key=message.idempotency_key,
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
            self._forget(message)
        return verdict

    def _read(self, record: dict[str, Any]) -> _Message | None:
        """The message as the API's integration made it, or as S3's event names an upload
        (then its metadata is read); None for S3's test event."""
        attributes = record.get("messageAttributes", {})
        if attributes:
            return _Message(
                tagged=_attribute(attributes, RECEIPT_ATTRIBUTE),
                path=_attribute(attributes, PATH_ATTRIBUTE) or "",
                content_type=_attribute(attributes, TYPE_ATTRIBUTE) or "application/octet-stream",
                idempotency_key=_attribute(attributes, KEY_ATTRIBUTE),
                upload=None,
            )
        try:
            event = json.loads(record["body"])
        except ValueError:
            event = None
        if not isinstance(event, dict):
            return _Message(None, "", "", None, None)
        if event.get("Event") == "s3:TestEvent":
            return None
        return self._upload(event)

    def _upload(self, event: dict[str, Any]) -> _Message:
        """S3's ObjectCreated event (one record a message) for uploads/<receipt id>."""
        records = event.get("Records")
        if not isinstance(records, list) or len(records) != 1:
            raise _KeepError("not one S3 event record")
        try:
            bucket = records[0]["s3"]["bucket"]["name"]
            key = urllib.parse.unquote_plus(records[0]["s3"]["object"]["key"])
        except (KeyError, TypeError) as error:
            raise _KeepError("not an S3 event") from error
        if self.bucket is None or bucket != self.bucket or not _UPLOAD_KEY.match(key):
            raise _KeepError(f"an object the inbox does not take: s3://{bucket}/{key}")
        try:
            head = self.s3.head_object(Bucket=bucket, Key=key)
        except self.s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                raise RetryLaterError(key) from error
            return self._gone(key)
        meta = head.get("Metadata", {})
        return _Message(
            tagged=meta.get(UPLOAD_METADATA + "receipt"),
            path=meta.get(UPLOAD_METADATA + "path", ""),
            content_type=head.get("ContentType") or "application/octet-stream",
            idempotency_key=meta.get(UPLOAD_METADATA + "key"),
            upload=key,
        )

    def _gone(self, key: str) -> _Message:
        """An event for an object no longer there: deleted once done (S3 delivers an event at
        least once), else lost to someone, which is kept for an operator."""
        match = _UPLOAD_KEY.match(key)
        record = None if match is None else self.receipts.get(match.group(1))
        if record is not None and record.status in ("done", "failed"):
            raise _FinishedError(key)
        raise _KeepError(f"the uploaded body is gone: {key}")

    def _body(self, record: dict[str, Any], message: _Message) -> tuple[bytes | IO[bytes], int]:
        if message.upload is None:
            body = str(record["body"]).encode()
            return body, len(body)
        got = self.s3.get_object(Bucket=self.bucket, Key=message.upload)
        return got["Body"], int(got["ContentLength"])

    def _forget(self, message: _Message) -> None:
        """Once done, an uploaded body is deleted (the bucket's lifecycle expires any the
        consumer could not delete)."""
        if message.upload is None:
            return
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=message.upload)
        except Exception:
            print(f"floodgate-inbox keep {message.upload}: not deleted, the lifecycle will")

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

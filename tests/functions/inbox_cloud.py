"""The inbox against moto: its queue and dead-letter queue, the receipts table, the bodies
bucket, a back office that keeps what it was sent, and the SQS event source played by hand."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3

from functions.inbox.consumer import Consumer, Submission, Verdict, event_record
from functions.inbox.receipts import RECEIPT_ATTRIBUTE, Receipts, tag

REGION = "ca-central-1"
T0 = 1_857_000_000
LEASE_S = 30
KEEP_S = 30 * 86_400
SECRET = "receipt-secret"
UPLOADS = "inbox-uploads"


@dataclass
class BackOffice:
    """Honours `Idempotency-Key` as the README asks a back office to: a key seen before changes
    nothing. `calls` counts every POST, `effects` what was acted on."""

    answers: list[Verdict] = field(default_factory=list)
    """Verdicts to give, in turn, before accepting everything."""
    calls: Counter[str] = field(default_factory=Counter)
    effects: Counter[str] = field(default_factory=Counter)
    bodies: dict[str, bytes] = field(default_factory=dict)

    def submit(self, submission: Submission) -> Verdict:
        self.calls[submission.receipt] += 1
        if self.answers:
            verdict = self.answers.pop(0)
            if verdict != "done":
                return verdict
        if submission.receipt not in self.bodies:
            self.effects[submission.receipt] += 1
            self.bodies[submission.receipt] = submission.read()
        return "done"


@dataclass
class Inbox:
    sqs: Any
    s3: Any
    queue_url: str
    queue_arn: str
    dlq_url: str
    table: Any
    receipts: Receipts
    now: list[int]
    test_event: dict[str, Any] = field(default_factory=dict)
    """S3's test event for the uploads notification, as the queue received it."""
    in_flight: list[str] = field(default_factory=list)
    """Receipt handles of messages received and not deleted (failed, or the consumer died)."""

    def status(self, receipt: str) -> str | None:
        record = self.receipts.get(receipt)
        return None if record is None else record.status

    def consumer(self, back_office: Any) -> Consumer:
        return Consumer(
            receipts=self.receipts,
            back_office=back_office,
            sqs=self.sqs,
            dlq_url=self.dlq_url,
            s3=self.s3,
            bucket=UPLOADS,
            lease_s=LEASE_S,
            clock=lambda: self.now[0],
            secrets=lambda: [SECRET],
        )

    def send(self, receipt: str, body: str = "{}", **attributes: str) -> None:
        """What the HTTP API's SQS-SendMessage integration puts in the queue."""
        values = {RECEIPT_ATTRIBUTE: tag(receipt, SECRET), "path": "/submit/apply", **attributes}
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v} for k, v in values.items()
            },
        )

    def upload(self, receipt: str, body: bytes, key: str | None = None, **meta: str) -> None:
        """What CloudFront writes for a PUT to /inbox/uploads/submit/apply (the edge's
        metadata, through the origin access control)."""
        metadata = {"floodgate-receipt": tag(receipt, SECRET), "floodgate-path": "/submit/apply"}
        if key is not None:
            metadata["floodgate-key"] = key
        self.s3.put_object(
            Bucket=UPLOADS,
            Key=f"uploads/{receipt}",
            Body=body,
            ContentType="application/pdf",
            Metadata={**metadata, **meta},
        )

    def poll(self, consumer: Consumer, batch: int = 5) -> tuple[int, int]:
        """One event-source poll, as Lambda runs it: receive a batch, invoke, delete what did
        not fail. Returns (received, failed)."""
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=batch,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return 0, 0
        self.in_flight += [m["ReceiptHandle"] for m in got]
        result = consumer.consume([event_record(m, self.queue_arn) for m in got])
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for message in got:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                self.in_flight.remove(message["ReceiptHandle"])
        return len(got), len(failed)

    def expire_visibility(self) -> None:
        """The visibility timeout runs out for every in-flight message (and the clock moves
        past every lease)."""
        self.now[0] += 6 * LEASE_S
        for handle in self.in_flight:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        self.in_flight.clear()

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


def create_inbox(name: str = "inbox", visibility_s: int = 180, max_receives: int = 5) -> Inbox:
    """Queues, table and bucket as components/inbox.py declares them (moto accepts them)."""
    sqs = boto3.client("sqs", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_s),
            "MessageRetentionPeriod": "345600",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    dynamodb: Any = boto3.resource("dynamodb", region_name=REGION)
    table = dynamodb.create_table(
        TableName=f"{name}-receipts",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=UPLOADS, CreateBucketConfiguration={"LocationConstraint": REGION})
    # Each object written under uploads/ is an event in the queue, as the stack's
    # BucketNotification sets it (moto sends S3's test event first, as S3 does).
    s3.put_bucket_notification_configuration(
        Bucket=UPLOADS,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
                }
            ]
        },
    )
    inbox = Inbox(sqs, s3, queue_url, queue_arn, dlq_url, table, Receipts(table, KEEP_S), [T0])
    # S3 checks a new notification with a test event (moto too); kept apart for its own test.
    (inbox.test_event,) = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["All"])[
        "Messages"
    ]
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=inbox.test_event["ReceiptHandle"])
    return inbox

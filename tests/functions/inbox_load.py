"""The inbox under load, against moto's server on 127.0.0.1: submissions through the edge
function (node, CloudFront's event shapes) and the HTTP API's SQS-SendMessage mapping as the
stack declares it, one in twenty a PUT to the upload path written to the uploads bucket with
the metadata the edge set (its event into the same queue, as the stack's BucketNotification
sends it), then consumers draining with duplicates, redeliveries and a consumer killed
mid-batch. Shared by the suite (a bounded run) and `make bench` (5,000 submissions, figures).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from components.inbox import MESSAGE_ATTRIBUTES
from functions.inbox import handlers
from functions.inbox.consumer import Consumer, Submission, Verdict, event_record
from functions.inbox.receipts import Receipts, verify
from planning.settings.inbox import CONSUMER_BATCH

ROOT = Path(__file__).resolve().parents[2]
SECRET = "receipt-secret"
"""What tests/edge/inbox_harness.mjs holds in the inbox's store."""
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "ca-central-1"
LEASE_S = 30
UPLOAD_EVERY = 20
"""One submission in this many is an upload (a body above the inline limit)."""
META = "x-amz-meta-"


@dataclass
class Office:
    """A back office that honours Idempotency-Key, counting calls and effects."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: Counter[str] = field(default_factory=Counter)
    effects: Counter[str] = field(default_factory=Counter)

    def submit(self, submission: Submission) -> Verdict:
        with self.lock:
            self.calls[submission.receipt] += 1
            if submission.receipt not in self.effects:
                self.effects[submission.receipt] = 1
        return "done"


class Killed(BaseException):
    """The consumer's process dies (not an error it reports: nothing is deleted)."""


class _Dying:
    def submit(self, submission: Submission) -> Verdict:
        raise Killed


@dataclass
class Report:
    submissions: int
    unique: int
    accept_ms: list[float]
    drain_s: float
    drained: int
    office: Office
    redelivered: int
    left_waiting: int
    """Messages still in the queue when the drain's time bound ran out (0: all drained)."""
    dead_letters: int
    """Messages SQS moved to the dead-letter queue (delivered `maxReceiveCount` times): kept,
    for `scripts/redrive.py`, not lost."""
    receipts: dict[str, str]
    """Receipt token (as the client got it) -> the status route's answer."""
    uploads: int = 0
    """Submissions uploaded (their bodies in the bucket, their events in the queue)."""
    uploads_left: int = 0
    """Uploaded bodies still in the bucket after the drain (0: each deleted once done)."""


def edge(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """functions/edge/inbox.js, run by node on CloudFront's event shapes."""
    done = subprocess.run(
        ["node", str(ROOT / "tests/edge/inbox_run.mjs")],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)


def post_event(kind: str, n: int, key: str | None, upload: bool = False) -> dict[str, Any]:
    """A JSON post to /submit/apply as CloudFront hands it to the function, request id
    `req-<n>`; with `upload`, a PDF PUT to /inbox/uploads/submit/apply."""
    headers = {
        "content-type": {"value": "application/pdf" if upload else "application/json"},
        "content-length": {"value": "2000000" if upload else "32"},
        "accept": {"value": "application/json"},
    }
    if key is not None:
        headers["idempotency-key"] = {"value": key}
    event: dict[str, Any] = {
        "version": "1.0",
        "context": {"eventType": kind, "requestId": f"req-{n:06d}"},
        "viewer": {"ip": "198.51.100.11"},
        "request": {"method": "PUT" if upload else "POST",
                    "uri": "/inbox/uploads/submit/apply" if upload else "/submit/apply",
                    "querystring": {}, "headers": headers, "cookies": {}},
    }  # fmt: skip
    if kind == "viewer-response":
        event["response"] = {"statusCode": 200, "headers": {}, "cookies": {}}
    return event


def _attributes(request: dict[str, Any]) -> dict[str, Any]:
    """MESSAGE_ATTRIBUTES with the HTTP API's `${...}` interpolation done on `request`."""
    values = {
        "${request.header.x-floodgate-receipt}": request["headers"]["x-floodgate-receipt"]["value"],
        "${request.path}": request["uri"],
        "${request.header.content-type}": request["headers"]["content-type"]["value"],
    }
    return {
        name: {"DataType": a["DataType"], "StringValue": values[a["StringValue"]]}
        for name, a in MESSAGE_ATTRIBUTES.items()
    }


def _keys(n: int) -> list[str | None]:
    """Most with a key of their own, one in ten repeating an earlier one (a client retrying),
    one in ten with none (each its own submission)."""
    keys: list[str | None] = []
    for i in range(n):
        if i % 10 == 9 and i > 10:
            keys.append(keys[i - 7] or f"key-{i - 8:08d}")
        elif i % 10 == 4:
            keys.append(None)
        else:
            keys.append(f"key-{i:08d}")
    return keys


def run(url: str, n: int, consumers: int = 4, kill_every: int = 97, bound_s: float = 600) -> Report:
    """`n` submissions accepted by 16 clients at once, drained by `consumers` threads for at
    most `bound_s`; every `kill_every`-th delivery kills its consumer mid-batch."""
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=url, **CREDENTIALS)
    dynamodb: Any = boto3.resource("dynamodb", region_name=REGION, endpoint_url=url, **CREDENTIALS)
    name = f"load-{time.monotonic_ns()}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "180",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    table = dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=url, **CREDENTIALS)
    bucket = _uploads_bucket(s3, name, queue, queue_arn, sqs)
    keys = _keys(n)
    uploads = [i % UPLOAD_EVERY == 7 for i in range(n)]
    tagged = edge([post_event("viewer-request", i, keys[i], uploads[i]) for i in range(n)])
    answers = edge([post_event("viewer-response", i, keys[i], uploads[i]) for i in range(n)])
    latencies: list[float] = []

    def accept(request: dict[str, Any]) -> None:
        started = time.perf_counter()
        if request["uri"].startswith("/uploads/"):
            # What CloudFront writes through the origin access control: the rewritten key, the
            # edge's x-amz-meta-* headers as the object's metadata.
            headers = request["headers"]
            meta = {h[len(META) :]: v["value"] for h, v in headers.items() if h.startswith(META)}
            s3.put_object(
                Bucket=bucket, Key=request["uri"][1:], Body=b"%PDF-" + b"x" * 1_000,
                ContentType=headers["content-type"]["value"], Metadata=meta,
            )  # fmt: skip
        else:
            sqs.send_message(QueueUrl=queue, MessageBody='{"form":"apply"}',
                             MessageAttributes=_attributes(request))  # fmt: skip
        latencies.append((time.perf_counter() - started) * 1000)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(accept, tagged))
    office, clock = Office(), [time.time()]
    receipts = Receipts(table, keep_s=30 * 86_400)
    deliveries, redelivered = Counter[str](), [0]
    in_flight: list[str] = []
    lock = threading.Lock()

    def consume() -> None:
        consumer = Consumer(receipts, office, sqs, dlq, s3, bucket, LEASE_S,
                            lambda: clock[0], lambda: [SECRET])  # fmt: skip
        while True:
            consumer.back_office = office
            got = sqs.receive_message(
                QueueUrl=queue, MaxNumberOfMessages=CONSUMER_BATCH, MessageAttributeNames=["All"],
                AttributeNames=["All"], WaitTimeSeconds=0,
            ).get("Messages", [])  # fmt: skip
            if not got:
                return
            records = [event_record(m, queue_arn) for m in got]
            with lock:
                for m in got:
                    deliveries[m["MessageId"]] += 1
                    redelivered[0] += deliveries[m["MessageId"]] > 1
                total = sum(deliveries.values())
            dying = total // kill_every != (total - len(got)) // kill_every
            try:
                if dying:
                    consumer.handle(records[0])  # one done; the next claimed, then it dies
                    if len(records) > 1:
                        consumer.back_office = _Dying()
                        consumer.handle(records[1])
                    raise Killed
                result = consumer.consume(records)
            except Killed:
                with lock:
                    in_flight.extend(m["ReceiptHandle"] for m in got)
                continue
            failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
            for m in got:
                if m["MessageId"] in failed:
                    with lock:
                        in_flight.append(m["ReceiptHandle"])
                else:
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])

    started = time.perf_counter()
    deadline = started + bound_s
    while time.perf_counter() < deadline:
        with ThreadPoolExecutor(consumers) as pool:
            for _ in range(consumers):
                pool.submit(consume)
        with lock:
            waiting, in_flight[:] = list(in_flight), []
        if not waiting:
            if _depth(sqs, queue) == 0:
                break
            # Received, never answered (moto's receive can fail part-way under concurrent
            # receives): SQS delivers them again once their visibility timeout runs out.
            time.sleep(5)
            continue
        clock[0] += 6 * LEASE_S  # the visibility timeout and every lease run out
        for handle in waiting:
            # Invalid: its visibility timeout ran out in real time, and it was delivered again.
            with contextlib.suppress(sqs.exceptions.ReceiptHandleIsInvalid):
                sqs.change_message_visibility(
                    QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=0
                )
    drain_s = time.perf_counter() - started
    tokens = [json.loads(a["body"]["data"])["receipt"] for a in answers]
    return Report(
        submissions=n,
        unique=len({t.split(".")[0] for t in tokens}),
        accept_ms=sorted(latencies),
        drain_s=drain_s,
        drained=sum(office.effects.values()),
        office=office,
        redelivered=redelivered[0],
        left_waiting=_depth(sqs, queue),
        dead_letters=_depth(sqs, dlq),
        receipts=_statuses(url, table.name, tokens),
        uploads=sum(uploads),
        uploads_left=s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0),
    )


def _uploads_bucket(s3: Any, name: str, queue: str, queue_arn: str, sqs: Any) -> str:
    """The uploads bucket, its ObjectCreated events under uploads/ into `queue`; S3's test
    event, sent as the notification is set, is left for the consumer (which deletes it)."""
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    rule = {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}}
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"], "Filter": rule}
            ]
        },
    )
    assert _depth(sqs, queue) == 1, "S3's test event"
    return name


def _depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(v) for v in got.values())


def _statuses(url: str, table: str, tokens: list[str]) -> dict[str, str]:
    """Each receipt as the status route answers it (functions/inbox/handlers.status)."""
    answers: dict[str, str] = {}
    handlers._cache.clear()
    handlers._cache["config"] = handlers.Config(
        table=table, dlq_url="", back_office_url="https://back-office.example/",
        back_office_timeout_s=6, lease_s=LEASE_S, receipt_days=30, secret_arn="unused",
    )  # fmt: skip
    handlers._cache["secrets"] = (handlers.clock(), [SECRET])
    dynamodb = boto3.resource("dynamodb", region_name=REGION, endpoint_url=url, **CREDENTIALS)
    original = handlers._receipts
    handlers._receipts = lambda config: Receipts(dynamodb.Table(config.table), keep_s=86_400)  # type: ignore[assignment]
    try:
        for token in tokens:
            answer = handlers.status({"pathParameters": {"receipt": token}})
            body = json.loads(answer["body"])
            answers[token] = body.get("status", f"HTTP {answer['statusCode']}")
            assert verify(token, [SECRET]) is not None
    finally:
        handlers._receipts = original  # type: ignore[assignment]
        handlers._cache.clear()
    return answers

"""Redrive the inbox's dead-letter queue back to its source: the engine `scripts/redrive.py`
runs, and a fake of SQS's message move task for tests (moto has none).

AWS's rules, as the SQS API Reference states them for StartMessageMoveTask: the source must
be a dead-letter queue of an SQS queue; the destination, when not given, is each message's
original source queue; at most one active task per queue; a fixed rate is at most 500
messages a second (left blank, SQS picks one from the backlog). Redriving is safe to repeat:
the consumer recognises a submission it already finished by its receipt and deletes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

MAX_RATE_PER_S = 500
ACTIVE = "RUNNING"


@dataclass(frozen=True)
class Redrive:
    """What a redrive found and did."""

    waiting: int
    """Messages in the dead-letter queue (ApproximateNumberOfMessages)."""
    action: str
    """`started`, `running` (a task was already moving them: nothing started), `empty`,
    `would start` (dry run)."""
    task: str | None = None
    """The move task's handle, when one was started or found running."""


def redrive(
    sqs: Any, dlq_url: str, *, rate_per_s: int | None = None, dry_run: bool = False
) -> Redrive:
    """Move every message of the dead-letter queue at `dlq_url` back to its source queue."""
    if rate_per_s is not None and not 1 <= rate_per_s <= MAX_RATE_PER_S:
        raise ValueError(f"rate must be between 1 and {MAX_RATE_PER_S} messages a second")
    attributes = sqs.get_queue_attributes(
        QueueUrl=dlq_url, AttributeNames=["QueueArn", "ApproximateNumberOfMessages"]
    )["Attributes"]
    arn, waiting = attributes["QueueArn"], int(attributes["ApproximateNumberOfMessages"])
    running = [
        t for t in sqs.list_message_move_tasks(SourceArn=arn)["Results"] if t["Status"] == ACTIVE
    ]
    if running:
        return Redrive(waiting, "running", running[0].get("TaskHandle"))
    if waiting == 0:
        return Redrive(0, "empty")
    if dry_run:
        return Redrive(waiting, "would start")
    request: dict[str, Any] = {"SourceArn": arn}
    if rate_per_s is not None:
        request["MaxNumberOfMessagesPerSecond"] = rate_per_s
    return Redrive(waiting, "started", sqs.start_message_move_task(**request)["TaskHandle"])


@dataclass
class _Task:
    handle: str
    source: str
    destination: str | None
    rate: int
    status: str = ACTIVE
    moved: int = 0


@dataclass
class MoveTasks:
    """moto's SQS client with StartMessageMoveTask and ListMessageMoveTasks as AWS documents
    them; `advance(seconds)` moves what the rate allows in that time (a task is asynchronous).
    Every other call goes to the wrapped client."""

    client: Any
    tasks: list[_Task] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def _sources_of(self, dlq_arn: str) -> list[str]:
        urls = self.client.list_queues().get("QueueUrls", [])
        sources = []
        for url in urls:
            got = self.client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["RedrivePolicy", "QueueArn"]
            )["Attributes"]
            policy = json.loads(got.get("RedrivePolicy", "{}"))
            if policy.get("deadLetterTargetArn") == dlq_arn:
                sources.append(got["QueueArn"])
        return sources

    def start_message_move_task(
        self,
        SourceArn: str,  # noqa: N803 (boto3's parameter names)
        DestinationArn: str | None = None,  # noqa: N803
        MaxNumberOfMessagesPerSecond: int | None = None,  # noqa: N803
    ) -> dict[str, str]:
        if not self._sources_of(SourceArn):
            raise _error("InvalidParameterValue", "Source queue must be configured as a DLQ.")
        if any(t.source == SourceArn and t.status == ACTIVE for t in self.tasks):
            raise _error("UnsupportedOperation", "There is already a task running.")
        rate = MaxNumberOfMessagesPerSecond
        if rate is not None and not 1 <= rate <= MAX_RATE_PER_S:
            raise _error("InvalidParameterValue", "MaxNumberOfMessagesPerSecond is invalid.")
        task = _Task(
            f"task-{len(self.tasks) + 1}", SourceArn, DestinationArn, rate or MAX_RATE_PER_S
        )
        self.tasks.append(task)
        return {"TaskHandle": task.handle}

    def list_message_move_tasks(self, SourceArn: str, MaxResults: int = 1) -> dict[str, Any]:  # noqa: N803
        if not self._sources_of(SourceArn):
            raise _error("InvalidParameterValue", "Source queue must be configured as a DLQ.")
        mine = [t for t in reversed(self.tasks) if t.source == SourceArn][:MaxResults]
        return {
            "Results": [
                {
                    "TaskHandle": t.handle,
                    "Status": t.status,
                    "ApproximateNumberOfMessagesMoved": t.moved,
                }
                for t in mine
            ]
        }

    def advance(self, seconds: float) -> int:
        """Move up to rate x `seconds` messages of every running task; a task whose queue is
        empty completes. Returns how many moved."""
        moved = 0
        for task in (t for t in self.tasks if t.status == ACTIVE):
            dlq = self._url(task.source)
            budget = int(task.rate * seconds)
            while budget > 0:
                got = self.client.receive_message(
                    QueueUrl=dlq,
                    MaxNumberOfMessages=min(10, budget),
                    MessageAttributeNames=["All"],
                    VisibilityTimeout=30,
                )
                messages = got.get("Messages", [])
                if not messages:
                    task.status = "COMPLETED"
                    break
                for message in messages:
                    destination = task.destination or self._sources_of(task.source)[0]
                    self.client.send_message(
                        QueueUrl=self._url(destination),
                        MessageBody=message["Body"],
                        MessageAttributes=message.get("MessageAttributes", {}),
                    )
                    self.client.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
                    task.moved += 1
                    moved += 1
                    budget -= 1
        return moved

    def _url(self, arn: str) -> str:
        return self.client.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]


def _error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "MessageMoveTask")

"""The `inbox` section: submissions the edge accepts for the back office, at its pace."""

from __future__ import annotations

import math
from typing import Self

from pydantic import Field, field_validator, model_validator

from planning import aws_facts
from planning.settings.base import _at, _check_domain, _check_range, _Model


class InboxSettings(_Model):
    """Off unless `path_patterns` names write paths: each is then accepted by CloudFront into an
    SQS queue through API Gateway (no Lambda, no fleet on the accept path), answered 202 with a
    receipt, and handed to the back office by a consumer at `drain_per_s`."""

    path_patterns: list[str] = []
    """Write paths the inbox covers, each one of `edge.write_path_patterns` (e.g. `/submit/*`).
    Their POSTs never reach the fleet; other write paths still do."""
    back_office_url: str | None = None
    """Where the consumer POSTs each submission (HTTPS), with `Idempotency-Key` set to its
    receipt id: 2xx or 409 is done, another 4xx is failed (kept in the DLQ), 5xx or a timeout
    is tried again. Required with `path_patterns`."""
    inline_body_max_bytes: int = Field(default=262_144, ge=1_024)
    """Largest body the inbox accepts, carried in the message itself (SQS allows 1 MiB, body
    and attributes together; each 64 KiB is billed as one request). The edge refuses a larger
    one with 413 before it reaches the queue, naming the upload path when `body_max_bytes`
    allows more."""
    body_max_bytes: int = Field(default=10_485_760, ge=1_024)
    """Largest body the inbox accepts at all. Above `inline_body_max_bytes` (and up to this) a
    client PUTs it to `/inbox/uploads<path>`: CloudFront writes it through an origin access
    control into a private bucket encrypted with the inbox's key, and the bucket's event puts
    a message naming it in the same queue (no Lambda on that path either). S3 takes at most 5
    GiB in one PUT. Equal to `inline_body_max_bytes`: no uploads, no bucket."""
    accept_per_s: int = Field(default=2_000, ge=1, le=10_000)
    """Submissions a second the inbox's HTTP API takes (its stage throttle, burst the same);
    over it API Gateway answers 429 and the client tries again. The account's HTTP APIs share
    10,000 a second per Region by default, the queue API's included (API Gateway quotas)."""
    api_domain_name: str | None = None
    """The name CloudFront reaches the inbox's API by: a custom domain, with the default
    execute-api endpoint disabled, so nothing spends the accept throttle except through
    CloudFront and its WAF. Needs `load_balancer.hosted_zone_id` (Floodgate writes its record)
    and a certificate: `api_certificate_arn`, else the load balancer's, covering it. Unset (PR
    previews): the endpoint stays public; the consumer still acts only on messages the edge
    tagged."""
    api_certificate_arn: str | None = None
    """Regional ACM certificate covering `api_domain_name`; unset, the load balancer's."""
    retention_s: int = 345_600
    """How long the queue keeps a submission the back office has not taken (SQS: 60 s to 14
    days; default 4 days)."""
    dlq_retention_s: int = 1_209_600
    """How long the dead-letter queue keeps one: longer than `retention_s`, since a standard
    queue's DLQ keeps each message's original enqueue time (SQS Developer Guide)."""
    max_receive_count: int = 5
    """Deliveries before a submission goes to the dead-letter queue (1 to 1,000)."""
    processing_s: float = Field(default=2.0, gt=0, le=900)
    """Seconds the back office takes per submission (an assumption: measure yours). With
    `drain_per_s` it sizes the consumer's concurrency, and the visibility timeout."""
    drain_per_s: float = Field(default=10.0, gt=0)
    """Submissions a second the back office can take: the consumer runs at most
    ceil(drain_per_s x processing_s) at once (Lambda's SQS event source allows 2 to 1,000)."""
    receipt_days: int = Field(default=30, ge=1, le=aws_facts.DDB_TTL_DAYS_MAX)
    """Days a receipt can be checked after it was received (DynamoDB TTL)."""
    oldest_age_alarm_s: int = Field(default=1_800, ge=60)
    """Age of the oldest waiting submission that alarms (ApproximateAgeOfOldestMessage)."""
    submit_pct: float = Field(default=5.0, ge=0, le=100)
    """Share of visits that end in a submission (%), which the plan and the rehearsal turn
    into submissions a minute; an assumption, set it from your own figures."""

    @property
    def enabled(self) -> bool:
        return bool(self.path_patterns)

    @property
    def uploads(self) -> bool:
        """Bodies above the inline limit go to the uploads bucket."""
        return self.enabled and self.body_max_bytes > self.inline_body_max_bytes

    @property
    def upload_expiry_days(self) -> int:
        """Days an uploaded body outlives a message naming it (the consumer deletes it once
        done; this catches the rest): past both queues' retention, whole days (S3 lifecycle)."""
        return math.ceil(self.dlq_retention_s / 86_400) + 1

    @property
    def consumer_concurrency(self) -> int:
        """Concurrent consumer invocations that drain `drain_per_s` at `processing_s` each."""
        return max(
            aws_facts.ESM_MAX_CONCURRENCY[0], math.ceil(self.drain_per_s * self.processing_s)
        )

    @property
    def consumer_timeout_s(self) -> int:
        """Three times what a batch takes (CONSUMER_BATCH x processing_s), within Lambda's
        900 s."""
        return min(aws_facts.LAMBDA_TIMEOUT_S[1], math.ceil(3 * CONSUMER_BATCH * self.processing_s))

    @property
    def visibility_timeout_s(self) -> int:
        """Six times the consumer's timeout, as Lambda's SQS guide advises, so a batch being
        worked on is not delivered again."""
        return 6 * self.consumer_timeout_s

    @field_validator("path_patterns")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.startswith("/") or "?" in pattern:
                raise ValueError(f"{pattern!r}: must be a CloudFront path pattern starting with /")
        if len(set(value)) != len(value):
            raise ValueError("names a path twice")
        return value

    @field_validator("api_domain_name")
    @classmethod
    def _api_domain(cls, value: str | None) -> str | None:
        return None if value is None else _check_domain(value)

    @field_validator("back_office_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be an https:// URL (submissions carry people's data)")
        return value

    @field_validator("retention_s", "dlq_retention_s")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_range(value, aws_facts.SQS_RETENTION_S, " seconds (SQS retention)")

    @field_validator("max_receive_count")
    @classmethod
    def _receives(cls, value: int) -> int:
        return _check_range(value, aws_facts.SQS_MAX_RECEIVE_COUNT, " (SQS redrive policy)")

    @model_validator(mode="after")
    def _limits(self) -> Self:
        if self.dlq_retention_s <= self.retention_s:
            raise _at(
                "dlq_retention_s",
                self.dlq_retention_s,
                f"must be longer than retention_s ({self.retention_s}): a standard queue's "
                "dead-letter queue keeps each message's original enqueue time",
            )
        # Attributes (receipt, path, content type, S3 key) take at most a few hundred bytes.
        most = aws_facts.SQS_MESSAGE_MAX_BYTES - INLINE_HEADROOM_BYTES
        if self.inline_body_max_bytes > most:
            raise _at(
                "inline_body_max_bytes",
                self.inline_body_max_bytes,
                f"must be at most {most} (SQS's 1 MiB message, less {INLINE_HEADROOM_BYTES} "
                "for the attributes)",
            )
        if self.body_max_bytes < self.inline_body_max_bytes:
            raise _at(
                "body_max_bytes",
                self.body_max_bytes,
                f"must be at least inline_body_max_bytes ({self.inline_body_max_bytes})",
            )
        if self.body_max_bytes > aws_facts.S3_PUT_MAX_BYTES:
            raise _at(
                "body_max_bytes",
                self.body_max_bytes,
                f"must be at most {aws_facts.S3_PUT_MAX_BYTES} (S3 takes 5 GiB in one PUT)",
            )
        if self.consumer_concurrency > aws_facts.ESM_MAX_CONCURRENCY[1]:
            raise _at(
                "drain_per_s",
                self.drain_per_s,
                f"needs {self.consumer_concurrency} consumers at processing_s "
                f"({self.processing_s}); Lambda's SQS event source runs at most "
                f"{aws_facts.ESM_MAX_CONCURRENCY[1]}",
            )
        if 3 * CONSUMER_BATCH * self.processing_s > aws_facts.LAMBDA_TIMEOUT_S[1]:
            raise _at(
                "processing_s",
                self.processing_s,
                f"at most {aws_facts.LAMBDA_TIMEOUT_S[1] / 3 / CONSUMER_BATCH:g}: a batch of "
                f"{CONSUMER_BATCH}, three times over, must fit Lambda's 900 s timeout",
            )
        if self.path_patterns and self.back_office_url is None:
            raise _at("back_office_url", None, "is required when path_patterns is set")
        return self


CONSUMER_BATCH = 5
"""Submissions one consumer invocation takes from the queue (it works them in turn and
reports each failure apart, ReportBatchItemFailures)."""
INLINE_HEADROOM_BYTES = 4_096
"""Bytes of a message kept for its attributes, below SQS's 1 MiB."""

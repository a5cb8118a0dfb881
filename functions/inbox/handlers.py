"""Lambda entry points: `status` (GET /inbox/receipts/{receipt} behind the HTTP API) and
`consume` (the SQS event source, at most the configured concurrency).

Every figure comes from the `FG_*` environment `components/inbox.py` sets, with no default: a
missing or malformed variable stops the function's init with every problem named.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from .consumer import Consumer, HttpBackOffice
from .receipts import Receipts, verify

clock: Callable[[], float] = time.time
"""Seconds since the epoch; tests replace it to move time."""
SECRET_CACHE_S = 300
"""How long a container keeps the receipt secret (it changes only with `pulumi up`)."""
_cache: dict[str, Any] = {}


@dataclass(frozen=True)
class Config:
    table: str
    dlq_url: str
    back_office_url: str
    back_office_timeout_s: float
    lease_s: int
    receipt_days: int
    secret_arn: str
    bucket: str | None = None
    """The uploads bucket (FG_INBOX_BUCKET; empty or unset: the stack takes no uploads)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        names = {
            "table": "FG_INBOX_TABLE",
            "dlq_url": "FG_INBOX_DLQ_URL",
            "back_office_url": "FG_BACK_OFFICE_URL",
            "back_office_timeout_s": "FG_BACK_OFFICE_TIMEOUT_S",
            "lease_s": "FG_LEASE_S",
            "receipt_days": "FG_RECEIPT_DAYS",
            "secret_arn": "FG_RECEIPT_SECRET_ARN",
        }
        missing = [v for v in names.values() if not env.get(v)]
        problems = [f"{v} is not set" for v in missing]
        values: dict[str, Any] = {k: env.get(v, "") for k, v in names.items()}
        for key, kind in (
            ("back_office_timeout_s", float),
            ("lease_s", int),
            ("receipt_days", int),
        ):
            if values[key]:
                try:
                    values[key] = kind(values[key])
                    if values[key] <= 0:
                        raise ValueError
                except ValueError:
                    problems.append(
                        f"{names[key]} must be a positive number (got {env[names[key]]!r})"
                    )
        if problems:
            raise RuntimeError("inbox function misconfigured: " + "; ".join(problems))
        return cls(**values, bucket=env.get("FG_INBOX_BUCKET") or None)


def _config() -> Config:
    if "config" not in _cache:
        _cache["config"] = Config.from_env(os.environ)
    return _cache["config"]


def _client(service: str) -> Any:
    if service not in _cache:
        retries = BotoConfig(retries={"mode": "standard", "max_attempts": 5})
        _cache[service] = boto3.client(service, config=retries)
    return _cache[service]


def _receipts(config: Config) -> Receipts:
    dynamodb: Any = boto3.resource("dynamodb")
    table = dynamodb.Table(config.table)
    return Receipts(table, keep_s=config.receipt_days * 86_400)


def _secrets(config: Config) -> list[str]:
    """The receipt secret's current and previous values (a rotation keeps old receipts valid)."""
    cached = _cache.get("secrets")
    if cached is not None and clock() - cached[0] < SECRET_CACHE_S:
        return cached[1]
    client = _client("secretsmanager")
    values = [client.get_secret_value(SecretId=config.secret_arn)["SecretString"]]
    try:
        previous = client.get_secret_value(SecretId=config.secret_arn, VersionStage="AWSPREVIOUS")
        values.append(previous["SecretString"])
    except client.exceptions.ResourceNotFoundException:
        pass
    _cache["secrets"] = (clock(), values)
    return values


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store"},
        "body": json.dumps(body, separators=(",", ":")),
    }


def status(event: dict[str, Any], _context: object = None) -> dict[str, Any]:
    """GET /inbox/receipts/{receipt}: received, processing, done or failed, with the time
    received; 404 for a receipt the edge did not sign. Never a 5xx: a fault is 429 with
    Retry-After (CloudFront would turn a 5xx into the high-demand page)."""
    config = _config()
    token = (event.get("pathParameters") or {}).get("receipt", "")
    try:
        signed = verify(token, _secrets(config))
        if signed is None:
            return _answer(404, {"error": "unknown receipt"})
        receipt, received_at = signed
        record = _receipts(config).get(receipt)
    except Exception:
        print("floodgate-inbox fault status")
        answer = _answer(429, {"error": "try again shortly"})
        answer["headers"]["retry-after"] = "10"
        return answer
    if record is None:
        now = int(clock())
        return _answer(
            200,
            {
                "receipt": receipt,
                "status": "received",
                "received_at": received_at,
                "updated_at": now,
            },
        )
    return _answer(200, record.public())


def consume(event: dict[str, Any], _context: object = None) -> dict[str, Any]:
    """The SQS event source's batch: the messages to deliver again."""
    config = _config()
    consumer = Consumer(
        receipts=_receipts(config),
        back_office=HttpBackOffice(config.back_office_url, config.back_office_timeout_s),
        sqs=_client("sqs"),
        dlq_url=config.dlq_url,
        s3=_client("s3") if config.bucket else None,
        bucket=config.bucket,
        lease_s=config.lease_s,
        clock=clock,
        secrets=lambda: _secrets(config),
    )
    return consumer.consume(event.get("Records", []))

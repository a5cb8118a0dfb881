"""The `alarms` section: thresholds and who is told."""

from __future__ import annotations

from typing import Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from planning.settings.base import _EMAIL, _at, _Model


class AlarmSettings(_Model):
    """Alarm thresholds; all alarms notify the stack's SNS topic."""

    email_subscriptions: list[str] = []
    """Addresses the alarm topics e-mail (each confirms its subscription once)."""
    alb_5xx_rate_pct: float = Field(default=1.0, gt=0, le=100)
    """ALB-generated 5xx as a share of requests (%) that alarms, and pauses the room."""
    target_5xx_rate_pct: float = Field(default=2.0, gt=0, le=100)
    """Target (application) 5xx as a share of requests (%) that alarms, and pauses the room."""
    cloudfront_5xx_rate_pct: float = Field(default=1.0, gt=0, le=100)
    """CloudFront's 5xx error rate (%) that alarms."""
    response_time_p95_s: float = Field(default=1.0, gt=0)
    """Target response time, 95th percentile (seconds), that alarms."""
    response_time_p99_s: float = Field(default=3.0, gt=0)
    """Target response time, 99th percentile (seconds), that alarms; at least the p95's."""
    unhealthy_hosts: int = Field(default=1, ge=1)
    """Unhealthy targets that alarm."""
    evaluation_periods: int = Field(default=3, ge=1, le=60)
    """One-minute periods a condition must hold before the alarm fires."""

    @model_validator(mode="after")
    def _percentiles(self) -> Self:
        if self.response_time_p99_s < self.response_time_p95_s:
            raise _at(
                "response_time_p99_s",
                self.response_time_p99_s,
                f"must be >= response_time_p95_s ({self.response_time_p95_s})",
            )
        return self

    @field_validator("email_subscriptions")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [e for e in value if not _EMAIL.fullmatch(e)]
        if bad:
            raise ValueError(f"{bad} are not e-mail addresses")
        return value

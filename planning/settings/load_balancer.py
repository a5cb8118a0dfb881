"""The `load_balancer` section: the ALB in front of the fleet."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from planning import aws_facts
from planning.settings.base import (
    _HOSTED_ZONE,
    MAX_CAPACITY_UNITS,
    DomainName,
    Port,
    _at,
    _check_one_of,
    _Model,
)


class LoadBalancerSettings(_Model):
    """Application Load Balancer in front of the web fleet."""

    RENAMED: ClassVar[dict[str, str]] = {"access_log_retention_days": "access_log_expiry_days"}

    origin_domain_name: DomainName
    """Name CloudFront uses to reach the ALB over HTTPS; the regional certificate must cover it."""
    certificate_arn: str
    """Regional ACM certificate (same region as the ALB) for `origin_domain_name`."""
    hosted_zone_id: str | None = None
    """When set, Floodgate writes the alias record for `origin_domain_name` in this zone."""

    @field_validator("hosted_zone_id")
    @classmethod
    def _zone_id(cls, value: str | None) -> str | None:
        if value is not None and not _HOSTED_ZONE.fullmatch(value):
            raise ValueError("must be a Route 53 hosted-zone id such as Z0123456789ABCDEFGHIJ")
        return value

    tls_policy: str = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    """The HTTPS listener's ELB security policy (TLS 1.2 or later)."""
    app_port: Port = 8080
    """The port the application listens on, on each instance (HTTP from the ALB)."""
    health_check_path: str = "/healthz"
    """The path the target group's health check requests; 200 means healthy."""
    idle_timeout_s: int = Field(default=60, ge=1, le=4000)
    """Seconds the ALB keeps an idle connection open (AWS: 1-4,000)."""
    deregistration_delay_s: int = Field(default=30, ge=0, le=3600)
    """Seconds a leaving target drains its requests (AWS: 0-3,600); portal requests
    finish in seconds, so 30 lets them end without slowing scale-in."""
    load_balancing_algorithm: Literal["least_outstanding_requests", "round_robin"] = (
        "least_outstanding_requests"
    )
    """Least outstanding requests keeps a slow instance from piling up requests in a surge."""
    slow_start_s: int = Field(default=0, ge=0, le=900)
    """Linear ramp for new targets (30-900 s, 0 off). AWS refuses slow start together with
    least outstanding requests; warm-pool instances arrive initialised and need none."""
    origin_secret_slot: Literal["a", "b"] = "a"
    """Which of the two origin secrets CloudFront sends; the ALB accepts both, so switching
    slots never answers 403 while CloudFront propagates (see README, rotating the secret)."""
    minimum_capacity_units: int = Field(default=0, ge=0, le=MAX_CAPACITY_UNITS)
    """Standing LCU reservation; 0 means none. The pre-scale runner sets it once the ALB
    exists (never on create, which would wait for it) and steps it around events."""
    scaling_pct_per_5_min: float = Field(default=50, gt=0, le=1000)
    """How fast the ALB is taken to scale on its own, in % of its capacity every 5 minutes:
    AWS's guidance is to "increase the load at a rate of no more than 50 percent every five
    minutes" (Best Practices in Evaluating Elastic Load Balancing; AWS publishes no rate for
    the ALB itself). The planner reserves LCUs only where the forecast rises faster, the
    waiting room admits no faster, and the rehearsal's `alb-slow` night plays half of it."""
    deletion_protection: bool = True
    """AWS refuses to delete the ALB while set (a new ALB is a new DNS name and an empty
    LCU reservation)."""
    access_log_expiry_days: int = Field(default=90, ge=1)
    """Days the ALB's access logs stay in their S3 bucket before S3 expires them."""

    @model_validator(mode="after")
    def _slow_start(self) -> Self:
        if self.slow_start_s and self.load_balancing_algorithm == "least_outstanding_requests":
            raise _at(
                "slow_start_s",
                self.slow_start_s,
                "must be 0 with load_balancing_algorithm least_outstanding_requests: AWS "
                "cannot enable both (set round_robin to use slow start)",
            )
        if self.slow_start_s and self.slow_start_s < 30:
            raise _at("slow_start_s", self.slow_start_s, "must be 0 (off) or 30-900 seconds")
        return self

    @field_validator("tls_policy")
    @classmethod
    def _tls(cls, value: str) -> str:
        policies = aws_facts.ALLOWED_ALB_TLS_POLICIES
        listing = f"{', '.join(policies)} (TLS 1.2+ with forward secrecy)"
        return _check_one_of(value, policies, listing)

    @field_validator("health_check_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

"""The `edge` and `waf` sections: the CloudFront distribution and its web ACL."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from planning import aws_facts
from planning.settings.base import (
    _ACM_ARN,
    LogRetentionDays,
    _at,
    _check_domain,
    _check_one_of,
    _check_range,
    _Model,
)

ROOM_PREFIXES = ("/queue/", "/waiting-room/", "/high-demand/")
"""Paths the edge routes to the room's API and pages, never to the portal."""


class EdgeSettings(_Model):
    """CloudFront distribution, what it caches, and the high-demand page for what fails."""

    RENAMED: ClassVar[dict[str, str]] = {
        "log_retention_days": "access_log_expiry_days (S3) and log_group_retention_days "
        "(CloudWatch Logs)"
    }

    domain_names: list[str] = []
    """Names the distribution answers to (CNAMEs); they need `certificate_arn`."""
    certificate_arn: str | None = None
    """ACM certificate in us-east-1 (CloudFront only reads certificates from there)."""
    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = "PriceClass_100"
    """Which CloudFront edge locations serve the portal: `PriceClass_100` (North America and
    Europe), `PriceClass_200` or `PriceClass_All`."""
    static_path_patterns: list[str] = ["/assets/*", "/static/*"]
    """Paths cached for `static_ttl_s` (versioned assets); all still pass the gate."""
    write_path_patterns: list[str] = ["/api/*", "/submit/*"]
    """Paths that accept POST/PUT/DELETE, never cached; their 5xx become the high-demand page
    like any other path's (a failed write is never retried elsewhere)."""
    public_page_patterns: list[str] = []
    """Paths of pages that are the same for every visitor (e.g. `/en/information/*`), which the
    edge may cache for as long as the origin's `Cache-Control` says (`max-age`/`s-maxage`,
    `stale-while-revalidate`, `stale-if-error`), up to `public_page_max_ttl_s`; default TTL 0,
    so a response without `max-age` or with `private`/`no-store` is never cached. Their
    requests reach the origin with no cookie, no viewer header and only
    `public_page_query_strings`: never name a path with sessions, forms or search. They pass
    the gate like every other path."""
    public_page_max_ttl_s: int = Field(default=300, ge=1, le=31_536_000)
    """The most seconds CloudFront keeps a public page, whatever the origin's max-age."""
    public_page_query_strings: list[str] = ["lang"]
    """Query strings of public pages that reach the cache key and the origin; others are
    dropped (a made-up query must not miss the cache)."""
    origin_shield_region: str | None = None
    """CloudFront Origin Shield in front of the ALB, so the regional edge caches' misses reach
    the origin once: the Region AWS recommends for the stack's Region (us-east-1 for
    ca-central-1; see planning/aws_facts.ORIGIN_SHIELD_FOR). Billed per request it forwards."""
    static_ttl_s: int = Field(default=86_400, ge=0, le=31_536_000)
    """Default seconds CloudFront caches static assets (CloudFront's maximum is a year)."""
    error_caching_ttl_s: int = Field(default=10, ge=0, le=300)
    """How long CloudFront serves the high-demand page before asking the origin again."""
    failover_status_codes: list[int] = [500, 502, 503, 504]
    """Origin status codes that become the bilingual high-demand page (status 503), for any
    path, through the distribution's custom error responses; CloudFront's own 502 (no
    connection) and 504 (timeout) are among them by default. A subset of 500, 502, 503, 504."""
    origin_connection_attempts: int = 1
    """Times CloudFront tries to connect to the ALB before it answers 502 (AWS: 1-3)."""
    origin_connection_timeout_s: int = 3
    """Seconds CloudFront waits for each connection to the ALB (AWS: 1-10)."""
    origin_read_timeout_s: int = 30
    """Seconds CloudFront waits for the ALB's response (AWS: 1-60 without a quota raise)."""
    access_log_expiry_days: int = Field(default=90, ge=1)
    """Days the distribution's standard logs stay in their S3 bucket before S3 expires them."""
    log_group_retention_days: LogRetentionDays = 90
    """Days CloudWatch Logs keeps the WAF's and the gate function's logs (us-east-1), one of
    CloudWatch's retention values."""

    @field_validator("domain_names")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return [_check_domain(d) for d in value]

    @field_validator("certificate_arn")
    @classmethod
    def _cert(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _ACM_ARN.match(value)
        if not match:
            raise ValueError("must be an ACM certificate ARN")
        if match["region"] != "us-east-1":
            raise ValueError(
                f"is in {match['region']}; CloudFront only uses certificates from us-east-1"
            )
        return value

    @field_validator("public_page_patterns")
    @classmethod
    def _public_pages(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.startswith("/") or pattern.startswith(ROOM_PREFIXES):
                raise ValueError(
                    f"{pattern!r}: must start with / and not be one of the room's paths "
                    f"({', '.join(p + '*' for p in ROOM_PREFIXES)})"
                )
        return value

    @field_validator("origin_shield_region")
    @classmethod
    def _shield(cls, value: str | None) -> str | None:
        if value is not None:
            _check_one_of(
                value, aws_facts.ORIGIN_SHIELD_REGIONS, f"{list(aws_facts.ORIGIN_SHIELD_REGIONS)}"
            )
        return value

    @model_validator(mode="after")
    def _public_pages_are_not_writes(self) -> Self:
        clash = sorted(
            set(self.public_page_patterns) & {*self.write_path_patterns, *self.static_path_patterns}
        )
        if clash:
            raise _at(
                "public_page_patterns",
                clash,
                "are also write or static paths: each path has one cache behaviour",
            )
        return self

    @field_validator("failover_status_codes")
    @classmethod
    def _codes(cls, value: list[int]) -> list[int]:
        allowed = aws_facts.FAILOVER_STATUS_CODES
        bad = sorted(set(value) - set(allowed))
        if bad or not value:
            raise ValueError(f"must be a non-empty subset of {list(allowed)}")
        return sorted(set(value))

    @field_validator("origin_connection_attempts")
    @classmethod
    def _attempts(cls, value: int) -> int:
        return _check_range(value, aws_facts.CLOUDFRONT_CONNECTION_ATTEMPTS, "")

    @field_validator("origin_connection_timeout_s")
    @classmethod
    def _connect(cls, value: int) -> int:
        return _check_range(value, aws_facts.CLOUDFRONT_CONNECTION_TIMEOUT_S, " seconds")

    @field_validator("origin_read_timeout_s")
    @classmethod
    def _read(cls, value: int) -> int:
        return _check_range(value, aws_facts.CLOUDFRONT_READ_TIMEOUT_S, " seconds")

    @model_validator(mode="after")
    def _domain_needs_cert(self) -> Self:
        if self.domain_names and self.certificate_arn is None:
            raise _at(
                "certificate_arn",
                None,
                "is required when domain_names are set (us-east-1 ACM certificate)",
            )
        return self


class WafSettings(_Model):
    """WAFv2 web ACL on the distribution."""

    rate_limit: int = 2000
    """Page and write requests per client IP per evaluation window before WAF answers 429
    (static assets, polls and the room's pages count against `asset_rate_limit`)."""
    evaluation_window_s: int = 300
    """The window WAF's rate rules count requests over: 60, 120, 300 or 600 seconds."""
    asset_rate_limit: int = 20_000
    """Requests per client IP per evaluation window to static assets, the queue's polls and the
    room's and high-demand pages, counted apart from `rate_limit` (which counts pages and
    writes): a page loads dozens of assets and a waiting page polls for as long as it waits,
    but a client that busts the asset cache with made-up queries still stops here."""
    join_rate_limit: int = 100
    """Waiting-room joins (POST /queue/join) per client IP per evaluation window; above it WAF
    answers 429 JSON (or challenges, see join_limit_action). A join is one per visitor, so this
    is the number of people one address (a home, an office or a carrier's NAT) may queue."""
    join_limit_action: Literal["block", "challenge"] = "block"
    """`challenge`: instead of refusing, AWS WAF's silent browser challenge. The waiting page is
    then challenged on load too, so real browsers hold a WAF token before they join (a fetch
    cannot answer a challenge itself)."""

    @field_validator("rate_limit", "asset_rate_limit", "join_rate_limit")
    @classmethod
    def _limit(cls, value: int) -> int:
        return _check_range(
            value,
            (aws_facts.WAF_RATE_LIMIT_MIN, aws_facts.WAF_RATE_LIMIT_MAX),
            " requests per window (AWS WAF minimum is 10)",
        )

    @field_validator("evaluation_window_s")
    @classmethod
    def _window(cls, value: int) -> int:
        windows = aws_facts.WAF_EVALUATION_WINDOWS_S
        return _check_one_of(value, windows, f"{list(windows)} seconds")

"""The `rehearsal` section: the budget `make rehearse` judges a stack against, and prices."""

from __future__ import annotations

from pydantic import (
    Field,
)

from planning.settings.base import _Model


class PriceSettings(_Model):
    """On-demand prices for the rehearsal's cost figures (US dollars), with their date and source.
    Check them against the source for the stack's region and instance type before quoting a
    cost: AWS changes prices and they differ by region."""

    instance_hour_usd: float = Field(default=0.1109, gt=0)
    """One instance of the fleet's type per hour, Linux on demand (m7i.large, ca-central-1)."""
    lcu_hour_usd: float = Field(default=0.0088, gt=0)
    """One ALB capacity unit per hour; a reservation bills its LCUs whether used or not."""
    ebs_gb_month_usd: float = Field(default=0.088, gt=0)
    """gp3 storage per GB-month: what a stopped warm-pool instance still costs (730 h/month)."""
    cloudfront_https_10k_usd: float = Field(default=0.0100, ge=0)
    """CloudFront HTTPS requests per 10,000 (United States, Mexico, Canada)."""
    waf_million_usd: float = Field(default=0.60, ge=0)
    """AWS WAF, per million requests the web ACL inspects."""
    http_api_million_usd: float = Field(default=1.00, ge=0)
    """API Gateway HTTP API requests per million (first 300 million a month)."""
    lambda_million_usd: float = Field(default=0.20, ge=0)
    """Lambda requests per million."""
    lambda_arm_gb_s_usd: float = Field(default=0.0000133334, ge=0)
    """Lambda duration per GB-second, arm64 (the room's functions: 512 MB)."""
    dynamodb_million_writes_usd: float = Field(default=0.625, ge=0)
    """DynamoDB on-demand, per million write request units."""
    dynamodb_million_reads_usd: float = Field(default=0.125, ge=0)
    """DynamoDB on-demand, per million read request units."""
    lambda_edge_million_usd: float = Field(default=0.60, ge=0)
    """Lambda@Edge requests per million (the bench prices the trigger Floodgate removed)."""
    lambda_edge_gb_s_usd: float = Field(default=0.00005001, ge=0)
    """Lambda@Edge duration per GB-second."""
    as_of: str = Field(default="2026-11", pattern=r"^\d{4}-\d{2}(-\d{2})?$")
    """When the prices were read (YYYY-MM or YYYY-MM-DD)."""
    source: str = (
        "https://aws.amazon.com/ec2/pricing/on-demand/, "
        "https://aws.amazon.com/elasticloadbalancing/pricing/, "
        "https://aws.amazon.com/ebs/pricing/, "
        "https://aws.amazon.com/cloudfront/pricing/, https://aws.amazon.com/waf/pricing/, "
        "https://aws.amazon.com/api-gateway/pricing/, https://aws.amazon.com/lambda/pricing/, "
        "https://aws.amazon.com/dynamodb/pricing/on-demand/"
    )
    """Where the prices were read."""


class RehearsalSettings(_Model):
    """What `make rehearse` allows the configured stack on an event night (its budget), what it
    assumes of people, and prices. Every limit applies to each scenario."""

    max_raw_5xx: int = Field(default=0, ge=0)
    """Origin failures viewers see as a raw 5xx (not the high-demand page)."""
    max_failed_worst_pct: float = Field(default=0.1, ge=0, le=100)
    """Share (%) of origin requests failed (the high-demand page or a raw 5xx) in the night's
    worst 15 minutes: judged on the worst window, so a limit does not pass or fail on how long
    the night is (the same failures are half the share of a night twice as long)."""
    max_incident_minutes: float = Field(default=10.0, ge=0)
    """On an incident night (`slow-origin`: each instance serves half its rate from the peak,
    at once, with the people already inside), the longest run of minutes in which more than
    0.1 % of requests fail, instead of max_failed_worst_pct: no AWS metric shows the minute of
    the change sooner than a minute after it ends, and nobody inside is turned out, so the
    stack is judged on how soon it recovers (the fleet grows, people leave)."""
    max_p95_wait_minutes: float = Field(default=30.0, ge=0)
    """95th percentile wait of the people the room admitted."""
    max_queue_minutes: float = Field(default=240.0, ge=0)
    """Longest continuous time the room queued: a night at 3x the plan queues for hours at the
    fleet's max; a room that never reopens queues all night."""
    max_kept_out_pct: float = Field(default=5.0, ge=0, le=100)
    """Share of the user-time people wanted on the site that the room kept them out, beyond
    the physical bound (the share above what the fleet's max_size serves, which no room can
    let in: the rehearsal's `bound %`). On a night within the max the bound is 0."""
    max_cost_vs_floor: float = Field(default=2.0, ge=1)
    """The night's cost (instances, warm-pool volumes, LCUs reserved or used) over the cost of
    capacity that follows demand exactly (instances at their full rate, never fewer than one
    per zone; LCUs used): one zone of headroom is 1.5x in itself with three zones, so staging
    along the shape leaves little."""
    max_cost_vs_floor_below_forecast: float = Field(default=2.5, ge=1)
    """max_cost_vs_floor on the night at half the forecast (`half-forecast`): the plan held
    capacity for twice the crowd that came."""
    max_queue_api_pct: float = Field(default=100.0, gt=0)
    """The queue API's busiest moment (joins and polls) as a share of what it can take (the
    HTTP API throttle, the join and status functions' concurrency): above 100 % the room's own
    front door, not the fleet, is the bottleneck."""
    patience_minutes: float = Field(default=30.0, gt=0, le=600)
    """Mean time a person waits in line before giving up (exponentially distributed). An
    assumption, not a measurement: set it from the portal's own abandonment figures."""
    prices: PriceSettings = PriceSettings()
    """Prices for the cost figures."""

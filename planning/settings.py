"""The one settings model for a Floodgate stack.

A stack file (`stacks/Pulumi.<stack>.yaml`) carries `aws:region` and one structured key,
`floodgate:settings`. `__main__` reads both through `pulumi.Config`; scripts read the YAML file
directly. Both hand the same mapping to `parse_stack_config`, so every default lives here once.

Every validation error names the key (dotted path), the bad value and what is allowed, and is
raised before any resource is declared.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from functions.admission.tokens import ID_PATTERN
from planning import aws_facts
from planning.yaml_file import YamlFileError, load_yaml

PROJECT = "floodgate"
SETTINGS_KEY = f"{PROJECT}:settings"
REGION_KEY = "aws:region"
STACKS_DIR = Path(__file__).resolve().parent.parent / "stacks"

_INSTANCE_TYPE = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9]+)$")
# Graviton families carry a "g" right after the generation digit: t4g, m7g, c7gn, r8g.
_ARM_FAMILY = re.compile(r"^[a-z]+\d+g[a-z]*$")
_ACM_ARN = re.compile(r"^arn:aws:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[0-9a-f-]{36}$")
_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
MAX_GROUP_SIZE, MAX_CAPACITY_UNITS = 10_000, 100_000
"""Floodgate's guards against a typo (10^12 instances and 10^9 LCUs were accepted), far above
any portal's night; AWS's own account quotas (EC2 vCPUs, ELB capacity) bind first and are
checked by `make preflight`."""
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
"""An address SNS can deliver to: a local part, then a DNS name (no spaces, one @, a TLD)."""
_HOSTED_ZONE = re.compile(r"Z[A-Z0-9]{1,31}")
"""Route 53 hosted-zone ids: Z then upper-case letters and digits (as GetHostedZone returns
them, without the /hostedzone/ prefix)."""
_DOMAIN = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class SettingsError(ValueError):
    """Invalid stack settings; the message lists every problem as `key: message (got value)`."""


RFC_1918 = tuple(
    ipaddress.IPv4Network(b) for b in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
"""`is_private` also admits loopback, link-local and other reserved blocks a VPC cannot use."""


class _Model(BaseModel):
    # Unknown keys are typos, not extensions: reject them so a misspelt limit is never ignored.
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    RENAMED: ClassVar[dict[str, str]] = {}
    """Keys a section no longer takes, each with what replaced it."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, value: Any) -> Any:
        """A renamed key is named with its replacement, not refused as unknown."""
        if isinstance(value, Mapping):
            for old, new in cls.RENAMED.items():
                if old in value:
                    raise _at(old, value[old], f"renamed: set {new} instead")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML's true is not 1: `min_size: true` was accepted as a group of one."""
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation is not bool and bool not in get_args(annotation):
                raise ValueError("must be a number or text, not true/false")
        return value


Port = Annotated[int, Field(ge=1, le=65535)]


class NetworkSettings(_Model):
    """VPC layout. Subnets are carved as /20s (4,091 usable addresses each) from `vpc_cidr`."""

    vpc_cidr: str = "10.40.0.0/16"
    """The VPC's IPv4 block: RFC 1918 space, /16 to /20 (each zone takes a /20 public
    and a /20 private subnet)."""
    zones: list[str] = Field(min_length=2, max_length=6)
    """Availability Zones of the region, 2 to 6, each once: the fleet spreads across them and
    the plan keeps one zone's worth of headroom."""
    nat_gateways: Literal["one", "per_zone"] = "per_zone"
    """`per_zone` (a zone's loss leaves the others' egress) or `one` (cheaper; egress goes
    with its zone)."""
    flow_log_retention_days: int = 90
    """Days CloudWatch Logs keeps the VPC flow logs (one of CloudWatch's retention
    values)."""

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value)
        except ValueError as exc:
            raise ValueError(f"must be an IPv4 CIDR block such as 10.40.0.0/16 ({exc})") from exc
        if not 16 <= net.prefixlen <= 20:
            raise ValueError(
                "prefix must be between /16 and /20 (AWS allows /16 to /28; "
                "Floodgate needs room for 2 subnets per zone)"
            )
        if not any(net.subnet_of(block) for block in RFC_1918):
            raise ValueError(
                f"must lie in a private (RFC 1918) range: {', '.join(map(str, RFC_1918))}"
            )
        return value

    @field_validator("zones")
    @classmethod
    def _distinct(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("zones must be distinct")
        # Checked here, with the region from the validation context, so a bad zone is reported
        # with every other field error (a model-level check runs only when all fields are good).
        region = (info.context or {}).get("region")
        known = aws_facts.REGION_ZONES.get(region or "")
        if known is not None:  # an unknown region is reported on aws:region itself
            for zone in value:
                if zone not in known:
                    raise ValueError(f"{zone!r} is not an Availability Zone of {region}; "
                                     f"allowed: {list(known)}")  # fmt: skip
        return value

    @field_validator("flow_log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)


class LoadBalancerSettings(_Model):
    """Application Load Balancer in front of the web fleet."""

    RENAMED: ClassVar[dict[str, str]] = {"access_log_retention_days": "access_log_expiry_days"}

    origin_domain_name: str
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
    """Standing LCU reservation; 0 means none. Event-time raises are the pre-scale script's."""
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
        if value not in aws_facts.ALLOWED_ALB_TLS_POLICIES:
            raise ValueError(
                f"must be one of {', '.join(aws_facts.ALLOWED_ALB_TLS_POLICIES)} "
                "(TLS 1.2+ with forward secrecy)"
            )
        return value

    @field_validator("origin_domain_name")
    @classmethod
    def _domain(cls, value: str) -> str:
        return _check_domain(value)

    @field_validator("health_check_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value


class WarmPoolSettings(_Model):
    """Pre-initialised stopped instances: ready in ~30-60 s instead of 3-5 min cold.

    AWS attaches warm pools only to groups with one launch template and no Spot, so a fleet
    with a warm pool has exactly one instance type and spot_pct 0.
    """

    min_size: int = Field(default=1, ge=0)
    """Stopped instances kept ready outside an event; the pre-scale job sizes the pool for
    each event (`prescale.warm_pool_share_pct`)."""
    max_prepared: int | None = Field(default=None, ge=0)
    """Upper bound of group + pool (MaxGroupPreparedCapacity). Unset, AWS would keep
    max_size - desired instances prepared (114 for prod); None here means the fleet's
    min_size + this pool's min_size, so the pool holds min_size whatever desired is."""
    state: Literal["Stopped", "Hibernated", "Running"] = "Stopped"
    """What pool instances are kept as: `Stopped` (volumes only are billed), `Hibernated`
    (memory kept; needs an instance type that supports it) or `Running` (billed in full)."""


class ScalingSettings(_Model):
    """Target tracking; both policies run, the one asking for more capacity wins."""

    requests_per_target: int = Field(default=1000, ge=1)
    """ALBRequestCountPerTarget target, requests per instance per minute."""
    cpu_target_pct: float = Field(default=50.0, gt=0, le=90)
    """Average CPU (%) the CPU target tracking policy aims at."""


class FleetSettings(_Model):
    """Web autoscaling group."""

    instance_types: list[str]
    """EC2 instance types (family.size, e.g. m7i.large); exactly one with a warm pool."""
    min_size: int = Field(ge=0, le=MAX_GROUP_SIZE)
    """Instances the group never goes below outside events (AWS: up to 10,000)."""
    max_size: int = Field(ge=1, le=MAX_GROUP_SIZE)
    """Instances the group never goes above: what the fleet carries with a zone lost is
    checked against the planned peak."""
    on_demand_base: int = Field(default=0, ge=0)
    """Instances always on demand, before any spot share applies."""
    spot_pct: int = Field(default=0, ge=0, le=100)
    """Share of capacity above the base that may be spot."""
    ami_id: str
    """The AMI, pinned per stack: a new one rolls the whole fleet and warm pool, so it changes
    only when someone bumps it (latest AL2023: `aws ssm get-parameter --name
    /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`)."""
    user_data: str | None = None
    """Cloud-init script; None installs a minimal server answering the health check."""
    root_volume_gb: int = Field(default=20, ge=8, le=16384)
    """gp3 root volume per instance, GB (AWS: 8-16,384); a stopped pool instance still
    pays for it."""
    default_warmup_s: int = Field(default=120, ge=0, le=3600)
    """Seconds a new instance's metrics are kept out of scaling decisions (the group's
    default instance warmup)."""
    health_check_grace_s: int = Field(default=180, ge=0)
    """Seconds after launch before the ALB's health check can mark an instance unhealthy."""
    requests_per_instance_per_s: float = Field(default=100.0, gt=0)
    """Origin requests one instance serves at the scaling target; drives peak capacity checks."""
    warm_pool: WarmPoolSettings | None = None
    """Stopped, pre-initialised instances (None: no pool)."""
    scaling: ScalingSettings = ScalingSettings()
    """Target tracking on requests per target and on CPU."""

    @field_validator("instance_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must list at least one instance type, e.g. [m7i.large]")
        bad = [t for t in value if not _INSTANCE_TYPE.match(t)]
        if bad:
            raise ValueError(f"{bad} are not instance type names like m7i.large")
        unknown = [t for t in value if t.split(".")[0] not in aws_facts.INSTANCE_FAMILIES
                   or t.split(".")[1] not in aws_facts.INSTANCE_SIZES]  # fmt: skip
        if unknown:
            raise ValueError(f"{unknown} are not EC2 instance types Floodgate knows; families: "
                             f"{sorted(aws_facts.INSTANCE_FAMILIES)}")  # fmt: skip
        if len(set(value)) != len(value):
            raise ValueError("instance types must be distinct")
        if len({architecture(t) for t in value}) > 1:
            raise ValueError(
                "mixes arm64 (Graviton) and x86_64 types; one launch template has one AMI"
            )
        if len(value) > 40:
            raise ValueError("AWS allows at most 40 instance type overrides")
        return value

    @field_validator("ami_id")
    @classmethod
    def _ami(cls, value: str) -> str:
        if not _AMI_ID.match(value):
            raise ValueError("must look like ami-0123456789abcdef0")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if self.max_size < self.min_size:
            raise _at("max_size", self.max_size, f"must be >= min_size ({self.min_size})")
        if self.on_demand_base > self.max_size:
            raise _at(
                "on_demand_base", self.on_demand_base, f"must be <= max_size ({self.max_size})"
            )
        pool = self.warm_pool
        if pool is None:
            return self
        if len(self.instance_types) > 1:
            raise _at(
                "warm_pool",
                "set",
                f"needs exactly one instance type, got {self.instance_types}: AWS cannot "
                "attach a warm pool to a group with a mixed instances policy",
            )
        if self.spot_pct:
            raise _at(
                "warm_pool",
                "set",
                f"needs spot_pct 0, got {self.spot_pct}: AWS cannot attach a warm pool "
                "to a group that launches Spot Instances",
            )
        if pool.min_size > self.max_size:
            raise _at("warm_pool.min_size", pool.min_size, f"must be <= max_size ({self.max_size})")
        if pool.max_prepared is not None and pool.max_prepared > self.max_size:
            raise _at(
                "warm_pool.max_prepared",
                pool.max_prepared,
                f"must be <= max_size ({self.max_size}): group plus pool never exceeds it",
            )
        return self

    @property
    def architecture(self) -> Literal["arm64", "x86_64"]:
        return architecture(self.instance_types[0])

    @property
    def scaling_target_pct(self) -> float:
        """The load (% of requests_per_instance_per_s) target tracking holds the fleet at."""
        return 100 * self.scaling.requests_per_target / 60 / self.requests_per_instance_per_s

    def prepared_capacity(self, pool_size: int) -> int:
        """MaxGroupPreparedCapacity that keeps exactly `pool_size` instances in the warm pool:
        AWS sizes the pool as max(pool min size, this - desired), and desired >= min_size."""
        pool = self.warm_pool
        if pool is not None and pool.max_prepared is not None:
            return pool.max_prepared
        return min(self.max_size, self.min_size + pool_size)


class EdgeSettings(_Model):
    """CloudFront distribution and its failover."""

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
    """Paths that accept POST/PUT/DELETE. CloudFront cannot attach an origin group to a
    behaviour that allows writes, so these go to the ALB directly; their 5xx still become the
    high-demand page through the custom error responses."""
    static_ttl_s: int = Field(default=86_400, ge=0, le=31_536_000)
    """Default seconds CloudFront caches static assets (CloudFront's maximum is a year)."""
    error_caching_ttl_s: int = Field(default=10, ge=0, le=300)
    """How long CloudFront serves the high-demand page before asking the origin again."""
    failover_status_codes: list[int] = [500, 502, 503, 504]
    """Origin status codes that fail reads over to the pages bucket and turn writes into the
    high-demand page (a subset of 500, 502, 503, 504)."""
    origin_connection_attempts: int = 1
    """Times CloudFront tries to connect to the ALB before failing over (AWS: 1-3)."""
    origin_connection_timeout_s: int = 3
    """Seconds CloudFront waits for each connection to the ALB (AWS: 1-10)."""
    origin_read_timeout_s: int = 30
    """Seconds CloudFront waits for the ALB's response (AWS: 1-60 without a quota raise)."""
    access_log_expiry_days: int = Field(default=90, ge=1)
    """Days the distribution's standard logs stay in their S3 bucket before S3 expires them."""
    log_group_retention_days: int = 90
    """Days CloudWatch Logs keeps the WAF's and the gate function's logs (us-east-1), one of
    CloudWatch's retention values."""

    @field_validator("domain_names")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return [_check_domain(d) for d in value]

    @field_validator("log_group_retention_days")
    @classmethod
    def _log_retention(cls, value: int) -> int:
        return _check_retention(value)

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
    """Requests per client IP per evaluation window before WAF blocks it."""
    evaluation_window_s: int = 300
    """The window WAF's rate rules count requests over: 60, 120, 300 or 600 seconds."""
    join_rate_limit: int = 100
    """Waiting-room joins (POST /queue/join) per client IP per evaluation window; above it WAF
    answers 429 JSON (or challenges, see join_limit_action). A join is one per visitor, so this
    is the number of people one address (a home, an office or a carrier's NAT) may queue."""
    join_limit_action: Literal["block", "challenge"] = "block"
    """`challenge`: instead of refusing, AWS WAF's silent browser challenge. The waiting page is
    then challenged on load too, so real browsers hold a WAF token before they join (a fetch
    cannot answer a challenge itself)."""

    @field_validator("rate_limit", "join_rate_limit")
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
        if value not in aws_facts.WAF_EVALUATION_WINDOWS_S:
            raise ValueError(f"must be one of {list(aws_facts.WAF_EVALUATION_WINDOWS_S)} seconds")
        return value


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


class CapacitySettings(_Model):
    """What the stack must carry; used to check that the fleet's max holds the planned peak."""

    baseline_users: int = Field(ge=1)
    """Concurrent users on an ordinary evening."""
    peak_multiple: float = Field(default=20.0, ge=1)
    """Planned surge as a multiple of baseline (2016: 12x observed; plan for 20x)."""
    requests_per_user_per_s: float = Field(default=0.05, gt=0)
    """Requests one active user sends per second, page assets included."""
    cdn_offload_pct: float = Field(default=60.0, ge=0, lt=100)
    """Share of requests CloudFront answers from cache."""


class PrescaleSettings(_Model):
    """How known events become capacity in service before they start.

    ALB LCU dimensions (per LCU-hour, EC2 targets): 25 new connections/s, 3,000 active
    connections, 1 GB processed per hour, 1,000 rule evaluations/s (10 rules free per request).
    """

    horizon_days: int = Field(default=120, ge=1, le=400)
    """Only events starting within this many days are declared (125 scheduled actions/ASG)."""
    cold_launch_s: int = Field(default=300, ge=30, le=1800)
    """Cold instance to serving (3-5 min with app start)."""
    warm_launch_s: int = Field(default=60, ge=10, le=600)
    """Warm-pool instance to serving (~30-60 s)."""
    schedule_slip_s: int = Field(default=120, ge=0, le=900)
    """Scheduled actions can run up to 2 minutes late."""
    margin_s: int = Field(default=900, ge=0, le=86_400)
    """Seconds added to every lead on top of launch, warmup and slip."""
    cooldown_s: int = Field(default=3600, ge=0, le=86_400)
    """Capacity stays raised this long after an event ends, for the tail of the crowd."""
    warm_pool_share_pct: float = Field(default=25, ge=0, le=100)
    """Warm pool during an event, as a share of the event's desired capacity (surprise margin)."""
    stage_minutes: int = Field(default=30, ge=15, le=1440)
    """Capacity follows the event's shape in stages this long: each stage's MinSize and LCUs
    hold the shape's highest point in it. One scheduled action per change (a 10-hour election
    night takes 18; AWS allows 125 per group)."""
    alb_reservation_lead_s: int = Field(default=7200, ge=3600, le=14 * 86_400)
    """Seconds before a stage needs more LCUs that they are asked for; the hourly job adds up
    to an hour. AWS fulfils most reservations "within a few minutes, but can take up to a few
    hours" (ELB user guide, request LCU reservation); until then the ALB keeps scaling on its
    own and the job reports the request pending. Longer is surer and costs more (the
    rehearsal's cost column shows how much)."""
    lcu_margin_pct: float = Field(default=10, ge=0, le=200)
    """LCUs reserved above what a stage's users use (the largest LCU dimension below): the
    per-request figures are estimates; the ALB still scales above its reservation."""
    new_connections_per_request: float = Field(default=0.1, gt=0, le=1)
    """Share of origin requests that open a new connection (keep-alive reuses the rest)."""
    active_connections_per_user: float = Field(default=1.0, gt=0, le=10)
    """Connections one user holds open to the ALB (LCU active-connections dimension)."""
    bytes_per_request: int = Field(default=20_000, gt=0)
    """Average bytes per origin request, both directions (dynamic HTML and API responses)."""
    rules_per_request: int = Field(default=1, ge=0, le=100)
    """Listener rules evaluated per request (the first 10 are free in the LCU count)."""


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
    as_of: str = Field(default="2026-11", pattern=r"^\d{4}-\d{2}(-\d{2})?$")
    """When the prices were read (YYYY-MM or YYYY-MM-DD)."""
    source: str = (
        "https://aws.amazon.com/ec2/pricing/on-demand/, "
        "https://aws.amazon.com/elasticloadbalancing/pricing/, https://aws.amazon.com/ebs/pricing/"
    )
    """Where the prices were read."""


class RehearsalSettings(_Model):
    """What `make rehearse` allows the configured stack on an event night (its budget), what it
    assumes of people, and prices. Every limit applies to each scenario."""

    max_raw_5xx: int = Field(default=0, ge=0)
    """Origin failures viewers see as a raw 5xx (not the high-demand page)."""
    max_high_demand_pct: float = Field(default=1.0, ge=0, le=100)
    """Share of origin requests answered by the high-demand page."""
    max_p95_wait_minutes: float = Field(default=30.0, ge=0)
    """95th percentile wait of the people the room admitted."""
    max_queue_minutes: float = Field(default=240.0, ge=0)
    """Longest continuous time the room queued: a night at 3x the plan queues for hours at the
    fleet's max; a room that never reopens queues all night."""
    max_kept_out_pct: float = Field(default=5.0, ge=0, le=100)
    """Share of the user-time people wanted on the site that the room kept them out."""
    max_cost_vs_floor: float = Field(default=2.0, ge=1)
    """The night's cost (instances, warm-pool volumes, LCUs reserved or used) over the cost of
    capacity that follows demand exactly (instances at their full rate, LCUs used): one zone
    of headroom is 1.5x in itself with three zones, so staging along the shape leaves little."""
    max_queue_api_pct: float = Field(default=100.0, gt=0)
    """The queue API's busiest moment (joins and polls) as a share of what it can take (the
    HTTP API throttle, the join and status functions' concurrency): above 100 % the room's own
    front door, not the fleet, is the bottleneck."""
    patience_minutes: float = Field(default=30.0, gt=0, le=600)
    """Mean time a person waits in line before giving up (exponentially distributed). An
    assumption, not a measurement: set it from the portal's own abandonment figures."""
    prices: PriceSettings = PriceSettings()
    """Prices for the cost figures."""


INLET_CONCURRENCY = 1
"""One inlet at a time (the room item is versioned as well)."""
ADMIN_CONCURRENCY = 2


class AdmissionSettings(_Model):
    """The waiting room (components/admission.py, functions/admission/).

    Lambda limits: reserved concurrency comes out of the account's regional pool (1,000 by
    default). HTTP API throttling: 10,000 requests/s and a 5,000 burst per account and region
    by default. EventBridge Scheduler's finest rate is one minute, so the inlet steps inside a run.
    """

    RENAMED: ClassVar[dict[str, str]] = {"log_retention_days": "log_group_retention_days"}

    enabled: bool = True
    """False: no waiting room (no table, API, gate or inlet)."""
    room_id: str = Field(default="portal", pattern=f"^{ID_PATTERN}$")
    """Signed into every token: a token from another room (stack) never passes."""
    sessions_per_instance: int | None = Field(default=None, ge=1, le=1_000_000)
    """People one in-service web instance serves at once. Unset (the default), it is derived
    from the fleet's figures (planning.capacity.people_per_instance); an override must lie
    between half the derived value and the derived value."""
    max_admit_per_s: int | None = Field(default=None, ge=1, le=2_000)
    """Ceiling on admissions per second, whatever the free capacity. Unset, it is derived from
    the planned peak and the session length (planning.capacity.admit_rate_per_s)."""
    step_s: Literal[5, 6, 10, 12, 15, 20, 30, 60] = 10
    """Inlet step inside each one-minute run (divides 60)."""
    session_minutes: int = Field(default=20, ge=1, le=240)
    """How long an admitted visitor typically stays: sessions count as active this long."""
    token_ttl_minutes: int = Field(default=120, ge=5, le=1_440)
    """Admission token (cookie) lifetime; also how long a rotated-out key keeps verifying."""
    show_s: int = Field(default=120, ge=30, le=900)
    """An admitted visitor not collecting their token within this is a no-show."""
    abandon_after_s: int = Field(default=90, ge=30, le=3_600)
    """A waiting visitor not polling for this long is skipped (the page polls every 5-30 s)."""
    queue_at_load_pct: int = Field(default=85, ge=10, le=100)
    """Switch open -> queue when origin load reaches this share of fleet capacity."""
    open_below_load_pct: int = Field(default=75, ge=0, le=99)
    """A queueing room may open once origin load is at or below this share of capacity: at
    least the fleet's scaling target, which target tracking holds the load at."""
    calm_minutes: int = Field(default=10, ge=1, le=240)
    """Switch queue -> open only after this long calm: below open_below_load_pct, no origin
    alarm, and a line that drains within `reopen_drain_s` at the current admission rate."""
    reopen_drain_s: int = Field(default=120, ge=0, le=3_600)
    """A queueing room may open once its line would be let in within this many seconds (the
    people still in line then walk in at once: at most this many seconds' admissions)."""
    design_joins_per_s: int = Field(default=20_000, ge=100, le=100_000)
    """Joins per second the room is designed for (4 writes each; see functions/admission). The
    table is pre-warmed for it up to `table_quota_units_per_s`."""
    table_quota_units_per_s: int = Field(
        default=aws_facts.DDB_TABLE_QUOTA_UNITS_PER_S, ge=4_000, le=1_000_000
    )
    """The account's DynamoDB table-level throughput quota (read and write units/s, 40,000 by
    default): warm throughput is capped at it. Raise the quota first, then this."""
    join_concurrency: int | None = Field(default=None, ge=1, le=900)
    """Reserved concurrency of the join function. Unset, derived from the planned crowd
    (planning.capacity.queue_api_design); set, it must be at least that."""
    status_concurrency: int | None = Field(default=None, ge=1, le=900)
    """Reserved concurrency of the status function; derived like join_concurrency."""
    api_rate_limit: int = Field(default=10_000, ge=1, le=10_000)
    """HTTP API stage throttle (requests/s), within the account's 10,000/s default: it must
    carry the design's joins and polls together."""
    api_burst_limit: int = Field(default=5_000, ge=1, le=5_000)
    """HTTP API stage burst (requests), within the account's 5,000 default."""
    log_group_retention_days: int = 30
    """Days CloudWatch Logs keeps the room's function and API access logs."""
    waiting_alarm_threshold: int = Field(default=100_000, ge=1)
    """Alarm when this many people are waiting: the fleet is too small for the night."""
    joins_per_address_per_min: int = Field(default=30, ge=1, le=10_000)
    """New places one viewer address may take in a minute, counted by the join function (WAF's
    join_rate_limit is the first line; this one holds if WAF is bypassed or lags: its rate
    rules act within seconds, not at once)."""

    @field_validator("log_group_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        if self.open_below_load_pct >= self.queue_at_load_pct:
            raise _at(
                "open_below_load_pct",
                self.open_below_load_pct,
                f"must be below queue_at_load_pct ({self.queue_at_load_pct}) or the room flaps",
            )
        if self.show_s >= self.token_ttl_minutes * 60:
            raise _at("show_s", self.show_s, "must be shorter than token_ttl_minutes")
        return self


class Settings(_Model):
    """Everything one stack configures."""

    environment: Literal["dev", "staging", "prod", "pr"]
    """The stack's role; it must match the stack file's name (`prod` in Pulumi.prod.yaml;
    `pr` for PR previews). Only `pr` stacks are ephemeral: destroyed with their data."""
    region: str
    """`aws:region`, the region of the ALB, fleet and room (CloudFront, its WAF and edge
    functions are in us-east-1 whatever this is)."""
    network: NetworkSettings
    """The VPC, its zones and NAT."""
    load_balancer: LoadBalancerSettings
    """The ALB in front of the fleet."""
    fleet: FleetSettings
    """The web autoscaling group."""
    edge: EdgeSettings = EdgeSettings()
    """The CloudFront distribution."""
    waf: WafSettings = WafSettings()
    """The WAF web ACL on the distribution."""
    alarms: AlarmSettings = AlarmSettings()
    """Alarm thresholds and who is told."""
    capacity: CapacitySettings
    """The crowd to plan for: baseline, planned peak, what each user asks of the origin."""
    prescale: PrescaleSettings = PrescaleSettings()
    """How known events become capacity before they start (planning/event_plan.py)."""
    admission: AdmissionSettings = AdmissionSettings()
    """The waiting room."""
    rehearsal: RehearsalSettings = RehearsalSettings()
    """The budget `make rehearse` judges the configured stack against."""
    tags: dict[str, str] = {}
    """Tags on every resource, besides Floodgate's own (AWS allows 50 in all)."""

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if value not in aws_facts.REGION_ZONES:
            raise ValueError(f"must be one of {sorted(aws_facts.REGION_ZONES)}")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, tag in value.items():
            if key.lower().startswith("aws:") or not 1 <= len(key) <= 128 or len(tag) > 256:
                raise ValueError(
                    f"tag {key!r}: keys are 1-128 characters and may not start with 'aws:'; "
                    "values at most 256 characters"
                )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        # Zones are checked against the region in NetworkSettings (validation context).
        cert = _ACM_ARN.match(self.load_balancer.certificate_arn)
        if cert is None:
            raise _at(
                "load_balancer.certificate_arn",
                self.load_balancer.certificate_arn,
                "must be an ACM certificate ARN",
            )
        if cert["region"] != self.region:
            raise _at(
                "load_balancer.certificate_arn",
                self.load_balancer.certificate_arn,
                f"must be in the stack's region {self.region} (an ALB uses regional certificates)",
            )
        self._room_capacity()
        if self.environment == "prod":
            if len(self.network.zones) < 3:
                raise _at(
                    "network.zones",
                    self.network.zones,
                    "prod needs at least 3 zones to keep serving with one zone down",
                )
            if self.network.nat_gateways != "per_zone":
                raise _at(
                    "network.nat_gateways",
                    self.network.nat_gateways,
                    "prod needs 'per_zone' so losing a zone does not cut egress",
                )
        return self

    def _room_capacity(self) -> None:
        """An override of the room's people per instance must agree with the fleet's figures,
        and the room must be able to reopen with the fleet at its scaling target."""
        target = self.fleet.scaling_target_pct
        if self.admission.open_below_load_pct < target:
            raise _at(
                "admission.open_below_load_pct",
                self.admission.open_below_load_pct,
                f"must be at least the fleet's scaling target, {target:.1f} % "
                f"(fleet.scaling.requests_per_target {self.fleet.scaling.requests_per_target} a "
                f"minute of {self.fleet.requests_per_instance_per_s:g} req/s): target tracking "
                "holds the load there, so a lower threshold keeps the room queueing",
            )
        self._queue_api()
        override = self.admission.sessions_per_instance
        if override is None:
            return
        c = self.capacity
        derived = derived_people_per_instance(
            self.fleet.requests_per_instance_per_s, c.requests_per_user_per_s, c.cdn_offload_pct
        )
        if not derived / 2 <= override <= derived:
            raise _at(
                "admission.sessions_per_instance",
                override,
                f"must lie between {derived // 2:,} and {derived:,}: the fleet's figures "
                f"({self.fleet.requests_per_instance_per_s:g} req/s per instance / "
                f"({c.requests_per_user_per_s:g} req/s per user x "
                f"{100 - c.cdn_offload_pct:g} % reaching the origin)) mean {derived:,} people "
                "per instance; leave it unset to use that",
            )

    def _queue_api(self) -> None:
        """The queue API carries the planned crowd: concurrency at least the design's, within
        the region's pool, and the stage throttle above the design's joins and polls."""
        from planning.capacity import queue_api_design  # planning.capacity imports this module

        a = self.admission
        if not a.enabled:
            return
        design = queue_api_design(self.model_copy(update={"admission": a.model_copy(
            update={"join_concurrency": None, "status_concurrency": None})}))  # fmt: skip
        for key, have, need, rate in (
            ("join_concurrency", a.join_concurrency, design.join_concurrency, design.joins_per_s),
            ("status_concurrency", a.status_concurrency, design.status_concurrency,
             design.polls_per_s),
        ):  # fmt: skip
            if have is not None and have < need:
                raise _at(
                    f"admission.{key}",
                    have,
                    f"must be at least {need}: the planned crowd needs {rate:,.0f} requests/s "
                    "(planning.capacity.queue_api_design); leave it unset to use that",
                )
        chosen = queue_api_design(self)
        most = aws_facts.LAMBDA_DEFAULT_CONCURRENCY - aws_facts.LAMBDA_MIN_UNRESERVED
        if chosen.reserved > most:
            raise _at(
                "admission.status_concurrency",
                chosen.status_concurrency,
                f"join ({chosen.join_concurrency}) + status + inlet + admin reserved concurrency "
                f"({chosen.reserved}) must fit in {most:,} (Lambda's default 1,000 less the 100 "
                "that must stay unreserved)",
            )
        needed = design.joins_per_s + design.polls_per_s
        if a.api_rate_limit < needed:
            raise _at(
                "admission.api_rate_limit",
                a.api_rate_limit,
                f"must be at least {needed:,.0f} requests/s: the planned crowd's joins "
                f"({design.joins_per_s:,.0f}/s) and polls ({design.polls_per_s:,.0f}/s)",
            )

    @property
    def ephemeral(self) -> bool:
        """PR-preview stacks are destroyed with their pull request: `pulumi destroy` must be able
        to delete log buckets that still hold objects (force_destroy)."""
        return self.environment == "pr"

    @model_validator(mode="after")
    def _tag_count(self) -> Self:
        total, own = len(self.stack_tags), len(self.stack_tags) - len(self.tags)
        if total > aws_facts.TAGS_PER_RESOURCE:
            raise _at("tags", len(self.tags), f"with Floodgate's own {own} a resource would "
                      f"carry {total} tags; AWS allows {aws_facts.TAGS_PER_RESOURCE}")  # fmt: skip
        return self

    @property
    def stack_tags(self) -> dict[str, str]:
        """Tags for every taggable resource: the stack's own plus Floodgate's identifiers."""
        return {"floodgate:environment": self.environment, "ManagedBy": "pulumi", **self.tags}


def derived_people_per_instance(
    requests_per_instance_per_s: float, requests_per_user_per_s: float, cdn_offload_pct: float
) -> int:
    """People one instance serves: its request rate over one person's origin requests."""
    per_user = requests_per_user_per_s * (1 - cdn_offload_pct / 100)
    return max(1, int(requests_per_instance_per_s / per_user + 1e-9))  # 150 / 0.02 is 7,499.99


def architecture(instance_type: str) -> Literal["arm64", "x86_64"]:
    """CPU architecture of an EC2 instance type, from its family name."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if _ARM_FAMILY.match(family) else "x86_64"


def parse_stack_config(config: Mapping[str, Any]) -> Settings:
    """Build Settings from a stack's `config:` mapping (`aws:region` + `floodgate:settings`).

    Raises SettingsError naming every bad key, its value and what is allowed.
    """
    raw = config.get(SETTINGS_KEY)
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{SETTINGS_KEY}: missing or not a mapping (got {raw!r})")
    region = config.get(REGION_KEY)
    if "region" in raw:
        raise SettingsError(f"{SETTINGS_KEY}.region: set the region with {REGION_KEY} instead")
    try:
        # The only way Settings are built: the context carries the region to the zones check.
        return Settings.model_validate({**raw, "region": region}, context={"region": region})
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def load_stack_settings(stack: str, stacks_dir: Path = STACKS_DIR) -> Settings:
    """Read and validate `stacks/Pulumi.<stack>.yaml` the way `pulumi up` would."""
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(
            p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml")
        )
        raise SettingsError(f"stack {stack!r}: no file {path} (stacks: {', '.join(known)})")
    try:
        document = load_yaml(path)
    except YamlFileError as exc:
        raise SettingsError(str(exc)) from None
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise SettingsError(f"{path}: the top level must be a mapping (got {document!r:.60})")
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise SettingsError(f"{path}: config: must be a mapping (got {config!r:.60})")
    settings = parse_stack_config(config)
    role = "pr" if stack == "pr" or stack.startswith("pr-") else stack
    if role in ("dev", "staging", "prod", "pr") and settings.environment != role:
        raise SettingsError(
            f"{path}: {SETTINGS_KEY}.environment: {settings.environment!r} in the {stack!r} stack; "
            f"it must be {role!r} (the environment decides protection and deletion rules)"
        )
    return settings


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == NESTED_ERROR:  # raised by _at, against a key inside the model
            ctx = error.get("ctx") or {}
            loc = ".".join(filter(None, [loc, ctx["key"]]))
            lines.append(f"{SETTINGS_KEY}.{loc}: {ctx['message']} (got {ctx['value']})")
            continue
        # The region comes from `aws:region`, not from floodgate:settings: name it so.
        key = REGION_KEY if loc == "region" else f"{SETTINGS_KEY}.{loc}"
        lines.append(f"{key}: {message} (got {error.get('input')!r})")
    return "invalid settings:\n  " + "\n  ".join(lines)


NESTED_ERROR = "floodgate_nested_key"
"""The error type of `_at`: its context carries the key, the value and the message."""


def _at(key: str, value: object, message: str) -> PydanticCustomError:
    """A model-level error that reports against a nested key rather than the whole model."""
    return PydanticCustomError(
        NESTED_ERROR, "{message}", {"key": key, "value": repr(value), "message": message}
    )


def _check_range(value: int, bounds: tuple[int, int], unit: str) -> int:
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"must be between {low} and {high}{unit}")
    return value


def _check_retention(value: int) -> int:
    if value not in aws_facts.LOG_RETENTION_DAYS:
        raise ValueError(
            f"must be one of CloudWatch's retention periods {aws_facts.LOG_RETENTION_DAYS}"
        )
    return value


def _check_domain(value: str) -> str:
    if not _DOMAIN.match(value):
        raise ValueError("must be a lower-case DNS name such as portal.example.ca")
    return value

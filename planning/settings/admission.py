"""The `admission` section: the waiting room."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from functions.admission.room import COUNTER_SHARDS, ITEM_WRITES_PER_S
from functions.admission.tokens import ID_PATTERN
from planning import aws_facts
from planning.settings.base import LogRetentionDays, _at, _check_domain, _Model

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
    the people the fleet's max holds and the session length (planning.capacity.admit_rate_per_s)."""
    step_s: Literal[5, 6, 10, 12, 15, 20, 30, 60] = 10
    """Inlet step inside each one-minute run (divides 60)."""
    session_minutes: int = Field(default=20, ge=1, le=240)
    """How long an admitted visitor typically stays: sessions count as active this long."""
    session_max_minutes: int = Field(default=240, ge=3, le=1_440)
    """A session's absolute life, from when it was issued while the room was open: while the
    room queues it passes at most this long after, however often it is renewed (a session kept
    alive before the surge is not a bypass for the whole night). At least three
    `session_minutes`: with visits averaging `session_minutes`, exponentially distributed, at
    most e^-3 (5 %) of them outlast it."""
    carry_minutes: int = Field(default=10, ge=1, le=60)
    """When the room starts queueing, a session issued before passes requests that are not a
    page load (assets, scripts' calls, a form post in flight) for this long; a page load goes
    through the waiting page, which trades the session for an admission token at once
    (room.Room.carry). After it, a session alone passes nothing: a harvested one is at most
    one counted carry. Within it, any request a client labels as not a page load passes (the
    gate cannot tell a script's call from a bot's): shorter is stricter, longer spares more
    of what is in flight and spreads the carries thinner on the queue API."""
    carries_per_network: int = Field(default=256, ge=1, le=100_000)
    """Sessions of one network (IPv4 /24, IPv6 /48) the room carries in per queueing period:
    one per address of a /24. Past it, a session's holder gets a place in line like anyone
    (a carrier-grade NAT putting more people inside one /24 queues the rest)."""
    token_ttl_minutes: int = Field(default=120, ge=5, le=1_440)
    """Admission token (cookie) lifetime; also how long a rotated-out key keeps verifying."""
    show_s: int = Field(default=120, ge=30, le=900)
    """An admitted visitor not collecting their token within this is a no-show."""
    abandon_after_s: int = Field(default=90, ge=30, le=3_600)
    """A waiting visitor not polling for this long is skipped (the page polls every 5-30 s)."""
    queue_at_load_pct: int = Field(default=85, ge=10, le=100)
    """Without `meter_arrivals`: switch open -> queue when origin load reaches this share of
    fleet capacity (a margin for a load read a minute late). A metering room queues when the
    load reaches the capacity itself or newcomers use up a step's free capacity."""
    open_below_load_pct: int = Field(default=75, ge=0, le=99)
    """Without `meter_arrivals`: a queueing room may open once origin load is at or below this
    share of capacity: at least the fleet's scaling target, which target tracking holds the
    load at. A metering room may open once its line is empty and the load is under capacity."""
    meter_arrivals: bool = True
    """While the room is open, send each newcomer's first page load through the waiting page,
    whose join admits them at once within the free capacity of the inlet's step: the room
    counts arrivals within seconds and queues the moment they would overfill the fleet, instead
    of reading the load a minute late from the load balancer (a flash crowd fills the fleet in
    less). The price, every night: each new visitor's first page takes a detour of a redirect,
    the waiting page and one join (the rehearsal counts them, `metered`). False: newcomers pass
    while open, and the room queues on the load balancer's figures alone."""
    capacity_cpu_pct: int = Field(default=75, ge=10, le=90)
    """The web instances' average CPU (%) while each serves `fleet.requests_per_instance_per_s`.
    The room reads what the fleet really serves from its CPU (the load x this / the CPU, from
    40 % CPU up), so requests dearer than the settings say lower what it admits without a
    human; it never admits beyond the derived capacity. An assumption until measured (load one
    instance to requests_per_instance_per_s and read its CPUUtilization): 75 is where prod's
    two target tracking policies agree (fleet.scaling: 6,000 requests a minute per target,
    2/3 of 150 a second, and CPU 50 %)."""
    ceiling_floor_pct: int = Field(default=25, ge=1, le=100)
    """However sick the fleet's health reads (5xx, connections closed before an answer,
    rejected connections, slow or saturated), the room admits up to at least this share of the
    derived capacity: the line keeps moving as people inside leave."""
    calm_minutes: int = Field(default=10, ge=1, le=240)
    """Switch queue -> open only after this long calm: a healthy fleet, and an empty line under
    capacity (metering) or, without `meter_arrivals`, a load at most open_below_load_pct and a
    line that drains within `reopen_drain_s` at the current admission rate."""
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
    api_domain_name: str | None = None
    """The name CloudFront reaches the queue API by: an API Gateway custom domain, with the
    API's default execute-api endpoint disabled, so nothing reaches the join and status
    functions (or spends their throttle and concurrency) except through CloudFront and its WAF.
    Its certificate is `api_certificate_arn`; it needs `load_balancer.hosted_zone_id`, where
    Floodgate writes its alias record in the same update. Unset (PR previews): the endpoint
    stays public and the handlers refuse requests without the origin secret."""
    api_certificate_arn: str | None = None
    """Regional ACM certificate (the stack's region) covering `api_domain_name`; unset, the
    load balancer's certificate, which must then cover both names."""
    log_group_retention_days: LogRetentionDays = 30
    """Days CloudWatch Logs keeps the room's function and API access logs."""
    waiting_alarm_threshold: int = Field(default=100_000, ge=1)
    """Alarm when this many people are waiting: the fleet is too small for the night."""
    joins_per_address_per_min: int = Field(default=30, ge=1, le=10_000)
    """New places one viewer address may take in a minute, counted by the join function (WAF's
    join_rate_limit is the first line; this one holds if WAF is bypassed or lags: its rate
    rules act within seconds, not at once)."""

    @field_validator("api_domain_name")
    @classmethod
    def _api_domain(cls, value: str | None) -> str | None:
        return None if value is None else _check_domain(value)

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        if self.open_below_load_pct >= self.queue_at_load_pct:
            raise _at(
                "open_below_load_pct",
                self.open_below_load_pct,
                f"must be below queue_at_load_pct ({self.queue_at_load_pct}) or the room flaps",
            )
        if self.session_max_minutes < 3 * self.session_minutes:
            raise _at(
                "session_max_minutes",
                self.session_max_minutes,
                f"must be at least 3 x session_minutes ({3 * self.session_minutes}): shorter cuts"
                " off more than 5 % of the people inside when the room starts queueing",
            )
        counted = COUNTER_SHARDS * ITEM_WRITES_PER_S
        if self.design_joins_per_s > counted:
            raise _at(
                "design_joins_per_s",
                self.design_joins_per_s,
                f"must be at most {counted:,}: the room's counters (functions/admission/room.py"
                f" COUNTER_SHARDS x {ITEM_WRITES_PER_S:,} writes/s an item) take no more",
            )
        if self.show_s >= self.token_ttl_minutes * 60:
            raise _at("show_s", self.show_s, "must be shorter than token_ttl_minutes")
        return self

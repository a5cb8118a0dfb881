"""Peak-capacity arithmetic: can a stack's fleet carry its planned surge with a zone lost?

Units: users are concurrent users; rates are requests per second (req/s); capacities are
instances. Event-by-event planning builds on these functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planning import aws_facts
from planning.settings import (
    ADMIN_CONCURRENCY,
    INLET_CONCURRENCY,
    AdmissionSettings,
    Settings,
    derived_people_per_instance,
)


@dataclass(frozen=True)
class PeakCheck:
    """The planned peak and what the fleet can do about it."""

    peak_users: int
    origin_requests_per_s: float
    instances_needed: int
    """Instances (at the scaling target) that serve the peak's origin requests."""
    instances_with_zone_lost: int
    """Instances the group can still run at max size with one zone out of service."""

    @property
    def holds(self) -> bool:
        return self.instances_with_zone_lost >= self.instances_needed


def origin_requests_per_s(users: float, settings: Settings, edge_cache: bool = True) -> float:
    """Requests per second reaching the ALB for `users`: their requests less the static assets
    (`cdn_offload_pct`) and the public pages (`public_page_pct`), plus what the edge asks the
    origin for public pages: each cache key once per cache per `public_page_ttl_s`, never more
    than the pages asked for (all of them when the TTL is 0, or `edge_cache` is False: an
    origin sending no-store). Prod: 340,000 x 0.05 x 40 % = 6,800 with no public pages."""
    c = settings.capacity
    requests = users * c.requests_per_user_per_s
    dynamic = requests * (1 - (c.cdn_offload_pct + c.public_page_pct) / 100)
    public = requests * c.public_page_pct / 100
    if edge_cache and c.public_page_ttl_s > 0:
        public = min(public, public_page_refill_per_s(settings))
    return dynamic + public


def public_page_refill_per_s(settings: Settings) -> float:
    """The most public-page requests a second the edge sends the origin: every cache key, from
    every cache that asks on its own (one with Origin Shield, else each regional edge cache),
    once per TTL. A TTL of 0 caches nothing: infinite."""
    c = settings.capacity
    if c.public_page_ttl_s <= 0:
        return math.inf
    caches = 1 if settings.edge.origin_shield_region else aws_facts.REGIONAL_EDGE_CACHES
    return c.public_page_urls * caches / c.public_page_ttl_s


def instances_for(requests_per_s: float, requests_per_instance_per_s: float) -> int:
    """Instances needed to serve `requests_per_s` at the per-instance rate (rounded up)."""
    return math.ceil(requests_per_s / requests_per_instance_per_s)


def max_with_zone_lost(max_size: int, zones: int) -> int:
    """Instances the group can hold in the surviving zones: AWS rebalances up to max_size,
    but a zone-sized share of launches may fail while capacity shifts, so plan for the
    surviving fraction of max (floor)."""
    return (max_size * (zones - 1)) // zones


def peak_check(settings: Settings) -> PeakCheck:
    """Planned peak (baseline x peak_multiple) against the fleet's max with one zone lost."""
    c = settings.capacity
    peak_users = math.ceil(c.baseline_users * c.peak_multiple)
    rate = origin_requests_per_s(peak_users, settings)
    return PeakCheck(
        peak_users=peak_users,
        origin_requests_per_s=rate,
        instances_needed=instances_for(rate, settings.fleet.requests_per_instance_per_s),
        instances_with_zone_lost=max_with_zone_lost(
            settings.fleet.max_size, len(settings.network.zones)
        ),
    )


DDB_WRITES_PER_JOIN, DDB_READS_PER_STATUS = 4, 3
"""Room table units per join and per status poll (see functions/admission/room.py): a poll
reads the visitor, its place and its second's tally; the room item a container reuses for
ROOM_CACHE_S is counted apart (room_item_reads), against its partition."""


@dataclass(frozen=True)
class WarmThroughput:
    """Units per second the room table is pre-warmed for."""

    writes_per_s: int
    reads_per_s: int


def room_warm_throughput(admission: AdmissionSettings) -> WarmThroughput:
    """The design join rate in table units, at least what a new on-demand table starts with
    and at most the table-level quota (40,000 units/s by default). With the default quota that
    is 40,000 / 4 = 10,000 joins/s and 40,000 / 3 = 13,333 status polls/s."""
    quota = admission.table_quota_units_per_s
    return WarmThroughput(
        writes_per_s=min(
            quota,
            max(
                aws_facts.DDB_NEW_TABLE_WRITES_PER_S,
                admission.design_joins_per_s * DDB_WRITES_PER_JOIN,
            ),
        ),
        reads_per_s=min(
            quota,
            max(
                aws_facts.DDB_NEW_TABLE_READS_PER_S,
                admission.design_joins_per_s * DDB_READS_PER_STATUS,
            ),
        ),
    )


ADMIT_CATCH_UP = 3
"""The derived admission ceiling lets the planned crowd in three times as fast as sessions turn
over, so a room that starts queueing at the peak catches up within half a session length, and
a night at 3x the plan (the rehearsal's stress) keeps out under 5 % of the wanted time."""


def people_per_instance(settings: Settings) -> int:
    """People one in-service instance serves: the override, or requests per instance over one
    person's origin requests (prod: 150 / (0.05 x 40 %) = 7,500)."""
    c, override = settings.capacity, settings.admission.sessions_per_instance
    if override is not None:
        return override
    return derived_people_per_instance(settings.fleet.requests_per_instance_per_s, c)


def admit_rate_per_s(settings: Settings) -> int:
    """The room's admission ceiling (people/s): the override, or the most people the fleet can
    hold (its max_size x people_per_instance, or the planned peak if larger) over the session
    length, x ADMIT_CATCH_UP, within the settings' 2,000/s (prod: 120 x 7,500 / 1,200 s x 3 =
    2,250, so 2,000/s). Sized on the plan alone, a crowd beyond it waits behind the cap while the
    fleet it grew to stands half empty (prod, climb-36x: 120 instances in service, 444,000 of
    900,000 places used, 230,000 in line)."""
    a = settings.admission
    if a.max_admit_per_s is not None:
        return a.max_admit_per_s
    planned = settings.capacity.baseline_users * settings.capacity.peak_multiple
    most = max(planned, settings.fleet.max_size * people_per_instance(settings))
    return min(2_000, math.ceil(most / (a.session_minutes * 60) * ADMIT_CATCH_UP))


METRIC_NAMESPACE = "Floodgate/WaitingRoom"
"""The room's CloudWatch namespace: the inlet publishes into it, alarms and IAM name it."""
ORIGIN_VERIFY_SUFFIX = "-origin-verify"
"""The queue API's origin-secret Secret and SecretVersion end with it (components/admission.py;
the policy pack exempts that version from the rotated-secrets rule)."""
DEMAND_METRIC = "DemandPercent"
"""The inlet publishes it; the web group's room-demand policy scales on it."""
TRACKING_PERIODS_S = (10, 30, 60)
"""The periods target tracking accepts for a metric (shorter than 60 s: a high-resolution one,
published with StorageResolution 1). Source: Amazon EC2 Auto Scaling API Reference,
TargetTrackingMetricStat (Period: 10, 30 or 60); user guide, target tracking with
high-resolution metrics."""
INBOX_RECEIPT_SUFFIX = "-inbox-receipt"
"""Name suffix of the inbox's receipt secret (components/inbox.py): Pulumi's own value, which
nothing changes at run time (policies/apply_time.py exempts it as it does the origin secret)."""


def demand_period_s(settings: Settings) -> int:
    """The room-demand policy's period: the shortest target tracking accepts that holds at least
    one of the inlet's steps (10 s for the default 10-second step), so the policy reads the
    demand as the inlet last computed it, against the instances in service then, not a
    minute's average over a fleet that grew in it. A step that runs late leaves a period
    without a datapoint now and then (the inlet sleeps step_s after each step): the policy acts
    on those it has."""
    return min(p for p in TRACKING_PERIODS_S if p >= settings.admission.step_s)


def room_tunables(settings: Settings) -> dict[str, str]:
    """The waiting room's tunables as the Lambda environment carries them (`FG_*`, read by
    `functions/admission/room.Config.from_env`): one source for the stack and the rehearsal."""
    s = settings.admission
    return {
        "FG_ROOM_ID": s.room_id,
        "FG_SESSIONS_PER_INSTANCE": str(people_per_instance(settings)),
        "FG_REQUESTS_PER_INSTANCE_PER_S": str(settings.fleet.requests_per_instance_per_s),
        "FG_MAX_ADMIT_PER_S": str(admit_rate_per_s(settings)),
        "FG_STEP_S": str(s.step_s),
        "FG_SESSION_S": str(s.session_minutes * 60),
        "FG_SESSION_MAX_S": str(s.session_max_minutes * 60),
        "FG_CARRY_S": str(s.carry_minutes * 60),
        "FG_CARRIES_PER_NETWORK": str(s.carries_per_network),
        "FG_TOKEN_TTL_S": str(s.token_ttl_minutes * 60),
        "FG_SHOW_S": str(s.show_s),
        "FG_ABANDON_AFTER_S": str(s.abandon_after_s),
        "FG_QUEUE_AT_LOAD": str(s.queue_at_load_pct / 100),
        "FG_OPEN_BELOW_LOAD": str(s.open_below_load_pct / 100),
        "FG_CALM_S": str(s.calm_minutes * 60),
        "FG_DRAIN_S": str(s.reopen_drain_s),
        "FG_DEMAND_FLOOR_PCT": f"{settings.fleet.scaling_target_pct:.2f}",
        "FG_TARGET_5XX_PCT": str(settings.alarms.target_5xx_rate_pct),
        "FG_ELB_5XX_PCT": str(settings.alarms.alb_5xx_rate_pct),
        "FG_ALB_SCALING_PCT_PER_5_MIN": str(settings.load_balancer.scaling_pct_per_5_min),
        "FG_RESPONSE_P95_S": str(settings.alarms.response_time_p95_s),
        "FG_CAPACITY_CPU_PCT": str(s.capacity_cpu_pct),
        "FG_CEILING_FLOOR": str(s.ceiling_floor_pct / 100),
        "FG_POLLS_PER_S": f"{queue_api_capacity(settings).polls_per_s:.0f}",
        "FG_JOINS_PER_ADDRESS_PER_MIN": str(s.joins_per_address_per_min),
        "FG_PORTAL_ORIGINS": ",".join(f"https://{d}" for d in settings.edge.domain_names),
        "FG_ROOM_CACHE_S": str(ROOM_CACHE_S),
        "FG_METRIC_NAMESPACE": METRIC_NAMESPACE,
        "FG_DEMAND_METRIC": DEMAND_METRIC,
        "FG_DEMAND_PERIOD_S": str(demand_period_s(settings)),
        "FG_METER": "1" if s.meter_arrivals else "0",
    }


QUEUE_FUNCTION_MEMORY_MB = 512
"""Memory of the join and status functions (components/admission.py), which Lambda bills."""
JOIN_SERVICE_S, STATUS_SERVICE_S = 0.05, 0.03
"""Assumed Lambda duration of one join (three DynamoDB writes) and one status poll (one batch
read), seconds: a function with concurrency C serves C / duration requests a second. An
assumption, not a measurement: check it against the functions' Duration metric."""


ROOM_ROUTE_SHARE = 0.1
"""The share of the status function GET /queue/room may take: it is cached 2 s at the edge, so
each regional edge cache asks at most every 2 s."""
DESIGN_ARRIVAL_S = 120
"""The planned crowd may arrive within two minutes (the rehearsal's flash crowd): joins/s."""
POLL_MAX_S = 60
"""The slowest the waiting page polls (functions/admission/room.retry_after's ceiling): a long
line polls at most this often, so everyone waiting at once is peak / POLL_MAX_S polls a second."""


@dataclass(frozen=True)
class QueueApiDesign:
    """What the queue API must take for the stack's planned crowd, and the concurrency that
    serves it (the settings' overrides where set)."""

    joins_per_s: float
    polls_per_s: float
    join_concurrency: int
    status_concurrency: int

    def route_limits(self, stage_rate: int, stage_burst: int) -> dict[str, tuple[int, int]]:
        """(rate per s, burst) per function label for its API Gateway route: its concurrency
        over its service time, and its concurrency as the burst, within the stage's. Past them
        API Gateway answers 429 itself; past the function's concurrency Lambda would throttle
        and API Gateway answer 500 (Lambda developer guide, "Handling API Gateway errors").
        The status function's share is split with /queue/room (ROOM_ROUTE_SHARE)."""

        def limit(concurrency: int, service_s: float, share: float) -> tuple[int, int]:
            rate = max(1, math.floor(concurrency / service_s * share))
            return min(rate, stage_rate), min(max(1, math.floor(concurrency * share)), stage_burst)

        return {
            "join": limit(self.join_concurrency, JOIN_SERVICE_S, 1.0),
            "status": limit(self.status_concurrency, STATUS_SERVICE_S, 1 - ROOM_ROUTE_SHARE),
            "room": limit(self.status_concurrency, STATUS_SERVICE_S, ROOM_ROUTE_SHARE),
        }

    @property
    def reserved(self) -> int:
        """Concurrency the room's four functions reserve out of the region's pool."""
        return (
            self.join_concurrency + self.status_concurrency + INLET_CONCURRENCY + ADMIN_CONCURRENCY
        )


def queue_api_design(settings: Settings) -> QueueApiDesign:
    """The planned peak joining within DESIGN_ARRIVAL_S and all of it polling every POLL_MAX_S
    (prod: 340,000 / 120 = 2,834 joins/s and 5,667 polls/s: 142 and 189 concurrent, the
    status function's including /queue/room's ROOM_ROUTE_SHARE)."""
    a = settings.admission
    peak = settings.capacity.baseline_users * settings.capacity.peak_multiple
    joins, polls = peak / DESIGN_ARRIVAL_S, peak / POLL_MAX_S
    return QueueApiDesign(
        joins_per_s=joins,
        polls_per_s=polls,
        join_concurrency=a.join_concurrency or max(1, math.ceil(joins * JOIN_SERVICE_S)),
        status_concurrency=a.status_concurrency
        or max(1, math.ceil(polls * STATUS_SERVICE_S / (1 - ROOM_ROUTE_SHARE))),
    )


ROOM_CACHE_S = 1.0
"""Seconds a join or status container reuses the room item (`FG_ROOM_CACHE_S`): a second late
on a state change, which the page's next poll corrects."""


@dataclass(frozen=True)
class HotItem:
    """Reads a second of the one item every join and poll needs (the room item, under 4 KB:
    half a read unit each, eventually consistent), at the queue API's design point."""

    reads_per_s: float
    uncached_reads_per_s: float
    """What it would take if every join and poll read it."""

    @property
    def units_per_s(self) -> float:
        return self.reads_per_s * aws_facts.DDB_EVENTUAL_READ_UNITS


def room_item_reads(
    settings: Settings, containers: int | None = None, cache_s: float = ROOM_CACHE_S
) -> HotItem:
    """At most one read per join/status container per `cache_s` (`containers`: the join and
    status functions' concurrency, the design's by default), never more than the requests
    themselves (prod: 331 containers -> 331 reads/s, 166 units, against 8,500 and 4,250)."""
    design = queue_api_design(settings)
    uncached = design.joins_per_s + design.polls_per_s
    pool = design.join_concurrency + design.status_concurrency if containers is None else containers
    reads = uncached if cache_s <= 0 else min(uncached, pool / cache_s)
    return HotItem(reads_per_s=reads, uncached_reads_per_s=uncached)


@dataclass(frozen=True)
class QueueApiCapacity:
    """Requests per second the queue API can take, by what limits it."""

    api_per_s: int
    """The HTTP API stage's throttle (joins and polls together)."""
    joins_per_s: float
    """Join function concurrency / JOIN_SERVICE_S, within the table's pre-warmed writes."""
    polls_per_s: float
    """Status function concurrency / STATUS_SERVICE_S (less /queue/room's share), within the
    table's pre-warmed reads and what the stage's throttle leaves the planned joins."""


def queue_api_capacity(settings: Settings) -> QueueApiCapacity:
    design, warm = queue_api_design(settings), room_warm_throughput(settings.admission)
    return QueueApiCapacity(
        api_per_s=settings.admission.api_rate_limit,
        joins_per_s=min(
            design.join_concurrency / JOIN_SERVICE_S, warm.writes_per_s / DDB_WRITES_PER_JOIN
        ),
        polls_per_s=min(
            design.status_concurrency / STATUS_SERVICE_S * (1 - ROOM_ROUTE_SHARE),
            warm.reads_per_s / DDB_READS_PER_STATUS,
            max(1.0, settings.admission.api_rate_limit - design.joins_per_s),
        ),
    )

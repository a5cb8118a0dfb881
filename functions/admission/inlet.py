"""The inlet: every minute (EventBridge Scheduler), in steps of `step_s`, let people in.

Each step seals finished seconds into tallies, reads the fleet (in-service instances, origin
load, the origin 5xx alarm, and the health the load balancer and the instances report),
regulates the share of the derived capacity it admits to on that health (`regulate`), admits up
to it by advancing the cursor past places (skipping holes and people who stopped polling),
switches the room between `open` and
`queue` with hysteresis unless an operator pinned it or a calendar event forces `queue`, and
keeps the CloudFront KeyValueStore in line with the room. Runs with reserved concurrency 1, and
the room item is written conditionally on its version, so two inlets never double-admit.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .room import (
    COLLECT_SHARDS,
    RATE_WINDOW_S,
    SEAL_GRACE_S,
    SEAL_MAX_SECONDS,
    SEQ_SPAN,
    SHARDS,
    Config,
    Room,
    State,
    admission_rate,
    enter_queue,
)

KVS_PREFIXES = ("room", "key.", "revoked.")
LOAD_LOOKBACK_S = 180
"""read_fleet takes the latest RequestCountPerTarget datapoint within this many seconds."""
SESSION_SPAN = 3
"""Visits (session_s) back that tokens count as possibly still inside (`session_minutes`)."""

DECREASE = 0.7
"""A fleet failing at a load at or under its ceiling has shown it serves less than the ceiling:
the ceiling drops to this share of that load (TCP's multiplicative decrease is 0.5; 0.7 halves
within two decreases without emptying a fleet that was only just over)."""
HOLD_S = 180
"""After a decrease the ceiling does not drop again for this long: what the room admits shows
in the load balancer's one-minute metrics one to two minutes later (TCP decreases once a round
trip, not once a loss)."""
INCREASE = 0.05
"""While healthy, the ceiling rises by this share of the derived capacity per minute (additive
increase): from the floor to the full derived capacity in 15 minutes, so a fleet that was sick
is filled again in steps it can report on."""
SATURATED_CPU_PCT = 95.0
"""The instances' average CPU at or above which they are saturated: a breach (the CPU cannot
say how far beyond its capacity the load is)."""
ESTIMATE_FROM_CPU_PCT = 40.0
"""Below this CPU the instances' idle work weighs too much in it to scale their capacity from
(requests x capacity_cpu_pct / CPU would read a lightly used fleet as a small one)."""


@dataclass(frozen=True)
class Health:
    """One minute of what the load balancer and the instances report: CloudWatch's one-minute
    datapoints for the latest minute the load balancer has published (about a minute late)."""

    at: float
    """The minute's start (epoch s)."""
    requests: float
    """RequestCount of the target group in the minute."""
    target_5xx: float = 0.0
    """HTTPCode_Target_5XX_Count: the instances' own 5xx."""
    elb_5xx: float = 0.0
    """HTTPCode_ELB_5XX_Count: the load balancer's 502/503/504 (no target, target timed out)."""
    per_target: float | None = None
    """RequestCountPerTarget in the minute: the load of the same minute as the CPU."""
    rejected: float = 0.0
    """RejectedConnectionCount: the load balancer reached its maximum connections."""
    response_p95_s: float | None = None
    """TargetResponseTime p95 (s); None when nothing was answered."""
    cpu_pct: float | None = None
    """The group's average CPUUtilization (detailed monitoring: one-minute)."""
    peak_lcus: float | None = None
    """PeakLCUs (Sum over the minute): the most LCUs the load balancer used in it."""
    earlier: tuple[tuple[float, float, float], ...] = ()
    """(minute start, PeakLCUs, RequestCount) of the minutes before this one that have both,
    oldest first, within HEALTH_LOOKBACK_S."""
    reserved_lcus: float = 0.0
    """The LCU reservation in effect: ReservedLCUs' one-minute Sum x 60 (AWS reports the
    reservation per minute: "if you have a LCU reservation of 6,000 [...] the one-minute total
    is 100", ELB user guide, monitor LCU reservation)."""


@dataclass(frozen=True)
class Fleet:
    """What the inlet reads of the fleet for one step."""

    in_service: int
    load: float
    """Origin requests per target per second, as a fraction of `requests_per_instance_per_s`."""
    alarm: bool
    """The origin 5xx alarm is in ALARM."""
    health: Health | None = None
    """The latest minute of health; None when CloudWatch has none yet."""
    ceiling: float = 1.0
    """The share of the derived capacity (in-service x sessions_per_instance) the fleet has
    shown it serves: `regulate` sets it; 1 until health says otherwise."""
    load_at: float | None = None
    """The start (epoch s) of the minute whose people `loaded` counts: the health's minute, else
    the `load` datapoint's; None when there is none. Whoever came in since is at most partly
    in it (`Sessions.since_load`)."""
    load_age_s: float = 0.0
    """Seconds from the middle of that minute to the reading: some of the people it counted
    have left since (`free_capacity`)."""


def breach(config: Config, fleet: Fleet) -> str | None:
    """Why the fleet is not healthy, or None: the origin alarm, a 5xx rate over the alarms'
    (per minute), rejected connections, p95 response time over the alarms' (an instance that
    queues past CloudFront's timeout shows here: its requests answer late, and none as a 5xx),
    or saturated CPU. Not the ALB's 4xx: the listener's fixed 403 to requests without
    CloudFront's header counts in it, so anyone could hold the room shut."""
    if fleet.alarm:
        return "origin alarm"
    h = fleet.health
    if h is None:
        return None
    if h.requests > 0:
        rates = {
            "target 5xx": (h.target_5xx, config.target_5xx_pct),
            "load balancer 5xx": (h.elb_5xx, config.elb_5xx_pct),
        }
        for why, (count, limit) in rates.items():
            if 100 * count / h.requests > limit:
                return why
    if h.rejected > 0:
        return "rejected connections"
    if h.response_p95_s is not None and h.response_p95_s > config.response_p95_s:
        return "slow responses"
    if h.cpu_pct is not None and h.cpu_pct >= SATURATED_CPU_PCT:
        return "saturated CPU"
    return None


def next_ceiling(config: Config, ceiling: float, fleet: Fleet, held: bool = False) -> float:
    """The ceiling after one new minute of health (`fleet.health`), within [ceiling_floor, 1].

    On a breach at a load at or under the ceiling, the fleet fails at a load it was thought to
    serve: DECREASE x that load, unless `held` (a decrease within HOLD_S, not yet visible in
    the metrics). On a breach above the ceiling there are more people inside than it admits
    to (they came in before the room queued, or it is waiting for the fleet to grow): the
    ceiling stands, and admits nobody until they are fewer. Healthy, what the CPU shows the
    instances serve (load x capacity_cpu_pct / CPU, from ESTIMATE_FROM_CPU_PCT) when lower,
    else up by at most INCREASE. The derived capacity stays the upper bound: the CPU may show
    requests dearer than the settings say, never cheaper."""
    floor, h = config.ceiling_floor, fleet.health
    per_target = h.per_target if h is not None else None
    # The load of the health's own minute when it has it (the latest datapoint otherwise).
    load = (
        fleet.load if per_target is None else per_target / 60 / config.requests_per_instance_per_s
    )
    load = max(load, 0.0)
    if breach(config, fleet) is not None:
        return max(floor, ceiling if held or load > ceiling else load * DECREASE)
    rising = min(1.0, ceiling + INCREASE)
    cpu = fleet.health.cpu_pct if fleet.health is not None else None
    if cpu is None or cpu < ESTIMATE_FROM_CPU_PCT:
        return max(floor, rising)
    shown = load * config.capacity_cpu_pct / cpu
    return max(floor, min(shown, 1.0) if shown < ceiling else min(shown, rising))


def regulate(config: Config, room: dict[str, Any], fleet: Fleet) -> Fleet:
    """Move the room item's ceiling once per new minute of health (`health_at` records the
    minute acted on, `lowered_at` the last decrease) and return the fleet with it."""
    ceiling = float(room.get("ceiling") or 1.0)
    h, last = fleet.health, room.get("health_at")
    if h is not None and (last is None or h.at > float(last)):
        lowered = room.get("lowered_at")
        held = lowered is not None and h.at - float(lowered) < HOLD_S
        new = next_ceiling(config, ceiling, fleet, held)
        if new < ceiling:
            room["lowered_at"] = h.at
        ceiling = new
        room["ceiling"], room["health_at"] = ceiling, h.at
    return replace(fleet, ceiling=ceiling)


@dataclass(frozen=True)
class Sessions:
    staying: int
    """Tokens collected over `session_minutes`, each counted by the chance its holder is still
    inside (visits average session_s: exp(-age / session_s)); a plain count would read a crowd
    that came and partly left within the session as all still there."""
    admitted_in_show: int
    """Places admitted in the last `show_s` (their holders may still be on their way)."""
    collected_in_show: int
    collected_since_load: int = 0
    """Tokens collected since the start of the load's minute (`Fleet.load_at`)."""

    @property
    def on_their_way(self) -> int:
        """Admitted in the last `show_s` and not yet collected."""
        return max(0, self.admitted_in_show - self.collected_in_show)

    @property
    def inside(self) -> int:
        """People inside on a token: those staying, plus admitted and on their way."""
        return self.staying + self.on_their_way

    @property
    def since_load(self) -> int:
        """People let in whom the latest load datapoint counts at most in part: they collected
        their token during or after its minute (CloudWatch publishes a minute late, so a crowd
        the room meters in shows in the load one to two minutes after). Counting those of its
        minute whole overestimates by at most a minute's admissions (half, on average): it
        errs on the side of the line, not of a failed request."""
        return self.collected_since_load + self.on_their_way


def loaded(config: Config, fleet: Fleet) -> float:
    """Instances' worth of the latest minute's requests: the target group's RequestCount over
    requests_per_instance_per_s (counted over the instances of that minute, so a fleet that
    has grown or shrunk since does not scale it), else the load per target times the instances
    now (at least one)."""
    if fleet.health is not None:
        return max(fleet.health.requests, 0.0) / 60 / config.requests_per_instance_per_s
    return max(fleet.load, 0.0) * max(fleet.in_service, 1)


def free_capacity(config: Config, fleet: Fleet, sessions: Sessions) -> int:
    """People the fleet has room for now: the share of the derived capacity it has shown it
    serves (`fleet.ceiling`), less the people inside: the larger of those on tokens and the
    load's worth of people plus everyone let in since the load's minute began (a stale load
    alone would offer the same room every step until the crowd shows in it); none while an
    origin 5xx alarm fires (three minutes of failures: an operator's matter)."""
    if fleet.alarm or fleet.in_service <= 0:
        return 0
    capacity = fleet.in_service * config.sessions_per_instance
    # The load's people, less those expected to have left since (visits average session_s,
    # so a share 1 - exp(-age / session_s) of them), plus those let in since its minute.
    stayed = math.exp(-max(fleet.load_age_s, 0.0) / config.session_s)
    by_load = math.ceil(loaded(config, fleet) * config.sessions_per_instance * stayed)
    by_load += sessions.since_load
    inside = max(sessions.inside, by_load)
    free = math.floor(capacity * min(fleet.ceiling, 1.0)) - inside
    carried = alb_people(config, fleet)
    if carried is not None:
        free = min(free, math.floor(carried) - inside)
    return max(0, free)


def alb_people(config: Config, fleet: Fleet) -> float | None:
    """People the load balancer can carry now: the LCUs it can hold over the LCUs a person uses,
    from what it reported of the health's minute and the minutes before it.

    It holds the larger of its reservation (ReservedLCUs), the most it used in the health's
    minute (PeakLCUs) grown at `alb_scaling_pct_per_5_min` since that minute began (those let
    in since count on top: `free_capacity`) and, on a load that rose since, the peak of the
    minute five minutes before grown by the whole pace (AWS's "increase the load at a rate of
    no more than 50 percent every five minutes"); no growth while its own 5xx breach
    `elb_5xx_pct` (it is behind the pace it is counted on). A person uses the minute's peak
    over its people (`loaded`), or that earlier minute's when less: a minute that rose peaks
    above its average and reads a person dearer than they are. None without a PeakLCUs
    datapoint or people (nothing to scale from: the fleet alone bounds the room)."""
    h = fleet.health
    people = loaded(config, fleet) * config.sessions_per_instance
    if h is None or not h.peak_lcus or h.peak_lcus <= 0 or people <= 0:
        return None
    behind = h.requests > 0 and 100 * h.elb_5xx / h.requests > config.elb_5xx_pct
    pace = 1 + (0.0 if behind else config.alb_scaling_pct_per_5_min) / 100
    since = max(fleet.load_age_s, 0.0) + 30  # from the minute's start, as `since_load` counts
    holds = max(h.reserved_lcus, h.peak_lcus * pace ** (since / ALB_WINDOW_S))
    per_person = h.peak_lcus / people
    before = {m: (peak, requests) for m, peak, requests in h.earlier}.get(h.at - ALB_WINDOW_S)
    if before is not None and min(before) > 0:
        peak, requests = before
        then = requests / 60 / config.requests_per_instance_per_s * config.sessions_per_instance
        per_person = min(per_person, peak / then)
        if h.peak_lcus >= peak:  # rising since: it grew from that minute's load
            holds = max(holds, peak * pace)
    return holds / per_person


def admit_budget(config: Config, fleet: Fleet, sessions: Sessions) -> int:
    """How many places this step may admit from the line: the free capacity, at most the rate
    cap (`max_admit_per_s` x `step_s`)."""
    return min(free_capacity(config, fleet, sessions), config.max_admit_per_s * config.step_s)


@dataclass(frozen=True)
class Walk:
    admitted: int
    passed: int
    """Places the cursor moved over: admitted + skipped + holes."""
    skipped: list[int]
    """Orders of people passed because they stopped polling."""
    last_order: int | None


def walk(
    places: list[tuple[int, dict[str, Any] | None]],
    budget: int,
    now: float,
    abandon_after_s: int,
) -> Walk:
    """Advance over `places` ((order, item or None for a hole), in line order).

    Admits at most `budget`, in order; holes and people not seen for `abandon_after_s` are
    passed without using the budget. Stops before the first person the budget cannot take.
    """
    admitted = passed = 0
    skipped: list[int] = []
    last: int | None = None
    for order, item in places:
        gone = item is None or item.get("skipped") or now - float(item["seen_at"]) > abandon_after_s
        if not gone:
            if admitted >= budget:
                break
            admitted += 1
        elif item is not None and not item.get("skipped"):
            skipped.append(order)
        passed += 1
        last = order
    return Walk(admitted, passed, skipped, last)


def demand_pct(config: Config, fleet: Fleet, waiting: int, inside: int = 0) -> float:
    """The fleet's demand as a utilisation (%), for target tracking, in one unit: instances'
    worth of what the fleet has shown it serves (`fleet.ceiling`), over the instances in
    service now. People inside count as the larger of the latest minute's requests (over
    requests_per_instance_per_s; the load per target times the instances now without that
    minute's count) and `inside` (people the room let in within a session, over
    sessions_per_instance); people waiting over sessions_per_instance, no more of them than the
    load balancer can carry within its next five minutes (`alb_people` grown by its pace: the
    rest come in later, so instances for them now would stand idle). While anyone waits it
    reads at least `demand_floor_pct` (the scaling target), so this policy never agrees to
    scale in then: Auto Scaling scales in only when every target tracking policy is ready to."""
    serving = max(fleet.in_service, 1)
    people = max(loaded(config, fleet), inside / config.sessions_per_instance)
    coming = waiting
    carried = alb_people(config, fleet)
    if carried is not None:  # the line comes in no faster than the load balancer grows
        soon = carried * (1 + config.alb_scaling_pct_per_5_min / 100)
        coming = min(waiting, max(0, math.floor(soon - people * config.sessions_per_instance)))
    needed = people + coming / config.sessions_per_instance
    demand = 100 * needed / (serving * fleet.ceiling)
    return max(demand, config.demand_floor_pct) if waiting > 0 else demand


def drains(config: Config, waiting: int, rate_per_s: float) -> bool:
    """The line would be let in within `drain_s` at the current admission rate (people/s)."""
    return waiting == 0 or (rate_per_s > 0 and waiting / rate_per_s <= config.drain_s)


def next_state(
    config: Config,
    room: dict[str, Any],
    fleet: Fleet,
    waiting: int,
    forced: bool,
    now: float,
    rate_per_s: float = 0.0,
    exhausted: bool = False,
) -> tuple[State, float | None]:
    """The room's state after this step, and since when it has been calm (hysteresis).

    The room queues when its health breaches or the load reaches `queue_at_load` of what the
    fleet has shown it serves (`fleet.ceiling`); a queueing room is calm when the fleet is
    healthy, the load is at most `open_below_load` of it and the line would drain within
    `drain_s` at the admission rate (`rate_per_s`, people/s): it opens after `calm_s` of calm,
    and whoever is still in line then walks in. A room metering arrivals (`config.meter`)
    queues once newcomers used up the free capacity the last step offered (`exhausted`): more
    come than the fleet has room for, seconds after they start. It needs no margin on a load
    read a minute late: it queues when the load reaches the ceiling itself, and is calm once
    its line is empty (everyone in it let in within the free capacity; a line that would
    merely drain soon would walk in at once, past it). A fleet at its maximum with demand just
    under it so opens once the line is gone, instead of queueing newcomers until demand falls
    under `open_below_load`."""
    if room.get("pinned"):
        return room["pinned"], None
    state: State = room["state"]
    if forced:
        return "queue", None
    metered = config.meter == 1
    queue_at = 1.0 if metered else config.queue_at_load
    hot = breach(config, fleet) is not None or fleet.load >= queue_at * fleet.ceiling
    if state != "queue":
        return ("queue", None) if hot or exhausted else ("open", None)
    if metered:  # the line walked in within this step's free capacity; newcomers are metered
        calm = not hot and waiting == 0
    else:
        calm = (
            not hot
            and fleet.load <= config.open_below_load * fleet.ceiling
            and drains(config, waiting, rate_per_s)
        )
    if not calm:
        return "queue", None
    since = room.get("calm_since") or now
    return ("open", None) if now - since >= config.calm_s else ("queue", since)


def read_fleet(room: Room, now: float) -> Fleet:
    """In-service instances (Auto Scaling), origin load (CloudWatch), the origin 5xx alarm."""
    cfg = room.config
    groups = room.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[cfg.asg_name])
    in_service = sum(
        1
        for group in groups["AutoScalingGroups"]
        for i in group.get("Instances", [])
        if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy"
    )
    load, at, age = 0.0, None, 0.0
    points = room.cloudwatch.get_metric_statistics(
        Namespace="AWS/ApplicationELB",
        MetricName="RequestCountPerTarget",
        Dimensions=[{"Name": "TargetGroup", "Value": cfg.target_group}],
        StartTime=now - LOAD_LOOKBACK_S,
        EndTime=now,
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    if points:
        latest = max(points, key=lambda p: p["Timestamp"])
        load = float(latest["Sum"]) / 60 / cfg.requests_per_instance_per_s
        # CloudWatch aggregates the datapoints whose time stamps fall within each period and
        # stamps the result at the period's start (GetMetricStatistics, API Reference). A stamp
        # inside the minute errs safe: count_sessions counts from its whole minute, and the age is
        # read shorter (fewer taken to have left).
        at = latest["Timestamp"].timestamp()
        age = now - (at + 30)
    alarm = False
    names = [n for n in cfg.alarm_names.split(",") if n]
    if names:
        alarms = room.cloudwatch.describe_alarms(AlarmNames=names)
        alarm = any(a["StateValue"] == "ALARM" for a in alarms.get("MetricAlarms", []))
    health = read_health(room, now)
    if health is not None:  # `loaded` counts the people of the health's minute
        at, age = health.at, now - (health.at + 30)
    return Fleet(in_service, load, alarm, health, load_at=at, load_age_s=age)


ALB_WINDOW_S = 300
"""The load balancer's pace is a rise per five minutes (`alb_scaling_pct_per_5_min`)."""
HEALTH_LOOKBACK_S = 600
"""`read_health` reads the last ten minutes: the latest minute, and those before it."""
HEALTH_QUERIES = (
    ("requests", "AWS/ApplicationELB", "RequestCount", "TargetGroup", "Sum"),
    ("per_target", "AWS/ApplicationELB", "RequestCountPerTarget", "TargetGroupOnly", "Sum"),
    ("target_5xx", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "TargetGroup", "Sum"),
    ("elb_5xx", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", "Sum"),
    ("rejected", "AWS/ApplicationELB", "RejectedConnectionCount", "LoadBalancer", "Sum"),
    ("response_p95_s", "AWS/ApplicationELB", "TargetResponseTime", "TargetGroup", "p95"),
    ("cpu_pct", "AWS/EC2", "CPUUtilization", "AutoScalingGroupName", "Average"),
    ("peak_lcus", "AWS/ApplicationELB", "PeakLCUs", "LoadBalancer", "Sum"),
    ("reserved_lcus", "AWS/ApplicationELB", "ReservedLCUs", "LoadBalancer", "Sum"),
)
"""(Health field, namespace, metric, dimension, statistic). The load balancer's own codes and
rejected connections exist per LoadBalancer only; target metrics per TargetGroup with its
LoadBalancer, RequestCountPerTarget per TargetGroup alone. Source: Elastic Load Balancing,
CloudWatch metrics for your Application Load Balancer; Amazon EC2, instance metrics
(AutoScalingGroupName needs detailed monitoring for one-minute data, which the launch template
enables)."""


def read_health(room: Room, now: float) -> Health | None:
    """The latest minute the target group's RequestCount has a datapoint for, with the other
    figures of the same minute (a count with no datapoint is 0: the load balancer publishes
    none for a minute without any), in one GetMetricData call over the last HEALTH_LOOKBACK_S
    (a latest minute older than 5 minutes is no health: None)."""
    cfg = room.config
    dimensions = {
        "TargetGroup": [
            {"Name": "TargetGroup", "Value": cfg.target_group},
            {"Name": "LoadBalancer", "Value": cfg.load_balancer},
        ],
        "TargetGroupOnly": [{"Name": "TargetGroup", "Value": cfg.target_group}],
        "LoadBalancer": [{"Name": "LoadBalancer", "Value": cfg.load_balancer}],
        "AutoScalingGroupName": [{"Name": "AutoScalingGroupName", "Value": cfg.asg_name}],
    }
    end = int(now) // 60 * 60
    start = end - HEALTH_LOOKBACK_S
    answer = room.cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": key,
                "MetricStat": {
                    "Metric": {
                        "Namespace": ns,
                        "MetricName": metric,
                        "Dimensions": dimensions[dim],
                    },
                    "Period": 60,
                    "Stat": stat,
                },
            }
            for key, ns, metric, dim, stat in HEALTH_QUERIES
        ],
        StartTime=datetime.fromtimestamp(start, UTC),
        EndTime=datetime.fromtimestamp(end, UTC),
    )
    series = {
        r["Id"]: {
            t.timestamp(): float(v) for t, v in zip(r["Timestamps"], r["Values"], strict=True)
        }
        for r in answer["MetricDataResults"]
    }
    if not series.get("requests"):
        return None
    at = max(series["requests"])
    if at < end - 300:
        return None
    figures = {key: series.get(key, {}).get(at) for key, *_ in HEALTH_QUERIES}
    counts = ("target_5xx", "elb_5xx", "rejected")
    return Health(
        at=at,
        requests=figures["requests"] or 0.0,
        **{key: figures[key] or 0.0 for key in counts},
        per_target=figures["per_target"],
        response_p95_s=figures["response_p95_s"],
        cpu_pct=figures["cpu_pct"],
        peak_lcus=figures["peak_lcus"],
        earlier=tuple(
            (m, peak, series["requests"][m])
            for m, peak in sorted(series.get("peak_lcus", {}).items())
            if m < at and m in series["requests"]
        ),
        reserved_lcus=(figures["reserved_lcus"] or 0.0) * 60,
    )


def step(room: Room, now: float) -> dict[str, Any]:
    """One inlet step; returns what it did (also logged and sent to CloudWatch)."""
    cfg = room.config
    r = room.state()
    before = r["state"]
    _seal(room, r, now)
    fleet = regulate(cfg, r, read_fleet(room, now))
    sessions = _sessions(room, r, now, fleet.load_at)
    budget = admit_budget(cfg, fleet, sessions) if r["state"] == "queue" else 0
    exhausted = _allowance_used(room, r)
    # Even with no budget, holes and leavers at the head of the line are passed.
    moved = _advance(room, r, budget, now) if r["state"] == "queue" else Walk(0, 0, [], None)
    waiting = int(r["total_places"]) - int(r["cursor_place"])
    forced = _forced_by_calendar(room, now)
    rate = admission_rate([*r["history"], [now, moved.admitted]], now)
    r["state"], r["calm_since"] = next_state(cfg, r, fleet, waiting, forced, now, rate, exhausted)
    r["paused"] = fleet.alarm  # the waiting page says so instead of a wait that is not moving
    _offer(room, r, fleet, sessions, now)
    if r["state"] == "queue" and before != "queue":
        enter_queue(r, now)
    elif r["state"] == "queue" and not r.get("queue_since"):
        r["queue_since"] = int(now)  # queueing since before queue_since existed: from now on
    keep = max(cfg.session_s, cfg.show_s, RATE_WINDOW_S)
    r["history"] = [h for h in r["history"] if now - float(h[0]) <= keep]
    if moved.admitted:
        r["history"].append([int(now), moved.admitted])
    room.save(r)
    if r["state"] != before:
        sync_kvs(room, now)
    report = {
        "state": r["state"],
        "demand_pct": round(demand_pct(cfg, fleet, waiting, sessions.inside), 2),
        "in_service": fleet.in_service,
        "load": round(fleet.load, 3),
        "alarm": fleet.alarm,
        "breach": breach(cfg, fleet),
        "ceiling": round(fleet.ceiling, 3),
        "budget": budget,
        "allowance": r["allowance"],
        "admitted": moved.admitted,
        "skipped": len(moved.skipped),
        "cursor_place": r["cursor_place"],
        "waiting": waiting,
    }
    _publish(room, report, now)
    return report


def run(
    room: Room,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    steps: int | None = None,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """One scheduled invocation: reconcile the KeyValueStore, then up to 60 / step_s steps.

    No step starts after `deadline` (epoch s; the handler sets it from the Lambda timeout): a
    run that overlaps the next minute's would be throttled (reserved concurrency 1).
    """
    room.drop_expired_revocations(clock())
    sync_kvs(room, clock())
    count = steps if steps is not None else max(1, 60 // room.config.step_s)
    reports = []
    for i in range(count):
        reports.append(step(room, clock()))
        if i == count - 1:
            break
        if deadline is not None and clock() + room.config.step_s > deadline:
            break
        sleep(room.config.step_s)
    return reports


def sync_kvs(room: Room, now: float, keys: dict[str, Any] | None = None) -> dict[str, int]:
    """Make the KeyValueStore say what the room says: state, live keys, live revocations.
    `keys`: the secret as its writer just put it (admin.rotate); otherwise it is read fresh,
    never from a cache older than the last rotation."""
    if room.kvs is None:
        return {"puts": 0, "deletes": 0}
    r = room.state()
    if keys is None:
        keys = room.signing_keys(now, fresh=True)  # a cached copy could put back a dropped key
    wanted = {
        "room": json.dumps(
            {
                "state": r["state"],
                "room": room.config.room_id,
                "kid": keys["current"],  # the gate stamps sessions with the current key
                "session_s": room.config.session_s,
                "session_max_s": room.config.session_max_s,
                # Sessions issued after queueing began never pass (functions/edge/gate.js).
                "queue_since": int(r.get("queue_since") or 0) if r["state"] == "queue" else 0,
                "carry_s": room.config.carry_s,
                # Open and metering: a newcomer's page load goes through the join (gate.js).
                "meter": metering(room.config, r),
                "token_ttl_s": room.config.token_ttl_s,  # no token lives longer
            }
        )
    }
    for kid, entry in keys["keys"].items():
        if entry.get("retire_at") is None or float(entry["retire_at"]) > now:
            wanted[f"key.{kid}"] = entry["key"]
    for visitor, until in room.revocations(now).items():
        wanted[f"revoked.{visitor}"] = str(until)
    have = {k: v for k, v in room.kvs.items().items() if k.startswith(KVS_PREFIXES)}
    puts = {k: v for k, v in wanted.items() if have.get(k) != v}
    deletes = sorted(k for k in have if k not in wanted)
    if puts or deletes:
        room.kvs.apply(puts, deletes)
    return {"puts": len(puts), "deletes": len(deletes)}


def _seal(room: Room, r: dict[str, Any], now: float) -> None:
    """Write tallies for finished seconds, so places become dense numbers."""
    last = int(now) - SEAL_GRACE_S
    start = int(r["sealed_through"]) + 1
    if r["state"] != "queue" or start == 1:
        # No joins happen while open: fast-forward without reading.
        r["sealed_through"] = max(int(r["sealed_through"]), last)
        return
    end = min(last, start + SEAL_MAX_SECONDS - 1)
    if end < start:
        return
    seconds = list(range(start, end + 1))
    keys = [f"count#{s}#{shard}" for s in seconds for shard in range(SHARDS)]
    counts = room._batch_get(keys, consistent=True)
    before = int(r["total_places"])
    with room.table.batch_writer() as batch:
        for s in seconds:
            shards = [int(counts.get(f"count#{s}#{i}", {}).get("n", 0)) for i in range(SHARDS)]
            if not any(shards):
                continue  # nobody joined: no tally (status reads a sealed second without one)
            batch.put_item(
                Item={
                    "pk": f"tally#{s}",
                    "before": before,
                    "shards": shards,
                    "expires_at": s + 2 * 86_400,
                }
            )
            before += sum(shards)
    r["total_places"], r["sealed_through"] = before, end


def _advance(room: Room, r: dict[str, Any], budget: int, now: float) -> Walk:
    """Move the cursor over up to `budget` admissions (plus the holes and leavers between)."""
    cfg = room.config
    # Room for a quarter of the budget (and 25 more) to be leavers or holes; if more are, the
    # next step carries on from where this one stopped.
    orders = _orders_after(room, r, limit=budget + budget // 4 + 25)
    items = room._batch_get([f"place#{o}" for o in orders])
    moved = walk([(o, items.get(f"place#{o}")) for o in orders], budget, now, cfg.abandon_after_s)
    for order in moved.skipped:
        room.table.update_item(
            Key={"pk": f"place#{order}"},
            UpdateExpression="SET skipped = :t",
            ExpressionAttributeValues={":t": True},
        )
    if moved.last_order is not None:
        r["cursor_place"] = int(r["cursor_place"]) + moved.passed
        r["cursor_order"] = moved.last_order
    return moved


def _orders_after(room: Room, r: dict[str, Any], limit: int) -> list[int]:
    """The orders of the next `limit` places after the cursor, from the sealed tallies."""
    cursor = int(r["cursor_order"])
    sealed = int(r["sealed_through"])
    if int(r["cursor_place"]) >= int(r["total_places"]):
        return []
    orders: list[int] = []
    second = (cursor + 1) // SEQ_SPAN // SHARDS
    while second <= sealed and len(orders) < limit:
        chunk = list(range(second, min(sealed, second + 99) + 1))
        tallies = room._batch_get([f"tally#{s}" for s in chunk], consistent=True)
        for s in chunk:
            tally = tallies.get(f"tally#{s}")
            if tally is None:
                continue
            for shard, n in enumerate(tally["shards"]):
                base = (s * SHARDS + shard) * SEQ_SPAN
                for seq in range(int(n)):
                    if base + seq > cursor:
                        orders.append(base + seq)
            if len(orders) >= limit:
                break
        second = chunk[-1] + 1
    return orders[:limit]


def session_minutes(config: Config, now: float) -> range:
    """The minutes (epoch s // 60) whose tokens may still be inside: SESSION_SPAN visits back,
    after which exp(-SESSION_SPAN) = 5 % of a minute's holders are (a window of one visit would
    read a steady flow's people inside at 1 - exp(-1) = 63 %)."""
    minute = int(now) // 60
    return range(minute - SESSION_SPAN * config.session_s // 60, minute + 1)


def count_sessions(
    config: Config,
    collected: Mapping[int, float],
    now: float,
    load_at: float | None,
    admitted_in_show: float,
) -> Sessions:
    """Sessions from the tokens collected per minute (`collected`: minute -> tokens, over
    `session_minutes`) and the places admitted in the last `show_s`: those staying, each
    minute's by exp(-age / session_s) from its middle (where its tokens were collected, on
    average); those of the last `show_s`; those since the load's minute began (with no load
    datapoint: within LOAD_LOOKBACK_S, the window read_fleet reads it from). The inlet and the
    rehearsal both count with this."""
    minutes = session_minutes(config, now)

    def since(first: int) -> float:
        return sum(n for m, n in collected.items() if first <= m <= minutes[-1])

    staying = sum(
        n * math.exp(-max(now - m * 60 - 30, 0.0) / config.session_s)
        for m, n in collected.items()
        if m in minutes
    )
    show_from = (int(now) - config.show_s) // 60
    load_from = int(load_at if load_at is not None else now - LOAD_LOOKBACK_S) // 60
    return Sessions(
        round(staying), round(admitted_in_show), round(since(show_from)), round(since(load_from))
    )


def _sessions(room: Room, r: dict[str, Any], now: float, load_at: float | None) -> Sessions:
    """`count_sessions` over the room's per-minute collection counters and admission history."""
    cfg = room.config
    minutes = session_minutes(cfg, now)
    counts = room._batch_get([f"collected#{m}#{s}" for m in minutes for s in range(COLLECT_SHARDS)])
    collected = {
        m: sum(int(counts.get(f"collected#{m}#{s}", {}).get("n", 0)) for s in range(COLLECT_SHARDS))
        for m in minutes
    }
    admitted_in_show = sum(int(n) for at, n in r["history"] if now - float(at) <= cfg.show_s)
    return count_sessions(cfg, collected, now, load_at, admitted_in_show)


def metering(config: Config, r: dict[str, Any]) -> bool:
    """The room meters arrivals now: open, not pinned, and metering configured."""
    return r["state"] == "open" and not r.get("pinned") and config.meter == 1


def _allowance_used(room: Room, r: dict[str, Any]) -> bool:
    """An open room metering arrivals: newcomers used up the allowance the last step offered."""
    since, offered = int(r.get("allowance_from") or 0), int(r.get("allowance") or 0)
    return metering(room.config, r) and since > 0 and room.metered(since) >= offered


def _offer(room: Room, r: dict[str, Any], fleet: Fleet, sessions: Sessions, now: float) -> None:
    """The allowance for this step, for the state the room is now in (a room that just opened
    offers at once): the free capacity, with no rate cap (which paces the line, not people who
    would have walked in), written into the room item for the join; none unless metering."""
    if metering(room.config, r):
        r["allowance"], r["allowance_from"] = free_capacity(room.config, fleet, sessions), int(now)
    else:
        r["allowance"], r["allowance_from"] = 0, 0


def _forced_by_calendar(room: Room, now: float) -> bool:
    """True during an event the calendar marks `queue` (written by scripts/prescale.py)."""
    item = room.table.get_item(Key={"pk": "calendar"}).get("Item") or {}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return any(
        e.get("mode") == "queue" and e["starts_at"] <= stamp < e["ends_at"]
        for e in (item.get("events") or {}).values()
    )


def _publish(room: Room, report: dict[str, Any], now: float) -> None:
    dims = [{"Name": "Room", "Value": room.config.room_id}]
    room.cloudwatch.put_metric_data(
        Namespace=room.config.metric_namespace,
        MetricData=[
            {"MetricName": name, "Dimensions": dims, "Value": float(report[key]),
             "Unit": "Count", "Timestamp": now}
            for name, key in (("Waiting", "waiting"), ("Admitted", "admitted"),
                              ("Skipped", "skipped"), ("Budget", "budget"))
        ] + [
            {"MetricName": room.config.demand_metric, "Dimensions": dims,
             "Value": report["demand_pct"], "Unit": "Percent", "Timestamp": now,
             "StorageResolution": 1 if room.config.demand_period_s < 60 else 60},
            {"MetricName": "Ceiling", "Dimensions": dims,
             "Value": 100 * report["ceiling"], "Unit": "Percent", "Timestamp": now},
        ],
    )  # fmt: skip

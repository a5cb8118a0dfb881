"""Capacity planner: an event's expected peak becomes capacity on every layer, in time.

For each occurrence: peak users -> origin requests/s -> instances at the scaling target ->
headroom so the peak holds with one zone lost -> ASG min/desired/max for the window, warm pool,
ALB capacity units (LCUs), waiting-room mode, and when to raise and restore.
Everything is capped by the stack's settings and AWS quotas, and a cap is reported, not hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from planning.calendar import Calendar, Occurrence, RoomMode
from planning.capacity import instances_for, origin_requests_per_s
from planning.settings import FleetSettings, Settings

OWNED_PREFIX = "floodgate-"
"""Scheduled actions whose names start with this are Floodgate's; it never touches others."""
SCHEDULED_ACTIONS_PER_ASG = 125
"""AWS quota; each planned event uses two (raise and restore)."""

# ALB LCU dimensions, per LCU (EC2 targets).
LCU_NEW_CONNECTIONS_PER_S = 25
LCU_ACTIVE_CONNECTIONS = 3000
LCU_BYTES_PER_S = 1e9 / 3600  # 1 GB per hour
LCU_RULE_EVALUATIONS_PER_S = 1000
FREE_RULES_PER_REQUEST = 10


class PlanError(ValueError):
    """The calendar cannot be planned within AWS quotas."""


@dataclass(frozen=True)
class EventPlan:
    """Planned capacity for one occurrence. Times are aware UTC datetimes."""

    occurrence: Occurrence
    peak_users: int
    origin_requests_per_s: float
    instances_for_peak: int
    """Instances that serve the peak at the scaling target, all zones up."""
    desired: int
    """Instances in service for the window: the peak with one zone lost, capped by max."""
    max_size: int
    warm_pool: int
    capacity_units: int
    """ALB LCU reservation for the window (0 when the peak needs less than one LCU)."""
    lead: timedelta
    raise_at: datetime
    restore_at: datetime
    reserve_alb_at: datetime
    waiting_room: RoomMode
    capped: bool
    """True when settings' max_size cannot hold the peak with a zone lost: expect the room."""
    slip: timedelta
    """How late AWS may run a scheduled action (settings.prescale.schedule_slip_s)."""

    @property
    def key(self) -> str:
        return self.occurrence.key

    @property
    def raise_action(self) -> str:
        """Scheduled action name; the OWNED_PREFIX marks actions Floodgate may change."""
        return f"{OWNED_PREFIX}{self.key}-raise"

    @property
    def restore_action(self) -> str:
        return f"{OWNED_PREFIX}{self.key}-restore"

    def active(self, moment: datetime) -> bool:
        """Inside the window where capacity must not be lowered: raise_at..restore_at."""
        return self.raise_at <= moment < self.restore_at

    def holding(self, moment: datetime) -> bool:
        """Capacity raised for this event must not be lowered: from the raise until AWS has run
        the restore (which may be `slip` late), the lead, the event and the cooldown."""
        return self.raise_at <= moment and not self.over(moment)

    def over(self, moment: datetime) -> bool:
        """AWS has run the restore (its time and the slip have passed): nothing left to do.
        Until then the plan stays, or its pending restore would be deleted as unplanned."""
        return moment >= self.restore_at + self.slip


def lead_time(
    settings: Settings, override_s: int | None = None, *, from_warm_pool: bool = False
) -> timedelta:
    """Seconds before start that capacity must be asked for: launch + warmup + slip + margin.

    Launch is the warm-pool time only when the whole raise comes out of the pool; one cold
    instance in the raise makes the raise as slow as a cold launch.
    """
    if override_s is not None:
        return timedelta(seconds=override_s)
    p, fleet = settings.prescale, settings.fleet
    launch = p.warm_launch_s if from_warm_pool else p.cold_launch_s
    return timedelta(seconds=launch + fleet.default_warmup_s + p.schedule_slip_s + p.margin_s)


def with_zone_headroom(instances: int, zones: int) -> int:
    """Instances so that `instances` remain after losing one of `zones` equal zones."""
    return math.ceil(instances * zones / (zones - 1))


def capacity_units(users: int, requests_per_s: float, settings: Settings) -> int:
    """ALB LCUs for the peak: the largest of the four LCU dimensions, rounded up."""
    p = settings.prescale
    billable_rules = max(0, p.rules_per_request - FREE_RULES_PER_REQUEST)
    dimensions = (
        requests_per_s * p.new_connections_per_request / LCU_NEW_CONNECTIONS_PER_S,
        users * p.active_connections_per_user / LCU_ACTIVE_CONNECTIONS,
        requests_per_s * p.bytes_per_request / LCU_BYTES_PER_S,
        requests_per_s * billable_rules / LCU_RULE_EVALUATIONS_PER_S,
    )
    return math.ceil(max(dimensions))


def plan_event(occurrence: Occurrence, settings: Settings) -> EventPlan:
    """Capacity for one occurrence on every layer."""
    spec, fleet, cap = occurrence.spec, settings.fleet, settings.capacity
    peak = spec.peak_users or math.ceil(cap.baseline_users * (spec.peak_multiple or 1))
    rate = origin_requests_per_s(peak, cap.requests_per_user_per_s, cap.cdn_offload_pct)
    for_peak = instances_for(rate, fleet.requests_per_instance_per_s)
    wanted = max(fleet.min_size, with_zone_headroom(for_peak, len(settings.network.zones)))
    desired = min(wanted, fleet.max_size)
    # The pool never holds more than can enter service: desired + pool <= max_size.
    pool_wanted = math.ceil(desired * settings.prescale.warm_pool_share_pct / 100)
    pool_floor = fleet.warm_pool.min_size if fleet.warm_pool else 0
    warm_pool = (
        min(max(pool_wanted, pool_floor), fleet.max_size - desired) if fleet.warm_pool else 0
    )
    lead = lead_time(
        settings, spec.lead_time_s, from_warm_pool=desired - fleet.min_size <= warm_pool
    )
    return EventPlan(
        occurrence=occurrence,
        peak_users=peak,
        origin_requests_per_s=rate,
        instances_for_peak=for_peak,
        desired=desired,
        max_size=fleet.max_size,
        warm_pool=warm_pool,
        capacity_units=max(
            capacity_units(peak, rate, settings), settings.load_balancer.minimum_capacity_units
        ),
        lead=lead,
        raise_at=occurrence.start - lead,
        restore_at=occurrence.end + timedelta(seconds=settings.prescale.cooldown_s),
        reserve_alb_at=occurrence.start
        - timedelta(seconds=settings.prescale.alb_reservation_lead_s),
        waiting_room=spec.waiting_room,
        capped=wanted > fleet.max_size,
        slip=timedelta(seconds=settings.prescale.schedule_slip_s),
    )


def plan_events(
    calendar: Calendar, settings: Settings, stack: str, now: datetime
) -> list[EventPlan]:
    """Plans for every occurrence that is not over (its restore run, see EventPlan.over) and
    starts within the horizon. An occurrence that ended within the cooldown is still planned:
    its window runs to the restore, and the job runs inside that hour."""
    p = settings.prescale
    horizon_end = now + timedelta(days=p.horizon_days)
    since = now - timedelta(seconds=p.cooldown_s + p.schedule_slip_s)
    plans = [
        plan_event(o, settings)
        for o in calendar.occurrences(stack, since, horizon_end)
        if o.start < horizon_end
    ]
    plans = [plan for plan in plans if not plan.over(now)]
    if 2 * len(plans) > SCHEDULED_ACTIONS_PER_ASG:
        raise PlanError(
            f"{len(plans)} events in the next {settings.prescale.horizon_days} days need "
            f"{2 * len(plans)} scheduled actions; AWS allows {SCHEDULED_ACTIONS_PER_ASG} per "
            "group: shorten prescale.horizon_days"
        )
    return plans


@dataclass(frozen=True)
class ScheduledAction:
    """One scheduled update of the web group, as Pulumi declares it and the job checks it."""

    name: str
    start: datetime
    time_zone: str
    min_size: int
    max_size: int
    desired: int | None
    """None leaves desired capacity alone (the restore hands it back to target tracking)."""


def scheduled_actions(
    plans: list[EventPlan], fleet: FleetSettings, now: datetime
) -> list[ScheduledAction]:
    """Raise (start - lead) and restore (end + cooldown) per plan, leaving out any whose time
    has passed: AWS rejects past start times (pulumi-aws issue 2473) and a one-off action that
    ran is gone from AWS anyway.

    Neither sets desired capacity, so neither can lower it: a raise sets MinSize (and MaxSize),
    and AWS brings desired up to a new MinSize above it ("If you specify a new value for MinSize
    without specifying a value for DesiredCapacity, and the new MinSize is larger than the
    current size of the group, this sets the group's DesiredCapacity to the new MinSize value",
    UpdateAutoScalingGroup, which scheduled actions apply); a group already busier keeps its
    size. A restore hands min back and leaves desired to target tracking."""
    actions = []
    for plan in plans:
        zone = plan.occurrence.time_zone
        if plan.raise_at > now:
            actions.append(ScheduledAction(plan.raise_action, plan.raise_at, zone,
                                           plan.desired, plan.max_size, None))  # fmt: skip
        if plan.restore_at > now:
            actions.append(ScheduledAction(plan.restore_action, plan.restore_at, zone,
                                           fleet.min_size, fleet.max_size, None))  # fmt: skip
    return actions

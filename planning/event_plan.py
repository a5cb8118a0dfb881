"""Capacity planner: an event's expected peak becomes capacity on every layer, in time.

For each occurrence: peak users -> origin requests/s -> instances at the scaling target ->
headroom so the peak holds with one zone lost. Capacity follows the event's shape
(planning/shapes.py) in stages: each stage's MinSize steps up its own lead ahead and down as the
crowd falls (one scheduled action per change), the LCU reservation, where the forecast rises
faster than the ALB scales on its own, steps hours ahead and comes down at most twice, then the
warm pool and the waiting-room mode, and when to restore.
Everything is capped by the stack's settings and AWS quotas, and a cap is reported, not hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from functions.prescale.night_plan import (
    MAX_DOCUMENT_BYTES,
    OWNED_PREFIX,
    Action,
    EventLevers,
    Need,
    NightPlan,
    Step,
)
from planning.calendar import Calendar, Occurrence, RoomMode
from planning.capacity import instances_for, origin_requests_per_s
from planning.settings import Settings
from planning.shapes import SHAPES

__all__ = ["OWNED_PREFIX", "Action", "EventPlan", "Step"]
SCHEDULED_ACTIONS_PER_ASG = 125
"""AWS quota; each planned event uses one per MinSize step (its stages and the restore)."""

# ALB LCU dimensions, per LCU (EC2 targets).
LCU_NEW_CONNECTIONS_PER_S = 25
LCU_ACTIVE_CONNECTIONS = 3000
LCU_BYTES_PER_S = 1e9 / 3600  # 1 GB per hour
LCU_RULE_EVALUATIONS_PER_S = 1000
FREE_RULES_PER_REQUEST = 10


class PlanError(ValueError):
    """The calendar cannot be planned within AWS quotas."""


@dataclass(frozen=True)
class Stage:
    """A stretch of the event (`stage_minutes` long) held at the shape's highest point in it."""

    start: datetime
    end: datetime
    users: int
    min_size: int
    """Instances that carry the stage's users with one zone lost, within the fleet's min/max."""
    capacity_units: int
    """LCUs to reserve in the stage: the most the ALB must hold in it that its own scaling
    could not have reached (`alb_reserve`), never below the standing level."""
    lead: timedelta
    """How long before `start` its MinSize must be asked for (a raise; 0 for a step down)."""
    lcus_from: datetime | None = None
    """The first stage only: when its reservation must already hold, if before `start` (the
    ALB must be large before a jump, not at it)."""
    lcus_until: datetime | None = None
    """When its reservation may end, if before `end`: ALB_PACE_WINDOW after the last minute
    the ALB could not have reached alone; by then the load itself has grown it."""


@dataclass(frozen=True)
class EventPlan:
    """Planned capacity for one occurrence. Times are aware UTC datetimes."""

    occurrence: Occurrence
    peak_users: int
    origin_requests_per_s: float
    """At the peak."""
    instances_for_peak: int
    """Instances that serve the peak at the scaling target, all zones up."""
    max_size: int
    warm_pool: int
    prepared: int
    """MaxGroupPreparedCapacity that keeps `warm_pool` in the pool (settings.fleet)."""
    stages: tuple[Stage, ...]
    min_steps: tuple[Step, ...]
    """MinSize changes from the first raise until back to the fleet's own min (the restore, at
    end + cooldown at the latest): one scheduled action each."""
    lcu_steps: tuple[Step, ...]
    """Reservation changes: raised `alb_reservation_lead_s` + one runner interval before each
    stage that needs more, lowered at most twice, the last time to the standing level."""
    raise_at: datetime
    """The window opens: the first step, or start - lead if that is earlier."""
    restore_at: datetime
    waiting_room: RoomMode
    capped: bool
    """True when settings' max_size cannot hold the peak with a zone lost: expect the room."""
    slip: timedelta
    """How late AWS may run a scheduled action (settings.prescale.schedule_slip_s)."""
    baseline_rpm: int = 0
    """Origin requests a minute at the stack's baseline: what the load balancer counts."""
    forecast: tuple[Step, ...] = ()
    """Origin requests a minute along the forecast, every FORECAST_SAMPLE_MIN from the raise to
    the restore: the runner follows a night that runs below it (functions/prescale/follow.py)."""
    standing_lcus: int = 0
    """The load balancer's standing reservation (`minimum_capacity_units`)."""

    @property
    def key(self) -> str:
        return self.occurrence.key

    @property
    def desired(self) -> int:
        """MinSize at the peak's stage: the peak with one zone lost, capped by max."""
        return max(s.min_size for s in self.stages)

    @property
    def lead(self) -> timedelta:
        """The first stage's lead: capacity raised this long before the start."""
        return self.stages[0].lead

    @property
    def capacity_units(self) -> int:
        """The reservation at the peak (the standing level when the event needs no more)."""
        return max((s.value for s in self.lcu_steps), default=self.stages[0].capacity_units)

    @property
    def reserve_alb_at(self) -> datetime | None:
        """When the reservation is first raised; None when the standing level suffices."""
        return self.lcu_steps[0].at if self.lcu_steps else None

    @cached_property
    def levers(self) -> EventLevers:
        """The plan as the pre-scale engine acts on it (functions/prescale/night_plan.py): the
        window, the level at any moment and the actions are computed there, once."""
        return EventLevers(
            key=self.key,
            time_zone=self.occurrence.time_zone,
            start=self.occurrence.start,
            raise_at=self.raise_at,
            restore_at=self.restore_at,
            slip=self.slip,
            max_size=self.max_size,
            min_steps=self.min_steps,
            lcu_steps=self.lcu_steps,
            needs=tuple(need for s in self.stages for need in _needs(s, self.standing_lcus)),
            warm_pool=self.warm_pool,
            prepared=self.prepared,
            room=self.waiting_room,
            baseline_rpm=self.baseline_rpm,
            forecast=self.forecast,
        )

    def min_size_at(self, moment: datetime) -> int | None:
        """The planned MinSize at `moment`; None outside the raise..restore steps."""
        return self.levers.min_size_at(moment)

    def reservation_at(self, moment: datetime) -> int | None:
        """The planned LCU reservation at `moment`; None when the plan asks for nothing."""
        return self.levers.reservation_at(moment)

    def active(self, moment: datetime) -> bool:
        """Inside the window where capacity must not be lowered: raise_at..restore_at."""
        return self.levers.active(moment)

    def holding(self, moment: datetime) -> bool:
        """From the raise until AWS has run the restore (EventLevers.holding)."""
        return self.levers.holding(moment)

    def over(self, moment: datetime) -> bool:
        """AWS has run the restore (its time and the slip have passed): nothing left to do."""
        return self.levers.over(moment)


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


def lcu_used(users: float, requests_per_s: float, settings: Settings) -> float:
    """ALB LCUs the traffic uses: the largest of the four LCU dimensions (not rounded)."""
    p = settings.prescale
    billable_rules = max(0, p.rules_per_request - FREE_RULES_PER_REQUEST)
    return max(
        requests_per_s * p.new_connections_per_request / LCU_NEW_CONNECTIONS_PER_S,
        users * p.active_connections_per_user / LCU_ACTIVE_CONNECTIONS,
        requests_per_s * p.bytes_per_request / LCU_BYTES_PER_S,
        requests_per_s * billable_rules / LCU_RULE_EVALUATIONS_PER_S,
    )


def capacity_units(
    users: int, requests_per_s: float, settings: Settings, margin_pct: float = 0
) -> int:
    """ALB LCUs for `users`: the largest of the four LCU dimensions plus `margin_pct`, rounded
    up."""
    return math.ceil(lcu_used(users, requests_per_s, settings) * (1 + margin_pct / 100) - 1e-9)


ALB_PACE_WINDOW = timedelta(minutes=5)
"""The window of the ALB's pace: AWS's guidance is to grow a load by at most 50 % every five
minutes (`load_balancer.scaling_pct_per_5_min`)."""


def alb_growth(settings: Settings, seconds: float, pace: float = 1.0) -> float:
    """The factor by which the ALB grows on its own in `seconds` when its load asks it to
    (`load_balancer.scaling_pct_per_5_min` x `pace`, compounded)."""
    pct = settings.load_balancer.scaling_pct_per_5_min * pace
    return (1 + pct / 100) ** (max(seconds, 0.0) / ALB_PACE_WINDOW.total_seconds())


def alb_reserve(
    occurrence: Occurrence, peak: int, restore_at: datetime, settings: Settings
) -> dict[datetime, float]:
    """LCUs to reserve, minute by minute, where the forecast rises faster than the ALB scales.

    U(t) is what the forecast uses (plus `lcu_margin_pct`), F(t) = max(U(t), S) what the ALB
    holds anyway (S the standing `minimum_capacity_units`, from which it scales too). Walking
    back from the restore, the ALB must hold A(t) = max(F(t), A(t+1) / g) to grow (g a minute)
    into what comes; where A(t) > F(t) neither the traffic nor the standing level has grown it
    there, so the reservation holds the larger of A(t) and A(t+1) (a jump comes at a minute's
    first second, not its last). Minutes the ALB keeps up with are absent: a slow rise, or a
    jump the standing level grows into in time, reserves nothing; and so are those before the
    minute ahead of the first the ALB alone cannot reach, since each stage reserves flat at
    its most (`Stage.capacity_units`), which covers the walk's lower minutes after it."""
    shape, c = SHAPES[occurrence.spec.shape], settings.capacity
    duration = (occurrence.end - occurrence.start).total_seconds()
    margin = 1 + settings.prescale.lcu_margin_pct / 100
    standing = float(settings.load_balancer.minimum_capacity_units)
    g = alb_growth(settings, 60)

    def held_anyway(moment: datetime) -> float:
        level = shape.level((moment - occurrence.start).total_seconds() / duration)
        users = c.baseline_users + (peak - c.baseline_users) * level
        used = lcu_used(users, origin_requests_per_s(users, settings), settings) * margin
        return max(used, standing)

    minute = timedelta(minutes=1)
    moment, ahead = restore_at, held_anyway(restore_at)
    reserve: dict[datetime, float] = {}
    while moment > occurrence.start or ahead / g > held_anyway(moment - minute) + 1e-9:
        moment -= minute
        floor = held_anyway(moment)
        hold = max(floor, ahead / g)
        if hold > floor + 1e-9:
            reserve[moment] = max(hold, ahead)
        ahead = hold
    # A stage's reservation is flat at the most it has, so it need not hold before the minute
    # ahead of the first one the ALB alone cannot reach: it carried every load before that.
    outruns = (m for m in sorted(reserve) if held_anyway(m + minute) > g * held_anyway(m))
    outrun = next(outruns, None)
    return {m: v for m, v in reserve.items() if outrun is not None and m >= outrun}


def plan_event(occurrence: Occurrence, settings: Settings) -> EventPlan:
    """Capacity for one occurrence on every layer, in stages along its shape."""
    spec, fleet, cap = occurrence.spec, settings.fleet, settings.capacity
    peak = spec.peak_users or math.ceil(cap.baseline_users * (spec.peak_multiple or 1))
    rate = origin_requests_per_s(peak, settings)
    restore_at = occurrence.end + timedelta(seconds=settings.prescale.cooldown_s)
    peak_min = min(_min_size(peak, settings), fleet.max_size)
    # The pool never holds more than can enter service: desired + pool <= max_size.
    pool_wanted = math.ceil(peak_min * settings.prescale.warm_pool_share_pct / 100)
    pool_floor = fleet.warm_pool.min_size if fleet.warm_pool else 0
    warm_pool = (
        min(max(pool_wanted, pool_floor), fleet.max_size - peak_min) if fleet.warm_pool else 0
    )
    reserve = alb_reserve(occurrence, peak, restore_at, settings)
    stages = _stages(occurrence, peak, restore_at, warm_pool, reserve, settings)
    min_steps = _steps(
        [(s.start - s.lead, s.end, s.min_size) for s in stages], fleet.min_size, restore_at
    )
    lead = stages[0].lead
    raise_at = min([occurrence.start - lead, *(s.at for s in min_steps[:1])])
    return EventPlan(
        occurrence=occurrence,
        peak_users=peak,
        origin_requests_per_s=rate,
        instances_for_peak=instances_for(rate, fleet.requests_per_instance_per_s),
        max_size=fleet.max_size,
        warm_pool=warm_pool,
        prepared=fleet.prepared_capacity(warm_pool),
        stages=stages,
        min_steps=min_steps,
        lcu_steps=_reservation_steps(stages, restore_at, settings),
        raise_at=raise_at,
        restore_at=restore_at,
        waiting_room=spec.waiting_room,
        capped=_min_size(peak, settings) > fleet.max_size,
        slip=timedelta(seconds=settings.prescale.schedule_slip_s),
        baseline_rpm=round(origin_requests_per_s(cap.baseline_users, settings) * 60),
        forecast=_forecast(occurrence, peak, raise_at, restore_at, settings),
        standing_lcus=settings.load_balancer.minimum_capacity_units,
    )


FORECAST_SAMPLE_MIN = 10
"""The night plan carries the forecast every this many minutes (a 12-hour window: 73 samples)."""


def event_curve(plan: EventPlan, settings: Settings, step_s: int, pad: timedelta) -> list[float]:
    """People on the site every `step_s` of the planned night: the event's shape from the
    stack's baseline to its planned peak, `pad` either side (what the rehearsal's `event` night
    plays, and what the inbox's backlog is planned on)."""
    occurrence, baseline = plan.occurrence, settings.capacity.baseline_users
    shape = SHAPES[occurrence.spec.shape]
    duration = (occurrence.end - occurrence.start).total_seconds()
    steps = int((duration + 2 * pad.total_seconds()) // step_s)
    offset = pad.total_seconds()
    return [
        baseline + (plan.peak_users - baseline) * shape.level((i * step_s - offset) / duration)
        for i in range(steps)
    ]


def _forecast(
    occurrence: Occurrence, peak: int, begin: datetime, end: datetime, settings: Settings
) -> tuple[Step, ...]:
    """Origin requests a minute along the event's shape (from baseline to `peak`, as the
    rehearsal's `event` night plays it), every FORECAST_SAMPLE_MIN from `begin` to `end`."""
    shape, base = SHAPES[occurrence.spec.shape], settings.capacity.baseline_users
    duration = (occurrence.end - occurrence.start).total_seconds()
    samples, moment = [], begin
    while moment <= end:
        level = shape.level((moment - occurrence.start).total_seconds() / duration)
        users = base + (peak - base) * level
        samples.append(Step(moment, round(origin_requests_per_s(users, settings) * 60)))
        moment += timedelta(minutes=FORECAST_SAMPLE_MIN)
    return tuple(samples)


def _min_size(users: int, settings: Settings) -> int:
    """Instances for `users` with one zone lost, at least the fleet's min (not capped)."""
    fleet = settings.fleet
    rate = origin_requests_per_s(users, settings)
    needed = instances_for(rate, fleet.requests_per_instance_per_s)
    return max(fleet.min_size, with_zone_headroom(needed, len(settings.network.zones)))


def _stages(
    occurrence: Occurrence,
    peak: int,
    restore_at: datetime,
    warm_pool: int,
    reserve: dict[datetime, float],
    settings: Settings,
) -> tuple[Stage, ...]:
    """The event from its start to its restore in `stage_minutes` stages, each at the highest
    point of the shape (scaled from baseline to the peak, as the rehearsal plays it) within it,
    reserving the most of `reserve` in it (the first stage also what comes before the start)
    until ALB_PACE_WINDOW after its last reserved minute. A raise's lead is the warm one when
    the pool covers the whole step up."""
    shape, c, fleet = SHAPES[occurrence.spec.shape], settings.capacity, settings.fleet
    duration = (occurrence.end - occurrence.start).total_seconds()
    length = timedelta(minutes=settings.prescale.stage_minutes)
    standing = settings.load_balancer.minimum_capacity_units
    before = [m for m in reserve if m < occurrence.start]
    stages: list[Stage] = []
    begin, below = occurrence.start, fleet.min_size
    while begin < restore_at:
        end = min(begin + length, restore_at)
        levels = shape.extremes(
            *((moment - occurrence.start).total_seconds() / duration for moment in (begin, end))
        )
        users = max(
            math.ceil(c.baseline_users + (peak - c.baseline_users) * level) for level in levels
        )
        size = min(_min_size(users, settings), fleet.max_size)
        lead = timedelta(0)
        if size > below or not stages:
            override = occurrence.spec.lead_time_s if not stages else None
            lead = lead_time(settings, override, from_warm_pool=size - below <= warm_pool)
        held = {m: v for m, v in reserve.items() if begin <= m < end or (not stages and m < begin)}
        units = max(standing, math.ceil(max(held.values(), default=0.0) - 1e-9))
        lcus_from = min(before) if before and not stages and units > standing else None
        until = max(held, default=begin) + timedelta(minutes=1) + ALB_PACE_WINDOW
        lcus_until = until if units > standing and until < end else None
        stages.append(Stage(begin, end, users, size, units, lead, lcus_from, lcus_until))
        begin, below = end, size
    return tuple(stages)


def _steps(
    windows: list[tuple[datetime, datetime, int]], rest: int, until: datetime
) -> tuple[Step, ...]:
    """The upper envelope of (from, to, level) windows as steps, from the first level above
    `rest` until it is back to `rest` (at `until` at the latest); () when nothing rises."""
    moments = sorted({moment for begin, end, _ in windows for moment in (begin, end)})
    steps: list[Step] = []
    current = rest
    for moment in moments:
        if moment >= until:
            break
        level = max((v for b, e, v in windows if b <= moment < e), default=rest)
        if level != current:
            steps.append(Step(moment, level))
            current = level
    if current != rest:
        steps.append(Step(until, rest))
    return tuple(steps)


def _reservation_steps(
    stages: tuple[Stage, ...], restore_at: datetime, settings: Settings
) -> tuple[Step, ...]:
    """Reservation steps: each stage's LCUs asked for `alb_reservation_lead_s` plus one runner
    interval ahead (the runner passes every `run_every_minutes`; AWS fulfils most requests in
    minutes, some in "up to a few hours") and held until its `lcus_until`, with at most two
    decreases, the last one back to the standing level by the restore: AWS allows two a day
    ("you can only decrease the reserved capacity two times per day", ELB user guide, request
    LCU reservation). The decreases go where they save the most LCU-hours; the level never
    falls below what a stage asks for."""
    p = settings.prescale
    ahead = timedelta(seconds=p.alb_reservation_lead_s) + runner_interval(settings)
    standing = settings.load_balancer.minimum_capacity_units
    wanted = _steps(
        [
            ((s.lcus_from or s.start) - ahead, s.lcus_until or s.end, s.capacity_units)
            for s in stages
        ],
        standing,
        restore_at,
    )
    if not wanted:
        return ()
    last = len(wanted) - 1
    options = [_held(wanted, {cut, last}) for cut in range(last + 1)]
    return min(options, key=lambda steps: _unit_hours(steps, restore_at))


def _needs(stage: Stage, standing_lcus: int) -> tuple[Need, ...]:
    """What must be in service while `stage` runs: its LCUs until its `lcus_until`, the
    standing level after it."""
    if stage.lcus_until is None:
        return (Need(stage.start, stage.end, stage.min_size, stage.capacity_units),)
    return (
        Need(stage.start, stage.lcus_until, stage.min_size, stage.capacity_units),
        Need(stage.lcus_until, stage.end, stage.min_size, standing_lcus),
    )


def runner_interval(settings: Settings) -> timedelta:
    """How often the runner in AWS passes over every lever (its rate schedule): what must be in
    effect by a moment is asked for one interval earlier."""
    return timedelta(minutes=settings.prescale.run_every_minutes)


def _held(steps: tuple[Step, ...], cuts: set[int]) -> tuple[Step, ...]:
    """`steps` with every decrease held except at the indices in `cuts`: elsewhere the level
    only rises (to the largest asked for since the last cut); at a cut it drops to what is
    asked then."""
    held: list[Step] = []
    for i, step in enumerate(steps):
        level = step.value if not held or i in cuts else max(held[-1].value, step.value)
        if not held or level != held[-1].value:
            held.append(Step(step.at, level))
    return tuple(held)


def _unit_hours(steps: tuple[Step, ...], until: datetime) -> float:
    ends = [s.at for s in steps[1:]] + [until]
    return sum(s.value * (end - s.at).total_seconds() for s, end in zip(steps, ends, strict=True))


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
    needed = sum(len(plan.min_steps) for plan in plans)
    if needed > SCHEDULED_ACTIONS_PER_ASG:
        raise PlanError(
            f"{len(plans)} events in the next {p.horizon_days} days need {needed} scheduled "
            f"actions (one per stage change and restore); AWS allows "
            f"{SCHEDULED_ACTIONS_PER_ASG} per group: shorten prescale.horizon_days or lengthen "
            "prescale.stage_minutes"
        )
    return plans


def plan_actions(plan: EventPlan) -> list[Action]:
    """One action per MinSize step of the plan, the last one the restore; past ones included."""
    return plan.levers.actions()


def scheduled_actions(
    plans: list[EventPlan], now: datetime, ahead: timedelta = timedelta(0)
) -> list[Action]:
    """Every plan's stage and restore actions that start more than `ahead` after `now`: AWS
    rejects past start times (pulumi-aws issue 2473), and a create that lands after the start
    would fail the update that makes it, so `pulumi up` declares only those `create_ahead_s`
    away and leaves nearer ones to the runner.

    None sets desired capacity, so none can lower it: a raise sets MinSize (and MaxSize), and
    AWS brings desired up to a new MinSize above it ("If you specify a new value for MinSize
    without specifying a value for DesiredCapacity, and the new MinSize is larger than the
    current size of the group, this sets the group's DesiredCapacity to the new MinSize value",
    UpdateAutoScalingGroup, which scheduled actions apply); a group already busier keeps its
    size. A step down and the restore hand the floor back and leave desired to target tracking,
    which scales in only after 15 minutes below its target."""
    return [action for plan in plans for action in plan_actions(plan) if action.start > now + ahead]


def night_plan(plans: list[EventPlan], settings: Settings, stack: str) -> NightPlan:
    """The plans as the pre-scale engine acts on them, in the runner and in the CI job. Raises
    PlanError when the document would exceed what the runner's schedule can carry."""
    fleet, pool = settings.fleet, settings.fleet.warm_pool
    plan = NightPlan(
        stack=stack,
        horizon_days=settings.prescale.horizon_days,
        fleet_min=fleet.min_size,
        fleet_max=fleet.max_size,
        standing_lcus=settings.load_balancer.minimum_capacity_units,
        warm_pool=None if pool is None else pool.min_size,
        prepared=None if pool is None else fleet.prepared_capacity(pool.min_size),
        pool_state=None if pool is None else pool.state,
        events=tuple(p.levers for p in plans),
    )
    size = len(plan.to_json().encode())
    if size > MAX_DOCUMENT_BYTES:
        raise PlanError(
            f"the night plan of {len(plans)} events is {size:,} bytes; the runner's schedule "
            f"carries at most {MAX_DOCUMENT_BYTES:,}: shorten prescale.horizon_days or "
            "lengthen prescale.stage_minutes"
        )
    return plan

"""Play a night through the stack under each capacity policy and measure what people got.

Policies, side by side on the same crowd:
- configured: the stack as declared: the event's scheduled actions, target tracking, the warm
  pool and the waiting room;
- reactive: the same min/max and target tracking, no schedules, no warm pool, no room and no
  failover page (what most teams run: what fails is a raw 5xx);
- static-peak: the event's planned capacity in service all night;
- floor: capacity that follows demand exactly (the cost yardstick; nothing fails): instances
  at their full rate and the LCUs the traffic uses, nothing reserved.

Every policy pays, each step, the larger of the LCUs reserved and the LCUs used: a reservation
bills its LCUs whether used or not, and use above it bills as LCUs used (ELB pricing). Hours an
event's reservation is held outside the rehearsed night (it is asked for hours ahead) count too.

People arrive so that, with nothing in the way, the site holds the curve's users; each stays
`admission.session_minutes` and sends `requests_per_user_per_s`, of which CloudFront passes
`100 - cdn_offload_pct` % to the origin.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from functions.admission.inlet import HEALTH_LOOKBACK_S, Fleet, Health, demand_pct, regulate
from functions.admission.room import Config, admission_rate, retry_after
from functions.prescale.follow import FROZEN, followed, night_share
from planning import aws_facts
from planning.capacity import (
    DDB_READS_PER_STATUS,
    DDB_WRITES_PER_JOIN,
    JOIN_SERVICE_S,
    QUEUE_FUNCTION_MEMORY_MB,
    STATUS_SERVICE_S,
    demand_period_s,
    instances_for,
    origin_requests_per_s,
    queue_api_capacity,
    room_tunables,
)
from planning.event_plan import (
    Action,
    EventPlan,
    alb_growth,
    lcu_used,
    runner_interval,
    scheduled_actions,
    with_zone_headroom,
)
from planning.inbox import Backlog, backlog
from planning.settings import Settings
from rehearsal import model
from rehearsal.curves import SLOW_ORIGIN_FACTOR, Night
from rehearsal.fleet import Group
from rehearsal.room import RoomSim
from rehearsal.stays import Kind, Stays

POLICIES = ("configured", "reactive", "static-peak", "floor")
TOTALS = ("offered", "raw", "page", "served_user_s", "wanted_user_s", "instance_s",
          "pool_instance_s", "api_over_s", "lcu_s", "joins", "polls", "sessions_cut",
          "carried", "beyond_max_user_s", "metered")  # fmt: skip
MINUTE = ("requests", "failed", "no_target", "refused", "timed_out", "admitted", "work_s",
          "saturated_s", "peak_lcus")  # fmt: skip
WORST_WINDOW_MIN = 15
"""Failed requests are judged on the worst window of this many minutes, not over the night."""
HOURS_PER_MONTH = 730
ALB_WINDOW_S = 300
"""The load balancer's scaling is judged over five minutes (its pace is a rise per 5 minutes)."""


@dataclass
class Series:
    """Per-minute figures for the charts."""

    demand_instances: list[float] = field(default_factory=list)
    """Instances the wanted crowd needs at what an instance serves that night."""
    requests: list[float] = field(default_factory=list)
    """Origin requests offered in the minute."""
    in_service: list[float] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)
    """Origin requests that failed in the minute (high-demand page or raw 5xx)."""
    waiting: list[float] = field(default_factory=list)
    """People in line who have not given up, after the inlet's last step of the minute."""
    admitted: list[float] = field(default_factory=list)
    queueing: list[bool] = field(default_factory=list)


@dataclass
class Result:
    scenario: str
    policy: str
    measures: dict[str, float]
    series: Series
    budgets: list[tuple[int, float]] = field(default_factory=list)
    """(inlet budget, people admitted) for every queueing step."""
    queue_api_limit: str = ""
    """What limited the queue API at its busiest (join function, status function, throttle)."""
    inbox: Backlog | None = None
    """The configured stack's inbox over the night (None: no inbox, or another policy, whose
    writes go to the fleet)."""


REHEARSAL_RESOURCES = {
    variable: "rehearsal"
    for variable in (
        "FG_TABLE",
        "FG_SECRET_ID",
        "FG_KVS_ARN",
        "FG_ASG_NAME",
        "FG_TARGET_GROUP",
        "FG_LOAD_BALANCER",
        "FG_ALARM_NAMES",
        "FG_ORIGIN_SECRET_ID",
    )
}
"""The variables components/admission.py fills with resource names: the rehearsal has none."""


def room_config(settings: Settings) -> Config:
    """The room's Config exactly as the Lambda builds it from its environment."""
    return Config.from_env({**room_tunables(settings), **REHEARSAL_RESOURCES})


def arrivals(
    users: list[float], step_s: int, session_s: int, kind: Kind = "exponential"
) -> tuple[list[float], list[float]]:
    """People arriving per step so that, unhindered, the site holds `users`; and the site's
    occupancy unhindered (the wanted user count). Sessions last `session_s` on average,
    distributed as `kind` (rehearsal.stays; exponential: each step a share
    1 - exp(-step_s / session_s) of the people inside leave, so a crowd's arrivals never come
    back as an echo one session later)."""
    came = [0.0] * len(users)
    wanted = [0.0] * len(users)
    stays = Stays(kind, session_s, step_s, users[0])
    for i, target in enumerate(users):
        if i:
            stays.step()
        came[i] = max(0.0, target - stays.inside)
        stays.enter(came[i])
        wanted[i] = stays.inside
    return came, wanted


def static_size(night: Night, settings: Settings) -> int:
    """The planned peak's instances (the event's plan, or the settings' planned surge)."""
    if night.plan is not None:
        return night.plan.desired
    c, fleet = settings.capacity, settings.fleet
    rate = origin_requests_per_s(c.baseline_users * c.peak_multiple, settings)
    wanted = with_zone_headroom(
        instances_for(rate, fleet.requests_per_instance_per_s), len(settings.network.zones)
    )
    return min(max(wanted, fleet.min_size), fleet.max_size)


def rehearse(night: Night, settings: Settings, policy: str) -> Result:
    """One night under one policy."""
    if policy == "floor":
        return _floor(night, settings)
    return _Run(night, settings, policy).play()


def night_backlog(night: Night, settings: Settings) -> Backlog:
    """The night's submissions (every visit the curve wants, each submitting with the
    settings' chance: the inbox takes them whether or not the fleet could serve the visit)
    against the back office's drain, minute by minute."""
    per_minute = max(1, 60 // night.step_s)
    users = [
        sum(night.users[i : i + per_minute]) / len(night.users[i : i + per_minute])
        for i in range(0, len(night.users), per_minute)
    ]
    return backlog(users, settings)


def rehearse_all(
    nights: list[Night],
    settings: Settings,
    policies: tuple[str, ...] = POLICIES,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Every night under every policy; cost ÷ floor filled in from the floor's cost."""
    results = []
    for night in nights:
        floor = _floor(night, settings)
        for policy in policies:
            if progress:
                progress(f"{night.scenario} / {policy}")
            result = floor if policy == "floor" else rehearse(night, settings, policy)
            if policy == "configured" and settings.inbox.enabled:
                result.inbox = night_backlog(night, settings)
            result.measures["cost_vs_floor"] = result.measures["cost_usd"] / max(
                floor.measures["cost_usd"], 1e-9
            )
            results.append(result)
    return results


class _Run:
    """The configured, reactive or static-peak policy through one night, step by step."""

    def __init__(self, night: Night, settings: Settings, policy: str) -> None:
        self.night, self.settings, self.policy = night, settings, policy
        fleet, plan = settings.fleet, night.plan
        self.dt = night.step_s
        self.session_s = settings.admission.session_minutes * 60
        self.edge_cache = night.edge_cache
        self.rate = fleet.requests_per_instance_per_s
        """What the settings say an instance serves (the inlet's and the plan's figure)."""
        self.serves = self.rate / night.cost
        """What an instance serves on this night (requests a second)."""
        self.slow_start_s = settings.load_balancer.slow_start_s
        self.page_codes = (
            set() if policy == "reactive" else set(settings.edge.failover_status_codes)
        )
        configured = policy == "configured"
        room_on = configured and settings.admission.enabled
        room_on = room_on and (plan is None or plan.waiting_room != "off")
        self.room = (
            RoomSim(
                room_config(settings),
                (night.patience_minutes or settings.rehearsal.patience_minutes) * 60,
            )
            if room_on
            else None
        )
        self.group = self._group(configured)
        self.actions: deque[tuple[float, Action]] = deque()
        if configured and plan is not None:
            before = night.start - timedelta(days=1)
            late = [
                ((a.start - night.start).total_seconds() + model.SCHEDULE_SLIP_S, a)
                for a in scheduled_actions([plan], before)
            ]
            self.actions.extend(sorted(late, key=lambda pair: pair[0]))
        self.reserved, self.lcu_outside_h = reserved_lcus(
            night, settings, plan if configured else None
        )
        self.alb_growth = alb_growth(settings, ALB_WINDOW_S, night.alb_pace)
        base = settings.capacity.baseline_users
        self.alb_floor = lcu_used(base, self.origin(base), settings)
        """The load balancer never holds less than the stack's ordinary evening uses."""
        first = night.users[0]
        steady = max(
            self.reserved[0], self.alb_floor, lcu_used(first, self.origin(first), settings)
        )
        self.alb_held: deque[float] = deque([steady] * (ALB_WINDOW_S // self.dt))
        """LCUs the load balancer held (reserved or carried) at each step of the last
        ALB_WINDOW_S (the night begins steady, at its first step's users)."""
        self.bound_held = deque(self.alb_held)
        """The same for a load balancer pushed by everyone who wants the site (`_bound`)."""
        self.alb = steady
        self.peaks: deque[tuple[float, float, float]] = deque(maxlen=HEALTH_LOOKBACK_S // 60)
        """(minute start, PeakLCUs, RequestCount) of the latest minutes with traffic."""
        """LCUs the load balancer can carry this step."""
        self.follows = configured and plan is not None and bool(plan.forecast)
        """The runner follows a night below its forecast (functions/prescale/follow.py)."""
        self.shares: list[float] = []
        """The share of the plan's surge each runner pass put the raises to come at."""
        self.stays = Stays(night.stays, self.session_s, self.dt, night.users[0])
        """The people inside, and when they leave."""
        self.joining = 0.0
        """People the queue API throttled, retrying their join."""
        self.on_sessions = 0.0
        """People inside on a session since queueing began (none when the room is open)."""
        self.sessions_end_s = (
            settings.admission.session_max_minutes - settings.admission.session_minutes
        ) * 60
        """How long into a queue the first sessions issued before it reach their absolute life
        (issued up to a session before queueing began; the gate renews them past half)."""
        self.queue_began = 0.0
        self.carry_s = settings.admission.carry_minutes * 60
        self.carrying = (0.0, 0.0)
        """(people inside still to pass once through the join, carries per second)."""
        self.api = queue_api_capacity(settings)
        self.api_peak: tuple[float, str] = (0.0, "")
        """The queue API's highest load (share of its capacity) and what limited it then."""
        self.totals = dict.fromkeys(TOTALS, 0.0)
        self.minute = dict.fromkeys(MINUTE, 0.0)
        self.breaches: deque[bool] = deque(maxlen=settings.alarms.evaluation_periods)
        self.alarm = False
        self.health: Health | None = None
        """The latest minute of health CloudWatch has published (a minute late)."""
        self._health_next: Health | None = None
        self.left_waiting = 0.0
        """People still in line after the inlet's last step (not those who just arrived)."""
        self.series = Series()

    def origin(self, users: float) -> float:
        """Origin requests a second for `users` on this night (the edge caching public pages
        unless the night's origin sends no-store)."""
        return origin_requests_per_s(users, self.settings, self.edge_cache)

    def _group(self, configured: bool) -> Group:
        """The group as the night finds it: steady at baseline (static-peak: at its size)."""
        fleet, night = self.settings.fleet, self.night
        pool = 0
        if configured and fleet.warm_pool is not None:
            pool = night.plan.warm_pool if night.plan is not None else fleet.warm_pool.min_size
        target = fleet.scaling.requests_per_target
        start = math.ceil(self.origin(night.users[0]) * 60 / target)
        start = min(max(start, fleet.min_size), fleet.max_size)
        static = self.policy == "static-peak"
        if static:
            start = static_size(night, self.settings)
        group = Group(
            min_size=start if static else fleet.min_size,
            max_size=start if static else fleet.max_size,
            desired=start,
            target_per_min=target,
            warmup_s=fleet.default_warmup_s,
            demand_target_pct=fleet.scaling_target_pct if self.room is not None else None,
            demand_period_s=demand_period_s(self.settings),
            cpu_target_pct=None if static else fleet.scaling.cpu_target_pct,
            pool_target=pool,
            tracking=not static,
        )
        group.start_at(start)
        return group

    def play(self) -> Result:
        night, room = self.night, self.room
        came, wanted = arrivals(night.users, self.dt, self.session_s, night.stays)
        queue_run = longest_queue = 0.0
        for i in range(len(night.users)):
            now = i * self.dt
            if i:
                before = max(self.stays.inside, 1e-9)
                self.on_sessions *= 1 - self.stays.step() / before
            if self.follows and self._runner_passes(now):
                self._follow(i, now)
            while self.actions and self.actions[0][0] <= now:
                self.group.scheduled(self.actions.popleft()[1])
            if night.zone_lost_at == i:
                self.group.lose_zone(len(self.settings.network.zones))
            if room is not None and room.queueing:
                self._queue_api(now, room, came[i])  # the gate sends newcomers to the line
            elif room is not None and room.metering:
                self._meter(now, room, came[i])
            else:
                self.stays.enter(came[i] + self.joining)
                self.joining = 0.0
            self.group.reconcile(now)
            self._serve(i, now, wanted[i])
            if room is None:
                continue
            self._inlet(i, now, room)
            queue_run = queue_run + self.dt if room.queueing else 0.0
            longest_queue = max(longest_queue, queue_run)
        still_waiting = room.close(len(night.users) * self.dt) if room else 0.0
        measures = self._measures(room, longest_queue, still_waiting)
        return Result(
            night.scenario,
            self.policy,
            measures,
            self.series,
            room.budgets if room else [],
            self.api_peak[1],
        )

    def _runner_passes(self, now: float) -> bool:
        """The runner in AWS passes this step (every interval, model.RUNNER_PHASE_S into it)."""
        moment = self.night.start.timestamp() + now
        return moment - last_runner_pass(moment, self.settings) < self.dt

    def _follow(self, i: int, now: float) -> None:
        """One runner pass following the night: the load balancer's latest published minute
        against the forecast, the raises still to come (scheduled actions, the reservation
        until the next pass) at the share of their surge it is on course for."""
        plan, group = self.night.plan, self.group
        assert plan is not None
        moment = self.night.at(i)
        visible = group.requests.visible
        observed = visible[-1][0] * visible[-1][1] if visible else None
        if self.room is not None and self.room.queueing:
            observed = None  # the count is whom the room let in, not the night: the forecast
        # The latest visible minute is the one before last (published a minute late): its
        # middle is read against the forecast, as the runner reads its datapoint's minute.
        minute_start = (now // model.METRIC_PERIOD_S - 2) * model.METRIC_PERIOD_S
        counted = self.night.at(0) + timedelta(seconds=minute_start + model.METRIC_PERIOD_S / 2)
        share = night_share(plan.levers, observed, counted)
        self.shares.append(share)
        standing = self.settings.load_balancer.minimum_capacity_units
        have = round(self.reserved[i - 1]) if i else standing
        put = {a.name: a.min_size for _, a in self.actions}
        levers = followed(
            plan.levers, share, moment, group.min_size, have, self.settings.fleet.min_size,
            standing, put,
        )  # fmt: skip
        levels = {s.at: s.value for s in levers.min_steps}
        self.actions = deque(
            (t, replace(a, min_size=levels[a.start]) if a.start > moment + FROZEN else a)
            for t, a in self.actions
        )
        want = float(levers.reservation_at(moment) or standing)
        interval = round(runner_interval(self.settings).total_seconds() / self.dt)
        for j in range(i, min(i + interval, len(self.reserved))):
            self.reserved[j] = want

    def _queue_api(self, now: float, room: RoomSim, arriving: float) -> None:
        """Newcomers join through the queue API, which also answers everyone's polls (every
        `retry_after` s). Over its capacity, joins are throttled (429) and retried on a later
        step; polls are counted against it first. Records the load as a share of capacity."""
        cap, dt = self.api, self.dt
        waiting = room.still_waiting(now)
        rate = admission_rate(room.history, now)
        eta = int(waiting / 2 / rate) if rate > 0 else None  # the middle of the line
        c = room.config
        polls = waiting / retry_after(
            eta, round(room.waiting()), c.polls_per_s, min(c.show_s, c.abandon_after_s)
        )
        retrying = self.joining
        self.joining += arriving
        left, rate_per_s = self.carrying
        carries = min(left, rate_per_s * dt)  # people inside, carried in: they take no place
        self.carrying = (left - carries, rate_per_s)
        self.totals["carried"] += carries
        wanted_joins = arriving / dt + retrying / model.JOIN_RETRY_S + carries / dt
        room_for_joins = max(0.0, min(cap.joins_per_s, cap.api_per_s - polls))
        joins = min(wanted_joins, room_for_joins)
        self.totals["joins"] += joins * dt
        joins = max(0.0, joins - carries / dt)
        self.totals["polls"] += polls * dt
        room.join(now, joins * dt)
        self.joining -= joins * dt
        load = max(
            wanted_joins / cap.joins_per_s,
            polls / cap.polls_per_s,
            (wanted_joins + polls) / cap.api_per_s,
        )
        if load > self.api_peak[0]:
            limits = {
                "join function": wanted_joins / cap.joins_per_s,
                "status function": polls / cap.polls_per_s,
                "API throttle": (wanted_joins + polls) / cap.api_per_s,
            }
            self.api_peak = (load, max(limits, key=limits.__getitem__))
        if load > 1:
            self.totals["api_over_s"] += dt

    def _meter(self, now: float, room: RoomSim, arriving: float) -> None:
        """Open and metering: newcomers (and those told to try again) join through the waiting
        page; the step's allowance lets them in at once, the rest try again."""
        cap, dt = self.api, self.dt
        trying = arriving + self.joining
        limit = min(cap.joins_per_s, cap.api_per_s)
        joins = min(trying, limit * dt)  # past it: throttled, and tried again
        got = room.take(now, joins)
        self.joining = trying - got
        self.stays.enter(got)
        self.totals["metered"] += got
        self.totals["joins"] += joins
        load = trying / dt / limit
        if load > self.api_peak[0]:
            which = "join function" if cap.joins_per_s <= cap.api_per_s else "API throttle"
            self.api_peak = (load, which)
        if load > 1:
            self.totals["api_over_s"] += dt

    def _serve(self, i: int, now: float, wanted: float) -> None:
        """The origin for one step: what the people inside ask, what the fleet serves, what
        fails and how the viewer sees it; at each minute's end, metrics and target tracking."""
        group, dt, totals, minute = self.group, self.dt, self.totals, self.minute
        serving = group.in_service
        factor = SLOW_ORIGIN_FACTOR if i in self.night.slow else 1.0
        capacity = group.serving_share(now, self.slow_start_s) * self.serves * factor
        inside = max(self.stays.inside, 0.0)
        offered = self.origin(inside)
        used = lcu_used(inside, offered, self.settings)
        refused = self._alb(i, used, offered)
        forwarded = offered - refused
        failed = max(0.0, forwarded - capacity)
        if capacity > 1e-9:
            # Instance-seconds of work at what an instance serves tonight (the group's CPU is
            # it over the instances, like requests per target: `_minute_health`).
            minute["work_s"] += forwarded / (self.serves * factor) * dt
            minute["saturated_s"] += dt if forwarded >= capacity else 0.0
        status = model.OVERLOAD_STATUS
        if serving < 1e-9:
            status = model.NO_TARGET_STATUS
        elif self.night.silent:
            status = model.TIMEOUT_STATUS
            minute["timed_out"] += failed * dt
        totals["offered"] += offered * dt
        totals["page" if status in self.page_codes else "raw"] += failed * dt
        totals["page" if model.ALB_REFUSED_STATUS in self.page_codes else "raw"] += refused * dt
        minute["refused"] += refused * dt
        failed += refused
        totals["served_user_s"] += inside * dt
        totals["wanted_user_s"] += wanted * dt
        totals["beyond_max_user_s"] += wanted * (1 - self._bound(i, wanted)) * dt
        totals["instance_s"] += (serving + group.launching) * dt
        totals["lcu_s"] += max(self.reserved[i], min(used, self.alb)) * dt
        totals["pool_instance_s"] += group.pool * dt
        minute["requests"] += offered * dt
        minute["failed"] += failed * dt
        if serving < 1e-9:
            minute["no_target"] += failed * dt
        if (now + dt) % model.METRIC_PERIOD_S >= dt:
            return
        self.alarm = self._alarm()
        self.health, self._health_next = self._health_next, self._minute_health(i, now)
        group.publish(minute["requests"], self._health_next.cpu_pct)
        group.track(now)
        room, series = self.room, self.series
        series.demand_instances.append(self.origin(wanted) / self.serves)
        series.requests.append(minute["requests"])
        series.in_service.append(serving)
        series.failed.append(minute["failed"])
        series.waiting.append(self.left_waiting)
        series.admitted.append(minute["admitted"])
        series.queueing.append(bool(room and room.queueing))
        self.minute = dict.fromkeys(MINUTE, 0.0)

    def _bound(self, i: int, wanted: float) -> float:
        """The share of the people wanting the site that any room could let in this step (the
        physical bound): what the fleet's max serves, and what a load balancer pushed by the
        whole crowd carries (`_carry`)."""
        most = self.settings.fleet.max_size * self.serves  # the fleet's max, in requests/s
        wants = lcu_used(wanted, self.origin(wanted), self.settings)
        fleet_share = min(1.0, most / max(self.origin(wanted), 1e-9))
        _, carried = self._carry(self.bound_held, i, wants * fleet_share)
        return carried / wants if wants > 1e-9 else 1.0

    def _alb(self, i: int, used: float, offered: float) -> float:
        """The load balancer for one step (`_carry`); returns the requests a second it refuses
        (its own 503)."""
        self.alb, carried = self._carry(self.alb_held, i, used)
        self.minute["peak_lcus"] = max(self.minute["peak_lcus"], carried)
        return offered * (1 - carried / used) if used > 1e-9 else 0.0

    def _carry(self, held: deque[float], i: int, load: float) -> tuple[float, float]:
        """(LCUs a load balancer holds, LCUs of `load` it carries) this step, given what it
        `held` (reserved or carried) each step of the last ALB_WINDOW_S, which it records: its
        reservation, at least the ordinary evening's LCUs, and what it held ALB_WINDOW_S ago
        grown by `load_balancer.scaling_pct_per_5_min` (x the night's pace). A load that rises
        no faster is carried whatever its steps; a faster one is refused what it outran."""
        floor = max(self.reserved[i], self.alb_floor)
        holds = max(floor, self.alb_growth * held.popleft())
        carried = min(load, holds)
        held.append(max(floor, carried))
        return holds, carried

    def _inlet(self, i: int, now: float, room: RoomSim) -> None:
        """The inlet's step: the fleet as it reads it, admissions, the room's next state and
        what the gate does about it."""
        load = 0.0
        if self.group.requests.visible:
            load = self.group.requests.visible[-1][0] / model.METRIC_PERIOD_S / self.rate
        plan = self.night.plan
        forced = bool(
            plan is not None
            and plan.waiting_room == "queue"
            and plan.raise_at <= self.night.at(i) < plan.restore_at
        )
        at = self.health.at if self.health is not None else None  # the load's minute
        age = now - at - model.METRIC_PERIOD_S / 2 if at is not None else 0.0
        fleet = Fleet(
            round(self.group.in_service), load, self.alarm, self.health, load_at=at, load_age_s=age
        )
        fleet = regulate(room.config, room.state, fleet)
        entered, change = room.step(now, fleet, forced)
        inside = room.sessions(now).inside
        # The room-demand policy reads it at its own period (high resolution: every 10 s).
        self.group.publish_demand(
            demand_pct(room.config, fleet, round(room.waiting()), inside), self.dt
        )
        self.group.track(now)
        self.stays.enter(entered)
        self.minute["admitted"] += entered
        self.left_waiting = room.still_waiting(now)
        # Queueing starts: people inside carry on: at their next page load the waiting page's
        # join trades the session the gate stamped while the room was open for a token (one
        # join each, spread evenly over admission.carry_minutes by the gate's turns); only new
        # arrivals queue, and those tokens end at
        # the session's absolute life (admission.session_max_minutes): whoever is still inside
        # on one then goes to the line. Opening: whoever is still in line walks in.
        if change == "queue":
            inside = self.stays.inside
            self.on_sessions, self.queue_began = inside, now
            self.carrying = (inside, inside / self.carry_s)
        elif change == "open":
            self.on_sessions, self.carrying = 0.0, (0.0, 0.0)
            self.stays.enter(room.open_doors(now))
        if room.queueing and self.on_sessions and now - self.queue_began >= self.sessions_end_s:
            cut, self.on_sessions = self.on_sessions, 0.0
            self.stays.remove(cut)
            self.joining += cut
            self.totals["sessions_cut"] += cut

    def _minute_health(self, i: int, now: float) -> Health:
        """What the load balancer and the instances report of the minute ending at `now`."""
        minute, requests = self.minute, self.minute["requests"]
        at = now + self.dt - model.METRIC_PERIOD_S
        earlier = tuple(p for p in self.peaks if p[0] >= at - HEALTH_LOOKBACK_S)
        if minute["peak_lcus"] > 0 and requests > 0:
            self.peaks.append((at, minute["peak_lcus"], requests))
        timed_out = minute["timed_out"]
        p95 = model.RESPONSE_S
        if timed_out > 0.05 * requests:
            p95 = float(self.settings.edge.origin_read_timeout_s)
        elif minute["saturated_s"] > 0.05 * model.METRIC_PERIOD_S:
            p95 = model.SATURATED_RESPONSE_S
        return Health(
            at=at,
            requests=requests,
            per_target=requests / max(self.group.in_service, 1.0),
            target_5xx=minute["failed"] - minute["no_target"] - minute["refused"] - timed_out,
            elb_5xx=minute["no_target"] + minute["refused"],
            response_p95_s=p95 if requests > 0 else None,
            cpu_pct=self._cpu(minute["work_s"]),
            peak_lcus=minute["peak_lcus"] or None,
            earlier=earlier,
            reserved_lcus=self.reserved[i],
        )

    def _cpu(self, work_s: float) -> float | None:
        """The group's average CPU in a minute of `work_s` instance-seconds of work: idle at
        IDLE_CPU_PCT, an instance's worth of what it serves tonight runs it at
        capacity_cpu_pct; counted over the instances in service, as RequestCountPerTarget
        counts over the targets."""
        serving = self.group.in_service
        if serving < 1e-9:
            return None
        work = work_s / model.METRIC_PERIOD_S / serving
        busy = self.settings.admission.capacity_cpu_pct - model.IDLE_CPU_PCT
        return min(100.0, model.IDLE_CPU_PCT + busy * work)

    def _alarm(self) -> bool:
        """The origin 5xx alarms (ALB's and the targets'): in ALARM once every one of the last
        `evaluation_periods` minutes breached its rate."""
        a, minute, breaches = self.settings.alarms, self.minute, self.breaches
        requests = max(minute["requests"], 1e-9)
        elb = 100 * (minute["no_target"] + minute["refused"]) / requests
        # A timed-out request is no target 5xx: CloudFront gave up on it (the ALB logs a 460).
        own = minute["no_target"] + minute["refused"] + minute["timed_out"]
        target = 100 * (minute["failed"] - own) / requests
        breaches.append(elb > a.alb_5xx_rate_pct or target > a.target_5xx_rate_pct)
        return len(breaches) == breaches.maxlen and all(breaches)

    def _measures(
        self, room: RoomSim | None, longest_queue_s: float, still_waiting: float
    ) -> dict[str, float]:
        totals, series = self.totals, self.series
        hours = totals["instance_s"] / 3600
        pool_gb_hours = totals["pool_instance_s"] / 3600 * self.settings.fleet.root_volume_gb
        lcu_hours = totals["lcu_s"] / 3600 + self.lcu_outside_h
        capacity = capacity_costs(self.settings, hours, pool_gb_hours, lcu_hours)
        path = request_path_costs(
            self.settings, totals["served_user_s"], totals["joins"], totals["polls"]
        )
        cost, edge_cost = sum(capacity.values()), sum(path.values())
        waits = room.waits if room else []
        wanted = max(totals["wanted_user_s"], 1e-9)
        return {
            "raw_5xx": round(totals["raw"]),
            "high_demand": round(totals["page"]),
            "high_demand_pct": 100 * totals["page"] / max(totals["offered"], 1e-9),
            "failed_worst_pct": worst_window_pct(series.failed, series.requests),
            "queued": room.queued if room else 0.0,
            "wait_p50_min": _percentile(waits, 50) / 60,
            "wait_p95_min": _percentile(waits, 95) / 60,
            "wait_max_min": max((w for w, n in waits if n > 0), default=0.0) / 60,
            "gave_up": room.gave_up if room else 0.0,
            "still_waiting": still_waiting,
            "longest_queue_min": longest_queue_s / 60,
            "kept_out_pct": max(0.0, 100 * (1 - totals["served_user_s"] / wanted)),
            "kept_out_bound_pct": 100 * totals["beyond_max_user_s"] / wanted,
            "kept_out_beyond_bound_pct": max(
                0.0,
                100 * (1 - totals["served_user_s"] / wanted)
                - 100 * totals["beyond_max_user_s"] / wanted,
            ),
            "reopen_min": reopen_minutes(series),
            "failing_min": failing_minutes(series),
            "peak_vs_needed": peak_vs_needed(series, self.settings),
            "peak_in_service": max(series.in_service, default=0.0),
            "sessions_cut": totals["sessions_cut"],
            "carried": totals["carried"],
            "metered": totals["metered"],
            "peak_waiting": max(series.waiting, default=0.0),
            "queue_api_peak_pct": 100 * self.api_peak[0],
            "queue_api_over_min": totals["api_over_s"] / 60,
            "instance_hours": hours,
            "lcu_hours": lcu_hours,
            "cost_usd": cost,
            "edge_cost_usd": edge_cost,
            **_by_service(capacity, path),
            "origin_requests": totals["offered"],
        }


def request_path_cost(settings: Settings, user_s: float, joins: float, polls: float) -> float:
    """The night's request-path cost (US dollars) at the settings' dated prices, apart from
    instances and LCUs: the sum of `request_path_costs`."""
    return sum(request_path_costs(settings, user_s, joins, polls).values())


def request_path_costs(
    settings: Settings, user_s: float, joins: float, polls: float
) -> dict[str, float]:
    """The request path's cost by service (US dollars) at the settings' dated prices: every
    viewer request through CloudFront and WAF (`user_s` person-seconds on the site x requests
    per person, plus the queue's joins and polls), the queue API's requests, Lambda requests
    and duration (JOIN_SERVICE_S / STATUS_SERVICE_S at 512 MB) and DynamoDB units (4 writes a
    join; a poll's 3 eventually consistent reads, half a unit each). No Lambda@Edge runs on any
    request. Origin Shield's per-request charge is left out: it bills the public pages' and
    exact files' requests that miss a regional edge cache (every one of them when the origin
    sends no-store), which the plan does not count."""
    p = settings.rehearsal.prices
    viewer = user_s * settings.capacity.requests_per_user_per_s + joins + polls
    queue = joins + polls
    gb = QUEUE_FUNCTION_MEMORY_MB / 1024
    return {
        "cloudfront": viewer * p.cloudfront_https_10k_usd / 1e4,
        "waf": viewer * p.waf_million_usd / 1e6,
        "api_gateway": queue * p.http_api_million_usd / 1e6,
        "lambda": queue * p.lambda_million_usd / 1e6
        + (joins * JOIN_SERVICE_S + polls * STATUS_SERVICE_S) * gb * p.lambda_arm_gb_s_usd,
        "dynamodb": joins * DDB_WRITES_PER_JOIN * p.dynamodb_million_writes_usd / 1e6
        + polls * DDB_READS_PER_STATUS * aws_facts.DDB_EVENTUAL_READ_UNITS
        * p.dynamodb_million_reads_usd / 1e6,
    }  # fmt: skip


def capacity_costs(
    settings: Settings, instance_hours: float, pool_gb_hours: float, lcu_hours: float
) -> dict[str, float]:
    """The capacity's cost by service (US dollars): instance-hours, the warm pool's volumes
    (GB-hours, at the GB-month price over HOURS_PER_MONTH) and LCU-hours (reserved or used)."""
    p = settings.rehearsal.prices
    return {
        "ec2": instance_hours * p.instance_hour_usd,
        "ebs_warm_pool": pool_gb_hours * p.ebs_gb_month_usd / HOURS_PER_MONTH,
        "alb_lcu": lcu_hours * p.lcu_hour_usd,
    }


def _by_service(capacity: dict[str, float], path: dict[str, float]) -> dict[str, float]:
    """Measures `cost_<service>_usd` for every service priced."""
    return {f"cost_{name}_usd": usd for name, usd in {**capacity, **path}.items()}


def _floor(night: Night, settings: Settings) -> Result:
    """Capacity that follows the wanted crowd exactly, step by step, never below one instance
    per zone (the least a multi-zone stack runs: fewer and a zone's loss takes the site down;
    below that a stack's ordinary evening alone would read as over budget): nothing fails."""

    def origin(users: float) -> float:
        return origin_requests_per_s(users, settings, night.edge_cache)

    rate = settings.fleet.requests_per_instance_per_s / night.cost
    session_s = settings.admission.session_minutes * 60
    _, wanted = arrivals(night.users, night.step_s, session_s, night.stays)
    zones = len(settings.network.zones)
    needed = [max(math.ceil(origin(w) / rate - 1e-9), zones) for w in wanted]
    hours = sum(needed) * night.step_s / 3600
    lcu_hours = sum(lcu_used(w, origin(w), settings) for w in wanted) * night.step_s / 3600
    per_minute = max(1, model.METRIC_PERIOD_S // night.step_s)
    series = Series(
        demand_instances=[origin(w) / rate for w in wanted[per_minute - 1 :: per_minute]],
        in_service=[float(n) for n in needed[per_minute - 1 :: per_minute]],
    )
    most = settings.fleet.max_size * rate
    beyond = sum(w * max(0.0, 1 - most / max(origin(w), 1e-9)) for w in wanted)
    capacity = capacity_costs(settings, hours, 0.0, lcu_hours)
    path = request_path_costs(settings, sum(wanted) * night.step_s, 0.0, 0.0)
    zero = (
        "raw_5xx",
        "high_demand",
        "high_demand_pct",
        "failed_worst_pct",
        "queued",
        "wait_p50_min",
        "wait_p95_min",
        "wait_max_min",
        "gave_up",
        "still_waiting",
        "longest_queue_min",
        "kept_out_pct",
        "kept_out_beyond_bound_pct",
        "reopen_min",
        "failing_min",
        "sessions_cut",
        "carried",
        "metered",
        "peak_waiting",
        "queue_api_peak_pct",
        "queue_api_over_min",
    )
    measures: dict[str, float] = dict.fromkeys(zero, 0.0)
    measures.update(
        kept_out_bound_pct=100 * beyond / max(sum(wanted), 1e-9),
        peak_vs_needed=peak_vs_needed(series, settings),
        peak_in_service=max(series.in_service, default=0.0),
        instance_hours=hours,
        lcu_hours=lcu_hours,
        cost_usd=sum(capacity.values()),
        edge_cost_usd=sum(path.values()),
        **_by_service(capacity, path),
        origin_requests=sum(origin(w) for w in wanted) * night.step_s,
    )
    return Result(night.scenario, "floor", measures, series)


def last_runner_pass(moment: float, settings: Settings) -> float:
    """The runner's last pass at or before `moment` (epoch s): every interval, at
    model.RUNNER_PHASE_S into it."""
    interval_s = runner_interval(settings).total_seconds()
    since = moment - model.RUNNER_PHASE_S
    return since - since % interval_s + model.RUNNER_PHASE_S


def reserved_lcus(
    night: Night, settings: Settings, plan: EventPlan | None
) -> tuple[list[float], float]:
    """LCUs reserved at each step of the night, and the LCU-hours above the standing level the
    event's reservation holds outside the night. The runner applies the plan's steps when it
    passes (every interval, model.RUNNER_PHASE_S into it), not at the steps' own times."""
    standing = float(settings.load_balancer.minimum_capacity_units)
    steps = len(night.users)
    if plan is None or not plan.lcu_steps:
        return [standing] * steps, 0.0

    def reserved(moment: datetime) -> float:
        run = datetime.fromtimestamp(last_runner_pass(moment.timestamp(), settings), UTC)
        return float(plan.reservation_at(run) or standing)

    at_steps = [reserved(night.at(i)) for i in range(steps)]
    night_end = night.at(steps)
    outside = 0.0
    moment = min(plan.lcu_steps[0].at, night.start)
    while moment < plan.restore_at + runner_interval(settings):
        if not night.start <= moment < night_end:
            outside += (reserved(moment) - standing) * night.step_s / 3600
        moment += timedelta(seconds=night.step_s)
    return at_steps, outside


def worst_window_pct(failed: list[float], requests: list[float]) -> float:
    """The highest share (%) of requests failed in any WORST_WINDOW_MIN consecutive minutes (the
    whole night when shorter)."""
    width = min(WORST_WINDOW_MIN, len(requests))
    worst = 0.0
    for start in range(len(requests) - width + 1):
        asked = sum(requests[start : start + width])
        if asked > 0:
            worst = max(worst, 100 * sum(failed[start : start + width]) / asked)
    return worst


FAILING_SHARE_PCT = 0.1
"""A minute in which more than this share (%) of requests failed is a failing minute."""


def failing_minutes(series: Series) -> float:
    """The longest run of minutes in which more than FAILING_SHARE_PCT of requests failed."""
    longest = run = 0
    for failed, asked in zip(series.failed, series.requests, strict=True):
        run = run + 1 if asked > 0 and 100 * failed / asked > FAILING_SHARE_PCT else 0
        longest = max(longest, run)
    return float(longest)


def reopen_minutes(series: Series) -> float:
    """The longest the room kept queueing once the instances in service could serve everyone
    who wanted the site (minutes in a row)."""
    longest = run = 0
    for queueing, need, have in zip(
        series.queueing, series.demand_instances, series.in_service, strict=False
    ):
        run = run + 1 if queueing and need <= have else 0
        longest = max(longest, run)
    return float(longest)


def peak_vs_needed(series: Series, settings: Settings) -> float:
    """The fleet's peak in service over the instances the night's peak demand needs at the
    scaling target (target tracking's aim), never fewer than the group's minimum."""
    fleet = settings.fleet
    demand = max(series.demand_instances, default=0.0)
    needed = max(math.ceil(demand * 100 / fleet.scaling_target_pct - 1e-9), fleet.min_size)
    return max(series.in_service, default=0.0) / needed


def _percentile(samples: list[tuple[float, float]], pct: float) -> float:
    """Weighted percentile of (value, weight) samples; 0 with none."""
    ordered = sorted((v, w) for v, w in samples if w > 0)
    total = sum(w for _, w in ordered)
    if not ordered or total <= 0:
        return 0.0
    threshold, running = total * pct / 100, 0.0
    for value, weight in ordered:
        running += weight
        if running >= threshold:
            return value
    return ordered[-1][0]

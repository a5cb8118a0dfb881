"""The pre-scale engine: read what AWS has, change what differs from the night plan, and say
what AWS has not given.

One pass over the stack's levers, for the events of a NightPlan:
  1. group: inside an event's window, a group below the stage's MinSize (or an operator's
     floor) is raised to it: the backstop for an action AWS did not run;
  2. schedule: owned scheduled actions ("floodgate-...") exist and match the plan for every
     event inside the horizon, stale owned ones go, others' are never touched. The current
     event's stage actions hold at least the floor the group had when its window opened, or
     an operator raised inside it, until the restore;
  3. alb: the LCU reservation follows the plan's steps; a request AWS reports `failed` is asked
     again at once and reported; at most two decreases a day, none inside a window but the
     plan's own;
  4. warm_pool: sized for the coming event;
  5. room: the waiting room's `calendar` item lists the event windows.
Then what AWS actually gives is checked against what the running stage needs: instances in
service and LCUs in effect; a shortfall is reported (the runner publishes it; an alarm pages).

Nothing here lowers min or desired capacity inside a window: only the plan's own step-down
actions lower MinSize (never below the floor), and desired is left to target tracking.
Idempotent: a second pass makes no write calls. Runs in the runner Lambda (handler.py) and in
the CI job (scripts/prescale.py), with boto3 clients in standard retry mode.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .follow import follow_plan
from .night_plan import OWNED_PREFIX, Action, EventLevers, NightPlan, timestamp

READ_PREFIXES = ("Describe", "List", "Get")
LAYERS = ("group", "schedule", "alb", "warm_pool", "room")
"""In order of what the night needs first, so a run short of time does the backstop first."""
PUT_AHEAD = timedelta(seconds=60)
"""An action due sooner than this is not put: AWS refuses a start time in the past
(PutScheduledUpdateGroupAction), and the group backstop covers its level."""
PENDING_CODES = ("pending", "rebalancing")
"""Reservation states in which AWS takes no new request: "To update an existing reservation,
the previous request must be provisioned or failed" (ELB user guide, request LCU reservation)."""


@dataclass(frozen=True)
class Targets:
    """What the engine acts on: the web group, and the ALB and room table when there are."""

    asg_name: str
    alb_arn: str | None = None
    room_table: str | None = None


@dataclass
class Clients:
    """AWS clients, each counting the API calls it makes (for idempotency checks and bench)."""

    autoscaling: Any
    elbv2: Any
    dynamodb: Any
    cloudwatch: Any = None
    """Reads the load balancer's RequestCount to follow the night (follow.py); None: the plan
    as it stands."""
    calls: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for client in (self.autoscaling, self.elbv2, self.dynamodb, self.cloudwatch):
            if client is not None:
                client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    @property
    def writes(self) -> int:
        return sum(n for op, n in self.calls.items() if not op.startswith(READ_PREFIXES))


@dataclass(frozen=True)
class Change:
    """One write the engine will make; `apply` performs it. A change with a `problem` is also
    a failure to report, applied or not (a reservation AWS says failed, asked again)."""

    layer: str
    action: str
    target: str
    detail: dict[str, Any]
    apply: Callable[[], object]
    problem: str | None = None


@dataclass(frozen=True)
class Failure:
    """A layer that could not be read or changed; the engine carries on with the others."""

    layer: str
    target: str
    error: BaseException


@dataclass(frozen=True)
class Shortfall:
    """Less in effect than the running stage needs: what AWS reports against the plan."""

    lever: str
    """`instances` (in service) or `lcus` (reserved and in effect)."""
    needed: int
    actual: int
    event: str


@dataclass
class Pass:
    """What one pass planned, applied and found."""

    changes: list[Change] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    shortfalls: list[Shortfall] = field(default_factory=list)
    shares: dict[str, float] = field(default_factory=dict)
    """Each active event's share of its surge the raises to come were put at (follow.py)."""

    @property
    def writes(self) -> list[Change]:
        return [c for c in self.changes if c.action != "skip"]


class GroupNotFoundError(LookupError):
    """The targets name a group that does not exist in this account and region."""


class OutOfTimeError(TimeoutError):
    """The run's time ran out before this layer: the next run does it."""


def describe_group(clients: Clients, targets: Targets) -> dict[str, Any]:
    groups = clients.autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[targets.asg_name]
    )["AutoScalingGroups"]
    if not groups:
        raise GroupNotFoundError(f"autoscaling group {targets.asg_name!r} not found")
    return groups[0]


def floor_for(
    event: EventLevers, group: dict[str, Any], live: dict[str, Any], now: datetime
) -> int:
    """The MinSize the current event's stage actions hold at least, until its restore.

    Before the window opens it is the group's own MinSize (an operator's standing floor). Inside
    the window it is carried by the remaining actions themselves (each holds the larger of its
    planned size and the floor), and raised when the group's MinSize is above everything the
    plan and the floor could have set in the last `slip` (AWS runs an action up to that late):
    an operator raised it. No state is kept outside AWS."""
    if not event.holding(now):
        return group["MinSize"]
    planned = {a.name: a.min_size for a in event.actions() if not a.restore and a.start > now}
    carried = max(
        (live[n]["MinSize"] for n in planned if n in live and live[n]["MinSize"] > planned[n]),
        default=0,
    )
    expected = max(carried, event.min_size_since(now, event.slip) or 0)
    return group["MinSize"] if group["MinSize"] > expected else carried


def owned_actions(clients: Clients, targets: Targets) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for page in clients.autoscaling.get_paginator("describe_scheduled_actions").paginate(
        AutoScalingGroupName=targets.asg_name
    ):
        for action in page["ScheduledUpdateGroupActions"]:
            if action["ScheduledActionName"].startswith(OWNED_PREFIX):
                found[action["ScheduledActionName"]] = action
    return found


def group_changes(
    clients: Clients,
    targets: Targets,
    group: dict[str, Any],
    plan: NightPlan,
    floor: int,
    now: datetime,
) -> list[Change]:
    """Inside an active window, raise the live group to the stage's MinSize (or the floor) if
    an action was missed. Raise only: each figure is the larger of live and wanted."""
    planned = [m for e in plan.events if e.active(now) and (m := e.min_size_at(now)) is not None]
    if not planned:
        return []
    want = max(*planned, floor)
    min_size, desired, max_size = group["MinSize"], group["DesiredCapacity"], group["MaxSize"]
    if min_size >= want and desired >= want:
        return []
    update = {
        "AutoScalingGroupName": targets.asg_name,
        "MinSize": max(min_size, want),
        "DesiredCapacity": max(desired, want),
        "MaxSize": max(max_size, want),
    }
    detail = {
        "from": [min_size, desired, max_size],
        "to": [update["MinSize"], update["DesiredCapacity"], update["MaxSize"]],
    }
    raise_group = lambda: clients.autoscaling.update_auto_scaling_group(**update)  # noqa: E731
    return [Change("group", "raise", targets.asg_name, detail, raise_group)]


def wanted_actions(
    plan: NightPlan, group: dict[str, Any], floor: int, now: datetime
) -> dict[str, tuple[Action, dict[str, Any]]]:
    """Every owned action still to come for the events inside the horizon, as AWS should hold
    it. None sets desired capacity (AWS raises desired to a new MinSize above it and leaves a
    busier group alone), and each sets a MaxSize at least the group's own, so none can cut a
    group an operator raised. The current event's stage actions hold the floor."""
    horizon = now + timedelta(days=plan.horizon_days)
    current = plan.current(now)[:1]
    wanted: dict[str, tuple[Action, dict[str, Any]]] = {}
    for event in plan.events:
        if event.start >= horizon:
            continue
        for action in event.actions():
            if action.start <= now:
                continue
            held = event in current and not action.restore
            spec = {
                "StartTime": timestamp(action.start),
                "TimeZone": action.time_zone,
                "MinSize": max(action.min_size, floor) if held else action.min_size,
                "MaxSize": max(action.max_size, group["MaxSize"]),
            }
            wanted[action.name] = (action, spec)
    return wanted


def schedule_changes(
    clients: Clients,
    targets: Targets,
    group: dict[str, Any],
    live: dict[str, dict[str, Any]],
    plan: NightPlan,
    floor: int,
    now: datetime,
    delete_unknown: bool = True,
) -> list[Change]:
    """Owned scheduled actions to create, update or delete so they match the plan. An action
    whose time has come but that AWS has not run yet (it may run `slip` late) is left to AWS,
    never deleted; one due within PUT_AHEAD is not put (the group backstop covers it). With
    `delete_unknown` False (the runner, whose plan is the last deploy's), an owned action of an
    event the plan does not know is left alone: it may be a newer plan's."""
    asg = targets.asg_name
    put = clients.autoscaling.put_scheduled_update_group_action
    delete = clients.autoscaling.delete_scheduled_action
    wanted = wanted_actions(plan, group, floor, now)
    due = {a.name for e in plan.events for a in e.actions() if a.start <= now}
    changes = []
    for name, (action, spec) in wanted.items():
        current = live.get(name)
        if (current is not None and _same_action(current, spec)) or action.start <= now + PUT_AHEAD:
            continue
        kwargs = {"AutoScalingGroupName": asg, "ScheduledActionName": name, **spec}
        verb = "update" if current else "create"
        changes.append(Change("schedule", verb, name, spec, lambda kwargs=kwargs: put(**kwargs)))
    known = tuple(f"{OWNED_PREFIX}{e.key}-" for e in plan.events)
    for name in sorted(set(live) - set(wanted) - due):
        if not delete_unknown and not name.startswith(known):
            continue  # another plan's (a newer one the job put): not this plan's to judge
        start = live[name].get("StartTime")
        passed = isinstance(start, datetime) and start <= now
        changes.append(
            Change(
                "schedule",
                "delete",
                name,
                {"reason": "passed" if passed else "no longer planned"},
                lambda name=name: delete(AutoScalingGroupName=asg, ScheduledActionName=name),
            )
        )
    return changes


def _same_action(current: dict[str, Any], spec: dict[str, Any]) -> bool:
    start = current.get("StartTime")
    start_text = timestamp(start) if isinstance(start, datetime) else start
    return (
        start_text == spec["StartTime"]
        and current.get("MinSize") == spec["MinSize"]
        and current.get("MaxSize") == spec["MaxSize"]
        and current.get("DesiredCapacity") in (None, -1)
    )


@dataclass(frozen=True)
class Reservation:
    """An ALB's LCU reservation as DescribeCapacityReservation reports it."""

    requested: int
    """MinimumLoadBalancerCapacity.CapacityUnits: the last request (0: none)."""
    codes: dict[str, str]
    """Availability Zone -> state code (provisioned, pending, rebalancing, failed)."""
    reasons: dict[str, str]
    effective: float | None
    """The sum of the zones' EffectiveCapacityUnits, when AWS reports them. "Capacity is
    reserved at the regional level and is evenly distributed across availability zones"."""
    decreases_left: int

    @classmethod
    def of(cls, state: dict[str, Any]) -> Reservation:
        zones = state.get("CapacityReservationState") or []
        codes = {z.get("AvailabilityZone", "?"): z.get("State", {}).get("Code", "?") for z in zones}
        reasons = {
            z.get("AvailabilityZone", "?"): z.get("State", {}).get("Reason", "") for z in zones
        }
        units = [z["EffectiveCapacityUnits"] for z in zones if "EffectiveCapacityUnits" in z]
        return cls(
            requested=(state.get("MinimumLoadBalancerCapacity") or {}).get("CapacityUnits", 0),
            codes=codes,
            reasons=reasons,
            effective=sum(units) if units else None,
            decreases_left=state.get("DecreaseRequestsRemaining", 0),
        )

    @property
    def granted(self) -> float:
        """LCUs in effect: what the zones report, else the request once every zone holds it."""
        if self.effective is not None:
            return min(self.effective, self.requested)
        codes = set(self.codes.values())
        return self.requested if codes == {"provisioned"} or not codes else 0

    @property
    def failed(self) -> list[str]:
        return sorted(z for z, code in self.codes.items() if code == "failed")


def reservation_changes(
    clients: Clients, targets: Targets, plan: NightPlan, reservation: Reservation, now: datetime
) -> list[Change]:
    """Reserve each event's LCUs as its plan steps them until its restore has run; then fall
    back to the standing level, never below it. Inside an event's window the only decrease is
    the plan's own, of the plan's own reservation: one raised by hand above the plan's peak
    stays until the event is over. A request AWS reports failed is asked again at once."""
    if not targets.alb_arn:
        return []
    elb, arn, have = clients.elbv2, targets.alb_arn, reservation.requested
    due = [units for e in plan.events if (units := e.reservation_at(now)) is not None]
    want = max(due, default=plan.standing_lcus)
    failed = reservation.failed
    if any(code in PENDING_CODES for code in reservation.codes.values()):
        if want == have:
            return []
        return [_skipped("alb", arn, "previous reservation still pending; next run retries")]
    problem = None
    if failed:
        why = "; ".join(f"{z}: {reservation.reasons[z] or 'no reason given'}" for z in failed)
        problem = (
            f"AWS reports the reservation of {have} LCUs failed in {', '.join(failed)} ({why}); "
            f"asked again for {want}"
        )
    elif want == have:
        return []
    if want < have:
        holding = [e for e in plan.events if e.holding(now)]
        planned = all(e.reservation_at(now) is not None for e in holding) and have <= max(
            (max((s.value for s in e.lcu_steps), default=0) for e in holding), default=have
        )
        if not planned:
            return [_skipped("alb", arn, "an event is active; releasing waits until it ends")]
        if reservation.decreases_left < 1:
            return [_skipped("alb", arn, "AWS allows two decreases a day; none left today")]
    if want == 0:
        release = lambda: elb.modify_capacity_reservation(  # noqa: E731
            LoadBalancerArn=arn, ResetCapacityReservation=True
        )
        return [Change("alb", "release", arn, {"from": have, "to": 0}, release, problem)]
    verb = "retry" if failed else "reserve" if want > have else "lower"
    modify = lambda: elb.modify_capacity_reservation(  # noqa: E731
        LoadBalancerArn=arn, MinimumLoadBalancerCapacity={"CapacityUnits": want}
    )
    return [Change("alb", verb, arn, {"from": have, "to": want}, modify, problem)]


def _skipped(layer: str, target: str, reason: str) -> Change:
    return Change(layer, "skip", target, {"reason": reason}, lambda: None)


def warm_pool_changes(
    clients: Clients, targets: Targets, plan: NightPlan, now: datetime
) -> list[Change]:
    """Size the warm pool for the coming (or current) event; the plan's standing size when
    none. Never shrunk while an event holds."""
    if plan.warm_pool is None:
        return []
    current = plan.current(now)
    want, prepared = (
        (current[0].warm_pool, current[0].prepared) if current else (plan.warm_pool, plan.prepared)
    )
    live = clients.autoscaling.describe_warm_pool(AutoScalingGroupName=targets.asg_name)
    config = live.get("WarmPoolConfiguration") or {}
    have, have_prepared = config.get("MinSize"), config.get("MaxGroupPreparedCapacity")
    if (have, have_prepared) == (want, prepared) or (
        have is not None and want < have and any(e.holding(now) for e in plan.events)
    ):
        return []
    kwargs = {
        "AutoScalingGroupName": targets.asg_name,
        "MinSize": want,
        "MaxGroupPreparedCapacity": prepared,
        "PoolState": plan.pool_state,
        "InstanceReusePolicy": {"ReuseOnScaleIn": True},
    }
    put = lambda: clients.autoscaling.put_warm_pool(**kwargs)  # noqa: E731
    detail: dict[str, Any] = {"from": have, "to": want}
    if have_prepared != prepared:  # the change may be the pool's ceiling alone
        detail |= {"prepared_from": have_prepared, "prepared_to": prepared}
    return [Change("warm_pool", "resize", targets.asg_name, detail, put)]


def room_changes(
    clients: Clients, targets: Targets, plan: NightPlan, now: datetime
) -> list[Change]:
    """Tell the waiting room about the coming events: one `calendar` item the inlet reads.

    Each event maps to its mode (`queue` forces the room to queue from raise to restore; `armed`
    leaves it to the inlet's load hysteresis) and window. Events marked `off` are left out."""
    if not targets.room_table:
        return []
    events = {
        e.key: {
            "M": {
                "mode": {"S": e.room},
                "starts_at": {"S": timestamp(e.raise_at)},
                "ends_at": {"S": timestamp(e.restore_at)},
            }
        }
        for e in plan.current(now)
        if e.room != "off"
    }
    item = {"pk": {"S": "calendar"}, "events": {"M": events}}
    table = targets.room_table
    found = clients.dynamodb.get_item(TableName=table, Key={"pk": item["pk"]})
    if found.get("Item") == item:
        return []
    summary = {key: event["M"]["mode"]["S"] for key, event in events.items()}
    put = lambda: clients.dynamodb.put_item(TableName=table, Item=item)  # noqa: E731
    return [Change("room", "calendar", "waiting room", summary, put)]


def shortfalls(
    group: dict[str, Any] | None, reservation: Reservation | None, plan: NightPlan, now: datetime
) -> list[Shortfall]:
    """What AWS gives, against what the running stage needs (not what is asked for ahead):
    instances in service and LCUs in effect."""
    found = []
    for event in plan.events:
        need = event.need_at(now)
        if need is None:
            continue
        if group is not None:
            in_service = sum(
                1 for i in group.get("Instances", []) if i.get("LifecycleState") == "InService"
            )
            if in_service < need.instances:
                found.append(Shortfall("instances", need.instances, in_service, event.key))
        if reservation is not None and need.lcus > plan.standing_lcus:
            granted = int(reservation.granted)
            if granted < need.lcus:
                found.append(Shortfall("lcus", need.lcus, granted, event.key))
    return found


OBSERVED_LOOKBACK_S = 300
"""The latest one-minute RequestCount within this many seconds (published about a minute
late): older, the night is not measured and the plan stands."""


def observed_rpm(
    clients: Clients, targets: Targets, now: datetime
) -> tuple[datetime, float] | None:
    """The middle of the load balancer's latest published minute and its requests
    (RequestCount, Sum, one minute: Elastic Load Balancing, CloudWatch metrics for your
    Application Load Balancer; a datapoint is stamped with its minute's start), or None without
    a client, a load balancer or a datapoint."""
    if clients.cloudwatch is None or not targets.alb_arn:
        return None
    dimension = targets.alb_arn.split(":loadbalancer/", 1)[-1]  # app/<name>/<id>
    answer = clients.cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "requests",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/ApplicationELB",
                        "MetricName": "RequestCount",
                        "Dimensions": [{"Name": "LoadBalancer", "Value": dimension}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=now - timedelta(seconds=OBSERVED_LOOKBACK_S),
        EndTime=now,
    )
    points = [
        (t, float(v))
        for r in answer["MetricDataResults"]
        for t, v in zip(r["Timestamps"], r["Values"], strict=True)
    ]
    if not points:
        return None
    at, requests = max(points)
    return at + timedelta(seconds=30), requests


def room_queueing(clients: Clients, targets: Targets) -> bool:
    """The waiting room is queueing now (its `room` item's state), so the load balancer counts
    only whom it let in; False without a room."""
    if not targets.room_table:
        return False
    item = (
        clients.dynamodb.get_item(
            TableName=targets.room_table,
            Key={"pk": {"S": "room"}},
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "state"},
        ).get("Item")
        or {}
    )
    return item.get("state", {}).get("S") == "queue"


def plan_pass(
    clients: Clients,
    targets: Targets,
    plan: NightPlan,
    now: datetime,
    out_of_time: Callable[[], bool] = lambda: False,
    *,
    delete_unknown: bool = True,
) -> Pass:
    """Every change needed and every shortfall, reading live state only (no writes). A layer
    whose reads fail is reported and the others still planned; a layer not reached before
    `out_of_time` is reported for the next run. `delete_unknown`: see schedule_changes."""
    found = Pass()
    group = live = reservation = None
    floor = 0
    try:
        group = describe_group(clients, targets)
        live = owned_actions(clients, targets)
    except Exception as exc:  # reported; the other layers go on
        found.failures.append(Failure("group", targets.asg_name, exc))
    if targets.alb_arn:
        try:
            state = clients.elbv2.describe_capacity_reservation(LoadBalancerArn=targets.alb_arn)
            reservation = Reservation.of(state)
        except Exception as exc:
            found.failures.append(Failure("alb", targets.alb_arn, exc))
    plan = _followed(clients, targets, plan, group, live, reservation, now, found)
    if group is not None and live is not None:
        # Against the plan as followed: an operator's floor above it holds.
        current = plan.current(now)
        floor = floor_for(current[0], group, live, now) if current else group["MinSize"]
    planners: dict[str, Callable[[], list[Change]] | None] = {
        "group": None
        if group is None
        else lambda: group_changes(clients, targets, group, plan, floor, now),
        "schedule": None
        if group is None or live is None
        else lambda: schedule_changes(
            clients, targets, group, live, plan, floor, now, delete_unknown
        ),
        "alb": None
        if reservation is None
        else lambda: reservation_changes(clients, targets, plan, reservation, now),
        "warm_pool": lambda: warm_pool_changes(clients, targets, plan, now),
        "room": lambda: room_changes(clients, targets, plan, now),
    }
    for layer in LAYERS:
        planner = planners[layer]
        if planner is None:
            continue
        if out_of_time():
            found.failures.append(Failure(layer, _target(layer, targets), OutOfTimeError(
                "not run: the run's time ran out; the next run does it")))  # fmt: skip
            continue
        try:
            found.changes += planner()
        except Exception as exc:  # reported; the other layers go on
            found.failures.append(Failure(layer, _target(layer, targets), exc))
    found.shortfalls = shortfalls(group, reservation, plan, now)
    return found


def _followed(
    clients: Clients,
    targets: Targets,
    plan: NightPlan,
    group: dict[str, Any] | None,
    live: dict[str, dict[str, Any]] | None,
    reservation: Reservation | None,
    now: datetime,
    found: Pass,
) -> NightPlan:
    """The plan following the night (follow.py). A count that cannot be read is reported and
    read as the forecast (share 1): the raises to come go back to the plan, and what is due
    still holds what is in effect, so a failed read never spends a decrease. Without the
    group (its read failed) only the reservation is judged, against what is requested."""
    if not any(e.active(now) and e.forecast for e in plan.events):
        return plan
    observed = None
    try:
        # A queueing room holds the night back: the count is what the fleet serves, not what
        # the night wants, so it is read as the forecast.
        if not room_queueing(clients, targets):
            observed = observed_rpm(clients, targets, now)
    except Exception as exc:  # reported; read as the forecast
        found.failures.append(Failure("follow", targets.alb_arn or "", exc))
    lcus = reservation.requested if reservation is not None else plan.standing_lcus
    in_effect = group["MinSize"] if group is not None else plan.fleet_min
    put = {n: int(a["MinSize"]) for n, a in (live or {}).items() if "MinSize" in a}
    following, found.shares = follow_plan(plan, observed, now, in_effect, lcus, put)
    return following


def apply_pass(found: Pass, log: Callable[[Change, str], None]) -> None:
    """Make each change in order; one that fails is reported and the next still runs. A change
    that carries a problem is reported as a failure too, once applied."""
    for change in found.changes:
        try:
            change.apply()
        except Exception as exc:  # the next change still runs
            found.failures.append(Failure(change.layer, change.target, exc))
            log(change, "failed")
            continue
        log(change, "skipped" if change.action == "skip" else "applied")
        if change.problem:
            found.failures.append(
                Failure(change.layer, change.target, RuntimeError(change.problem))
            )


def _target(layer: str, targets: Targets) -> str:
    if layer == "alb":
        return targets.alb_arn or ""
    if layer == "room":
        return targets.room_table or ""
    return targets.asg_name

"""Pre-scale job: make live capacity match the event plan before each known event.

Reads the stack's settings, the event calendar and the stack outputs, then for every event
inside the horizon:
  1. scheduled actions it owns (names starting "floodgate-") exist and match the plan; stale
     ones it owns are deleted; actions it does not own are never touched;
  2. the ALB capacity reservation follows the plan's steps: each stage's LCUs asked for hours
     ahead, then at most two decreases, the last to the standing level (AWS allows two a day);
  3. the warm pool is sized for the coming event;
  4. the waiting room learns the event windows (the `calendar` item, when it has a room table);
and, inside an active event window, raises the live group to the plan if it is below it.
The job itself never lowers min or desired capacity during an active event; the plan's own
step-down actions lower MinSize only and leave desired to target tracking.

Idempotent: a second run makes no write calls. Throttling is retried (botocore standard mode).
Each change is logged as one JSON line on stdout; progress goes to stderr.

Exit codes: 0 in sync, 1 changes applied (or pending, with --dry-run), 2 any failure: every
failure is reported, and a failing layer (group, schedule, warm pool, ALB, room) does not stop
the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

if not __package__:  # run as `python scripts/prescale.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planning import clock
from planning.calendar import CalendarError, load_calendar
from planning.event_plan import (
    OWNED_PREFIX,
    EventPlan,
    PlanError,
    plan_actions,
    plan_events,
    scheduled_actions,
)
from planning.settings import Settings, SettingsError, load_stack_settings
from scripts.text_table import aligned

RETRIES = Config(retries={"mode": "standard", "max_attempts": 8})
READ_PREFIXES = ("Describe", "List", "Get")


@dataclass(frozen=True)
class Targets:
    """What the job acts on, from `pulumi stack output --json` or the command line."""

    asg_name: str
    alb_arn: str | None = None
    room_table: str | None = None

    @classmethod
    def from_sources(cls, outputs_file: Path | None, overrides: dict[str, str | None]) -> Targets:
        values: dict[str, Any] = {}
        if outputs_file is not None:
            try:
                values = json.loads(outputs_file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"--outputs {outputs_file}: unreadable JSON ({exc})") from None
            if not isinstance(values, dict):
                raise ValueError(
                    f"--outputs {outputs_file}: must be a JSON object of stack "
                    f"outputs (got {type(values).__name__})"
                )
            for key in ("asg_name", "alb_arn", "room_table"):
                if key in values and not isinstance(values[key], str | None):
                    raise ValueError(
                        f"--outputs {outputs_file}: {key} must be a string (got {values[key]!r})"
                    )
        values |= {k: v for k, v in overrides.items() if v}
        if not values.get("asg_name"):
            raise ValueError("asg_name missing: pass --outputs <stack outputs JSON> or --asg-name")
        return cls(values["asg_name"], values.get("alb_arn"), values.get("room_table"))


@dataclass
class Clients:
    """AWS clients, each counting the API calls it makes (for idempotency checks and bench)."""

    autoscaling: Any
    elbv2: Any
    dynamodb: Any
    calls: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for client in (self.autoscaling, self.elbv2, self.dynamodb):
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    @property
    def writes(self) -> int:
        return sum(n for op, n in self.calls.items() if not op.startswith(READ_PREFIXES))

    @classmethod
    def for_region(cls, region: str) -> Clients:
        session = boto3.Session(region_name=region)
        return cls(
            session.client("autoscaling", config=RETRIES),
            session.client("elbv2", config=RETRIES),
            session.client("dynamodb", config=RETRIES),
        )


@dataclass(frozen=True)
class Change:
    """One write the job will make; `apply` performs it."""

    layer: str
    action: str
    target: str
    detail: dict[str, Any]
    apply: Callable[[], object]


def schedule_changes(
    clients: Clients,
    targets: Targets,
    group: dict[str, Any],
    plans: list[EventPlan],
    now: datetime,
) -> list[Change]:
    """Owned scheduled actions to create, update or delete so they match the plan.

    No action sets desired capacity (AWS brings desired up to a new MinSize), and each sets a
    MaxSize at least the group's own: a MaxSize below desired would cut the group to it, so an
    operator's raised max stands until they lower it. An action whose time has come but that
    AWS has not run yet (it may run `schedule_slip_s` late) is left to AWS, never deleted."""
    asg = clients.autoscaling
    wanted: dict[str, dict[str, Any]] = {}
    for action in scheduled_actions(plans, now):
        spec = {
            "StartTime": clock.aws_timestamp(action.start),
            "TimeZone": action.time_zone,
            "MinSize": action.min_size,
            "MaxSize": max(action.max_size, group["MaxSize"]),
        }
        if action.desired is not None:  # absent: AWS leaves desired capacity alone
            spec["DesiredCapacity"] = action.desired
        wanted[action.name] = spec
    due = {a.name for plan in plans for a in plan_actions(plan) if a.start <= now}
    existing: dict[str, dict[str, Any]] = {}
    for page in asg.get_paginator("describe_scheduled_actions").paginate(
        AutoScalingGroupName=targets.asg_name
    ):
        for action in page["ScheduledUpdateGroupActions"]:
            if action["ScheduledActionName"].startswith(OWNED_PREFIX):
                existing[action["ScheduledActionName"]] = action

    changes = []
    for name, spec in wanted.items():
        current = existing.get(name)
        if current is not None and _same_action(current, spec):
            continue
        kwargs = {"AutoScalingGroupName": targets.asg_name, "ScheduledActionName": name, **spec}
        put = asg.put_scheduled_update_group_action
        changes.append(
            Change(
                "schedule",
                "update" if current else "create",
                name,
                spec,
                lambda put=put, kwargs=kwargs: put(**kwargs),
            )
        )
    for name in sorted(set(existing) - set(wanted) - due):
        start = existing[name].get("StartTime")
        passed = isinstance(start, datetime) and start <= now
        changes.append(
            Change(
                "schedule",
                "delete",
                name,
                {"reason": "passed" if passed else "no longer planned"},
                lambda name=name: asg.delete_scheduled_action(
                    AutoScalingGroupName=targets.asg_name, ScheduledActionName=name
                ),
            )
        )
    return changes


def _same_action(current: dict[str, Any], spec: dict[str, Any]) -> bool:
    start = current.get("StartTime")
    start_text = clock.aws_timestamp(start) if isinstance(start, datetime) else start
    return (
        start_text == spec["StartTime"]
        and current.get("MinSize") == spec["MinSize"]
        and current.get("MaxSize") == spec["MaxSize"]
        and current.get("DesiredCapacity") == spec.get("DesiredCapacity")
    )


class GroupNotFoundError(LookupError):
    """The stack outputs name a group that does not exist in this account and region."""


def describe_group(clients: Clients, targets: Targets) -> dict[str, Any]:
    groups = clients.autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[targets.asg_name]
    )["AutoScalingGroups"]
    if not groups:
        raise GroupNotFoundError(
            f"autoscaling group {targets.asg_name!r} not found; check --outputs"
        )
    return groups[0]


def group_changes(
    clients: Clients,
    targets: Targets,
    group: dict[str, Any],
    plans: list[EventPlan],
    now: datetime,
) -> list[Change]:
    """Inside an active window, raise the live group to the stage's MinSize if an action was
    missed."""
    planned = [m for p in plans if p.active(now) and (m := p.min_size_at(now)) is not None]
    if not planned:
        return []
    want = max(planned)
    min_size, desired, max_size = group["MinSize"], group["DesiredCapacity"], group["MaxSize"]
    if min_size >= want and desired >= want:
        return []
    # Raise only: each figure is the larger of live and planned, so nothing ever goes down.
    update = {
        "AutoScalingGroupName": targets.asg_name,
        "MinSize": max(min_size, want),
        "DesiredCapacity": max(desired, want),
        "MaxSize": max(max_size, want),
    }
    return [
        Change(
            "group",
            "raise",
            targets.asg_name,
            {
                "from": [min_size, desired, max_size],
                "to": [update["MinSize"], update["DesiredCapacity"], update["MaxSize"]],
            },
            lambda: clients.autoscaling.update_auto_scaling_group(**update),
        )
    ]


def reservation_changes(
    clients: Clients, targets: Targets, plans: list[EventPlan], settings: Settings, now: datetime
) -> list[Change]:
    """Reserve each event's LCUs as its plan steps them (see EventPlan.lcu_steps) until its
    restore has run; then fall back to the standing level, never below it. Inside an event's
    window the only decrease is the plan's own, of the plan's own reservation: one raised by
    hand above the plan's peak stays until the event is over."""
    if not targets.alb_arn:
        return []
    elb, arn = clients.elbv2, targets.alb_arn
    due = [units for p in plans if (units := p.reservation_at(now)) is not None]
    standing = settings.load_balancer.minimum_capacity_units
    want = max(due, default=standing)
    state = elb.describe_capacity_reservation(LoadBalancerArn=arn)
    have = (state.get("MinimumLoadBalancerCapacity") or {}).get("CapacityUnits", 0)
    if want == have:
        return []
    if any(
        z.get("State", {}).get("Code") == "pending"
        for z in state.get("CapacityReservationState", [])
    ):
        return [_skipped("alb", arn, "previous reservation still pending; next run retries")]
    if want < have:
        holding = [p for p in plans if p.holding(now)]
        planned = all(p.reservation_at(now) is not None for p in holding) and have <= max(
            (p.capacity_units for p in holding), default=have
        )
        if not planned:
            return [_skipped("alb", arn, "an event is active; releasing waits until it ends")]
        if state.get("DecreaseRequestsRemaining", 0) < 1:
            return [_skipped("alb", arn, "AWS allows two decreases a day; none left today")]
        if want == 0:
            return [
                Change(
                    "alb",
                    "release",
                    arn,
                    {"from": have, "to": 0},
                    lambda: elb.modify_capacity_reservation(
                        LoadBalancerArn=arn, ResetCapacityReservation=True
                    ),
                )
            ]
    return [
        Change(
            "alb",
            "reserve" if want > have else "lower",
            arn,
            {"from": have, "to": want},
            lambda: elb.modify_capacity_reservation(
                LoadBalancerArn=arn, MinimumLoadBalancerCapacity={"CapacityUnits": want}
            ),
        )
    ]


def _skipped(layer: str, target: str, reason: str) -> Change:
    return Change(layer, "skip", target, {"reason": reason}, lambda: None)


def warm_pool_changes(
    clients: Clients, targets: Targets, plans: list[EventPlan], settings: Settings, now: datetime
) -> list[Change]:
    """Size the warm pool for the coming (or current) event; settings' size when none."""
    pool = settings.fleet.warm_pool
    if pool is None:
        return []
    want = plans[0].warm_pool if plans else pool.min_size
    # Without MaxGroupPreparedCapacity AWS keeps max - desired prepared, not `want`.
    prepared = settings.fleet.prepared_capacity(want)
    current = clients.autoscaling.describe_warm_pool(AutoScalingGroupName=targets.asg_name)
    config = current.get("WarmPoolConfiguration") or {}
    have, have_prepared = config.get("MinSize"), config.get("MaxGroupPreparedCapacity")
    if (have, have_prepared) == (want, prepared) or (
        have is not None and want < have and any(p.holding(now) for p in plans)
    ):
        return []
    kwargs = {
        "AutoScalingGroupName": targets.asg_name,
        "MinSize": want,
        "MaxGroupPreparedCapacity": prepared,
        "PoolState": pool.state,
        "InstanceReusePolicy": {"ReuseOnScaleIn": True},
    }
    return [
        Change(
            "warm_pool",
            "resize",
            targets.asg_name,
            {"from": have, "to": want},
            lambda: clients.autoscaling.put_warm_pool(**kwargs),
        )
    ]


def room_changes(clients: Clients, targets: Targets, plans: list[EventPlan]) -> list[Change]:
    """Tell the waiting room about the coming events: one `calendar` item the inlet reads.

    Each event maps to its mode (`queue` forces the room to queue from raise to restore; `armed`
    leaves it to the inlet's load hysteresis) and window. Events marked `off` are left out.
    """
    if not targets.room_table:
        return []
    events = {
        plan.key: {
            "M": {
                "mode": {"S": plan.waiting_room},
                "starts_at": {"S": clock.aws_timestamp(plan.raise_at)},
                "ends_at": {"S": clock.aws_timestamp(plan.restore_at)},
            }
        }
        for plan in plans
        if plan.waiting_room != "off"
    }
    item = {"pk": {"S": "calendar"}, "events": {"M": events}}
    found = clients.dynamodb.get_item(TableName=targets.room_table, Key={"pk": item["pk"]})
    if found.get("Item") == item:
        return []
    summary = {key: event["M"]["mode"]["S"] for key, event in events.items()}
    put = lambda: clients.dynamodb.put_item(TableName=targets.room_table, Item=item)  # noqa: E731
    return [Change("room", "calendar", "waiting room", summary, put)]


LAYERS = ("group", "schedule", "warm_pool", "alb", "room")


@dataclass(frozen=True)
class Failure:
    """A layer that could not be read or changed; the job carries on with the others."""

    layer: str
    target: str
    error: BaseException


def planned_changes(
    clients: Clients, targets: Targets, plans: list[EventPlan], settings: Settings, now: datetime
) -> tuple[list[Change], list[Failure]]:
    """Every change needed, reading live state only (no writes). A layer whose reads fail is
    reported and the others are still planned; the group is read once for two of them."""
    changes: list[Change] = []
    failures: list[Failure] = []
    try:
        group: dict[str, Any] | None = describe_group(clients, targets)
    except Exception as exc:  # reported; the other layers go on
        group = None
        failures.append(Failure("group", targets.asg_name, exc))
    planners: dict[str, Callable[[], list[Change]] | None] = {
        "group": None
        if group is None
        else lambda: group_changes(clients, targets, group, plans, now),
        "schedule": None
        if group is None
        else lambda: schedule_changes(clients, targets, group, plans, now),
        "warm_pool": lambda: warm_pool_changes(clients, targets, plans, settings, now),
        "alb": lambda: reservation_changes(clients, targets, plans, settings, now),
        "room": lambda: room_changes(clients, targets, plans),
    }
    for layer in LAYERS:
        planner = planners[layer]
        if planner is None:
            continue
        try:
            changes += planner()
        except Exception as exc:  # reported; the other layers go on
            failures.append(Failure(layer, _layer_target(layer, targets), exc))
    return changes, failures


def _layer_target(layer: str, targets: Targets) -> str:
    if layer == "alb":
        return targets.alb_arn or ""
    if layer == "room":
        return targets.room_table or ""
    return targets.asg_name


def table(changes: Iterable[Change]) -> str:
    """The dry run's table: a load balancer by its name, not its ARN (which padded every row to
    its width), and each detail as `key value` pairs rather than raw JSON."""
    rows = [("layer", "action", "target", "detail")] + [
        (c.layer, c.action, _short(c.target), _pairs(c.detail)) for c in changes
    ]
    return "\n".join(aligned(rows))


def _short(target: str) -> str:
    return target.split(":loadbalancer/", 1)[1] if ":loadbalancer/" in target else target


def _pairs(detail: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(detail.items()))


def run(argv: list[str] | None = None, clients: Clients | None = None) -> int:
    """0 nothing to do, 1 changes applied (or pending with --dry-run), 2 any failure: every
    failure is reported, one line each (with its traceback under --verbose), and a failing
    layer does not stop the others."""
    args = _parser().parse_args(argv)
    try:
        settings = load_stack_settings(args.stack)
        now = clock.parse_instant(args.now, "--now") if args.now is not None else clock.now()
        plans = plan_events(load_calendar(), settings, args.stack, now)
        targets = Targets.from_sources(
            args.outputs,
            {"asg_name": args.asg_name, "alb_arn": args.alb_arn, "room_table": args.room_table},
        )
        clients = clients or Clients.for_region(settings.region)
    except (SettingsError, CalendarError, PlanError, clock.ClockError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # never a bare traceback, never exit 1
        _report([Failure("setup", args.stack, exc)], args.verbose)
        return 2
    changes, failures = planned_changes(clients, targets, plans, settings, now)
    writes = [c for c in changes if c.action != "skip"]
    if args.dry_run:
        print(table(changes) if changes else "in sync: no changes")
    else:
        for number, change in enumerate(changes, start=1):
            print(
                f"[{number}/{len(changes)}] {change.layer} {change.action} {change.target}",
                file=sys.stderr,
            )
            try:
                change.apply()
            except Exception as exc:  # the next change still runs
                failures.append(Failure(change.layer, change.target, exc))
                _log(change, now, "failed")
                continue
            _log(change, now, "skipped" if change.action == "skip" else "applied")
    summary = ", ".join(f"{op} {n}" for op, n in sorted(clients.calls.items()))
    print(f"API calls: {summary or 'none'} (writes: {clients.writes})", file=sys.stderr)
    if failures:
        _report(failures, args.verbose)
        return 2
    return 1 if writes else 0


def _report(failures: list[Failure], verbose: bool) -> None:
    for failure in failures:
        error = failure.error
        aws = isinstance(error, ClientError | BotoCoreError | ResponseParserError)
        kind = "AWS call failed" if aws else type(error).__name__
        print(f"error: {failure.layer} {failure.target}: {kind}: {error}", file=sys.stderr)
        if verbose:
            traceback.print_exception(error, file=sys.stderr)
    print(f"{len(failures)} failure(s); exit 2", file=sys.stderr)


def _log(change: Change, now: datetime, result: str) -> None:
    line = {
        "at": clock.aws_timestamp(now),
        "layer": change.layer,
        "action": change.action,
        "target": change.target,
        "detail": change.detail,
        "result": result,
    }
    print(json.dumps(line, sort_keys=True))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.prescale",
        description="Make live capacity match the event plan before known events "
        "(scheduled actions, ALB reservation, warm pool, waiting room).",
        epilog="Exit codes: 0 in sync, 1 changes applied (or pending with --dry-run), 2 any "
        "failure (each reported; the other layers still run).",
    )
    parser.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument(
        "--outputs",
        type=Path,
        help="JSON from `pulumi stack output --json` (asg_name, alb_arn, room_table)",
    )
    parser.add_argument("--asg-name", help="web autoscaling group name (overrides --outputs)")
    parser.add_argument("--alb-arn", help="load balancer ARN for LCU reservations")
    parser.add_argument("--room-table", help="DynamoDB table of the waiting room, if any")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the planned changes as a table; change nothing",
    )
    parser.add_argument(
        "--now",
        help="plan as of this ISO 8601 instant (default: FLOODGATE_NOW, else the current time)",
    )
    parser.add_argument("--verbose", action="store_true", help="print each failure's traceback too")
    return parser


if __name__ == "__main__":
    sys.exit(run())

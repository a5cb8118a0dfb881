"""Pre-scale job: verify and repair the night's levers well before each known event.

The night itself runs inside AWS: scheduled actions raise and lower the group, and the runner
(a Lambda that EventBridge Scheduler invokes every `prescale.run_every_minutes`) makes one pass
of the pre-scale engine (functions/prescale/levers.py) over every lever with the plan the stack
was deployed with. This job makes the same pass from CI with the plan computed now, so drift is
repaired days ahead; and it checks the runner itself: its schedule is enabled (reported if
not), carries the current plan for every event inside the horizon (replaced if stale), and its
dead-letter queue is empty.

Each change is logged as one JSON line on stdout; progress goes to stderr. Idempotent: a second
run makes no write calls. Throttling is retried (botocore standard mode).

Exit codes: 0 in sync, 1 changes applied (or pending, with --dry-run), 2 any failure: every
failure is reported (a reservation AWS says failed, less in effect than the running stage
needs, a disabled runner, undelivered invocations), and a failing layer does not stop the
others.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

if not __package__:  # run as `python scripts/prescale.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import scripts  # noqa: F401 - without the project's dependencies: its own interpreter

from functions.prescale.levers import (
    Change,
    Clients,
    Failure,
    Shortfall,
    Targets,
    apply_pass,
    plan_pass,
)
from functions.prescale.night_plan import NightPlan, NightPlanError, timestamp
from planning import clock
from planning.calendar import CalendarError, load_calendar
from planning.event_plan import PlanError, night_plan, plan_events
from planning.settings import SettingsError, load_stack_settings
from scripts.text_table import fitted

RETRIES = Config(retries={"mode": "standard", "max_attempts": 8})
OUTPUT_KEYS = ("asg_name", "alb_arn", "room_table", "prescale_schedule", "prescale_dlq_url")


TARGET_FORMATS = (
    (
        "asg_name",
        r"[!-9;-~]{1,255}",
        "an Auto Scaling group name (1-255 ASCII characters 33-126, no ':')",
    ),
    (
        "alb_arn",
        r"arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:loadbalancer/app/[\w-]+/[0-9a-f]+",
        "an Application Load Balancer ARN (arn:aws:elasticloadbalancing:<region>:<account>:"
        "loadbalancer/app/<name>/<id>)",
    ),
    ("room_table", r"[A-Za-z0-9_.-]{3,255}", "a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)"),
)
"""What each target must look like, from AWS's references: a group name "can contain any ASCII
character 33 to 126 ... You cannot use a colon" (CreateAutoScalingGroup,
https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CreateAutoScalingGroup.html); a
table name is 3-255 of a-z A-Z 0-9 _ - . (https://docs.aws.amazon.com/amazondynamodb/latest/
developerguide/HowItWorks.NamingRulesDataTypes.html); an ALB's ARN is
arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>. A value outside
them fails before any call, not as an AWS error after the other layers ran."""


@dataclass(frozen=True)
class JobTargets:
    """What the job acts on and checks, from `pulumi stack output --json` or the flags."""

    levers: Targets
    schedule: str | None = None
    """The runner's EventBridge Scheduler schedule (default group)."""
    dlq_url: str | None = None
    """The runner schedule's dead-letter queue."""

    @classmethod
    def from_sources(
        cls, outputs_file: Path | None, overrides: dict[str, str | None]
    ) -> JobTargets:
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
            for key in OUTPUT_KEYS:
                if key in values and not isinstance(values[key], str | None):
                    raise ValueError(
                        f"--outputs {outputs_file}: {key} must be a string (got {values[key]!r})"
                    )
        values |= {k: v for k, v in overrides.items() if v is not None}
        if not values.get("asg_name"):
            raise ValueError("asg_name missing: pass --outputs <stack outputs JSON> or --asg-name")
        for key, pattern, allowed in TARGET_FORMATS:
            value = values.get(key)
            if value is not None and not re.fullmatch(pattern, value):
                raise ValueError(f"{key} {value!r}: must be {allowed}")
        return cls(
            Targets(values["asg_name"], values.get("alb_arn"), values.get("room_table")),
            values.get("prescale_schedule"),
            values.get("prescale_dlq_url"),
        )


@dataclass
class Services:
    """The engine's clients, and the two the job reads to check the runner."""

    levers: Clients
    scheduler: Any = None
    sqs: Any = None

    @classmethod
    def for_region(cls, region: str) -> Services:
        session = boto3.Session(region_name=region)
        client = lambda name: session.client(name, config=RETRIES)  # noqa: E731
        levers = Clients(
            client("autoscaling"), client("elbv2"), client("dynamodb"), client("cloudwatch")
        )
        return cls(levers, client("scheduler"), client("sqs"))


def runner_checks(
    services: Services, targets: JobTargets, plan: NightPlan, now: datetime
) -> tuple[list[Change], list[Failure]]:
    """The runner, checked and repaired: its schedule is enabled (a disabled one is a human's
    decision, reported, not undone) and carries, for every event inside the horizon, the same
    levers this job plans; a stale plan (an event it lacks would get no LCU steps, pool or
    backstop on the night; one the calendar dropped would still be reserved for) is replaced
    by the current one. Its dead-letter queue holds no invocation Scheduler could not
    deliver."""
    changes: list[Change] = []
    failures: list[Failure] = []
    if targets.schedule and services.scheduler is not None:
        try:
            found, failed = _schedule_checks(services.scheduler, targets.schedule, plan, now)
            changes, failures = changes + found, failures + failed
        except Exception as exc:  # reported; the other check goes on
            failures.append(Failure("runner", targets.schedule, exc))
    if targets.dlq_url and services.sqs is not None:
        try:
            failures += _dlq_failures(services.sqs, targets.dlq_url)
        except Exception as exc:
            failures.append(Failure("runner", targets.dlq_url, exc))
    return changes, failures


def _dlq_failures(sqs: Any, url: str) -> list[Failure]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    waiting = int(attributes.get("ApproximateNumberOfMessages", "0"))
    if not waiting:
        return []
    return [
        _runner(
            url,
            f"{waiting} runner invocation(s) Scheduler could not deliver are in its dead-letter "
            "queue: read them, fix the cause, then purge the queue",
        )
    ]


SCHEDULE_FIELDS = (
    "Name", "GroupName", "ScheduleExpression", "ScheduleExpressionTimezone", "StartDate",
    "EndDate", "Description", "State", "KmsKeyArn", "FlexibleTimeWindow", "Target",
    "ActionAfterCompletion",
)  # fmt: skip
"""What UpdateSchedule takes back: it replaces the whole schedule, so every field is sent."""


def _schedule_checks(
    scheduler: Any, name: str, plan: NightPlan, now: datetime
) -> tuple[list[Change], list[Failure]]:
    schedule = scheduler.get_schedule(Name=name)
    failures: list[Failure] = []
    if schedule.get("State") != "ENABLED":
        state = schedule.get("State")
        failures.append(
            _runner(name, f"its schedule is {state}: nothing acts on the night; enable it")
        )
    try:
        deployed = NightPlan.from_json(schedule["Target"]["Input"])
        theirs = {e.key: e for e in deployed.current(now)}
    except (KeyError, NightPlanError):
        theirs = None
    ours = {e.key: e for e in plan.current(now)}
    if theirs == ours:
        return [], failures
    detail: dict[str, Any] = {"unreadable": True} if theirs is None else {
        "lacks": sorted(set(ours) - set(theirs)),
        "differs": sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k]),
        "dropped": sorted(set(theirs) - set(ours)),
    }  # fmt: skip
    update = {k: schedule[k] for k in SCHEDULE_FIELDS if schedule.get(k) is not None}
    update["Target"] = {**schedule["Target"], "Input": plan.to_json()}
    put = lambda: scheduler.update_schedule(**update)  # noqa: E731
    return [Change("runner", "replan", name, detail, put)], failures


def _runner(target: str, message: str) -> Failure:
    return Failure("runner", target, RuntimeError(message))


def table(changes: list[Change]) -> str:
    """The dry run's table: a load balancer by its name, not its ARN (which padded every row to
    its width), and each detail as `key value` pairs rather than raw JSON."""
    rows = [("layer", "action", "target", "detail")] + [
        (c.layer, c.action, _short(c.target), _pairs(c.detail)) for c in changes
    ]
    return "\n".join(fitted(rows, free_text=True))


def _short(target: str) -> str:
    return target.split(":loadbalancer/", 1)[1] if ":loadbalancer/" in target else target


def _pairs(detail: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(detail.items()))


def run(argv: list[str] | None = None, services: Services | Clients | None = None) -> int:
    """0 nothing to do, 1 changes applied (or pending with --dry-run), 2 any failure: every
    failure is reported, one line each (with its traceback under --verbose), and a failing
    layer does not stop the others."""
    args = _parser().parse_args(argv)
    try:
        settings = load_stack_settings(args.stack)
        now = clock.parse_instant(args.now, "--now") if args.now is not None else clock.now()
        plan = night_plan(
            plan_events(load_calendar(), settings, args.stack, now), settings, args.stack
        )
        targets = JobTargets.from_sources(
            args.outputs,
            {"asg_name": args.asg_name, "alb_arn": args.alb_arn, "room_table": args.room_table},
        )
        alb = targets.levers.alb_arn
        if alb is not None and alb.split(":")[3] != settings.region:
            raise ValueError(
                f"alb_arn {alb!r}: is in {alb.split(':')[3]}; the stack's region is "
                f"{settings.region}"
            )
        if isinstance(services, Clients):
            services = Services(services)
        services = services or Services.for_region(settings.region)
    except (SettingsError, CalendarError, PlanError, clock.ClockError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # never a bare traceback, never exit 1
        _report([Failure("setup", args.stack, exc)], [], args.verbose)
        return 2
    clients = services.levers
    found = plan_pass(clients, targets.levers, plan, now)
    replans, unready = runner_checks(services, targets, plan, now)
    found.changes += replans
    found.failures += unready
    if args.dry_run:
        found.failures += [
            Failure(c.layer, c.target, RuntimeError(c.problem)) for c in found.changes if c.problem
        ]
        if found.changes:
            print(table(found.changes))
        elif found.failures or found.shortfalls:
            print("no change found, but not in sync: what failed is below")
        else:
            print("in sync: no changes")
    else:
        total = len(found.changes)
        for number, change in enumerate(found.changes, start=1):
            print(
                f"[{number}/{total}] {change.layer} {change.action} {change.target}",
                file=sys.stderr,
            )
        apply_pass(found, lambda change, result: _log(change, now, result))
    summary = ", ".join(f"{op} {n}" for op, n in sorted(clients.calls.items()))
    print(f"API calls: {summary or 'none'} (writes: {clients.writes})", file=sys.stderr)
    if found.failures or found.shortfalls:
        _report(found.failures, found.shortfalls, args.verbose)
        return 2
    return 1 if found.writes else 0


ERROR_CHARS = 200
"""A failure's message is cut to its first line and this many characters: an endpoint that
answers with an HTML page (a proxy, a captive portal) would fill the log with it."""


def short_error(error: BaseException) -> str:
    """`error`'s message as one line: the HTTP status when AWS's answer carried one, then the
    first non-empty line of the message, cut at ERROR_CHARS."""
    text = str(error)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) > ERROR_CHARS or first != text.strip():
        first = first[: ERROR_CHARS - 1] + "…"
    response = getattr(error, "response", None)
    status = (response or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return f"HTTP {status}: {first}" if status and f"{status}" not in first else first


def _report(failures: list[Failure], shortfalls: list[Shortfall], verbose: bool) -> None:
    for failure in failures:
        error = failure.error
        aws = isinstance(error, ClientError | BotoCoreError | ResponseParserError)
        kind = "AWS call failed" if aws else type(error).__name__
        print(
            f"error: {failure.layer} {failure.target}: {kind}: {short_error(error)}",
            file=sys.stderr,
        )
        if verbose:
            traceback.print_exception(error, file=sys.stderr)
    for short in shortfalls:
        print(
            f"error: shortfall {short.event}: {short.lever} {short.actual} in effect, the "
            f"running stage needs {short.needed}",
            file=sys.stderr,
        )
    print(f"{len(failures) + len(shortfalls)} failure(s); exit 2", file=sys.stderr)


def _log(change: Change, now: datetime, result: str) -> None:
    line = {
        "at": timestamp(now),
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
        description="Verify and repair the night's levers before known events (scheduled "
        "actions, ALB reservation, warm pool, waiting room) and check the runner in AWS.",
        epilog="Exit codes: 0 in sync, 1 changes applied (or pending with --dry-run), 2 any "
        "failure (each reported; the other layers still run).",
    )
    parser.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument(
        "--outputs",
        type=Path,
        help="JSON from `pulumi stack output --json` (asg_name, alb_arn, room_table, "
        "prescale_schedule, prescale_dlq_url)",
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

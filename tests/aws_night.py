"""AWS as an event night finds it, for the pre-scale tests: moto's server on 127.0.0.1 for Auto
Scaling, DynamoDB and CloudWatch, and small fakes for what moto lacks, each encoding the rule
AWS documents for the real thing:

- `run_due_actions`: Auto Scaling runs a one-time scheduled action at its time, up to two
  minutes late, then deletes it ("A scheduled action generally executes within seconds.
  However, the action might be delayed for up to two minutes from the scheduled start time",
  Auto Scaling user guide, scheduled scaling). moto keeps actions and never runs them.
- `Reservations`: the ALB's LCU reservation (ELB user guide, request and monitor LCU
  reservation): a request is `pending` until fulfilled ("within a few minutes, but can take up
  to a few hours") and then `provisioned`, or `failed` ("the request cannot be completed at the
  time"); a new request is refused while one is pending ("the previous request must be
  provisioned or failed": CapacityReservationPending); two decreases a day
  (CapacityDecreaseRequestLimitExceeded); capacity "is evenly distributed across availability
  zones". moto answers DescribeCapacityReservation with a fixed `provisioned` and has no
  ModifyCapacityReservation. Assumed where AWS is silent: the reservation in effect stays the
  last provisioned one until a new request is provisioned, and the day is the UTC day.
- `Throttle`: a share of calls answered `Throttling` (HTTP 400), as AWS does under its API
  rate limits; botocore's standard retry mode retries them. The backoff is counted, not slept.
- `PulumiUp`: what `pulumi up` (with or without --refresh) does to the owned scheduled actions
  the program declares: create, update what is not in `ignore_changes`, and on dropping one,
  delete it unless it is `retain_on_delete` (Pulumi's resource options reference).
- `Scheduler` cadence: EventBridge Scheduler's rate schedule invokes the runner every interval,
  at 60-second precision from when it was created (Scheduler user guide, schedule types).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from botocore.awsrequest import AWSResponse

from components.prescale import Prescale, PrescaleArgs
from functions.prescale.night_plan import NightPlan, timestamp
from planning.calendar import load_calendar
from planning.event_plan import EventPlan, night_plan, plan_events
from planning.settings import Settings
from scripts.offline_cloud import Registration, run_offline

ZONES = ("ca-central-1a", "ca-central-1b", "ca-central-1d")
SCHEDULE = "aws:autoscaling/schedule:Schedule"
ACCOUNT = "123456789012"
GROUP_ARN = (
    f"arn:aws:autoscaling:ca-central-1:{ACCOUNT}:autoScalingGroup:1:autoScalingGroupName/web-asg"
)
ALB_ARN = f"arn:aws:elasticloadbalancing:ca-central-1:{ACCOUNT}:loadbalancer/app/web/1"


def prescale_program(
    settings: Settings, now: datetime, *, room: bool = True, group: str = "asg"
) -> tuple[list[EventPlan], Callable[[], object]]:
    """Prod's Prescale component alone, for the events planned at `now`, and the program that
    declares it (for `run_offline`)."""
    plans = plan_events(load_calendar(), settings, "prod", now)
    args = PrescaleArgs(
        plans=plans,
        night_plan=night_plan(plans, settings, "prod"),
        settings=settings.prescale,
        group_name=group,
        group_arn=GROUP_ARN.replace("web-asg", group),
        alb_arn=ALB_ARN,
        room_table="room" if room else None,
        room_table_arn=f"arn:aws:dynamodb:ca-central-1:{ACCOUNT}:table/room" if room else None,
        alarm_topic_arn=f"arn:aws:sns:ca-central-1:{ACCOUNT}:alarms",
        log_retention_days=90,
        tags={},
        now=now,
    )
    return plans, lambda: Prescale("pre", args)


def deployed(settings: Settings, now: datetime, group: str) -> tuple[NightPlan, list[Registration]]:
    """What `pulumi up` at `now` declares: the runner's plan and the scheduled actions."""
    plans, program = prescale_program(settings, now, group=group)
    run = run_offline("prod", {}, program)
    return night_plan(plans, settings, "prod"), run.of_type(SCHEDULE)


ELB_XMLNS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"


class RawBody:
    """A urllib3-like body for botocore's AWSResponse."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any):
        yield self.body


def _xml(value: Any) -> str:
    """A query-protocol XML body for `value` (lists as <member> items)."""
    if isinstance(value, dict):
        return "".join(f"<{k}>{_xml(v)}</{k}>" for k, v in value.items())
    if isinstance(value, list):
        return "".join(f"<member>{_xml(v)}</member>" for v in value)
    return escape(str(value))


def elb_response(url: str, operation: str, result: dict[str, Any]) -> AWSResponse:
    body = (
        f'<{operation}Response xmlns="{ELB_XMLNS}"><{operation}Result>{_xml(result)}'
        f"</{operation}Result><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>"
        f"</{operation}Response>"
    )
    return AWSResponse(url, 200, {}, RawBody(body.encode()))


def elb_error(url: str, code: str, message: str, status: int = 400) -> AWSResponse:
    body = (
        f'<ErrorResponse xmlns="{ELB_XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>fake</RequestId></ErrorResponse>"
    )
    return AWSResponse(url, status, {}, RawBody(body.encode()))


@dataclass
class Request:
    units: int
    asked_at: datetime
    ready_at: datetime
    fails: bool


class Reservations:
    """One ALB's LCU reservation, answering an elbv2 client's two calls on the wire (before
    they are sent to moto), so that botocore parses and retries them as it would AWS's; see
    the module docstring for the rules."""

    def __init__(
        self, elbv2: Any, units: int = 100, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.provisioned = units
        """What is in effect: the last request AWS provisioned."""
        long_ago = datetime(2000, 1, 1, tzinfo=UTC)
        self.request = Request(units, long_ago, long_ago, fails=False)
        self.decreases, self.day = 2, None
        self.clock = clock or (lambda: datetime.now(UTC))
        self.fulfil_after = timedelta(minutes=5)
        self.fail_once: set[int] = set()
        """Units whose first request AWS fails (then provisions the next ask for them)."""
        self.asked: list[tuple[datetime, int]] = []
        elbv2.meta.events.register("before-send.elastic-load-balancing-v2", self._send)

    @property
    def code(self) -> str:
        if self.clock() < self.request.ready_at:
            return "pending"
        return "failed" if self.request.fails else "provisioned"

    def _settle(self) -> None:
        now = self.clock()
        if self.day != now.date():
            self.day, self.decreases = now.date(), 2
        if self.code == "provisioned":
            self.provisioned = self.request.units

    def state(self) -> dict[str, Any]:
        self._settle()
        zone: dict[str, str] = {"Code": self.code}
        if self.code == "failed":
            zone["Reason"] = "InsufficientCapacity"
        share = self.provisioned / len(ZONES)
        return {
            "DecreaseRequestsRemaining": self.decreases,
            "MinimumLoadBalancerCapacity": {"CapacityUnits": self.request.units},
            "CapacityReservationState": [
                {"State": zone, "AvailabilityZone": z, "EffectiveCapacityUnits": share}
                for z in ZONES
            ],
        }

    @property
    def requested(self) -> int:
        return self.request.units

    @property
    def granted(self) -> int:
        self._settle()
        return self.provisioned

    def _send(self, request: Any, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        params = {k: v[0] for k, v in parse_qs(body or "").items()}
        operation = params.get("Action")
        if operation == "DescribeCapacityReservation":
            return elb_response(request.url, operation, self.state())
        if operation == "ModifyCapacityReservation":
            return self._modify(request.url, params)
        return None

    def _modify(self, url: str, params: dict[str, str]) -> AWSResponse:
        self._settle()
        if self.code == "pending":
            return elb_error(
                url, "CapacityReservationPending", "There is a pending capacity reservation."
            )
        reset = params.get("ResetCapacityReservation") == "true"
        units = 0 if reset else int(params["MinimumLoadBalancerCapacity.CapacityUnits"])
        if units < self.request.units:
            if self.decreases < 1:
                return elb_error(url, "CapacityDecreaseRequestLimitExceeded", "two a day")
            self.decreases -= 1
        now = self.clock()
        fails = units in self.fail_once
        self.fail_once.discard(units)
        self.request = Request(units, now, now + self.fulfil_after, fails)
        self.asked.append((now, units))
        return elb_response(url, "ModifyCapacityReservation", self.state())


def run_due_actions(autoscaling: Any, group: str, until: datetime) -> list[str]:
    """What Auto Scaling does with the one-time scheduled actions due by `until`: apply the
    sizes given (a MinSize above desired raises desired to it, a MaxSize below lowers it; an
    absent size leaves the group's), then delete the action. Returns the names run."""
    listed = autoscaling.describe_scheduled_actions(AutoScalingGroupName=group)
    ran = []
    for action in sorted(listed["ScheduledUpdateGroupActions"], key=lambda a: a["StartTime"]):
        if action["StartTime"] > until:
            continue
        (live,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
            "AutoScalingGroups"
        ]
        low = action.get("MinSize", live["MinSize"])
        high = action.get("MaxSize", live["MaxSize"])
        desired = action.get("DesiredCapacity")
        if desired is None or desired < 0:
            desired = min(max(live["DesiredCapacity"], low), high)
        autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=group, MinSize=low, MaxSize=high, DesiredCapacity=desired
        )
        name = action["ScheduledActionName"]
        autoscaling.delete_scheduled_action(AutoScalingGroupName=group, ScheduledActionName=name)
        ran.append(name)
    return ran


THROTTLED_QUERY = (
    b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
    b"<Message>Rate exceeded</Message></Error></ErrorResponse>"
)
"""Auto Scaling's and ELB's throttling answer (query protocol)."""
THROTTLED_JSON = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
    b'"message":"Rate of requests exceeds the allowed throughput."}'
)
"""DynamoDB's (JSON protocol)."""


@dataclass
class Throttle:
    """Answers `share` of the calls (a fixed pattern, so a run is repeatable) with Throttling
    while `active`. Registered on `before-send`, it sees every attempt, retries included."""

    share: float = 0.85
    active: bool = False
    calls: int = 0
    throttled: int = 0

    def attach(self, *clients: Any) -> None:
        """Before any other answer on the wire (the reservation fake's included)."""
        for client in clients:
            client.meta.events.register_first("before-send", self._send)

    def _send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        if not self.active:
            return None
        self.calls += 1
        if (self.calls % 20) >= round(self.share * 20):
            return None
        self.throttled += 1
        body = THROTTLED_JSON if event_name.startswith("before-send.dynamodb") else THROTTLED_QUERY
        return AWSResponse(request.url, 400, {}, RawBody(body))


@dataclass
class Declared:
    """One scheduled action in Pulumi's state: its inputs as last applied and its options."""

    inputs: dict[str, Any]
    ignore_changes: tuple[str, ...]
    retain_on_delete: bool


@dataclass
class PulumiUp:
    """`pulumi up` over the owned scheduled actions: the state it keeps, and AWS's answers."""

    autoscaling: Any
    group: str
    state: dict[str, Declared] = field(default_factory=dict)
    """Pulumi's state, by scheduledActionName."""
    refused: list[str] = field(default_factory=list)
    """Creates or updates AWS refused (a start time already past): the update fails."""

    def apply(self, declared: list[Registration], now: datetime, refresh: bool = False) -> None:
        """Make AWS and the state match `declared` (the program's Schedule registrations) as
        Pulumi would at `now`."""
        if refresh:  # the state takes what AWS holds; what AWS ran and deleted leaves it
            live = self._live()
            self.state = {
                name: Declared({**d.inputs, **_as_inputs(live[name])}, d.ignore_changes,
                               d.retain_on_delete)
                for name, d in self.state.items()
                if name in live
            }  # fmt: skip
        wanted = {r.inputs["scheduledActionName"]: r for r in declared}
        for name, resource in wanted.items():
            inputs = dict(resource.inputs)
            old = self.state.get(name)
            if old is not None:
                for prop in resource.ignore_changes:  # ignored: the state's value is kept
                    if prop in old.inputs:
                        inputs[prop] = old.inputs[prop]
                if inputs == old.inputs:
                    continue
            if self._put(inputs, now):
                self.state[name] = Declared(
                    inputs, resource.ignore_changes, resource.retain_on_delete
                )
        live = set(self._live())
        for name in sorted(set(self.state) - set(wanted)):
            # Gone already (AWS ran it): the provider's delete finds nothing and succeeds.
            if not self.state.pop(name).retain_on_delete and name in live:
                self.autoscaling.delete_scheduled_action(
                    AutoScalingGroupName=self.group, ScheduledActionName=name
                )

    def _put(self, inputs: dict[str, Any], now: datetime) -> bool:
        start = datetime.strptime(inputs["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if start <= now:  # AWS: "Given start time is in the past"
            self.refused.append(inputs["scheduledActionName"])
            return False
        sizes = {
            key: int(inputs[prop])
            for key, prop in (("MinSize", "minSize"), ("MaxSize", "maxSize"),
                              ("DesiredCapacity", "desiredCapacity"))
            if inputs.get(prop, -1) >= 0  # -1: the provider leaves it out
        }  # fmt: skip
        self.autoscaling.put_scheduled_update_group_action(
            AutoScalingGroupName=self.group,
            ScheduledActionName=inputs["scheduledActionName"],
            StartTime=start,
            TimeZone=inputs["timeZone"],
            **sizes,
        )
        return True

    def _live(self) -> dict[str, dict[str, Any]]:
        listed = self.autoscaling.describe_scheduled_actions(AutoScalingGroupName=self.group)
        return {a["ScheduledActionName"]: a for a in listed["ScheduledUpdateGroupActions"]}


def _as_inputs(action: dict[str, Any]) -> dict[str, Any]:
    return {
        "startTime": timestamp(action["StartTime"]),
        "minSize": action.get("MinSize", -1),
        "maxSize": action.get("MaxSize", -1),
        "desiredCapacity": action.get("DesiredCapacity", -1),
    }


def rate_passes(first: datetime, every: timedelta, until: datetime) -> list[datetime]:
    """The instants a rate schedule created at `first` invokes its target until `until`."""
    moments = (first + every * i for i in itertools.count())
    return list(itertools.takewhile(lambda t: t < until, moments))


LATE = timedelta(seconds=90)
"""How late AWS runs each scheduled action here (the documented ceiling is two minutes)."""


class Backoff:
    """botocore's standard-mode backoff, counted instead of slept: `elapsed` is the simulated
    time a pass spent waiting to retry (the runner stops starting layers near its timeout)."""

    def __init__(self, monkeypatch: Any) -> None:
        from botocore.retries import standard

        self.elapsed = 0.0
        original = standard.ExponentialBackoff.delay_amount

        def delay(backoff: Any, context: Any) -> float:
            self.elapsed += original(backoff, context)
            return 0

        monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", delay)

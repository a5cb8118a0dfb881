"""The night runs inside AWS: the 2028 election window played minute by minute against moto on
127.0.0.1, with the faults that broke the CI-driven job. What acts is what acts in AWS: the
scheduled actions `pulumi up` declared (run by `run_due_actions`, 90 s late), and the runner
(functions/prescale/handler.run) every 5 minutes with the plan it was deployed with. The CI job
(scripts/prescale.py) is an extra that may be late or absent. Every 10 minutes of the window the
live group, reservation, warm pool and room calendar are held against the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.autoscaling.models import autoscaling_backends

from functions.prescale.handler import RETRIES, RunnerConfig, run
from functions.prescale.levers import Clients, Targets
from functions.prescale.night_plan import EventLevers, NightPlan
from planning.settings import Settings, load_stack_settings
from scripts import prescale as job
from tests.aws_night import (
    ACCOUNT,
    ALB_ARN,
    LATE,
    Backoff,
    PulumiUp,
    Reservations,
    Throttle,
    deployed,
    rate_passes,
    run_due_actions,
)
from tests.helpers import FAKE_CREDENTIALS, REGION, slow_alb

pytestmark = pytest.mark.long
MINUTE = timedelta(minutes=1)
DEPLOYED_AT = datetime(2028, 11, 1, tzinfo=UTC)
FROM = datetime(2028, 11, 7, 22, tzinfo=UTC)
"""The world is watched from an hour before the reservation's first step."""
KEY = "us-general-election-20281107"


@dataclass
class World:
    """The stack's group, ALB reservation and room table in moto, and what acts on them."""

    url: str
    settings: Settings
    monkeypatch: Any
    now: datetime = DEPLOYED_AT
    runs: list[dict[str, Any]] = field(default_factory=list)
    events: dict[datetime, Callable[[], None]] = field(default_factory=dict)
    """Something that happens at a minute: an operator, `pulumi up`, a CI run."""
    floor: int = 0
    """The MinSize an operator set, which must stand until the restore."""
    throttling: bool = False
    """AWS throttles `Throttle.share` of the runner's and the job's calls."""
    ran: list[str] = field(default_factory=list)
    """The scheduled actions AWS ran, in order."""

    def __post_init__(self) -> None:
        def client(service: str) -> Any:
            return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                                config=RETRIES, **FAKE_CREDENTIALS)  # fmt: skip

        self.clients = Clients(client("autoscaling"), client("elbv2"), client("dynamodb"))
        self.cloudwatch = Metrics()
        self.alb = Reservations(self.clients.elbv2, units=0, clock=lambda: self.now)
        self.throttle = Throttle()
        self.throttle.attach(self.clients.autoscaling, self.clients.elbv2, self.clients.dynamodb)
        self.backoff = Backoff(self.monkeypatch)
        self.interval = timedelta(minutes=self.settings.prescale.run_every_minutes)
        self._create_group_and_room(client("ec2"))
        self.pulumi = PulumiUp(self.clients.autoscaling, "web-asg")
        self.plan = self.deploy(DEPLOYED_AT)
        self.config = RunnerConfig(
            "prod", Targets("web-asg", ALB_ARN, "room"), "Floodgate/Prescale"
        )
        self.runner(DEPLOYED_AT + MINUTE)  # the first pass after the deploy sizes the pool

    def _create_group_and_room(self, ec2: Any) -> None:
        """As Pulumi creates them: a group at 6/6/120 with a pool of 12 (18 prepared), and the
        room's table. No reservation on create: the runner sets the standing 100."""
        template = ec2.create_launch_template(
            LaunchTemplateName="web",
            LaunchTemplateData={"ImageId": "ami-0c9f0b5e1a2d3c4b5", "InstanceType": "m7i.large"},
        )["LaunchTemplate"]
        asg = self.clients.autoscaling
        asg.create_auto_scaling_group(
            AutoScalingGroupName="web-asg",
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"},
            MinSize=6, MaxSize=120, DesiredCapacity=6,
            AvailabilityZones=["ca-central-1a", "ca-central-1b", "ca-central-1d"],
        )  # fmt: skip
        asg.put_warm_pool(AutoScalingGroupName="web-asg", MinSize=12, MaxGroupPreparedCapacity=18)
        self.clients.dynamodb.create_table(
            TableName="room",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )

    def deploy(self, at: datetime, refresh: bool = False) -> NightPlan:
        """`pulumi up` at `at`: the actions it declares, and the plan the runner gets."""
        self.now = at
        plan, schedules = deployed(self.settings, at, "web-asg")
        self.pulumi.apply(schedules, at, refresh=refresh)
        self.plan = plan
        return plan

    def runner(self, at: datetime) -> dict[str, Any]:
        """One invocation by Scheduler: the runner's pass with the deployed plan."""
        self.now, self.backoff.elapsed = at, 0.0
        stop_after = self.interval.total_seconds() - 10 - 20  # its timeout, less the margin
        self.throttle.active = self.throttling
        try:
            summary = run(self.plan, self.clients, self.cloudwatch, self.config, at,
                          lambda: self.backoff.elapsed > stop_after)  # fmt: skip
        finally:
            self.throttle.active = False  # only the runner's and the job's calls are
        self.runs.append(summary)
        return summary

    def ci(self, at: datetime) -> int:
        self.now = at
        argv = ["--stack", "prod", "--asg-name", "web-asg", "--alb-arn", ALB_ARN,
                "--room-table", "room", "--now", at.isoformat()]  # fmt: skip
        self.throttle.active = self.throttling
        try:
            return job.run(argv, self.clients)
        finally:
            self.throttle.active = False

    def group(self) -> dict[str, Any]:
        """The group's sizes as Auto Scaling holds them (read from moto's backend in this
        process: DescribeAutoScalingGroups renders every instance, ~25 ms at 69)."""
        group = autoscaling_backends[ACCOUNT][REGION].autoscaling_groups["web-asg"]
        return {"MinSize": group.min_size, "DesiredCapacity": group.desired_capacity,
                "MaxSize": group.max_size}  # fmt: skip

    def play(self, until: datetime, check: Callable[[datetime], None]) -> None:
        """Minute by minute from FROM: AWS runs due actions, the runner passes every interval,
        the night's events happen, and `check` looks every 10 minutes."""
        passes = set(rate_passes(DEPLOYED_AT + MINUTE, self.interval, until))
        moment, due = FROM, FROM
        while moment <= until:
            self.now = moment
            if moment - LATE >= due:  # AWS's own schedules: not throttled API calls
                self.ran += run_due_actions(self.clients.autoscaling, "web-asg", moment - LATE)
                due = self._next_due()
            if moment in self.events:
                self.events.pop(moment)()
                due = FROM  # an operator, a deploy or a CI run may have put actions
            if moment in passes and self.runner(moment)["metrics"]["Writes"]:
                due = FROM
            if (moment - FROM) % timedelta(minutes=10) == timedelta(0):
                check(moment)
            moment += MINUTE

    def _next_due(self) -> datetime:
        """When the earliest scheduled action is due: nothing to run before (moto is asked
        again only after a write could have added one)."""
        listed = self.clients.autoscaling.describe_scheduled_actions(AutoScalingGroupName="web-asg")
        starts = [a["StartTime"] for a in listed["ScheduledUpdateGroupActions"]]
        return min(starts, default=datetime.max.replace(tzinfo=UTC))

    @property
    def election(self) -> EventLevers:
        return next(e for e in self.plan.events if e.key == KEY)


class Metrics:
    """CloudWatch for the runner's metrics, kept here (tests/functions/test_prescale_runner.py
    puts them to moto's CloudWatch)."""

    def __init__(self) -> None:
        self.data: list[dict[str, Any]] = []

    def put_metric_data(self, **kwargs: Any) -> None:
        self.data.append(kwargs)


@pytest.fixture
def prod() -> Settings:
    """prod with a load balancer its election night outpaces, so the night has reservation
    steps (tests.helpers.slow_alb); the job plans with it too."""
    return slow_alb(load_stack_settings("prod"))


@pytest.fixture
def world(aws: str, prod: Settings, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(
        job, "load_stack_settings", lambda stack: slow_alb(load_stack_settings(stack))
    )
    return World(aws, prod, monkeypatch)


def holds_the_plan(world: World, throttled_until: datetime | None = None) -> Callable:
    """The check every 10 minutes: MinSize at least what AWS must have applied by now (the
    plan's level a slip ago, or the operator's floor) and at most what the plan or the floor
    set in the last slip and interval; desired never below it; the reservation in effect at
    least what the running stage needs, and asked for as the plan steps it (within one runner
    interval, once any throttling has eased by `throttled_until` + two intervals); the warm
    pool sized for the event; the room's calendar holding the window."""
    e, slip, interval = world.election, world.election.slip, world.interval
    fleet_min = world.settings.fleet.min_size

    def check(t: datetime) -> None:
        group = world.group()
        low = max(e.min_size_at(t - slip) or fleet_min, world.floor if e.holding(t) else 0)
        high = max(e.min_size_since(t, slip + interval) or fleet_min, world.floor, low)
        where = f"at {t:%m-%d %H:%M}"
        assert low <= group["MinSize"] <= high, f"{where}: MinSize {group['MinSize']}, {low}-{high}"
        assert group["DesiredCapacity"] >= low, where
        need = e.need_at(t)
        if need is not None:
            assert world.alb.granted >= need.lcus, f"{where}: {world.alb.granted} LCUs in effect"
        eased = throttled_until is None or t >= throttled_until + 2 * interval
        if eased and t < e.restore_at:
            asked = {
                e.reservation_at(t - d) or 100 for d in (timedelta(0), interval, interval - MINUTE)
            }
            assert world.alb.requested in asked, f"{where}: {world.alb.requested} asked, {asked}"
        if e.holding(t) and t.minute == 0:  # hourly: two more calls
            pool = world.clients.autoscaling.describe_warm_pool(AutoScalingGroupName="web-asg")
            assert pool["WarmPoolConfiguration"]["MinSize"] == e.warm_pool, where
            item = world.clients.dynamodb.get_item(TableName="room", Key={"pk": {"S": "calendar"}})
            assert item["Item"]["events"]["M"][KEY]["M"]["mode"]["S"] == "armed", where

    return check


def end_of(world: World) -> datetime:
    return world.election.restore_at + 20 * MINUTE


def test_with_no_ci_on_the_day_the_levers_follow_the_plan_and_a_failed_reservation_is_redone(
    world,
) -> None:
    """Nothing but AWS acts: the actions, and the runner every 5 minutes. The request for the
    night's highest reservation comes back `failed`: the next pass asks again, and says so once
    (the job used to read a failed reservation as "in sync" and hold the step before it until
    the event ended)."""
    peak = max(s.value for s in world.election.lcu_steps)
    world.alb.fail_once = {peak}
    world.play(end_of(world), holds_the_plan(world))
    assert world.group()["MinSize"] == 6, "the restore handed the floor back"
    assert world.alb.asked[0][1] == 100, "the runner set the standing reservation after the deploy"
    first, retry = [moment for moment, units in world.alb.asked if units == peak]
    assert retry - first <= world.interval + world.alb.fulfil_after
    reported = [r for r in world.runs if r["metrics"]["Failures"]]
    assert len(reported) == 1 and "failed in ca-central-1a" in reported[0]["failures"][0]


def test_a_ci_run_six_hours_late_in_an_hour_of_85_pct_throttling_undoes_nothing(world) -> None:
    """23:00-00:00Z, 85 % of the runner's and the job's calls are throttled; the job's 17:23
    verification runs six hours late, inside it. The levers are where the plan wants them
    within two passes of the throttling easing, and the plan's head start covers the hour."""
    start, end = datetime(2028, 11, 7, 23, tzinfo=UTC), datetime(2028, 11, 8, 0, tzinfo=UTC)
    late = datetime(2028, 11, 7, 23, 23, tzinfo=UTC)
    world.events[start] = lambda: setattr(world, "throttling", True)
    world.events[late] = lambda: world.ci(late)
    world.events[end] = lambda: setattr(world, "throttling", False)
    world.play(end_of(world), holds_the_plan(world, throttled_until=end))
    assert world.throttle.throttled > 50
    during = [r for r in world.runs if start <= _at(r) < end]
    assert any(r["failures"] for r in during), "throttling that outlasts the retries is reported"
    assert not any(r["failures"] for r in world.runs if _at(r) >= end + world.interval)


def test_a_max_raise_survives_a_refresh_and_a_03z_floor_stands_until_the_restore(world) -> None:
    """02:00Z an operator runs the group at 140 under a max of 150; 02:30Z `pulumi up
    --refresh`; 03:00Z they raise MinSize to 90 (the plan: 57, up to 69, then 63, 54 ... 8).
    No action cuts the group to the plan's 120, and none lowers MinSize below 90 before the
    restore, which hands the floor back."""
    asg = world.clients.autoscaling
    raised, refreshed = (datetime(2028, 11, 8, 2, m, tzinfo=UTC) for m in (0, 30))
    floor_at = datetime(2028, 11, 8, 3, tzinfo=UTC)

    def floor() -> None:
        asg.update_auto_scaling_group(AutoScalingGroupName="web-asg", MinSize=90)
        world.floor = 90

    world.events[raised] = lambda: asg.update_auto_scaling_group(
        AutoScalingGroupName="web-asg", MaxSize=150, DesiredCapacity=140
    )
    world.events[refreshed] = lambda: (world.deploy(refreshed, refresh=True), None)[1]
    world.events[floor_at] = floor
    plan = holds_the_plan(world)

    def check(t: datetime) -> None:
        plan(t)
        if t > refreshed:
            group = world.group()
            assert (group["DesiredCapacity"], group["MaxSize"]) == (140, 150), t

    world.play(end_of(world), check)
    assert world.group()["MinSize"] == 6


def test_a_floor_before_the_window_stands_and_an_update_after_a_stage_keeps_it(world) -> None:
    """An operator's standing MinSize of 20: the plan's later steps (18, 15, 11, 8) stop at 20.
    A `pulumi up` a minute after the 69 stage's time, before AWS has run it (90 s late), keeps
    the action in AWS, which runs it."""
    asg = world.clients.autoscaling
    asg.update_auto_scaling_group(AutoScalingGroupName="web-asg", MinSize=20, DesiredCapacity=20)
    world.floor = 20
    stage = next(s for s in world.election.min_steps if s.value == 69)
    up = stage.at + MINUTE
    world.events[up] = lambda: (world.deploy(up), None)[1]
    world.play(end_of(world), holds_the_plan(world))
    assert not world.pulumi.refused
    (name,) = [a.name for a in world.election.actions() if a.start == stage.at]
    assert name in world.ran, "AWS ran the action the update had stopped declaring"


def _at(summary: dict[str, Any]) -> datetime:
    return datetime.strptime(summary["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

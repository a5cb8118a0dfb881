"""The runner and its engine, piece by piece: the plan document it is handed, its FG_*
environment, the metrics it publishes (to moto's CloudWatch), a pass short of time, the floor
it keeps, and what it makes of the reservation AWS reports."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from functions.prescale import handler as runner
from functions.prescale.levers import (
    Change,
    Pass,
    Reservation,
    Shortfall,
    Targets,
    apply_pass,
    floor_for,
    plan_pass,
    reservation_changes,
    room_changes,
    shortfalls,
)
from functions.prescale.night_plan import NightPlan, NightPlanError
from planning.calendar import load_calendar
from planning.event_plan import night_plan, plan_events
from tests.aws_night import ALB_ARN
from tests.helpers import client, slow_alb

NOW = datetime(2028, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def plan(request) -> NightPlan:
    from planning.settings import load_stack_settings

    prod = slow_alb(load_stack_settings("prod"))
    return night_plan(plan_events(load_calendar(), prod, "prod", NOW), prod, "prod")


def election(plan: NightPlan):
    return next(e for e in plan.events if e.key == "us-general-election-20281107")


def test_the_plan_document_round_trips_and_is_the_same_text_each_time(plan) -> None:
    text = plan.to_json()
    assert NightPlan.from_json(text) == plan
    assert NightPlan.from_json(text).to_json() == text, "no churn in the schedule's input"
    assert len(text.encode()) < 64 * 1024, "prod's 120 days fit well inside the limit"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), r"plan\.version: 2 is not 1"),
        (lambda d: d.pop("fleet"), r"plan\.fleet: must be an object \(got NoneType\)"),
        (lambda d: d["events"][0].update(room="maybe"), r"plan\.events\[0\]\.room: 'maybe' is not"),
        (lambda d: d["events"][0]["min_steps"][0].__setitem__(0, "soon"),
         r"plan\.events\[0\]\.min_steps\[0\]: 'soon' is not YYYY-MM-DDThh:mm:ssZ"),
        (lambda d: d["events"][0]["lcu_steps"].reverse(), r"lcu_steps: steps must be in time"),
        (lambda d: d["events"][0].update(warm_pool=-1), r"warm_pool: must be a whole number >= 0"),
        (lambda d: d["events"].reverse(), r"plan\.events: must be soonest first"),
    ],
)  # fmt: skip
def test_a_bad_plan_is_refused_naming_the_key(plan, change, message) -> None:
    document = json.loads(plan.to_json())
    change(document)
    with pytest.raises(NightPlanError, match=message):
        NightPlan.from_document(document)


def test_the_runner_names_every_missing_variable() -> None:
    with pytest.raises(runner.RunnerConfigError) as error:
        runner.RunnerConfig.from_env({"FG_STACK": "prod", "FG_ASG_NAME": ""})
    text = str(error.value)
    assert "'FG_ALB_ARN', 'FG_ROOM_TABLE', 'FG_METRIC_NAMESPACE'" in text
    assert "empty ['FG_ASG_NAME']" in text


FULL_ENV = {"FG_STACK": "prod", "FG_ASG_NAME": "web-asg", "FG_ALB_ARN": "", "FG_ROOM_TABLE": "",
            "FG_METRIC_NAMESPACE": "Floodgate/Prescale"}  # fmt: skip


def test_every_variable_is_named_when_none_is_set() -> None:
    """Catches a variable dropped from the list the runner checks (it would fail as a KeyError)."""
    with pytest.raises(runner.RunnerConfigError) as error:
        runner.RunnerConfig.from_env({})
    for name in FULL_ENV:
        assert f"'{name}'" in str(error.value)


@pytest.mark.parametrize("name", ["FG_STACK", "FG_ASG_NAME", "FG_METRIC_NAMESPACE"])
def test_an_empty_stack_group_or_namespace_is_refused_naming_it(name) -> None:
    """Catches a required variable dropped from the empty check: metrics with a Stack dimension
    of "" or an empty namespace, or a group named "", would pass unnoticed."""
    with pytest.raises(runner.RunnerConfigError, match=rf"empty \['{name}'\]"):
        runner.RunnerConfig.from_env({**FULL_ENV, name: ""})


def test_an_empty_alb_or_room_means_none() -> None:
    """FG_ALB_ARN and FG_ROOM_TABLE empty: a stack without either still gets its runner."""
    config = runner.RunnerConfig.from_env(FULL_ENV)
    assert config.targets == Targets("web-asg", None, None)


def test_the_shortfall_metrics_are_each_levers_own_gap() -> None:
    """Catches the alarms' figures swapped or summed: InstanceShortfall is the larger gap of any
    event in instances (57 needed, 6 in service: 51), LcuShortfall the same in LCUs."""
    found = Pass(shortfalls=[Shortfall("instances", 57, 6, "a"), Shortfall("lcus", 450, 100, "a"),
                             Shortfall("instances", 18, 10, "b")])  # fmt: skip
    figures = runner.metrics(found)
    assert (figures["InstanceShortfall"], figures["LcuShortfall"]) == (51, 350)
    assert runner.metrics(Pass())["InstanceShortfall"] == 0


def test_the_handler_passes_and_publishes_its_metrics(aws, web_group, room_table, plan,
                                                      monkeypatch) -> None:  # fmt: skip
    """Scheduler's invocation, whole: the FG_* environment, boto3 as the Lambda runtime builds
    it (here pointed at moto by AWS_ENDPOINT_URL), the plan as the event; then the metrics in
    CloudWatch that the alarms read."""
    env = {"FG_STACK": "prod", "FG_ASG_NAME": web_group, "FG_ALB_ARN": "",
           "FG_ROOM_TABLE": room_table, "FG_METRIC_NAMESPACE": "Floodgate/Prescale",
           "AWS_ENDPOINT_URL": aws, "AWS_DEFAULT_REGION": "ca-central-1"}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(runner, "_now", lambda: NOW)
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: 290_000)
    summary = runner.handler(plan.to_document(), context)
    assert summary["failures"] == [] and summary["metrics"]["Writes"] > 20  # actions, pool, room
    cloudwatch = client("cloudwatch", aws)
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace="Floodgate/Prescale")[
        "Metrics"]}  # fmt: skip
    assert names == {"Passes", "Failures", "Writes", "InstanceShortfall", "LcuShortfall"}
    again = runner.handler(plan.to_document(), context)
    assert again["metrics"]["Writes"] == 0, "idempotent"


def test_a_pass_short_of_time_does_the_backstop_first_and_reports_the_rest(
    clients, web_group, plan
) -> None:
    calls = iter([False, False, True, True, True])  # group and schedule get their turn
    found = plan_pass(clients, Targets(web_group), plan, NOW, lambda: next(calls))
    skipped = [f.layer for f in found.failures]
    assert skipped == ["warm_pool", "room"]
    assert all("the next run does it" in str(f.error) for f in found.failures)


def group(min_size: int, desired: int | None = None) -> dict[str, Any]:
    return {"MinSize": min_size, "DesiredCapacity": desired or min_size, "MaxSize": 120}


def test_the_floor_before_the_window_is_the_groups_own(plan) -> None:
    e = election(plan)
    assert floor_for(e, group(20), {}, e.raise_at - timedelta(hours=1)) == 20


def test_inside_the_window_the_floor_is_carried_by_the_actions_and_raised_by_an_operator(
    plan,
) -> None:
    e = election(plan)
    moment = datetime(2028, 11, 8, 3, 30, tzinfo=UTC)  # the plan holds 69 here
    later = {a.name: {"MinSize": 20} for a in e.actions() if a.start > moment and not a.restore}
    lows = {n: v for n, v in later.items() if v["MinSize"] > next(
        a.min_size for a in e.actions() if a.name == n)}  # fmt: skip
    assert lows, "some later actions plan less than 20"
    assert floor_for(e, group(69), later, moment) == 20, "carried by the rewritten actions"
    assert floor_for(e, group(90), later, moment) == 90, "an operator's raise above it all"
    assert floor_for(e, group(69), {}, moment) == 0, "nothing to hold beyond the plan"


def test_a_step_down_aws_has_yet_to_run_is_not_an_operators_raise(plan) -> None:
    """The 05:00 step to 63, a minute late: the group still at 69 is the plan, not a floor."""
    e = election(plan)
    step = next(s for s in e.min_steps if s.value == 63)
    assert floor_for(e, group(69), {}, step.at + timedelta(seconds=60)) == 0


def state(units: int, *codes: str, effective: float | None = None, decreases: int = 2) -> dict:
    zones = [{"AvailabilityZone": f"ca-central-1{z}", "State": {"Code": c}}
             for z, c in zip("abd", codes, strict=False)]  # fmt: skip
    if effective is not None:
        for zone in zones:
            zone["EffectiveCapacityUnits"] = effective / len(zones)
    return {"MinimumLoadBalancerCapacity": {"CapacityUnits": units}, "CapacityReservationState":
            zones, "DecreaseRequestsRemaining": decreases}  # fmt: skip


def test_what_is_in_effect_is_what_the_zones_report() -> None:
    assert Reservation.of(state(539, "provisioned", "provisioned", "provisioned")).granted == 539
    assert Reservation.of(state(539, "pending", "pending", "pending")).granted == 0
    assert Reservation.of(state(539, "pending", "pending", "pending", effective=450)).granted == 450
    assert Reservation.of(state(0)).granted == 0


class Elb:
    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def modify_capacity_reservation(self, **kwargs: Any) -> None:
        self.asked.append(kwargs)


def changes(plan: NightPlan, reported: dict, moment: datetime):
    elb = Elb()
    clients: Any = SimpleNamespace(elbv2=elb)
    found = reservation_changes(clients, Targets("web", ALB_ARN), plan, Reservation.of(reported),
                                moment)  # fmt: skip
    for change in found:
        change.apply()
    return found, elb.asked


def test_a_failed_reservation_is_asked_again_and_reported(plan) -> None:
    e = election(plan)
    moment = e.lcu_steps[0].at + timedelta(minutes=10)
    (change,), asked = changes(plan, state(152, "failed", "failed", "provisioned"), moment)
    assert change.action == "retry" and asked == [{"LoadBalancerArn": ALB_ARN,
        "MinimumLoadBalancerCapacity": {"CapacityUnits": 152}}]  # fmt: skip
    assert change.problem and "failed in ca-central-1a, ca-central-1b" in change.problem


def test_nothing_is_asked_while_aws_works_on_a_request(plan) -> None:
    e = election(plan)
    moment = e.lcu_steps[1].at
    (change,), asked = changes(plan, state(152, "pending", "pending", "pending"), moment)
    assert change.action == "skip" and asked == []
    assert changes(plan, state(203, "rebalancing"), moment)[1] == []


def test_inside_a_window_only_the_plans_own_decreases_are_made(plan) -> None:
    e = election(plan)
    inside = datetime(2028, 11, 8, 4, tzinfo=UTC)
    (change,), asked = changes(plan, state(600, "provisioned"), inside)  # raised by hand
    assert change.action == "skip" and asked == []
    down = e.lcu_steps[-1]  # once the load has grown the load balancer past the peak
    (change,), asked = changes(plan, state(306, "provisioned", decreases=0), down.at)
    assert "none left today" in change.detail["reason"]
    (change,), asked = changes(plan, state(306, "provisioned"), down.at)
    assert change.action == "lower" and asked[0]["MinimumLoadBalancerCapacity"] == {
        "CapacityUnits": down.value
    }


def test_a_stale_runner_leaves_the_actions_of_events_it_does_not_know(
    clients, web_group, plan
) -> None:
    """Deployed in June, the runner's plan has no election; the job, planning now, put the
    election's actions. The runner's pass deletes none of them (the job would: it judges
    every owned action against the calendar)."""
    from planning.settings import load_stack_settings

    prod = slow_alb(load_stack_settings("prod"))
    june = datetime(2028, 6, 1, tzinfo=UTC)
    stale = night_plan(plan_events(load_calendar(), prod, "prod", june), prod, "prod")
    assert "us-general-election-20281107" not in {e.key for e in stale.events}
    for change in plan_pass(clients, Targets(web_group), plan, NOW).changes:
        change.apply()
    config = runner.RunnerConfig("prod", Targets(web_group), "Floodgate/Prescale")
    runner.run(stale, clients, SimpleNamespace(put_metric_data=lambda **_: None), config, NOW)
    left = clients.autoscaling.describe_scheduled_actions(AutoScalingGroupName=web_group)
    names = {a["ScheduledActionName"] for a in left["ScheduledUpdateGroupActions"]}
    assert "floodgate-us-general-election-20281107-restore" in names
    theirs = plan_pass(clients, Targets(web_group), stale, NOW)
    assert any(c.action == "delete" and "general-election" in c.target for c in theirs.changes)


def test_one_failed_write_never_stops_the_writes_after_it() -> None:
    """Each change is its own AWS call: a refused scheduled action must not cost the warm pool
    or the reservation behind it their write, and each failure is reported."""
    made: list[str] = []

    def write(name: str):
        def apply() -> None:
            if name.startswith("refused"):
                raise RuntimeError(f"{name}: ValidationError")
            made.append(name)

        return apply

    names = ["refused-action", "pool", "refused-reservation", "room"]
    found = Pass(changes=[Change("asg", "put", n, {}, write(n)) for n in names])
    logged: list[tuple[str, str]] = []
    apply_pass(found, lambda change, outcome: logged.append((change.target, outcome)))
    assert made == ["pool", "room"]
    assert [f.target for f in found.failures] == ["refused-action", "refused-reservation"]
    assert logged == [
        ("refused-action", "failed"),
        ("pool", "applied"),
        ("refused-reservation", "failed"),
        ("room", "applied"),
    ]


def test_a_handler_with_less_than_its_margin_left_starts_no_layer(
    aws, web_group, room_table, plan, monkeypatch
) -> None:
    """Catches the last-20-s margin dropped: with 19 s left (Lambda's remaining time, from the
    context) no layer starts, so none is cut off half done; each is reported for the next."""
    env = {**FULL_ENV, "FG_ASG_NAME": web_group, "FG_ROOM_TABLE": room_table,
           "AWS_ENDPOINT_URL": aws, "AWS_DEFAULT_REGION": "ca-central-1"}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(runner, "_now", lambda: NOW)
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: 19_000)
    summary = runner.handler(plan.to_document(), context)
    assert summary["metrics"]["Writes"] == 0
    assert len(summary["failures"]) == 4, "group, schedule, warm pool and room, none run"
    assert all("the next run does it" in f for f in summary["failures"])


def in_service(count: int, *, pending: int = 0) -> dict[str, Any]:
    """A group as DescribeAutoScalingGroups lists it: `count` in service, `pending` launching."""
    states = ["InService"] * count + ["Pending"] * pending
    instances = [{"LifecycleState": state} for state in states]
    return {"MinSize": 6, "DesiredCapacity": len(states), "MaxSize": 120, "Instances": instances}


AT_57 = datetime(2028, 11, 8, 3, 10, tzinfo=UTC)
"""The election's 03:00-03:30Z stage needs 57 instances in service (worked from the plan)."""


def test_exactly_what_the_stage_needs_in_service_is_no_shortfall(plan) -> None:
    """Catches `<` turned `<=`: 57 in service for a stage of 57 pages nobody; 56 does."""
    assert shortfalls(in_service(57), None, plan, AT_57) == []
    assert shortfalls(in_service(56), None, plan, AT_57) == [
        Shortfall("instances", 57, 56, "us-general-election-20281107")
    ]


def test_instances_still_launching_are_not_in_service(plan) -> None:
    """Catches counting every instance: 40 launching (Pending) serve nobody yet, so 20 in
    service is a shortfall of 37 against the stage's 57."""
    assert shortfalls(in_service(20, pending=40), None, plan, AT_57) == [
        Shortfall("instances", 57, 20, "us-general-election-20281107")
    ]


def test_a_past_event_in_the_deployed_plan_never_hides_a_later_ones_shortfall(plan) -> None:
    """Catches the loop over events stopping at the first with no stage running: the runner's
    plan (deployed 1 October) still lists October's debates on election night."""
    assert plan.events[0].key.startswith("us-vice-presidential-debate")
    found = shortfalls(in_service(6), None, plan, AT_57)
    assert [(s.event, s.needed, s.actual) for s in found] == [
        ("us-general-election-20281107", 57, 6)
    ]


def test_a_rebalancing_reservation_is_not_asked_to_change(plan) -> None:
    """Catches `rebalancing` dropped from the states AWS takes no request in. AWS: "To update an
    existing reservation, the previous request must be provisioned or failed" (ELB user guide,
    Request Load balancer Capacity Unit reservation for your Application Load Balancer,
    https://docs.aws.amazon.com/elasticloadbalancing/latest/application/request-capacity-unit-reservation.html);
    `rebalancing` is one of the four codes (API reference, CapacityReservationStatus)."""
    moment = election(plan).lcu_steps[1].at  # the plan wants 203; 152 is rebalancing
    (change,), asked = changes(plan, state(152, "rebalancing", "provisioned"), moment)
    assert change.action == "skip" and asked == []


class Table:
    def __init__(self) -> None:
        self.put: list[dict[str, Any]] = []

    def get_item(self, **_: Any) -> dict[str, Any]:
        return {}

    def put_item(self, **kwargs: Any) -> None:
        self.put.append(kwargs["Item"])


def test_an_event_with_the_room_off_is_left_out_of_the_calendar(plan) -> None:
    """Catches the `off` filter dropped: the room must not hear of an event it sits out."""
    off = dataclasses.replace(election(plan), room="off")
    quiet = dataclasses.replace(
        plan, events=tuple(off if e.key == off.key else e for e in plan.events)
    )
    table = Table()
    clients: Any = SimpleNamespace(dynamodb=table)
    for change in room_changes(clients, Targets("web", room_table="room"), quiet, NOW):
        change.apply()
    (item,) = table.put
    listed = set(item["events"]["M"])
    assert off.key not in listed and len(listed) == len(plan.events) - 1

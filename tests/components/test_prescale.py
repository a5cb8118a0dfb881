"""Declared schedules: one per stage step (its start less its lead), the restore after end +
cooldown, in UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from components.prescale import KEEP, METRIC_NAMESPACE, rate
from functions.prescale.handler import ENVIRONMENT, RunnerConfig
from functions.prescale.night_plan import NightPlan
from planning.event_plan import night_plan, plan_actions
from tests.aws_night import prescale_program
from tests.helpers import stack_run

NOW = datetime(2028, 10, 1, tzinfo=UTC)
SCHEDULE = "aws:autoscaling/schedule:Schedule"
KEEP_DESIRED = KEEP


def prescale(settings, now=NOW, room=True):
    return prescale_program(settings, now, room=room)


def build(evaluate, settings, now=NOW):
    plans, program = prescale(settings, now)
    run = evaluate(program)
    return plans, {s.inputs["scheduledActionName"]: s.inputs for s in run.of_type(SCHEDULE)}


def test_each_event_gets_its_stage_steps_and_a_restore(evaluate, prod) -> None:
    plans, schedules = build(evaluate, prod)
    assert set(schedules) == {a.name for p in plans for a in plan_actions(p)}
    election = next(p for p in plans if p.key == "us-general-election-20281107")
    peak = [schedules[a.name] for a in plan_actions(election) if a.min_size == election.desired]
    # -1: the provider leaves desired alone; AWS raises it to the new min, never lowers it.
    assert peak and all(
        (s["minSize"], s["desiredCapacity"], s["maxSize"]) == (69, -1, 120) for s in peak
    )
    restore = schedules["floodgate-us-general-election-20281107-restore"]
    assert (restore["minSize"], restore["maxSize"]) == (prod.fleet.min_size, prod.fleet.max_size)
    assert restore["desiredCapacity"] == KEEP_DESIRED
    assert all(s["desiredCapacity"] == KEEP_DESIRED for s in schedules.values())


def test_pulumi_names_follow_the_component_and_alias_the_names_before(evaluate, prod) -> None:
    run = evaluate(prescale(prod)[1])
    parent = "urn:pulumi:test::floodgate::floodgate:prescale:Prescale$" + SCHEDULE
    schedules = run.of_type(SCHEDULE)
    assert schedules
    for schedule in schedules:
        action = schedule.inputs["scheduledActionName"]
        assert schedule.name == "pre-" + action.removeprefix("floodgate-")
        # The URN each had when it was named by its action: Pulumi keeps it, not replaces it.
        assert schedule.aliases == (f"{parent}::{action}",)


def test_times_in_utc_are_each_stages_start_less_its_lead(evaluate, prod) -> None:
    plans, schedules = build(evaluate, prod)
    checked = 0
    for plan in plans:
        for stage in plan.stages:
            if stage.lead and plan.min_size_at(stage.start - stage.lead) == stage.min_size:
                [action] = [
                    schedules[a.name]
                    for a in plan_actions(plan)
                    if a.start == stage.start - stage.lead
                ]
                start = datetime.strptime(action["startTime"], "%Y-%m-%dT%H:%M:%SZ")
                assert start.replace(tzinfo=UTC) + stage.lead == stage.start
                assert ZoneInfo(action["timeZone"]) == ZoneInfo(plan.occurrence.time_zone)
                checked += 1
    assert checked >= len(plans)


def test_election_nights_first_raise_is_19_10_eastern_standard_time(evaluate, prod) -> None:
    _, schedules = build(evaluate, prod)
    first = schedules["floodgate-us-general-election-20281107-stage-1"]
    assert (first["startTime"], first["minSize"]) == ("2028-11-08T00:10:00Z", 8)


def test_a_schedule_due_within_create_ahead_is_left_to_the_runner(evaluate, prod) -> None:
    """An update takes 10-20 minutes and AWS refuses a start already past: `pulumi up`
    declares only actions more than `create_ahead_s` (30 min) away."""
    during = datetime(2028, 11, 8, 3, tzinfo=UTC)  # election night under way; 03:10 is next
    _, schedules = build(evaluate, prod, now=during)
    assert "floodgate-us-general-election-20281107-stage-1" not in schedules
    assert "floodgate-us-general-election-20281107-stage-7" not in schedules  # 03:10, 10 min
    assert "floodgate-us-general-election-20281107-stage-8" in schedules  # 05:00
    assert "floodgate-us-general-election-20281107-restore" in schedules
    ahead = timedelta(seconds=prod.prescale.create_ahead_s)
    assert all(
        datetime.strptime(s["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) > during + ahead
        for s in schedules.values()
    )


def test_actions_keep_their_sizes_and_outlive_their_declaration(evaluate, prod) -> None:
    """The runner owns the sizes (floors, an operator's max): a refresh never puts the plan's
    back. An action Pulumi stops declaring stays in AWS until AWS runs it."""
    run = evaluate(prescale(prod)[1])
    schedules = run.of_type(SCHEDULE)
    assert schedules
    for schedule in schedules:
        assert set(schedule.ignore_changes) >= {"minSize", "maxSize", "desiredCapacity"}
        assert schedule.retain_on_delete


def test_names_are_stable_between_runs(evaluate, prod) -> None:
    assert build(evaluate, prod)[1] == build(evaluate, prod)[1]


@pytest.mark.parametrize("stack", ["prod"])
def test_whole_program_declares_schedules_and_sizes_the_warm_pool(stack: str) -> None:
    run = stack_run(stack)
    names = {s.inputs["scheduledActionName"] for s in run.of_type(SCHEDULE)}
    assert "floodgate-us-general-election-20281107-stage-1" in names
    group = run.one("aws:autoscaling/group:Group").inputs
    assert group["warmPool"]["minSize"] == 12  # sized for the next event, a debate


FUNCTION = "aws:lambda/function:Function"


def runner(evaluate, settings, room=True):
    plans, program = prescale(settings, room=room)
    return plans, evaluate(program)


def test_the_runner_gets_the_night_plan_every_interval(evaluate, prod) -> None:
    """EventBridge Scheduler carries the same plan the job computes, every 5 minutes, and keeps
    an invocation it cannot deliver in a dead-letter queue."""
    plans, run = runner(evaluate, prod)
    (schedule,) = run.of_type("aws:scheduler/schedule:Schedule")
    inputs = schedule.inputs
    assert inputs["scheduleExpression"] == "rate(5 minutes)"
    assert inputs["flexibleTimeWindow"] == {"mode": "OFF"}
    plan = NightPlan.from_json(inputs["target"]["input"])
    assert plan == night_plan(plans, prod, "prod")
    assert [e.key for e in plan.events] == [p.key for p in plans]
    (dlq,) = run.of_type("aws:sqs/queue:Queue")
    assert inputs["target"]["deadLetterConfig"]["arn"] == dlq.outputs["arn"]
    assert inputs["target"]["retryPolicy"]["maximumEventAgeInSeconds"] <= 300


def test_the_runner_ends_inside_its_interval_one_at_a_time_never_retried(evaluate, prod) -> None:
    _, run = runner(evaluate, prod)
    (function,) = run.of_type(FUNCTION)
    assert function.inputs["timeout"] < 300 and function.inputs["reservedConcurrentExecutions"] == 1
    assert function.inputs["handler"] == "prescale.handler.handler"
    (config,) = run.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
    assert config.inputs["maximumRetryAttempts"] == 0
    assert config.inputs["maximumEventAgeInSeconds"] <= 300


def test_the_runner_environment_is_its_handlers_contract(evaluate, prod) -> None:
    _, run = runner(evaluate, prod)
    (function,) = run.of_type(FUNCTION)
    variables = function.inputs["environment"]["variables"]
    assert set(variables) == set(ENVIRONMENT)
    config = RunnerConfig.from_env(variables)
    assert config.targets.asg_name == "asg" and config.targets.room_table == "room"
    assert config.namespace == METRIC_NAMESPACE and config.stack == "prod"


def _runner_policy(run) -> list[dict]:
    (policy,) = [
        p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "pre-prescale"
    ]
    return json.loads(policy.inputs["policy"])["Statement"]


@pytest.mark.parametrize("room", [True, False])
def test_the_runner_may_change_this_stacks_levers_and_nothing_else(evaluate, prod, room) -> None:
    _, run = runner(evaluate, prod, room=room)
    by_action = {a: s for s in _runner_policy(run) for a in s["Action"]}
    assert by_action["autoscaling:UpdateAutoScalingGroup"]["Resource"].endswith("/asg")
    assert by_action["autoscaling:PutScheduledUpdateGroupAction"]["Resource"].endswith("/asg")
    assert by_action["elasticloadbalancing:ModifyCapacityReservation"]["Resource"].endswith(
        "loadbalancer/app/web/1"
    )
    # On "*" only reads, and the runner's own metrics: GetMetricData (following the night's
    # RequestCount) and DescribeCapacityReservation have no resource-level permissions.
    writes = [a for a, s in by_action.items() if s["Resource"] == "*"]
    assert all(
        a.split(":")[1].startswith(("Describe", "PutMetricData", "GetMetricData")) for a in writes
    )
    if room:
        calendar = by_action["dynamodb:PutItem"]
        assert calendar["Condition"] == {
            "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["calendar"]}
        }
    else:
        assert not any(a.startswith("dynamodb:") for a in by_action)


def test_what_the_runner_cannot_do_pages_a_human(evaluate, prod) -> None:
    _, run = runner(evaluate, prod)
    alarms = {a.name: a.inputs for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert set(alarms) == {
        f"pre-prescale-{label}"
        for label in ("failures", "instances-short", "lcus-short", "stopped", "errors",
                      "undelivered")
    }  # fmt: skip
    assert all(a["alarmActions"] == ["arn:aws:sns:ca-central-1:123456789012:alarms"]
               for a in alarms.values())  # fmt: skip
    stopped = alarms["pre-prescale-stopped"]
    assert (stopped["metricName"], stopped["treatMissingData"]) == ("Passes", "breaching")
    assert stopped["comparisonOperator"] == "LessThanThreshold"
    assert alarms["pre-prescale-undelivered"]["namespace"] == "AWS/SQS"


@pytest.mark.parametrize(("minutes", "expression"), [(1, "rate(1 minute)"), (5, "rate(5 minutes)")])
def test_the_runners_rate_reads_as_scheduler_spells_it(minutes: int, expression: str) -> None:
    assert rate(minutes) == expression


def test_the_runners_role_holds_exactly_the_levers_it_moves(evaluate, prod) -> None:
    """Catches an extra action on the group or load balancer (a delete, say): the test above
    checks where each lever points, not that nothing else rides along."""
    _, run = runner(evaluate, prod)
    actions = {a for s in _runner_policy(run) for a in s["Action"]}
    assert actions == {
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeScheduledActions",
        "autoscaling:DescribeWarmPool",
        "autoscaling:PutScheduledUpdateGroupAction",
        "autoscaling:DeleteScheduledAction",
        "autoscaling:PutWarmPool",
        "autoscaling:UpdateAutoScalingGroup",
        "elasticloadbalancing:DescribeCapacityReservation",
        "elasticloadbalancing:ModifyCapacityReservation",
        "cloudwatch:PutMetricData",
        "cloudwatch:GetMetricData",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }

"""Declared schedules: one per stage step (its start less its lead), the restore after end +
cooldown, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from components.prescale import KEEP_DESIRED, Prescale, PrescaleArgs
from planning.calendar import load_calendar
from planning.event_plan import plan_actions, plan_events
from tests.helpers import stack_run

NOW = datetime(2028, 10, 1, tzinfo=UTC)


def build(evaluate, settings, now=NOW):
    plans = plan_events(load_calendar(), settings, "prod", now)
    run = evaluate(lambda: Prescale("pre", PrescaleArgs(plans=plans, group_name="asg", now=now)))
    return plans, {s.inputs["scheduledActionName"]: s.inputs for s in run.of_type(SCHEDULE)}


SCHEDULE = "aws:autoscaling/schedule:Schedule"


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
    plans = plan_events(load_calendar(), prod, "prod", NOW)
    run = evaluate(lambda: Prescale("pre", PrescaleArgs(plans=plans, group_name="asg", now=NOW)))
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


def test_a_schedule_whose_time_has_passed_is_not_declared(evaluate, prod) -> None:
    during = datetime(2028, 11, 8, 3, tzinfo=UTC)  # election night under way
    _, schedules = build(evaluate, prod, now=during)
    assert "floodgate-us-general-election-20281107-stage-1" not in schedules
    assert "floodgate-us-general-election-20281107-restore" in schedules
    assert all(
        datetime.strptime(s["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) > during
        for s in schedules.values()
    )


def test_names_are_stable_between_runs(evaluate, prod) -> None:
    assert build(evaluate, prod)[1] == build(evaluate, prod)[1]


@pytest.mark.parametrize("stack", ["prod"])
def test_whole_program_declares_schedules_and_sizes_the_warm_pool(stack: str) -> None:
    run = stack_run(stack)
    names = {s.inputs["scheduledActionName"] for s in run.of_type(SCHEDULE)}
    assert "floodgate-us-general-election-20281107-stage-1" in names
    group = run.one("aws:autoscaling/group:Group").inputs
    assert group["warmPool"]["minSize"] == 12  # sized for the next event, a debate

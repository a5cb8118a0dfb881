"""Declared schedules: raise before start - lead, restore after end + cooldown, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from components.prescale import KEEP_DESIRED, Prescale, PrescaleArgs
from planning.calendar import load_calendar
from planning.event_plan import plan_events
from tests.conftest import stack_run

NOW = datetime(2028, 10, 1, tzinfo=UTC)


def build(evaluate, settings, now=NOW):
    plans = plan_events(load_calendar(), settings, "prod", now)
    run = evaluate(
        lambda: Prescale(
            "pre", PrescaleArgs(plans=plans, fleet=settings.fleet, group_name="asg", now=now)
        )
    )
    return plans, {s.name: s.inputs for s in run.of_type("aws:autoscaling/schedule:Schedule")}


def test_each_event_gets_a_raise_and_a_restore(evaluate, prod) -> None:
    plans, schedules = build(evaluate, prod)
    assert len(schedules) == 2 * len(plans)
    election = next(p for p in plans if p.key == "us-general-election-20281107")
    raise_ = schedules["floodgate-us-general-election-20281107-raise"]
    # -1: the provider leaves desired alone; AWS raises it to the new min, never lowers it.
    assert (raise_["minSize"], raise_["desiredCapacity"], raise_["maxSize"]) == (69, -1, 120)
    assert raise_["scheduledActionName"] == election.raise_action
    restore = schedules["floodgate-us-general-election-20281107-restore"]
    assert (restore["minSize"], restore["maxSize"]) == (prod.fleet.min_size, prod.fleet.max_size)
    assert restore["desiredCapacity"] == KEEP_DESIRED


def test_times_in_utc_match_the_events_local_time(evaluate, prod) -> None:
    plans, schedules = build(evaluate, prod)
    for plan in plans:
        raise_ = schedules[plan.raise_action]
        start = datetime.strptime(raise_["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        local = (start + plan.lead).astimezone(ZoneInfo(raise_["timeZone"]))
        assert local == plan.occurrence.local_start
        assert local.replace(tzinfo=None) == plan.occurrence.spec.start.replace(
            year=local.year, month=local.month, day=local.day
        )


def test_election_night_raise_is_17_00_eastern_standard_time(evaluate, prod) -> None:
    _, schedules = build(evaluate, prod)
    assert schedules["floodgate-us-general-election-20281107-raise"]["startTime"] == (
        "2028-11-07T22:00:00Z"
    )


def test_a_schedule_whose_time_has_passed_is_not_declared(evaluate, prod) -> None:
    during = datetime(2028, 11, 8, 3, tzinfo=UTC)  # election night under way
    _, schedules = build(evaluate, prod, now=during)
    assert "floodgate-us-general-election-20281107-raise" not in schedules
    assert "floodgate-us-general-election-20281107-restore" in schedules


def test_names_are_stable_between_runs(evaluate, prod) -> None:
    assert build(evaluate, prod)[1] == build(evaluate, prod)[1]


@pytest.mark.parametrize("stack", ["prod"])
def test_whole_program_declares_schedules_and_sizes_the_warm_pool(stack: str) -> None:
    run = stack_run(stack)
    names = {s.name for s in run.of_type("aws:autoscaling/schedule:Schedule")}
    assert "floodgate-us-general-election-20281107-raise" in names
    group = run.one("aws:autoscaling/group:Group").inputs
    assert group["warmPool"]["minSize"] == 12  # sized for the next event, a debate

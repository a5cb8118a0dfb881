"""The shipped stacks against their night: prod and staging through every scenario of the US
general election, and properties of the control loop (room + fleet) on random nights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planning.calendar import load_calendar
from planning.capacity import demand_period_s
from planning.clock import now
from planning.event_plan import plan_event
from planning.settings import RehearsalSettings, load_stack_settings
from rehearsal.curves import EVENING_SCENARIOS, EVENT_SCENARIOS, Night, scenario_nights
from rehearsal.simulate import Result, Series, rehearse, rehearse_all
from rehearsal.verdict import BUDGET, breaches, limit_key
from scripts.offline_cloud import stack_config
from scripts.rehearse import choose_event
from tests.helpers import settings_with
from tests.rehearsal.test_simulate import START, STEP, flat, users_for


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_the_stack_keeps_its_promise_on_election_night(stack: str) -> None:
    s = load_stack_settings(stack)
    plan = choose_event(s, stack, now(), "us-general-election")
    gated = (*EVENT_SCENARIOS, "flash-crowd")
    nights = scenario_nights(gated, plan, s, s.admission.step_s)
    judged = rehearse_all(nights, s, ("configured",))
    found = breaches(judged, s.rehearsal)
    # The stack's own budget, cost included. The runner follows a night below its forecast
    # (functions/prescale/follow.py) and the night rises slower than the load balancer scales:
    # on prod the real 2016 night and half the forecast cost 1.57x and 1.71x the floor (2.30x
    # and 3.20x when the plan held its forecast all night and reserved the LCUs its peak uses).
    assert [str(b) for b in found] == []
    results = {r.scenario: r for r in judged}
    counted = s.capacity.public_page_pct > 0  # edge-uncached plays only what the plan counts on
    assert set(results) == set(gated) - (set() if counted else {"edge-uncached"})
    for scenario, result in results.items():
        assert result.measures["raw_5xx"] == 0, scenario
    flash = results["flash-crowd"].measures
    assert flash["wait_p95_min"] <= 10
    assert flash["kept_out_pct"] <= 5
    # The flash crowd (10x baseline) never exceeds what the fleet's max serves, so the room is
    # back to open within 30 minutes of starting to queue.
    assert flash["longest_queue_min"] <= 30
    stress = results["stress"].measures
    assert stress["kept_out_pct"] <= 5
    # 3x the forecast, held at the fleet's max: nothing fails in its worst 15 minutes, and the
    # room opens within 30 minutes of the fleet serving everyone (a metering room is calm once
    # its line is empty: it waited for the load to fall under 75 % before, 72 minutes on prod).
    assert stress["failed_worst_pct"] <= 0.1
    assert stress["reopen_min"] <= 30
    for scenario in ("zone-loss", "slow-origin"):
        assert results[scenario].measures["wait_p95_min"] <= 10, scenario


YEAR = timedelta(days=366)


@pytest.mark.parametrize("instant", ["today", "pinned"])
@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_every_night_on_the_calendar_within_a_year_fails_nobody(stack: str, instant: str) -> None:
    """Every event on the stack's calendar within a year of today (the real clock, as a
    newcomer's `make rehearse` sees it; and of the tests' pinned 2028-10-01), through every
    event scenario: its forecast, the real 2016 night on its plan, half and twice the forecast,
    3x, a zone lost at the peak, a slow origin: nothing beyond the stack's budget, people or
    cost."""
    s = load_stack_settings(stack)
    today = datetime.now(UTC) if instant == "today" else now()
    found = load_calendar().occurrences(stack, today, today + YEAR)
    assert found, f"{stack}: no event within a year of {today:%Y-%m-%d}: nothing is judged"
    for occurrence in found:
        plan = plan_event(occurrence, s)
        nights = scenario_nights(EVENT_SCENARIOS, plan, s, s.admission.step_s)
        judged = rehearse_all(nights, s, ("configured",))
        found = breaches(judged, s.rehearsal)
        # Cost too: the 2027 levels plan, a jump reserved from the minute before it and
        # released 5 minutes after, costs 2.48x the floor at half its forecast on prod (limit
        # 2.5x), 2.08x on staging.
        assert [str(b) for b in found] == [], occurrence.key


BEYOND_MAX = ("climb-36x-cpu-2x",)
"""Beyond what the fleet's max serves: the budget is the physical bound's; its p95 wait is not
held (prod: 10 minutes, a line that grows while more want in than the max serves)."""
SURVIVED = tuple(name for name in EVENING_SCENARIOS if name not in BEYOND_MAX)
"""The unannounced crowds the stack claims to survive within issue 27's budget: all the
others."""


def _failed_in_the_worst_window(stack: str, names: tuple[str, ...]) -> list[Result]:
    """The configured stack on the evening nights `names`, each already held to no raw 5xx and
    at most 0.1 % of requests failed in its worst 15 minutes."""
    s = load_stack_settings(stack)
    judged = rehearse_all(scenario_nights(names, None, s, s.admission.step_s), s, ("configured",))
    assert [r.scenario for r in judged] == list(names)
    for result in judged:
        m, name = result.measures, result.scenario
        assert m["raw_5xx"] == 0, name
        assert m["failed_worst_pct"] <= 0.1, (name, m["failed_worst_pct"])
    return judged


CLIMBS = ("climb-36x",)
"""36x within 10 minutes: the load balancer grows from prod's standing 100 LCUs to the 880 it
uses in about 22 minutes at its own pace (50 % every 5 minutes), so the line waits longer."""


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_an_unannounced_crowd_waits_in_line_instead_of_failing(stack: str) -> None:
    """Issue 27's budget on the crowds no schedule prepared for, against what the load balancer
    can carry as it scales: no raw 5xx; at most 0.1 % of requests failed in the worst 15
    minutes (everyone beyond what the fleet and the load balancer carry waits in line: the room
    meters arrivals); kept out within the stack's points of the physical bound (the fleet's max
    and the load balancer's pace); p95 wait at most 10 minutes (20 on a 36x climb: CLIMBS);
    open again within 30 minutes of the fleet serving everyone; the fleet's peak at most 1.5x
    what the demand needed (no overshoot after the crowd). Issue 27's 5-minute p95 and 2 % kept
    out were set on a rehearsal whose load balancer never ran short: prod's flash crowd uses
    245 LCUs, and from its standing 100 the load balancer's pace takes 11 minutes to get there."""
    budget = load_stack_settings(stack).rehearsal
    for result in _failed_in_the_worst_window(stack, SURVIVED):
        m, name = result.measures, result.scenario
        assert m["wait_p95_min"] <= (20 if name in CLIMBS else 10), (name, m["wait_p95_min"])
        assert m["kept_out_beyond_bound_pct"] <= budget.max_kept_out_pct, (name, m)
        assert m["reopen_min"] <= 30, (name, m["reopen_min"])
        assert m["peak_vs_needed"] <= 1.5, (name, m["peak_vs_needed"])


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_a_crowd_beyond_the_max_is_kept_out_not_failed(stack: str) -> None:
    """Issue 27's budget on a night the fleet's max cannot carry (36x baseline at twice the CPU
    per request): no raw 5xx, at most 0.1 % failed in the worst 15 minutes, and kept out within
    5 points of the physical bound (the share of wanted user-time above the max's capacity).
    Sensitive to the instances' idle CPU (rehearsal.model.IDLE_CPU_PCT, 5 %): at 0 the CPU
    reaches the inlet's ESTIMATE_FROM_CPU_PCT later, and staging's 3 instances fill with the
    dearer crowd first (8 % failed in its worst 15 minutes)."""
    for result in _failed_in_the_worst_window(stack, BEYOND_MAX):
        m = result.measures
        assert m["kept_out_pct"] - m["kept_out_bound_pct"] <= 5, (result.scenario, m)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    levels=st.lists(st.floats(min_value=0.5, max_value=12.0), min_size=1, max_size=4),
    patience=st.floats(min_value=5, max_value=90),
)
def test_the_loop_never_scales_in_with_people_waiting_and_always_reopens(
    levels: list[float], patience: float
) -> None:
    s = settings_with(stack_config("prod"), rehearsal__patience_minutes=patience)
    # Quiet, the generated surges (multiples of the minimum fleet), then two quiet hours.
    quiet = users_for(s, s.fleet.min_size * 0.3)
    users = flat(quiet, 0.25)
    for level in levels:
        users += flat(users_for(s, s.fleet.min_size * level), 0.5)
    users += flat(quiet, 2)
    result = rehearse(Night("loop", START, STEP, users, None), s, "configured")
    series = result.series
    for minute in range(1, len(series.in_service)):
        if series.in_service[minute] < series.in_service[minute - 1] - 1e-6:
            # Scale-in needs every policy ready: the room's demand 15 datapoints below 90 % of
            # its target, and while anyone waits it reads at least the target. At prod's 10 s
            # period those 15 span the 150 s before: the line was empty in the two minutes
            # sampled in them.
            assert demand_period_s(s) == 10
            window = series.waiting[max(0, minute - 2) : minute]
            assert max(window, default=0) < 1, f"scaled in at minute {minute} with a line"
    assert not series.queueing[-1], "the room reopens once the surge is over"
    assert series.waiting[-1] < 1


@pytest.mark.parametrize(
    "key", sorted(k for k in RehearsalSettings.model_fields if k.startswith("max_"))
)
def test_every_limit_breaks_just_above_itself_and_holds_at_itself(key: str) -> None:
    """Each `rehearsal.max_*` is judged: a hundredth over it breaks the budget, naming it; at
    the limit it holds. A limit missing from the verdict's table would never break."""
    budget = load_stack_settings("prod").rehearsal
    judged = [
        (m, scenario)
        for m, k, *_ in BUDGET
        for scenario in ("event", "half-forecast", "slow-origin")
        if limit_key(k, scenario) == key
    ]
    assert judged, f"{key} is not judged"
    measure, scenario = judged[0]
    limit = float(getattr(budget, key))
    measures = {m: 0.0 for m, *_ in BUDGET}
    at = Result(scenario, "configured", {**measures, measure: limit}, Series())
    over = Result(scenario, "configured", {**measures, measure: limit + 0.01}, Series())
    assert breaches([at], budget) == []
    (breach,) = breaches([over], budget)
    assert breach.measure == key and breach.scenario == scenario
    other = Result(scenario, "reactive", {**measures, measure: limit * 10 + 1}, Series())
    assert breaches([other], budget) == [], "only the configured stack is judged"

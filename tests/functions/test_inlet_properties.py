"""Properties of the inlet's arithmetic: never beyond capacity, never backwards, in order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from functions.admission.inlet import (
    Fleet,
    Sessions,
    admit_budget,
    demand_pct,
    next_state,
    walk,
)
from functions.admission.room import POLL_MAX_S, retry_after
from tests.functions.room_fixtures import config_for_tests

CONFIG = config_for_tests(
    sessions_per_instance=50, max_admit_per_s=20, step_s=10, drain_s=120, demand_floor_pct=66.67
)
NOW = 10_000.0

fleets = st.builds(
    Fleet,
    in_service=st.integers(0, 200),
    load=st.floats(0, 3, allow_nan=False),
    alarm=st.booleans(),
)
sessions = st.builds(
    Sessions,
    collected_in_session=st.integers(0, 20_000),
    admitted_in_show=st.integers(0, 5_000),
    collected_in_show=st.integers(0, 5_000),
)
# A line: each place is a hole (None), someone who left, or someone still polling.
lines = st.lists(
    st.one_of(
        st.none(),
        st.fixed_dictionaries({"seen_at": st.sampled_from([NOW - 1000, NOW - 5])}),
        st.fixed_dictionaries({"seen_at": st.just(NOW), "skipped": st.just(True)}),
    ),
    max_size=200,
)


@given(fleets, sessions)
def test_budget_never_exceeds_free_capacity_or_the_rate_cap(fleet, s) -> None:
    budget = admit_budget(CONFIG, fleet, s)
    capacity = fleet.in_service * CONFIG.sessions_per_instance
    active = s.collected_in_session + max(0, s.admitted_in_show - s.collected_in_show)
    assert 0 <= budget <= CONFIG.max_admit_per_s * CONFIG.step_s
    assert budget <= max(0, capacity - active)
    assert budget <= max(0, capacity - fleet.load * capacity) + 1  # load rounds up
    if fleet.alarm:
        assert budget == 0


@given(lines, st.integers(0, 300))
def test_walk_admits_in_order_within_budget_and_only_moves_forward(line, budget) -> None:
    places = list(enumerate(line))
    moved = walk(places, budget, NOW, abandon_after_s=90)
    assert 0 <= moved.admitted <= budget
    assert moved.passed >= moved.admitted
    passed = places[: moved.passed]
    if moved.last_order is not None:
        assert moved.last_order == passed[-1][0] >= 0
    live = [
        o for o, item in passed if item and not item.get("skipped") and NOW - item["seen_at"] <= 90
    ]
    assert len(live) == moved.admitted, "everyone passed who was polling got in"
    if moved.passed < len(places):
        # It stopped at someone still waiting, for want of budget, never at a hole.
        _, item = places[moved.passed]
        assert item and not item.get("skipped") and NOW - item["seen_at"] <= 90
        assert moved.admitted == budget
    assert set(moved.skipped) <= {o for o, item in passed if item and not item.get("skipped")}


@given(fleets, st.integers(0, 100), st.sampled_from(["open", "queue"]), st.booleans())
def test_state_follows_pins_calendar_and_hysteresis(fleet, waiting, state, forced) -> None:
    room = {"state": state, "pinned": None, "calm_since": NOW - 1}
    new, _ = next_state(CONFIG, room, fleet, waiting, forced, NOW)
    if forced or fleet.alarm or fleet.load >= CONFIG.queue_at_load:
        assert new == "queue"
    if state == "queue" and (waiting > 0 or fleet.load > CONFIG.open_below_load):
        assert new == "queue", "a room with people waiting or under load never opens"
    pinned, _ = next_state(CONFIG, {**room, "pinned": "closed"}, fleet, waiting, forced, NOW)
    assert pinned == "closed"


@given(fleets, st.integers(0, 10_000), st.floats(0, 500, allow_nan=False))
def test_a_queueing_room_opens_only_when_calm_and_the_line_drains(fleet, waiting, rate) -> None:
    room = {"state": "queue", "pinned": None, "calm_since": NOW - CONFIG.calm_s}
    new, _ = next_state(CONFIG, room, fleet, waiting, False, NOW, rate)
    calm = not fleet.alarm and fleet.load <= CONFIG.open_below_load
    drains = waiting == 0 or (rate > 0 and waiting / rate <= CONFIG.drain_s)
    assert (new == "open") == (calm and drains)


@given(fleets, st.integers(0, 10_000))
def test_demand_never_reads_below_the_target_while_people_wait(fleet, waiting) -> None:
    demand = demand_pct(CONFIG, fleet, waiting)
    if waiting > 0:
        assert demand >= CONFIG.demand_floor_pct
        assert demand >= 100 * fleet.load
    else:
        assert demand == 100 * max(fleet.load, 0)


@given(
    st.one_of(st.none(), st.integers(0, 100_000)),
    st.integers(0, 1_000_000),
    st.floats(1, 20_000, allow_nan=False),
)
def test_the_line_polls_within_the_status_functions_design(eta, waiting, polls_per_s) -> None:
    interval = retry_after(eta, waiting, polls_per_s)
    assert 5 <= interval <= POLL_MAX_S
    if waiting / polls_per_s <= POLL_MAX_S:
        assert waiting / interval <= polls_per_s + 1e-9
    assert retry_after(eta) <= interval  # spreading the line only ever slows polls down

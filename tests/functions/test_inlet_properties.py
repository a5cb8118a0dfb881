"""Properties of the inlet's arithmetic: never beyond capacity, never backwards, in order."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from functions.admission.inlet import (
    INCREASE,
    Fleet,
    Health,
    Sessions,
    admit_budget,
    breach,
    demand_pct,
    free_capacity,
    loaded,
    next_ceiling,
    next_state,
    regulate,
    walk,
)
from functions.admission.room import POLL_MAX_S, retry_after
from tests.functions.room_fixtures import config_for_tests

CONFIG = config_for_tests(
    sessions_per_instance=50, max_admit_per_s=20, step_s=10, drain_s=120, demand_floor_pct=66.67
)
NOW = 10_000.0

healths = st.builds(
    Health,
    at=st.floats(0, 1e6, allow_nan=False),
    requests=st.floats(0, 1e6, allow_nan=False),
    target_5xx=st.floats(0, 1e4, allow_nan=False),
    elb_5xx=st.floats(0, 1e4, allow_nan=False),
    rejected=st.sampled_from([0.0, 0.0, 3.0]),
    response_p95_s=st.one_of(st.none(), st.floats(0, 60, allow_nan=False)),
    cpu_pct=st.one_of(st.none(), st.floats(0, 100, allow_nan=False)),
)
fleets = st.builds(
    Fleet,
    in_service=st.integers(0, 200),
    load=st.floats(0, 3, allow_nan=False),
    alarm=st.booleans(),
    health=st.one_of(st.none(), healths),
    ceiling=st.floats(CONFIG.ceiling_floor, 1.0, allow_nan=False),
    load_age_s=st.floats(0, 240, allow_nan=False),
)
sessions = st.builds(
    Sessions,
    staying=st.integers(0, 20_000),
    admitted_in_show=st.integers(0, 5_000),
    collected_in_show=st.integers(0, 5_000),
    collected_since_load=st.integers(0, 20_000),
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
    active = s.staying + max(0, s.admitted_in_show - s.collected_in_show)
    assert 0 <= budget <= CONFIG.max_admit_per_s * CONFIG.step_s
    assert budget <= max(0, capacity - active)
    assert budget <= max(0, math.floor(capacity * fleet.ceiling) - active), "the ceiling holds"
    # The load's people (less those gone since, at the settings' mean visit) and everyone let
    # in since its minute began are inside.
    stayed = math.exp(-fleet.load_age_s / CONFIG.session_s)
    by_load = loaded(CONFIG, fleet) * CONFIG.sessions_per_instance * stayed + s.since_load
    assert budget <= max(0, capacity - by_load) + 1  # load rounds up
    if fleet.alarm:
        assert budget == 0


@given(
    st.integers(1, 200),
    st.floats(0, 1.5, allow_nan=False),
    st.floats(CONFIG.ceiling_floor, 1.0, allow_nan=False),
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=12),
)
def test_a_crowd_let_in_within_one_load_minute_never_passes_the_ceiling(
    in_service, load, ceiling, takes
) -> None:
    """The load datapoint stays the same for a minute or two while a crowd comes in step by
    step: whatever each step offers and the crowd takes (a share of it), the people let in
    since the load's minute and the load's own never pass the ceiling's share of capacity."""
    health = Health(
        at=NOW - 90, requests=load * in_service * CONFIG.requests_per_instance_per_s * 60
    )
    fleet = Fleet(in_service, load, False, health, ceiling, load_at=NOW - 90, load_age_s=0.0)
    capacity = in_service * CONFIG.sessions_per_instance
    let_in = 0
    for share in takes:
        s = Sessions(let_in, 0, 0, collected_since_load=let_in)
        let_in += math.floor(share * free_capacity(CONFIG, fleet, s))
    loaded_people = math.ceil(load * capacity - 1e-6)  # the code reads it via requests: float noise
    assert let_in <= max(0, math.floor(capacity * ceiling) - loaded_people)


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
    hot = breach(CONFIG, fleet) is not None or fleet.load >= CONFIG.queue_at_load * fleet.ceiling
    if forced or hot:
        assert new == "queue"
    if state == "queue" and (waiting > 0 or fleet.load > CONFIG.open_below_load * fleet.ceiling):
        assert new == "queue", "a room with people waiting or under load never opens"
    pinned, _ = next_state(CONFIG, {**room, "pinned": "closed"}, fleet, waiting, forced, NOW)
    assert pinned == "closed"


@given(fleets, st.integers(0, 10_000), st.floats(0, 500, allow_nan=False))
def test_a_queueing_room_opens_only_when_calm_and_the_line_drains(fleet, waiting, rate) -> None:
    room = {"state": "queue", "pinned": None, "calm_since": NOW - CONFIG.calm_s}
    new, _ = next_state(CONFIG, room, fleet, waiting, False, NOW, rate)
    calm = breach(CONFIG, fleet) is None and fleet.load <= CONFIG.open_below_load * fleet.ceiling
    drains = waiting == 0 or (rate > 0 and waiting / rate <= CONFIG.drain_s)
    assert (new == "open") == (calm and drains)


METERED = replace(CONFIG, meter=1)


@given(fleets, st.integers(0, 10_000), st.floats(0, 500, allow_nan=False), st.booleans())
def test_a_metering_room_queues_when_full_and_opens_only_with_an_empty_line(
    fleet, waiting, rate, exhausted
) -> None:
    """Metering counts newcomers within seconds, so the room keeps no margin on the late load:
    open, it queues on a breach, once newcomers used up the step's free capacity, or at a load
    of the ceiling itself; queueing and calm long enough, it opens exactly when the fleet is
    healthy, under the ceiling and the line is empty (a line that merely drains soon would walk
    in at once, past the free capacity)."""
    sick = breach(METERED, fleet) is not None
    full = fleet.load >= fleet.ceiling
    opened = {"state": "open", "pinned": None, "calm_since": None}
    new, _ = next_state(METERED, opened, fleet, waiting, False, NOW, rate, exhausted)
    assert (new == "queue") == (sick or exhausted or full)
    queueing = {"state": "queue", "pinned": None, "calm_since": NOW - METERED.calm_s}
    new, _ = next_state(METERED, queueing, fleet, waiting, False, NOW, rate)
    assert (new == "open") == (not sick and not full and waiting == 0)


@given(fleets, st.integers(0, 10_000))
def test_demand_never_reads_below_the_target_while_people_wait(fleet, waiting) -> None:
    demand = demand_pct(CONFIG, fleet, waiting)
    if waiting > 0:
        assert demand >= CONFIG.demand_floor_pct
    if fleet.health is None:
        # Without the minute's count, the load per target stands for everyone inside.
        assert demand >= 100 * fleet.load / fleet.ceiling - 1e-9
        if waiting == 0:
            assert math.isclose(demand, 100 * fleet.load / fleet.ceiling)


@given(fleets, st.floats(0.01, 1.0, allow_nan=False), st.booleans())
def test_the_ceiling_stays_between_its_floor_and_the_derived_capacity(fleet, ceiling, held) -> None:
    new = next_ceiling(CONFIG, ceiling, fleet, held)
    assert CONFIG.ceiling_floor <= new <= 1.0
    assert new <= max(ceiling, CONFIG.ceiling_floor) + INCREASE + 1e-9, "it rises by steps"
    if breach(CONFIG, fleet) is not None:
        assert new <= max(ceiling, CONFIG.ceiling_floor), "a breach never raises it"
        if held or fleet.load > ceiling:
            assert new == max(ceiling, CONFIG.ceiling_floor), "held, or over it: it stands"


@given(st.floats(0.01, 1.0, allow_nan=False), st.floats(0, 0.5, allow_nan=False))
def test_a_healthy_fleet_is_always_filled_again(start, load) -> None:
    """However low a sickness drove it, minutes of good health (nothing failing, fast, CPU
    unknown or light) bring the ceiling back to the derived capacity within 1 / INCREASE."""
    room = {"ceiling": start, "health_at": None, "lowered_at": None}
    for minute in range(math.ceil(1 / INCREASE)):
        health = Health(at=60.0 * minute, requests=1000.0, response_p95_s=0.1, cpu_pct=None)
        fleet = regulate(CONFIG, room, Fleet(10, load, False, health))
        assert regulate(CONFIG, room, fleet).ceiling == fleet.ceiling, "once per datapoint"
    assert room["ceiling"] == 1.0


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


@given(
    st.one_of(st.none(), st.integers(0, 100_000)),
    st.integers(0, 1_000_000),
    st.floats(1, 20_000, allow_nan=False),
    st.integers(30, 900),
)
def test_a_line_beyond_the_design_polls_slower_but_within_its_patience(
    eta, waiting, polls_per_s, patient_s
) -> None:
    """Only a line that would poll faster than the design even at POLL_MAX_S waits longer, and
    never past 3/4 of `patient_s` (show_s or abandon_after_s: with the page's +-20 % jitter an
    admitted visitor still sees their turn, and nobody polling is taken as gone)."""
    interval = retry_after(eta, waiting, polls_per_s, patient_s)
    within = retry_after(eta, waiting, polls_per_s)
    if waiting / polls_per_s <= POLL_MAX_S:
        assert interval == within
    else:
        assert within == POLL_MAX_S <= interval <= max(POLL_MAX_S, patient_s * 3 // 4)

"""Capacity planner: formulas, caps, quota, and properties that must hold for any peak."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planning.calendar import Occurrence, load_calendar, parse_calendar
from planning.capacity import max_with_zone_lost, origin_requests_per_s
from planning.event_plan import (
    SCHEDULED_ACTIONS_PER_ASG,
    PlanError,
    Step,
    capacity_units,
    lcu_used,
    lead_time,
    plan_actions,
    plan_event,
    plan_events,
    runner_interval,
)
from planning.settings import load_stack_settings
from planning.shapes import SHAPES
from scripts.offline_cloud import stack_config
from tests.helpers import settings_with
from tests.planning.test_calendar import ELECTION

PROD = load_stack_settings("prod")
NOW = datetime(2028, 10, 1, tzinfo=UTC)


def occurrence(**peak) -> Occurrence:
    spec = parse_calendar({"events": [{**ELECTION, **peak}]}).events[0]
    start = datetime(2028, 11, 7, 23, tzinfo=UTC)
    return Occurrence(spec.name, start, start + timedelta(hours=10), spec.time_zone, spec)


def test_election_night_plan_for_prod() -> None:
    plan = plan_event(occurrence(shape="election-night"), PROD)
    assert plan.peak_users == 340_000  # 17,000 x 20
    assert plan.origin_requests_per_s == pytest.approx(6800)  # x 0.05 req/s x 40 % to origin
    assert plan.instances_for_peak == 46  # / 150 req/s per instance
    assert plan.desired == 69  # 46 x 3/2 so two zones still carry it
    # 30-minute stages from 18:00 local (23:00 UTC) to the restore at 05:00 (end + 1 h).
    assert len(plan.stages) == 22 and plan.stages[-1].end == plan.restore_at
    assert plan.restore_at == datetime(2028, 11, 8, 10, tzinfo=UTC)
    # Until 19:30 local the fleet's min of 6 holds the crowd with a zone lost. The first raise:
    # 19:30-20:00 reaches 0.05 of the way to the peak (33,150 users, 5 instances, 8 with a zone
    # lost), from 6: out of the pool, a 20-minute lead.
    first = plan.min_steps[0]
    assert (first.at, first.value) == (datetime(2028, 11, 8, 0, 10, tzinfo=UTC), 8)
    # The window opens 20 minutes before the start: the first stage asks for no more than the
    # fleet's min, so its lead is the warm one.
    assert plan.raise_at == datetime(2028, 11, 7, 22, 40, tzinfo=UTC)
    # The peak stages (22:30 to midnight local) hold 69, raised 20 min ahead.
    peak = [s for s in plan.stages if s.min_size == 69]
    assert [f"{s.start:%H:%M}" for s in peak] == ["03:30", "04:00", "04:30"]
    assert plan.min_size_at(peak[0].start - timedelta(minutes=20)) == 69
    assert plan.min_size_at(peak[0].start - timedelta(minutes=25)) == 57
    assert plan.min_steps[-1] == Step(plan.restore_at, PROD.fleet.min_size)
    # LCUs: 490 at the peak + 10 % margin, but the night rises at most 3.4x an hour (12 % in
    # 5 minutes), within the ALB's own 50 % every 5 minutes: nothing reserved above the
    # standing 100.
    assert capacity_units(340_000, 6800, PROD, margin_pct=10) == 539
    assert (plan.capacity_units, plan.reserve_alb_at, plan.lcu_steps) == (100, None, ())
    assert not plan.capped


def test_a_night_that_outpaces_the_alb_reserves_its_peak_ahead_and_steps_down_twice() -> None:
    slow = settings_with(stack_config("prod"), load_balancer__scaling_pct_per_5_min=5)
    plan = plan_event(occurrence(shape="election-night"), slow)
    # 5 % every 5 minutes cannot follow 3.4x an hour: it is reserved what it grows from into
    # the peak's 539 (306, an hour before the peak), asked for 2 h and one runner interval
    # (5 min) before it must hold.
    assert plan.capacity_units == 306
    assert plan.reserve_alb_at is not None and plan.reserve_alb_at < datetime(
        2028, 11, 8, 1, tzinfo=UTC
    )
    values = [s.value for s in plan.lcu_steps]
    assert sum(b < a for a, b in itertools.pairwise(values)) <= 2  # AWS: two decreases a day
    assert values[-1] == 100 and plan.lcu_steps[-1].at <= plan.restore_at


def test_a_jump_is_reserved_before_it_comes_and_released_once_the_alb_carries_it() -> None:
    plan = plan_event(occurrence(shape="announcement", duration_h=4), PROD)
    first, start = plan.stages[0], plan.occurrence.start
    peak = capacity_units(plan.peak_users, plan.origin_requests_per_s, PROD, margin_pct=10)
    # The standing 100 LCUs carried the evening: the reservation holds from the minute before
    # the first the ALB could not reach alone (a minute's load comes at its first second), not
    # from where a walk back from the peak meets the standing level (8 minutes before it).
    assert first.lcus_from in (None, start - timedelta(minutes=1))
    ahead = timedelta(seconds=PROD.prescale.alb_reservation_lead_s) + runner_interval(PROD)
    assert plan.reserve_alb_at == (first.lcus_from or start) - ahead
    assert first.capacity_units == peak
    assert plan.reservation_at(start - timedelta(minutes=1)) == peak
    # The crowd decays: five minutes after the last minute the ALB could not have reached
    # alone, the load has grown it, and the reservation goes back to standing mid-stage.
    assert first.lcus_until is not None and start < first.lcus_until < first.end
    assert plan.reservation_at(first.lcus_until - timedelta(minutes=1)) == peak
    assert plan.lcu_steps[-1] == Step(first.lcus_until, 100)
    # What the runner holds the stage to (its shortfall alarm) follows the same release.
    levers = plan.levers
    assert [levers.need_at(m).lcus for m in (start, first.lcus_until)] == [peak, 100]  # type: ignore[union-attr]
    assert levers.need_at(first.lcus_until).instances == first.min_size  # type: ignore[union-attr]


def test_a_jump_the_standing_level_grows_into_reserves_nothing() -> None:
    """The ALB scales from its standing reservation too: a jump it grows into within a minute
    (8 % at 50 % every 5 minutes) needs no reservation; the same jump from nothing does."""
    night = occurrence(shape="announcement", duration_h=4)
    peak = plan_event(night, PROD).capacity_units
    near = settings_with(stack_config("prod"), load_balancer__minimum_capacity_units=peak - 5)
    assert plan_event(night, near).lcu_steps == ()
    bare = settings_with(stack_config("prod"), load_balancer__minimum_capacity_units=0)
    assert plan_event(night, bare).capacity_units == peak


@settings(max_examples=60, deadline=None)
@given(
    multiple=st.integers(min_value=2, max_value=400),
    shape=st.sampled_from(sorted(SHAPES)),
    hours=st.integers(1, 12),
    pct=st.sampled_from([5.0, 20.0, 50.0]),
)
def test_the_alb_with_its_reservation_never_falls_behind_the_forecast(
    multiple: int, shape: str, hours: int, pct: float
) -> None:
    """The load balancer as the rehearsal plays it (it carries its reservation, or what it held
    five minutes before grown by `scaling_pct_per_5_min`), minute by minute under the forecast
    and the plan's reservation: it never carries less than the forecast uses."""
    s = settings_with(stack_config("prod"), load_balancer__scaling_pct_per_5_min=pct)
    plan = plan_event(occurrence(peak_multiple=multiple, shape=shape, duration_h=hours), s)
    o, base = plan.occurrence, s.capacity.baseline_users
    duration = (o.end - o.start).total_seconds()

    def uses(moment: datetime) -> float:
        level = SHAPES[shape].level((moment - o.start).total_seconds() / duration)
        users = base + (plan.peak_users - base) * level
        return lcu_used(users, origin_requests_per_s(users, s), s)

    moment = o.start - timedelta(hours=6)
    held = [max(100.0, uses(moment))] * 5
    while moment < plan.restore_at:
        reserved = plan.reservation_at(moment) or 100
        carries = max(reserved, held[-5] * (1 + pct / 100))
        assert carries >= uses(moment) - 1e-6, (moment, carries, uses(moment))
        held.append(max(reserved, min(uses(moment), carries)))
        moment += timedelta(minutes=1)


def test_every_stage_has_its_min_from_its_own_lead_to_its_end() -> None:
    plan = plan_event(occurrence(shape="election-night"), PROD)
    second = timedelta(seconds=1)
    for stage in plan.stages:
        for moment in (stage.start - stage.lead, stage.start, stage.end - second):
            if moment < plan.restore_at:
                assert (plan.min_size_at(moment) or PROD.fleet.min_size) >= stage.min_size
    # Stage by stage, no raise is more than the pool's 18: every one comes out of it, warm.
    raises = [s for s in plan.stages[1:] if s.lead > timedelta(0)]
    assert len(raises) == 7 and {s.lead for s in raises} == {lead_time(PROD, from_warm_pool=True)}
    cold = plan_event(occurrence(shape="plateau"), PROD)  # 6 -> 69 at once
    assert cold.stages[0].lead == lead_time(PROD) and cold.min_steps[0].value == 69


def test_the_events_lead_time_is_the_first_stages() -> None:
    plan = plan_event(occurrence(shape="plateau", lead_time_s=3600), PROD)
    assert plan.lead == plan.stages[0].lead == timedelta(hours=1)
    assert plan.raise_at == plan.occurrence.start - timedelta(hours=1)
    assert all(s.lead <= lead_time(PROD) for s in plan.stages[1:])


def test_steps_down_follow_the_shape_to_the_restore() -> None:
    plan = plan_event(occurrence(shape="election-night"), PROD)
    actions = plan_actions(plan)
    assert [a.min_size for a in actions] == [s.value for s in plan.min_steps]
    assert all(a.max_size == PROD.fleet.max_size for a in actions)
    assert [a.restore for a in actions] == [False] * (len(actions) - 1) + [True]
    after_peak = [a.min_size for a in actions if a.start > datetime(2028, 11, 8, 4, tzinfo=UTC)]
    assert after_peak == sorted(after_peak, reverse=True) and after_peak[-1] == 6
    assert actions[-1].name == plan.key.join(("floodgate-", "-restore"))
    assert len({a.name for a in actions}) == len(actions)


def test_the_reservation_covers_every_stage_ahead_and_decreases_at_most_twice() -> None:
    slow = settings_with(stack_config("prod"), load_balancer__scaling_pct_per_5_min=5)
    plan = plan_event(occurrence(shape="election-night"), slow)
    assert plan.lcu_steps
    ahead = timedelta(seconds=PROD.prescale.alb_reservation_lead_s) + runner_interval(PROD)
    for stage in plan.stages:
        held_to = (stage.lcus_until or stage.end) - timedelta(seconds=1)
        for moment in (stage.start - ahead, stage.start, held_to):
            if moment < plan.restore_at and stage.capacity_units > 100:
                assert (plan.reservation_at(moment) or 0) >= stage.capacity_units, moment
    values = [s.value for s in plan.lcu_steps]
    assert sum(b < a for a, b in itertools.pairwise(values)) <= 2
    assert min(values) >= PROD.load_balancer.minimum_capacity_units


def test_lead_is_launch_plus_warmup_plus_slip_plus_margin() -> None:
    # cold launch 300 (or warm 60) + warmup 120 + slip 120 + margin 900 seconds
    assert lead_time(PROD) == timedelta(seconds=300 + 120 + 120 + 900)
    assert lead_time(PROD, from_warm_pool=True) == timedelta(seconds=60 + 120 + 120 + 900)


def test_a_raise_the_warm_pool_covers_gets_the_short_lead() -> None:
    small = plan_event(occurrence(peak_multiple=4), PROD)  # 68,000 users
    assert small.desired - PROD.fleet.min_size <= small.warm_pool
    assert small.lead == timedelta(seconds=1200)
    big = plan_event(occurrence(), PROD)
    assert big.desired - PROD.fleet.min_size > big.warm_pool
    assert big.lead == timedelta(seconds=1440)


def test_absolute_peak_users_are_used_as_given() -> None:
    assert plan_event(occurrence(peak_multiple=None, peak_users=1234), PROD).peak_users == 1234


def test_a_peak_beyond_max_is_capped_and_says_so() -> None:
    plan = plan_event(occurrence(peak_multiple=200), PROD)
    assert plan.desired == PROD.fleet.max_size
    assert plan.capped


def test_lcu_takes_the_largest_dimension() -> None:
    # 340,000 users: active connections 340,000 / 3,000 = 114; bytes 6,800 x 20 kB / 277,778 = 490
    assert capacity_units(340_000, 6800, PROD) == 490


def test_only_events_inside_the_horizon_are_planned() -> None:
    plans = plan_events(load_calendar(), PROD, "prod", NOW)
    assert plans and all(p.occurrence.start < NOW + timedelta(days=120) for p in plans)
    assert plans[0].key == "us-vice-presidential-debate-2028-20281003"


def test_an_event_under_way_is_still_planned_until_restored() -> None:
    during = datetime(2028, 11, 8, 3, tzinfo=UTC)
    plans = plan_events(load_calendar(), PROD, "prod", during)
    assert plans[0].key == "us-general-election-20281107"
    assert plans[0].active(during)


def test_an_event_that_ended_stays_planned_through_its_cooldown_and_the_slip() -> None:
    """The hourly job runs inside the cooldown hour: dropping the plan at the event's end lost
    the restore, the reservation, the pool and the room's calendar (issue 15)."""
    election = plan_events(load_calendar(), PROD, "prod", NOW)[2]
    assert election.key == "us-general-election-20281107"
    for moment in (
        election.occurrence.end + timedelta(minutes=17),
        election.restore_at + timedelta(seconds=30),
    ):
        plans = plan_events(load_calendar(), PROD, "prod", moment)
        assert plans[0].key == election.key and plans[0].holding(moment), moment
    gone = election.restore_at + election.slip
    assert plan_events(load_calendar(), PROD, "prod", gone)[0].key != election.key


def test_the_window_that_holds_capacity_is_lead_event_and_cooldown() -> None:
    plan = plan_event(occurrence(), PROD)
    second = timedelta(seconds=1)
    assert not plan.holding(plan.raise_at - second)
    assert plan.holding(plan.raise_at) and plan.holding(plan.occurrence.start - second)
    assert plan.holding(plan.restore_at - second) and plan.holding(plan.restore_at)
    assert not plan.holding(plan.restore_at + plan.slip)


def test_a_warm_pool_covering_the_raise_exactly_gets_the_warm_lead() -> None:
    from tests.helpers import settings_with, stack_config

    needed = plan_event(occurrence(peak_multiple=4), PROD).desired - PROD.fleet.min_size
    config = stack_config("prod")
    exact = settings_with(
        config, prescale__warm_pool_share_pct=1, fleet__warm_pool__min_size=needed
    )
    plan = plan_event(occurrence(peak_multiple=4), exact)
    assert plan.warm_pool == plan.desired - exact.fleet.min_size == needed
    assert plan.lead == lead_time(exact, from_warm_pool=True)
    short = settings_with(
        config, prescale__warm_pool_share_pct=1, fleet__warm_pool__min_size=needed - 1
    )
    assert plan_event(occurrence(peak_multiple=4), short).lead == lead_time(short)


def test_one_instance_short_of_the_zone_headroom_is_capped() -> None:
    from tests.helpers import settings_with, stack_config

    config = stack_config("prod")
    wanted = plan_event(occurrence(), PROD).desired  # 69 with a zone lost
    assert not plan_event(occurrence(), settings_with(config, fleet__max_size=wanted)).capped
    short = plan_event(occurrence(), settings_with(config, fleet__max_size=wanted - 1))
    assert short.capped and short.desired == wanted - 1


def test_a_small_events_reservation_is_never_below_the_standing_level() -> None:
    tiny = plan_event(occurrence(peak_multiple=None, peak_users=100), PROD)
    assert capacity_units(100, tiny.origin_requests_per_s, PROD) < 100
    assert tiny.capacity_units == PROD.load_balancer.minimum_capacity_units == 100


def test_too_many_events_for_the_scheduled_action_quota() -> None:
    daily = {**ELECTION, "rule": "FREQ=DAILY", "duration_h": 1}
    with pytest.raises(PlanError, match=r"AWS allows 125 per group"):
        plan_events(parse_calendar({"events": [daily]}), PROD, "prod", NOW)


peaks = st.integers(min_value=2, max_value=400)


@settings(max_examples=200, deadline=None)
@given(low=peaks, extra=st.integers(0, 400))
def test_capacity_never_decreases_as_peak_grows(low: int, extra: int) -> None:
    small, large = (
        plan_event(occurrence(peak_multiple=low), PROD),
        plan_event(occurrence(peak_multiple=low + extra), PROD),
    )
    assert large.desired >= small.desired
    assert large.capacity_units >= small.capacity_units
    assert large.warm_pool + large.desired >= small.desired


@settings(max_examples=200, deadline=None)
@given(multiple=peaks)
def test_one_zone_down_still_carries_the_peak_unless_capped(multiple: int) -> None:
    plan = plan_event(occurrence(peak_multiple=multiple), PROD)
    zones = len(PROD.network.zones)
    survivors = plan.desired * (zones - 1) / zones
    assert plan.capped or survivors >= plan.instances_for_peak
    assert max_with_zone_lost(plan.desired, zones) <= plan.desired


@settings(max_examples=200, deadline=None)
@given(multiple=peaks)
def test_never_exceeds_settings_max(multiple: int) -> None:
    plan = plan_event(occurrence(peak_multiple=multiple), PROD)
    assert PROD.fleet.min_size <= plan.desired <= plan.max_size == PROD.fleet.max_size
    assert plan.desired + plan.warm_pool <= PROD.fleet.max_size


@settings(max_examples=100, deadline=None)
@given(multiple=peaks, shape=st.sampled_from(sorted(SHAPES)), hours=st.integers(1, 24))
def test_every_stage_is_covered_from_its_lead_and_its_reservation_ahead(
    multiple: int, shape: str, hours: int
) -> None:
    """Whatever the shape, peak and length: from each stage's lead to its end the planned min
    is at least the stage's, and the reservation at least its LCUs from `ahead`; the
    reservation decreases at most twice and ends at the standing level; no step of the min is
    a no-op (each is a scheduled action, out of a quota of 125)."""
    plan = plan_event(occurrence(peak_multiple=multiple, shape=shape, duration_h=hours), PROD)
    ahead = timedelta(seconds=PROD.prescale.alb_reservation_lead_s) + runner_interval(PROD)
    last = timedelta(seconds=1)
    start, duration = plan.occurrence.start, plan.occurrence.end - plan.occurrence.start
    base = PROD.capacity.baseline_users
    for stage in plan.stages:  # a stage holds the crowd the shape has anywhere inside it
        for share in (0, 0.2, 0.4, 0.6, 0.8, 1):
            moment = stage.start + (stage.end - stage.start) * share
            level = SHAPES[shape].level((moment - start) / duration)
            assert base + (plan.peak_users - base) * level <= stage.users
        for moment in (stage.start - stage.lead, stage.start, stage.end - last):
            assert (plan.min_size_at(moment) or PROD.fleet.min_size) >= stage.min_size
        for moment in (stage.start - ahead, stage.start, (stage.lcus_until or stage.end) - last):
            assert (plan.reservation_at(moment) or 100) >= stage.capacity_units
    for steps, rest in ((plan.min_steps, PROD.fleet.min_size), (plan.lcu_steps, 100)):
        values = [s.value for s in steps]
        assert all(a != b for a, b in itertools.pairwise(values))
        assert not steps or (values[-1], steps[-1].at <= plan.restore_at) == (rest, True)
    lcus = [s.value for s in plan.lcu_steps]
    assert sum(b < a for a, b in itertools.pairwise(lcus)) <= 2
    assert plan.raise_at <= min([plan.occurrence.start, *(s.at for s in plan.min_steps)])


@settings(max_examples=50, deadline=None)
@given(multiple=peaks)
def test_lead_covers_launch_and_warmup(multiple: int) -> None:
    plan = plan_event(occurrence(peak_multiple=multiple, lead_time_s=None), PROD)
    launch = PROD.prescale.warm_launch_s
    assert plan.lead >= timedelta(seconds=launch + PROD.fleet.default_warmup_s)


AWS_SCHEDULED_ACTIONS_PER_GROUP = 125
"""Amazon EC2 Auto Scaling user guide, "Quotas for Auto Scaling resources and groups"
(https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-quotas.html):
"Scheduled actions per Auto Scaling group: 125", a quota that cannot be changed."""


def test_the_quota_is_awss_125_scheduled_actions_and_exactly_125_fit() -> None:
    """Catches `needed >= quota` (a calendar using exactly the 125 AWS allows was refused) and
    a quota constant that drifts from AWS's figure."""
    assert SCHEDULED_ACTIONS_PER_ASG == AWS_SCHEDULED_ACTIONS_PER_GROUP
    hour = {**ELECTION, "rule": None, "duration_h": 1, "shape": "plateau"}
    daily = {**hour, "name": "nightly", "start": "2028-10-02T18:00:00"}
    long = {**hour, "name": "tabling", "start": "2028-12-01T12:00:00", "duration_h": 3,
            "shape": "announcement"}  # fmt: skip
    fits = parse_calendar({"events": [{**daily, "rule": "FREQ=DAILY;COUNT=39"}, long]})
    plans = plan_events(fits, PROD, "prod", NOW)
    assert sum(len(p.min_steps) for p in plans) == 125  # 39 x 3 + 8
    over = parse_calendar({"events": [{**daily, "rule": "FREQ=DAILY;COUNT=42"}]})  # 42 x 3
    with pytest.raises(PlanError, match=r"need 126 scheduled actions .* AWS allows 125 per group"):
        plan_events(over, PROD, "prod", NOW)


def test_an_event_starting_exactly_at_the_horizon_is_not_planned() -> None:
    """Catches `o.start <= horizon_end` (with the calendar's `begins <= end`): prod plans 120
    days ahead, so a night starting at now + 120 days is left to a later run."""
    assert PROD.prescale.horizon_days == 120
    edge = NOW + timedelta(days=120)  # 2029-01-29T00:00Z, 19:00 EST the evening before
    at_edge = {**ELECTION, "name": "late-sitting", "rule": None, "time_zone": "UTC",
               "start": f"{edge:%Y-%m-%dT%H:%M:%S}", "duration_h": 2}  # fmt: skip
    assert plan_events(parse_calendar({"events": [at_edge]}), PROD, "prod", NOW) == []
    inside = {**at_edge, "start": f"{edge - timedelta(seconds=1):%Y-%m-%dT%H:%M:%S}"}
    (plan,) = plan_events(parse_calendar({"events": [inside]}), PROD, "prod", NOW)
    assert plan.occurrence.start == edge - timedelta(seconds=1)


def lcus(users: int, requests_per_s: float, **prescale) -> int:
    """capacity_units with no margin for prod with `prescale` changes."""
    settings = PROD.model_copy(update={"prescale": PROD.prescale.model_copy(update=prescale)})
    return capacity_units(users, requests_per_s, settings)


def test_each_lcu_dimension_is_awss_figure() -> None:
    """Catches a wrong LCU dimension (only the bytes one decided any test). Elastic Load
    Balancing pricing (https://aws.amazon.com/elasticloadbalancing/pricing/): an ALB LCU is
    25 new connections/s, 3,000 active connections, 1 GB an hour to EC2 targets, or 1,000
    rule evaluations/s, the first 10 rules of a request free. Each case makes one dimension
    the largest by hand."""
    # 300,000 users holding one connection each / 3,000 per LCU (1 req/s: nothing else counts).
    assert lcus(300_000, 1) == 100
    # 10,000 req/s all opening a connection / 25 per LCU; 100 bytes each is 3.6 LCUs of bytes.
    assert lcus(1, 10_000, new_connections_per_request=1, bytes_per_request=100) == 400
    # 10,000 req/s x (100 rules - 10 free) / 1,000 per LCU; new connections 1,000/25 = 40.
    assert lcus(1, 10_000, rules_per_request=100, bytes_per_request=100) == 900
    # 100 req/s x 2.5 MB is 250 MB/s, 900 GB an hour / 1 GB per LCU.
    assert lcus(1, 100, bytes_per_request=2_500_000) == 900


def test_lcus_round_up_and_an_exact_figure_stays_exact() -> None:
    """Catches round() for ceil (100.2 LCUs reserved as 100) and dropping the float guard
    (100 LCUs + 10 % is 110.00000000000001 in floating point: reserved as 111)."""
    assert lcus(300_600, 1) == 101  # 100.2 active-connection LCUs
    assert capacity_units(300_000, 1, PROD, margin_pct=10) == 110

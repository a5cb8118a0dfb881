"""The web group as the rehearsal runs it, figure by figure: a lost zone, launches, warm-up and
target tracking's alarms, with every expected value worked by hand or taken from AWS's pages."""

from __future__ import annotations

import pytest

from rehearsal.fleet import Group
from tests.rehearsal.test_simulate import _ready_after

TARGET = 6000.0
"""ALBRequestCountPerTarget target (requests per instance per minute) of these groups."""


def _minutes(group: Group, start_min: int, count: int, per_target: float) -> int:
    """`count` minutes at `per_target` requests per instance per minute, target tracking at each
    minute's end; returns the minute after the last."""
    for minute in range(start_min, start_min + count):
        group.publish(per_target * group.in_service)
        group.track(minute * 60.0)
    return start_min + count


def test_a_lost_zone_takes_its_launches_and_pool_and_the_survivors_refill_to_the_cap() -> None:
    """Catches a lost zone keeping its launches or pool, no replacements, or the zone refilled."""
    # 3 zones, max 30: the two surviving zones hold at most 30 x 2 / 3 = 20.
    group = Group(
        min_size=6, max_size=30, desired=18, target_per_min=TARGET, warmup_s=0, pool_target=9
    )
    group.start_at(12)
    group.reconcile(0)  # 6 more: from the pool (9 -> 3); 6 cold launches refill the pool
    assert (group.in_service, group.launching, group.pool) == (12, 6, 3)
    group.lose_zone(3)
    # A third of everything goes with the zone: serving, launching, pooled and pool refills.
    assert group.in_service == pytest.approx(8)
    assert group.launching == pytest.approx(4)
    assert group.pool == pytest.approx(2)
    assert sum(b[1] for b in group.pool_pending) == pytest.approx(4)
    group.reconcile(10)  # 18 wanted: 6 replacements in the surviving zones, 2 of them warm
    assert group.in_service + group.launching == pytest.approx(18)
    _ready_after(group)
    assert group.in_service == pytest.approx(18)
    # Target tracking asks for the group's max: the surviving zones fill to 20, the lost zone
    # takes none.
    group.desired = 30
    group.reconcile(600)
    _ready_after(group)
    assert group.in_service == pytest.approx(20)


def test_a_lost_zone_with_nothing_launching_is_replaced_within_a_cold_launch() -> None:
    """Catches a group that never launches the replacements a lost zone leaves it short."""
    group = Group(min_size=6, max_size=30, desired=18, target_per_min=TARGET, warmup_s=0)
    group.start_at(18)
    group.lose_zone(3)
    assert group.in_service == pytest.approx(12)
    group.reconcile(0)
    assert group.launching == pytest.approx(6)
    # A cold launch: 3-5 minutes from launch to serving (the rehearsal's stated assumption,
    # rehearsal/model.py COLD_LAUNCH_S): all 18 serve again 300 s after the loss.
    assert _ready_after(group) == 300
    assert group.in_service == pytest.approx(18)


def test_launches_land_spread_over_the_range_never_all_at_its_end() -> None:
    """Catches launches that all land at once, at the top or the bottom of the range."""
    # 10 cold launches: in five batches of 2 across 180-300 s (3-5 minutes, the rehearsal's
    # stated assumption in rehearsal/model.py; AWS publishes no figure): at 204, 228, ... 300 s.
    group = Group(min_size=0, max_size=20, desired=10, target_per_min=TARGET, warmup_s=0)
    group.start_at(0)
    group.reconcile(0)
    serving = {}
    for t in (179, 203, 204, 251, 252, 299, 300):
        group.reconcile(t)
        serving[t] = group.in_service
    assert serving == {179: 0, 203: 0, 204: 2, 251: 4, 252: 6, 299: 8, 300: 10}
    # From a warm pool, 30-60 s (Amazon EC2 Auto Scaling User Guide, warm pools: "ready to
    # serve in seconds"; 60 s with the ALB's health checks, rehearsal/model.py WARM_LAUNCH_S).
    warm = Group(
        min_size=0, max_size=20, desired=10, target_per_min=TARGET, warmup_s=0, pool_target=10
    )
    warm.start_at(0)
    warm.reconcile(0)
    assert _ready_after(warm, step_s=1) == 60


def _settled(warmup_s: int) -> Group:
    """12 instances: 10 since long ago, 2 launched at 0 and serving at 240 and 300 s."""
    group = Group(min_size=2, max_size=50, desired=12, target_per_min=TARGET, warmup_s=warmup_s)
    group.start_at(10)
    group.reconcile(0)
    _ready_after(group)
    assert [b[0] for b in list(group.serving)[1:]] == [240, 300]
    return group


def test_no_scale_in_while_an_instance_warms_up_and_at_once_when_it_is_done() -> None:
    """Catches scale-in while an instance warms up, or a warm-up that ends a step late."""
    # Amazon EC2 Auto Scaling User Guide, set the default instance warmup: while instances warm
    # up, dynamic scaling does not scale in. Warm-up 1,200 s: the 300 s batch is warm at 1,500 s.
    group = _settled(warmup_s=1200)
    _minutes(group, 1, 20, per_target=0.5 * TARGET)  # 20 minutes at half the target
    assert group.requests.ready_in()  # the low alarm has fired; the warm-up holds it back
    assert group.desired == 12
    group.track(1499.0)
    assert group.desired == 12
    group.track(1500.0)
    assert group.desired == 6  # half the target on 12: 6 instances carry it


@pytest.mark.parametrize(
    ("share", "scales_in"),
    [(0.85, True), (0.90, False), (0.95, False)],
)
def test_scale_in_needs_fifteen_minutes_more_than_ten_percent_below_target(
    share: float, scales_in: bool
) -> None:
    """Catches scale-in within 10 % of the target, or after fewer than 15 minutes below it."""
    # Scale-in only when the metric falls more than 10 % below the target ("usually more than
    # 10 % lower": Application Auto Scaling User Guide, how target tracking scaling works,
    # https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html),
    # for 15 datapoints in 15 minutes (the low alarm target tracking creates: Amazon EC2 Auto
    # Scaling User Guide, target tracking scaling policies).
    group = _settled(warmup_s=0)
    _minutes(group, 1, 15, per_target=share * TARGET)  # 15 published, the 16th not yet
    assert group.desired == 12
    _minutes(group, 16, 1, per_target=share * TARGET)
    assert group.desired == (11 if scales_in else 12)  # ceil(0.85 x 12) = 11


def test_with_two_policies_the_group_follows_the_one_asking_for_more() -> None:
    """Catches the group following the smaller of two policies' asks, out or in."""
    # Amazon EC2 Auto Scaling User Guide, target tracking scaling policies, multiple policies:
    # out when any policy is ready to, in only when all are, and never below what any asks.
    group = Group(
        min_size=2, max_size=50, desired=4, target_per_min=TARGET, warmup_s=0, demand_target_pct=50
    )
    group.start_at(4)
    for minute in range(1, 5):  # requests at 1.5x the target (6 instances), demand at 2x (8)
        group.publish(1.5 * TARGET * 4)
        group.publish_demand(100.0, 60)
        group.track(minute * 60.0)
    assert group.desired == 8
    group.reconcile(240)
    _ready_after(group)
    for minute in range(10, 27):  # both far below: requests want 4 (0.5 x 8), demand 5 (0.6 x 8)
        group.publish(0.5 * TARGET * 8)
        group.publish_demand(30.0, 60)
        group.track(minute * 60.0)
    assert group.desired == 5


def test_the_room_demand_policy_reads_every_10_seconds_not_every_minute() -> None:
    """A high-resolution policy (period 10) sees three datapoints above its target 30 s after
    they start and asks for what the latest one needs over the instances in service then; a
    one-minute policy would wait three minutes."""
    group = Group(
        min_size=2,
        max_size=50,
        desired=4,
        target_per_min=TARGET,
        warmup_s=0,
        demand_target_pct=50,
        demand_period_s=10,
    )
    group.start_at(4)
    for step in range(1, 5):  # 150 % over 4 instances: 12 at the 50 % target
        group.publish_demand(150.0, 10)
        group.track(step * 10.0)
        if step < 4:
            assert group.desired == 4, step  # 3 visible only once the 4th is published
    assert group.desired == 12

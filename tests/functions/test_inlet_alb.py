"""The room paces admissions to what the load balancer carries as it scales (inlet.alb_people):
its reservation, the most it used, and its own pace (`alb_scaling_pct_per_5_min`, AWS's "no
more than 50 percent every five minutes"), read from ReservedLCUs and PeakLCUs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from functions.admission.inlet import (
    Fleet,
    Health,
    Sessions,
    alb_people,
    demand_pct,
    free_capacity,
    read_health,
)
from tests.functions.room_fixtures import T0, config_for_tests
from tests.functions.test_inlet_health import LB, TG, put

CONFIG = config_for_tests()
"""150 requests a second an instance, 100 people an instance, the load balancer at 50 %."""
MINUTE = 90_000.0
"""A minute's RequestCount of 1,500 a second: 10 instances' worth, 1,000 people."""
SINCE = 120
"""Seconds from the health minute's start to the step (load_age_s 90, from its middle)."""


def fleet(in_service: int = 100, **figures: Any) -> Fleet:
    health = Health(**{"at": T0, "requests": MINUTE, "peak_lcus": 10.0, **figures})
    return Fleet(in_service, 0.1, False, health, load_at=T0, load_age_s=SINCE - 30)


def test_the_load_balancer_carries_what_it_used_grown_at_its_pace() -> None:
    grown = 1.5 ** (SINCE / 300)  # 50 % every 5 minutes, over the 2 minutes since
    assert alb_people(CONFIG, fleet()) == pytest.approx(1000 * grown)
    slower = replace(CONFIG, alb_scaling_pct_per_5_min=5.0)
    assert alb_people(slower, fleet()) == pytest.approx(1000 * 1.05 ** (SINCE / 300))


def test_a_reservation_carries_its_lcus_whatever_the_load() -> None:
    # 10 LCUs carry 1,000 people: a reservation of 40 carries 4,000 (ReservedLCUs).
    assert alb_people(CONFIG, fleet(reserved_lcus=40.0)) == pytest.approx(4000)


def test_a_load_balancer_behind_its_load_is_not_counted_on_to_grow() -> None:
    behind = fleet(elb_5xx=MINUTE * 0.011)  # 1.1 % of its requests: over elb_5xx_pct (1 %)
    assert alb_people(CONFIG, behind) == pytest.approx(1000)
    at_limit = fleet(elb_5xx=MINUTE * 0.01)
    assert alb_people(CONFIG, at_limit) == pytest.approx(1000 * 1.5 ** (SINCE / 300))


def test_a_load_that_rose_for_five_minutes_grew_the_load_balancer_by_its_whole_pace() -> None:
    earlier = ((T0 - 300, 9.0, MINUTE * 0.9),)  # 9 LCUs for 900 people, five minutes before
    assert alb_people(CONFIG, fleet(earlier=earlier)) == pytest.approx(1000 * 9 * 1.5 / 10)
    # A load that fell since is not taken to have grown it: only the latest minute counts.
    fell = ((T0 - 300, 12.0, MINUTE * 1.2),)
    assert alb_people(CONFIG, fleet(earlier=fell)) == pytest.approx(1000 * 1.5 ** (SINCE / 300))


def test_a_minute_that_rose_does_not_read_a_person_dearer_than_a_steady_one() -> None:
    # The latest minute peaked at 10 LCUs over 1,000 people on average (it rose within it);
    # five minutes before, 10 LCUs carried 2,000: a person uses 0.005, and 10 LCUs grown by the
    # whole pace carry 3,000.
    earlier = ((T0 - 300, 10.0, MINUTE * 2),)
    assert alb_people(CONFIG, fleet(earlier=earlier)) == pytest.approx(3000)


def test_no_peak_datapoint_leaves_the_fleet_alone_to_bound_the_room() -> None:
    assert alb_people(CONFIG, fleet(peak_lcus=None)) is None
    assert alb_people(CONFIG, fleet(requests=0.0)) is None


def test_the_room_admits_no_more_than_the_load_balancer_carries() -> None:
    """100 instances have room for 9,000 more than the 1,000 inside; the load balancer carries
    1,000 x 1.5^(2/5) = 1,176: 176 are let in, not 9,000."""
    inside = Sessions(staying=1000, admitted_in_show=0, collected_in_show=0)
    carried = alb_people(CONFIG, fleet())
    assert carried is not None
    assert free_capacity(CONFIG, fleet(), inside) == int(carried) - 1000 == 176
    reserved = fleet(reserved_lcus=1000.0)  # carries 100,000: the fleet is the bound again
    assert free_capacity(CONFIG, reserved, inside) == 100 * 100 - 1000


def test_the_fleet_scales_for_the_line_the_load_balancer_will_let_in_within_five_minutes() -> None:
    """5,000 wait; within five minutes the load balancer carries 1,176 x 1.5 = 1,764 people:
    the fleet is asked for their 17.64 instances, not the 60 of everyone in line."""
    f = fleet(in_service=20)
    soon = int(alb_people(CONFIG, f) * 1.5)  # type: ignore[operator]
    assert demand_pct(CONFIG, f, waiting=5000, inside=1000) == pytest.approx(100 * soon / 100 / 20)
    unlimited = fleet(in_service=20, reserved_lcus=1000.0)
    assert demand_pct(CONFIG, unlimited, waiting=5000, inside=1000) == pytest.approx(300)


def test_the_load_balancer_s_lcus_come_from_cloudwatch(room) -> None:
    """PeakLCUs and ReservedLCUs per LoadBalancer; ReservedLCUs' one-minute Sum is the
    reservation over 60 ("if you have a LCU reservation of 6,000 [...] the one-minute total is
    100", ELB user guide, monitor LCU reservation)."""
    room.config = replace(room.config, load_balancer=LB, target_group=TG)
    elb, both = {"LoadBalancer": LB}, {"TargetGroup": TG, "LoadBalancer": LB}
    now = T0 + 150
    latest, before = T0 + 60, T0 - 240
    for at, requests, peak in ((before, 45_000.0, 6.0), (latest, 90_000.0, 10.0)):
        put(room, "AWS/ApplicationELB", "RequestCount", both, at, requests)
        put(room, "AWS/ApplicationELB", "PeakLCUs", elb, at, peak)
    put(room, "AWS/ApplicationELB", "ReservedLCUs", elb, latest, 6000 / 60)
    health = read_health(room, now)
    assert health is not None
    assert (health.at, health.peak_lcus, health.reserved_lcus) == (latest, 10.0, 6000.0)
    assert health.earlier == ((before, 6.0, 45_000.0),)

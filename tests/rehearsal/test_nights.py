"""The nights the plan did not choose: how long people stay, what costlier requests and silent
instances do, and the measures the budget judges them by, each against a hand-worked figure."""

from __future__ import annotations

import math
from typing import Any

import pytest

from planning.settings import Settings
from rehearsal.curves import EVENING_SCENARIOS, FLASH_AT_H, Night, scenario_nights
from rehearsal.simulate import (
    Series,
    arrivals,
    peak_vs_needed,
    rehearse,
    reopen_minutes,
    worst_window_pct,
)
from rehearsal.stays import Stays
from tests.helpers import settings_with
from tests.rehearsal.test_simulate import START, STEP, flat, users_for

MEAN_S = 1200


@pytest.mark.parametrize("kind", ["exponential", "lognormal"])
def test_visits_last_the_mean_and_a_steady_crowd_stays_steady(kind) -> None:
    one = Stays(kind, MEAN_S, STEP, 0.0)
    one.enter(1.0)
    lengths = [one.step() * STEP * k for k in range(1, 20_000)]
    assert sum(lengths) == pytest.approx(MEAN_S, rel=0.01)
    # Little's law: arrivals of N / mean a second keep N inside.
    crowd = Stays(kind, MEAN_S, STEP, 10_000.0)
    for _ in range(2_000):
        crowd.step()
        crowd.enter(10_000 * STEP / MEAN_S)
    assert crowd.inside == pytest.approx(10_000, rel=0.01)


def test_lognormal_visits_are_mostly_short_and_a_few_long() -> None:
    """Sigma 1: the median visit is e^-0.5 = 61 % of the mean; 1 % last past 6.2 x the mean."""
    cohort = Stays("lognormal", MEAN_S, STEP, 0.0)
    cohort.enter(1.0)
    left = [cohort.step() for _ in range(20_000)]
    median_step = next(k for k in range(len(left)) if sum(left[: k + 1]) >= 0.5)
    assert (median_step + 1) * STEP == pytest.approx(0.607 * MEAN_S, rel=0.02)
    beyond = 1 - sum(left[: math.ceil(6.2 * MEAN_S / STEP)])
    assert beyond == pytest.approx(0.01, abs=0.002)


def test_people_taken_out_early_no_longer_leave_later() -> None:
    stays = Stays("lognormal", MEAN_S, STEP, 0.0)
    stays.enter(1_000.0)
    stays.remove(400.0)
    assert stays.inside == 600.0
    gone = sum(stays.step() for _ in range(20_000))
    assert gone == pytest.approx(600, rel=0.001)


def test_arrivals_hold_the_curve_whatever_the_visit_lengths() -> None:
    users = [1_000.0] * 100 + [5_000.0] * 500
    for kind in ("exponential", "lognormal"):
        _, wanted = arrivals(users, STEP, MEAN_S, kind)
        assert wanted[-1] == pytest.approx(5_000, rel=1e-6), kind


def test_a_stack_without_events_plays_every_evening_scenario(prod: Settings) -> None:
    nights = {n.scenario: n for n in scenario_nights(EVENING_SCENARIOS, None, prod, STEP)}
    assert list(nights) == list(EVENING_SCENARIOS)
    base = prod.capacity.baseline_users
    rise = int(FLASH_AT_H * 3600 / STEP)
    climb = nights["climb-36x"].users
    assert climb[rise + 60] == pytest.approx(36 * base)  # 10 minutes after the climb began
    assert climb[rise + 30] == pytest.approx(base + 35 * base / 2)
    second = nights["second-crowd"].users
    assert second[rise + 12] == pytest.approx(10 * base)
    assert second[rise + 300] == pytest.approx(base)  # between the crowds (50 minutes on)
    assert second[rise + 372] == pytest.approx(10 * base)  # an hour and 2 minutes on
    assert nights["flash-cpu-2x"].cost == nights["climb-36x-cpu-2x"].cost == 2.0
    assert nights["flash-timeouts"].cost == 2.0, "it must overload for the timeouts to matter"
    assert nights["flash-timeouts"].silent and not nights["flash-crowd"].silent
    assert (
        nights["flash-patience-5"].patience_minutes,
        nights["flash-patience-60"].patience_minutes,
    ) == (5, 60)
    assert nights["flash-lognormal"].stays == "lognormal"


def test_costlier_requests_halve_what_an_instance_serves(prod: Settings) -> None:
    """At twice the CPU per request, the floor needs twice the instances for the same crowd."""
    users = flat(users_for(prod, 10), 1)
    cheap = rehearse(Night("x", START, STEP, users, None), prod, "floor")
    dear = rehearse(Night("x", START, STEP, users, None, cost=2.0), prod, "floor")
    assert dear.measures["instance_hours"] == pytest.approx(2 * cheap.measures["instance_hours"])


def test_the_floor_runs_one_instance_per_zone_however_quiet_the_night(prod: Settings) -> None:
    """A stack spread over three zones runs at least three instances (fewer and one zone's loss
    takes the site down): the floor too, so a night the group's minimum already serves is not
    read as a plan over budget. Above that, the floor follows the demand."""
    zones = len(prod.network.zones)
    quiet = rehearse(Night("x", START, STEP, flat(users_for(prod, 1), 2), None), prod, "floor")
    assert quiet.measures["instance_hours"] == pytest.approx(zones * 2)
    busy = rehearse(Night("x", START, STEP, flat(users_for(prod, 10), 2), None), prod, "floor")
    assert busy.measures["instance_hours"] == pytest.approx(10 * 2, rel=0.01)


def test_a_silent_instance_fails_as_cloudfront_s_timeout_not_as_a_target_5xx(
    prod: Settings, prod_config: dict[str, Any]
) -> None:
    """Overloaded and silent, the viewer gets CloudFront's 504: the high-demand page while 504 is
    a failover code, a raw 504 when it is not; a refusing instance's 503 stays the page. The
    reactive policy, as most teams run it, has no failover page: everything failed is raw."""
    over = flat(users_for(prod, prod.fleet.max_size * 1.5), 1)
    no_504 = settings_with(prod_config, edge__failover_status_codes=[500, 502, 503])
    silent = rehearse(Night("x", START, STEP, over, None, silent=True), no_504, "static-peak")
    refusing = rehearse(Night("x", START, STEP, over, None), no_504, "static-peak")
    assert silent.measures["raw_5xx"] > 0 and silent.measures["high_demand"] == 0
    assert refusing.measures["raw_5xx"] == 0 and refusing.measures["high_demand"] > 0
    bare = rehearse(Night("x", START, STEP, over, None), no_504, "reactive").measures
    assert bare["raw_5xx"] > 0 and bare["high_demand"] == 0


def test_the_worst_window_is_judged_not_the_night() -> None:
    failed = [0.0] * 60 + [30.0] * 15 + [0.0] * 60
    requests = [100.0] * len(failed)
    assert worst_window_pct(failed, requests) == pytest.approx(30.0)
    assert worst_window_pct(failed[:70], requests[:70]) == pytest.approx(100 * 300 / 1500)
    assert worst_window_pct([5.0] * 3, [10.0] * 3) == pytest.approx(50.0)  # shorter: the night


def test_reopening_is_counted_from_when_the_fleet_could_serve_everyone() -> None:
    series = Series(
        demand_instances=[10, 30, 30, 20, 20, 20, 20, 30, 20, 20],
        in_service=[10, 10, 20, 25, 25, 25, 25, 25, 25, 25],
        queueing=[False, True, True, True, True, True, False, True, True, False],
    )
    assert reopen_minutes(series) == 3.0  # minutes 3-5; minute 7 was short again


def test_the_peak_is_held_to_what_the_demand_needed_at_the_scaling_target(prod: Settings) -> None:
    # prod's target: 6,000 requests a minute of 150 a second, 66.7 %: 20 instances' demand
    # needs 30 at the target.
    series = Series(demand_instances=[2.0, 20.0, 20.0], in_service=[6.0, 45.0, 30.0])
    assert peak_vs_needed(series, prod) == pytest.approx(1.5)
    quiet = Series(demand_instances=[1.0], in_service=[6.0])
    assert peak_vs_needed(quiet, prod) == pytest.approx(1.0)  # never below the group's min


def test_the_bound_is_the_wanted_time_beyond_what_the_fleet_s_max_serves(prod: Settings) -> None:
    """Twice what the max serves, all night: half the wanted user-time is beyond the fleet."""
    users = flat(users_for(prod, prod.fleet.max_size * 2), 1)
    for policy in ("configured", "floor"):
        result = rehearse(Night("x", START, STEP, users, None), prod, policy)
        assert result.measures["kept_out_bound_pct"] == pytest.approx(50.0, abs=0.01), policy
    within = rehearse(Night("x", START, STEP, flat(users_for(prod, 10), 1), None), prod, "floor")
    assert within.measures["kept_out_bound_pct"] == 0.0

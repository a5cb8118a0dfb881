"""The room admits what the fleet proves it serves: what the inlet reads of the load balancer's
and the instances' health, when it calls that a breach, and how its ceiling moves, each against
a hand-worked figure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.admission import inlet
from functions.admission.inlet import (
    DECREASE,
    HOLD_S,
    INCREASE,
    Fleet,
    Health,
    breach,
    next_ceiling,
    read_health,
    regulate,
)
from tests.functions.room_fixtures import ASG, T0, config_for_tests

CONFIG = config_for_tests(capacity_cpu_pct=75.0, ceiling_floor=0.25)
LB, TG = "app/web/0123456789abcdef", "targetgroup/web/fedcba9876543210"


def healthy(**figures: Any) -> Health:
    return Health(**{"at": T0, "requests": 10_000.0, "response_p95_s": 0.2, **figures})


def fleet(load: float = 0.5, **figures: Any) -> Fleet:
    return Fleet(10, load, False, healthy(**figures))


@pytest.mark.parametrize(
    ("figures", "why"),
    [
        ({"target_5xx": 201.0}, "target 5xx"),  # 2.01 % > 2 %
        ({"elb_5xx": 101.0}, "load balancer 5xx"),  # 1.01 % > 1 %
        ({"rejected": 1.0}, "rejected connections"),
        ({"response_p95_s": 1.01}, "slow responses"),
        ({"cpu_pct": 95.0}, "saturated CPU"),
    ],
)
def test_each_sign_of_an_unhealthy_fleet_is_a_breach(figures, why) -> None:
    assert breach(CONFIG, fleet(**figures)) == why


def test_at_the_alarms_own_limits_the_fleet_is_still_healthy() -> None:
    at_limits = fleet(target_5xx=200.0, elb_5xx=100.0, response_p95_s=1.0, cpu_pct=94.9)
    assert breach(CONFIG, at_limits) is None
    assert breach(CONFIG, Fleet(10, 0.5, True)) == "origin alarm"
    assert breach(CONFIG, Fleet(10, 0.5, False)) is None  # no health yet: nothing to judge


def test_dearer_requests_show_in_the_cpu_and_lower_the_ceiling_at_once() -> None:
    """Load 0.38 of the settings' rate at 57 % CPU, where the settings say 75 % is the full
    rate: the instances serve 0.38 x 75 / 57 = 0.5 of what the settings say."""
    assert next_ceiling(CONFIG, 1.0, fleet(0.38, cpu_pct=57.0)) == pytest.approx(0.5)
    # Cheaper than the settings say is never believed past the derived capacity.
    assert next_ceiling(CONFIG, 0.9, fleet(0.6, cpu_pct=45.0)) == pytest.approx(0.9 + INCREASE)
    assert next_ceiling(CONFIG, 1.0, fleet(0.6, cpu_pct=45.0)) == 1.0
    # A light CPU says little (idle work weighs in it): the ceiling only rises.
    assert next_ceiling(CONFIG, 0.6, fleet(0.1, cpu_pct=39.0)) == pytest.approx(0.6 + INCREASE)


def test_failing_under_the_ceiling_drops_it_below_that_load_once_per_hold() -> None:
    sick = fleet(0.6, target_5xx=500.0)
    assert next_ceiling(CONFIG, 1.0, sick) == pytest.approx(0.6 * DECREASE)
    assert next_ceiling(CONFIG, 1.0, sick, held=True) == 1.0
    assert next_ceiling(CONFIG, 1.0, fleet(0.2, target_5xx=500.0)) == CONFIG.ceiling_floor
    # Over the ceiling the failures are the people inside: it stands (they are let in no more).
    assert next_ceiling(CONFIG, 0.5, fleet(0.8, target_5xx=500.0)) == 0.5


def test_the_room_acts_once_per_minute_of_health_and_holds_after_a_decrease() -> None:
    room: dict[str, Any] = {"ceiling": 1.0, "health_at": None, "lowered_at": None}
    minute = healthy(target_5xx=500.0)
    sick = Fleet(10, 0.6, False, minute)
    assert regulate(CONFIG, room, sick).ceiling == pytest.approx(0.42)
    assert regulate(CONFIG, room, sick).ceiling == pytest.approx(0.42), "the same minute again"
    for later_m in range(1, HOLD_S // 60):
        later = replace(sick, load=0.4, health=replace(minute, at=T0 + 60 * later_m))
        assert regulate(CONFIG, room, later).ceiling == pytest.approx(0.42), later_m
    after = replace(sick, load=0.4, health=replace(minute, at=T0 + HOLD_S))
    assert regulate(CONFIG, room, after).ceiling == pytest.approx(0.4 * DECREASE)
    assert room["lowered_at"] == T0 + HOLD_S


def put(room, namespace: str, metric: str, dims: dict[str, str], at: float, *values: float) -> None:
    room.cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                "Values": list(values),
                "Timestamp": datetime.fromtimestamp(at, UTC),
            }
        ],
    )


def test_health_is_the_latest_published_minute_of_each_figure(room) -> None:
    room.config = replace(room.config, load_balancer=LB, target_group=TG)
    elb, both = {"LoadBalancer": LB}, {"TargetGroup": TG, "LoadBalancer": LB}
    now = T0 + 150  # the minutes from T0 and T0 + 60 are whole; the one from T0 + 120 is not
    older, latest = now - 150, now - 90
    for at, requests in ((older, 9_000.0), (latest, 12_000.0)):
        put(room, "AWS/ApplicationELB", "RequestCount", both, at, requests)
    put(room, "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", both, older, 999.0)
    put(room, "AWS/ApplicationELB", "RequestCountPerTarget", {"TargetGroup": TG}, latest, 6_000.0)
    put(room, "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", both, latest, 30.0)
    # Not read: the listener's own fixed 403s (anyone can send requests without CloudFront's
    # header) and desync 400s count in it too, so it would let outsiders hold the room shut.
    put(room, "AWS/ApplicationELB", "HTTPCode_ELB_4XX_Count", elb, latest, 7_000.0)
    put(
        room,
        "AWS/ApplicationELB",
        "HTTPCode_ELB_5XX_Count",
        {"LoadBalancer": "app/x/1"},
        latest,
        77,
    )
    put(room, "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", elb, latest, 5.0)
    put(room, "AWS/ApplicationELB", "RejectedConnectionCount", elb, latest, 2.0)
    put(room, "AWS/ApplicationELB", "TargetResponseTime", both, latest, *([0.1] * 95), *[4.0] * 5)
    put(room, "AWS/EC2", "CPUUtilization", {"AutoScalingGroupName": ASG}, latest, 40.0, 60.0)
    health = read_health(room, now)
    assert health == Health(
        at=latest // 60 * 60,
        requests=12_000.0,
        per_target=6_000.0,
        target_5xx=30.0,
        elb_5xx=5.0,  # not another load balancer's 77
        rejected=2.0,
        response_p95_s=0.1,  # the 95th of 100 samples
        cpu_pct=50.0,
    )


def test_no_datapoint_yet_is_no_health_not_a_healthy_fleet(room) -> None:
    assert read_health(room, T0) is None
    assert inlet.step(room, T0 + 10)["ceiling"] == 1.0


def test_the_fake_refuses_what_cloudwatch_refuses(room) -> None:
    """The stand-in for GetMetricData holds the inlet to the API's rules: an upper-case or
    repeated query id, a 45 s period, or an unknown statistic is a ValidationError."""
    query = {
        "Id": "requests",
        "MetricStat": {
            "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount"},
            "Period": 60,
            "Stat": "Sum",
        },
    }
    start, end = datetime.fromtimestamp(T0 - 300, UTC), datetime.fromtimestamp(T0, UTC)
    for bad in (
        [{**query, "Id": "Requests"}],
        [query, query],
        [{**query, "MetricStat": {**query["MetricStat"], "Period": 45}}],
        [{**query, "MetricStat": {**query["MetricStat"], "Stat": "p101"}}],
    ):
        with pytest.raises(ClientError, match="ValidationError"):
            room.cloudwatch.get_metric_data(MetricDataQueries=bad, StartTime=start, EndTime=end)
    queries = [
        {"Id": key, "MetricStat": {"Metric": {"Namespace": ns, "MetricName": m}, "Period": 60,
                                   "Stat": stat}}
        for key, ns, m, _, stat in inlet.HEALTH_QUERIES
    ]  # fmt: skip
    answer = room.cloudwatch.get_metric_data(
        MetricDataQueries=queries, StartTime=start, EndTime=end
    )
    assert [r["Id"] for r in answer["MetricDataResults"]] == [q["Id"] for q in queries]


def test_a_step_admits_to_what_the_cpu_shows_not_to_what_the_settings_say(room) -> None:
    """Two instances x 5 people; the fleet serves 0.3 of the settings' rate at 45 % CPU of a
    full rate at 75 %: it serves 0.5, so the room admits up to 5 people, not 10."""
    room.config = replace(room.config, load_balancer=LB, target_group=TG, capacity_cpu_pct=75.0)
    both = {"TargetGroup": TG, "LoadBalancer": LB}
    minute = T0 - T0 % 60
    put(room, "AWS/ApplicationELB", "RequestCount", both, minute - 60, 0.3 * 150 * 60 * 2)
    put(room, "AWS/ApplicationELB", "TargetResponseTime", both, minute - 60, 0.1)
    put(room, "AWS/EC2", "CPUUtilization", {"AutoScalingGroupName": ASG}, minute - 60, 45.0)
    room.cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "RequestCountPerTarget",
                "Dimensions": [{"Name": "TargetGroup", "Value": TG}],
                "Value": 0.3 * 150 * 60,
                "Timestamp": datetime.fromtimestamp(minute - 60, UTC),
            }
        ],
    )
    for _ in range(12):
        room.join(None, minute + 1)
    report = inlet.step(room, minute + 10)
    assert report["ceiling"] == pytest.approx(0.5)
    # 10 x 0.5 = 5 people, less the 3 the load already shows inside (0.3 x 10, rounded up).
    assert report["budget"] == 2


def test_the_cpu_is_read_against_the_load_of_its_own_minute() -> None:
    """The latest RequestCountPerTarget the inlet read may be a minute newer than the CPU's:
    the estimate uses the health's own per-target count (0.4 of 150/s at 60 % CPU of a full
    rate at 75 %: 0.5), not the fleet's load (0.8 here)."""
    minute = healthy(per_target=0.4 * 150 * 60, cpu_pct=60.0)
    assert next_ceiling(CONFIG, 1.0, Fleet(10, 0.8, False, minute)) == pytest.approx(0.5)

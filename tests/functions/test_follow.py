"""Following the night (functions/prescale/follow.py): a night below its forecast gets the raises
it is on course for, never more than the plan, never a new decrease; the engine reads the load
balancer's RequestCount from CloudWatch (moto on 127.0.0.1) and puts the actions to come at it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from botocore.stub import Stubber

from functions.prescale import follow
from functions.prescale.follow import FOLLOW_FLOOR, FOLLOW_FROM, followed, night_share
from functions.prescale.levers import Clients, Targets, plan_pass
from functions.prescale.night_plan import EventLevers, Need, NightPlan, Step
from tests.helpers import client
from tests.scripts.test_prescale import ALB

T0 = datetime(2028, 11, 7, 22, tzinfo=UTC)
H = timedelta(hours=1)
BASE = 1_000
"""Requests a minute at baseline; the forecast climbs to 21,000 (a surge of 20,000) at T0+4h."""


def levers() -> EventLevers:
    forecast = tuple(
        Step(T0 + i * H, BASE + v) for i, v in enumerate((0, 2_000, 10_000, 20_000, 20_000, 0))
    )
    return EventLevers(
        key="vote",
        time_zone="UTC",
        start=T0 + H,
        raise_at=T0,
        restore_at=T0 + 5 * H,
        slip=timedelta(minutes=2),
        max_size=120,
        min_steps=(
            Step(T0, 10),
            Step(T0 + 2 * H, 40),
            Step(T0 + 3 * H, 70),
            Step(T0 + 4 * H, 30),
            Step(T0 + 5 * H, 6),
        ),
        lcu_steps=(Step(T0, 200), Step(T0 + 2 * H, 500), Step(T0 + 5 * H, 100)),
        needs=(Need(T0 + 2 * H, T0 + 3 * H, 40, 500), Need(T0 + 3 * H, T0 + 4 * H, 70, 500)),
        warm_pool=20,
        prepared=30,
        room="armed",
        baseline_rpm=BASE,
        forecast=forecast,
    )


def test_the_night_is_judged_only_once_the_forecast_is_into_its_surge() -> None:
    e = levers()
    # At T0+1h the forecast's surge is 2,000 of 20,000 (10 %): judged; just before, not.
    early = T0 + H - timedelta(minutes=1)
    assert FOLLOW_FROM == 0.1 and night_share(e, BASE, early) == 1.0
    assert night_share(e, BASE + 1_000, T0 + H) == 0.5  # half the surge, no margin
    assert night_share(e, BASE + 10_000, T0 + 2 * H) == 1.0  # at the forecast
    assert night_share(e, BASE + 30_000, T0 + 2 * H) == 1.0  # above it: the plan, never more
    assert night_share(e, BASE, T0 + 2 * H) == FOLLOW_FLOOR  # nobody came: the floor
    assert night_share(e, None, T0 + 2 * H) == 1.0  # not measured: the plan
    assert night_share(replace(e, forecast=()), BASE, T0 + 2 * H) == 1.0


def test_only_what_is_to_come_shrinks_and_never_below_what_is_in_effect() -> None:
    e, now = levers(), T0 + 2.5 * H
    # In effect: MinSize 40 (the T0+2h raise, run), 500 LCUs; the night is at half its surge.
    f = followed(e, 0.5, now, min_in_effect=40, lcus_in_effect=500, fleet_min=6,
                 standing_lcus=100)  # fmt: skip
    assert [s.value for s in f.min_steps] == [
        10,  # past: what is in effect is no less
        40,  # due: 6 + 17 = 23 would be a decrease; what is in effect stands
        40,  # the T0+3h raise to 70: at half its surge 38, but never under the 40 in effect
        18,  # the plan's own step down to 30, at half its surge: 6 + 12
        6,  # the restore, as planned
    ]
    assert [s.value for s in f.lcu_steps] == [200, 500, 100]  # 500 in effect stands
    assert [(n.instances, n.lcus) for n in f.needs] == [(40, 500), (38, 300)]
    # Before anything was raised, the whole plan's surge halves (rest: the fleet's min).
    g = followed(e, 0.5, T0 - H, min_in_effect=6, lcus_in_effect=100, fleet_min=6,
                 standing_lcus=100)  # fmt: skip
    assert [s.value for s in g.min_steps] == [8, 23, 38, 18, 6]
    assert [s.value for s in g.lcu_steps] == [150, 300, 100]
    # At share 1 it is the plan (with what is in effect at or above it).
    assert followed(e, 1.0, now, 40, 500, 6, 100) == e


def test_a_step_down_still_to_come_is_never_a_raise() -> None:
    """A step down of the plan's goes at the share of its surge and never above the step before
    it as followed: a peak followed at 22 (a quarter of 6 -> 70) steps down to 12, not up to
    the plan's 30."""
    e = levers()
    low = followed(e, FOLLOW_FLOOR, T0 - H, 6, 100, 6, 100)
    assert [s.value for s in low.min_steps][2:4] == [22, 12]
    for share in (FOLLOW_FLOOR, 0.5, 0.9):
        steps = followed(e, share, T0 - H, 6, 100, 6, 100).min_steps
        assert steps[3].value <= steps[2].value, share


def test_an_action_due_or_past_holds_what_was_put_whatever_the_share() -> None:
    """Catches the runner's backstop raising a group to a share that rose after the action was
    put, which AWS then runs late at the lower level it holds (a decrease the plan never had):
    a due or past step is what was put for it."""
    e, now = levers(), T0 + 2 * H + timedelta(minutes=1)
    put = {e.action_name(1): 27}
    for share in (0.3, 0.5, 0.9):
        f = followed(e, share, now, 24, 500, 6, 100, put)
        assert f.min_size_at(now) == 27, share


def test_the_reservation_decreases_no_more_often_than_the_plan_whatever_the_shares() -> None:
    """Catches a due step re-followed at each pass's share (lower, raise, lower: the day's two
    decreases spent before the restore, which AWS then refuses): passes every 5 minutes from
    the peak's stage to past the restore, the share wandering, a failed read (the plan as it
    stands) among them; what the runner would request each pass."""
    e = replace(levers(), lcu_steps=(Step(T0 + 2 * H, 500), Step(T0 + 4 * H, 250),
                                     Step(T0 + 5 * H, 100)))  # fmt: skip
    shares = [0.5, 0.6, 0.5, 0.55, 1.0, 0.45, 0.6, 0.5] * 6  # 1.0: a read that failed
    have, decreases = 100, 0
    for k, share in enumerate(shares):
        moment = T0 + 2 * H + k * timedelta(minutes=5)
        plan = followed(e, share, moment, 6, have, 6, 100)
        want = plan.reservation_at(moment) or 100
        decreases += want < have
        have = want
    plan_decreases = sum(b.value < a.value for a, b in pairwise(e.lcu_steps))
    assert decreases <= plan_decreases == 2
    assert have == 100


def test_no_step_ever_passes_the_plan() -> None:
    """At any share, any moment of the night and whatever is in effect (an operator's floor far
    above the plan included: the floor is the engine's to hold, not the followed plan's), no
    followed MinSize or LCU step is above the plan's own."""
    e = levers()
    for share in (FOLLOW_FLOOR, 0.5, 0.99, 1.0):
        for hours in (-1, 0, 1.5, 2, 2.5, 3.5, 4.5, 6):
            for in_effect in (6, 40, 200):
                f = followed(e, share, T0 + hours * H, in_effect, in_effect * 5, 6, 100)
                pairs = zip(f.min_steps + f.lcu_steps, e.min_steps + e.lcu_steps, strict=True)
                for mine, planned in pairs:
                    assert mine.at == planned.at and mine.value <= planned.value, (share, hours)


def test_the_plan_document_carries_the_forecast() -> None:
    e = levers()
    plan = NightPlan("prod", 30, 6, 120, 100, 12, 18, "Stopped", (e,))
    again = NightPlan.from_json(plan.to_json()).events[0]
    assert (again.baseline_rpm, again.forecast) == (BASE, e.forecast)
    # A document of a plan deployed before following existed follows nothing.
    document = plan.to_document()
    for key in ("baseline_rpm", "forecast"):
        del document["events"][0][key]
    old = NightPlan.from_document(document).events[0]
    assert (old.baseline_rpm, old.forecast) == (0, ())


@pytest.fixture
def watched(aws: str, web_group: str) -> Clients:
    """The engine's clients with CloudWatch, and prod's web group."""
    return Clients(client("autoscaling", aws), client("elbv2", aws), client("dynamodb", aws),
                   client("cloudwatch", aws))  # fmt: skip


def _count(clients: Clients, at: datetime, requests: float) -> None:
    clients.cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[{
            "MetricName": "RequestCount",
            "Dimensions": [{"Name": "LoadBalancer", "Value": "app/web/0123456789abcdef"}],
            "Timestamp": at, "Value": requests, "Unit": "Count", "StorageResolution": 60,
        }],
    )  # fmt: skip


def test_the_runner_puts_the_raises_to_come_at_the_night_s_share(watched: Clients) -> None:
    """The engine reads the latest minute of RequestCount, and the stage actions it puts for
    the rest of the night are the followed plan's; the pass reports the share."""
    e = levers()
    plan = NightPlan("prod", 30, 6, 120, 100, 12, 18, "Stopped", (e,))
    now = T0 + 2.5 * H
    # The latest published minute started two minutes ago: it is read against the forecast at
    # its middle, not at the pass (a rising night would read low).
    expected = follow.forecast_at(e, now - timedelta(seconds=90))
    assert expected is not None
    _count(watched, now - timedelta(minutes=2), BASE + (expected - BASE) * 0.5)
    found = plan_pass(watched, Targets("web-asg", ALB), plan, now)
    assert found.shares == {"vote": pytest.approx(0.5, abs=1e-6)}
    puts = {c.target: c.detail["MinSize"] for c in found.changes if c.layer == "schedule"}
    # The group's MinSize is 6 (no action has run in moto): the raise to 70 goes at its share.
    assert puts["floodgate-vote-stage-3"] == 6 + round((70 - 6) * found.shares["vote"] + 0.5)
    assert puts["floodgate-vote-restore"] == 6


def test_no_count_no_following_and_a_failed_read_is_reported(watched: Clients) -> None:
    e = levers()
    plan = NightPlan("prod", 30, 6, 120, 100, 12, 18, "Stopped", (e,))
    now = T0 + 2.5 * H
    found = plan_pass(watched, Targets("web-asg", ALB), plan, now)
    assert found.shares == {"vote": 1.0}
    puts = {c.target: c.detail["MinSize"] for c in found.changes if c.layer == "schedule"}
    assert puts["floodgate-vote-stage-3"] == 70
    with Stubber(watched.cloudwatch) as denied:  # the role lost cloudwatch:GetMetricData
        denied.add_client_error("get_metric_data", "AccessDenied", http_status_code=403)
        found = plan_pass(watched, Targets("web-asg", ALB), plan, now)
    assert [f.layer for f in found.failures if f.layer == "follow"] == ["follow"]
    puts = {c.target: c.detail["MinSize"] for c in found.changes if c.layer == "schedule"}
    assert puts["floodgate-vote-stage-3"] == 70


def test_an_operators_floor_above_the_followed_plan_holds(watched: Clients) -> None:
    """Catches the floor judged against the forecast while the actions follow the night: the
    T0+2h raise was put at 17 (a night at 30 % of its surge), then an operator raised the group
    to 30, under the plan's 40 but above what the followed plan set; every stage action still
    to come holds it, the step down (at 30 %: 14) included."""
    e = levers()
    plan = NightPlan("prod", 30, 6, 120, 100, 12, 18, "Stopped", (e,))
    now = T0 + 2.5 * H
    watched.autoscaling.put_scheduled_update_group_action(
        AutoScalingGroupName="web-asg", ScheduledActionName=e.action_name(1),
        StartTime=T0 + 2 * H, MinSize=17, MaxSize=120,
    )  # fmt: skip
    watched.autoscaling.update_auto_scaling_group(
        AutoScalingGroupName="web-asg", MinSize=30, DesiredCapacity=30
    )
    expected = follow.forecast_at(e, now - timedelta(seconds=90))
    assert expected is not None
    _count(watched, now - timedelta(minutes=2), BASE + (expected - BASE) * 0.3)
    found = plan_pass(watched, Targets("web-asg", ALB), plan, now)
    assert found.shares["vote"] == pytest.approx(0.3, abs=1e-6)
    puts = {c.target: c.detail["MinSize"] for c in found.changes if c.layer == "schedule"}
    assert puts["floodgate-vote-stage-3"] == 30  # 6 + 20 = 26 at 30 %, held at the floor
    assert puts["floodgate-vote-stage-4"] == 30  # the step down to 14, held at the floor
    assert puts["floodgate-vote-restore"] == 6


def test_a_queueing_room_s_count_is_read_as_the_forecast(watched: Clients, room_table: str) -> None:
    """Catches following a night the room holds back: while it queues, the load balancer counts
    only whom it let in (what the fleet serves), so a low count is no sign of a quiet night and
    the raises to come stand as planned; open, the same count is followed."""
    e = levers()
    plan = NightPlan("prod", 30, 6, 120, 100, 12, 18, "Stopped", (e,))
    now = T0 + 2.5 * H
    _count(watched, now - timedelta(minutes=2), BASE + 1_000)
    targets = Targets("web-asg", ALB, room_table)
    for state, share in (("queue", 1.0), ("open", FOLLOW_FLOOR)):
        watched.dynamodb.put_item(
            TableName=room_table, Item={"pk": {"S": "room"}, "state": {"S": state}}
        )
        found = plan_pass(watched, targets, plan, now)
        assert found.shares == {"vote": share}, state

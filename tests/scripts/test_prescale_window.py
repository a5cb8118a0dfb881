"""The pre-scale job driven through the whole of an event window, at the instants that broke it
(issue 15): raise - 1 s, raise, inside, end, end + 17 min, restore, restore + 30 s,
restore + 3 min, the next day. Between instants, AWS does what it does: it runs each one-off
scheduled action, late (`LATE`, inside the settings' 120 s slip), then deletes it, and fulfils
LCU reservations (tests/aws_night.py: `run_due_actions` and `Reservations`, with AWS's rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from planning.event_plan import plan_actions
from scripts.prescale import Clients, run
from tests.aws_night import THROTTLED_QUERY, RawBody, Reservations, run_due_actions
from tests.helpers import client
from tests.scripts.test_prescale import ALB, _slow_alb, plans_at  # noqa: F401 (autouse)

LATE = timedelta(seconds=90)
"""How late AWS runs each scheduled action here (prescale.schedule_slip_s allows 120 s)."""
ELECTION = plans_at("2028-11-01T00:00:00Z")[0]
assert ELECTION.key == "us-general-election-20281107"
FIRST, *_, RESTORE = (action.name for action in plan_actions(ELECTION))


@pytest.fixture
def night(aws: str, web_group: str, room_table: str) -> dict[str, Any]:
    clients = Clients(client("autoscaling", aws), client("elbv2", aws), client("dynamodb", aws))
    night: dict[str, Any] = {
        "clients": clients,
        "group": web_group,
        "room": room_table,
        "alb": Reservations(clients.elbv2, clock=lambda: night["now"]),
        "now": datetime(2028, 10, 1, tzinfo=UTC),
    }
    return night


def job_argv(night: dict[str, Any], instant: datetime) -> list[str]:
    """The job's flags for tonight's prod group, ALB and room, run at `instant`."""
    return ["--stack", "prod", "--asg-name", night["group"], "--alb-arn", ALB,
            "--room-table", night["room"], "--now", instant.isoformat()]  # fmt: skip


def at(night: dict[str, Any], instant: datetime) -> dict[str, Any]:
    """AWS catches up to `instant` (less LATE), then the job runs at `instant`, then again
    (which must write nothing). What the job left behind."""
    clients: Clients = night["clients"]
    run_due_actions(clients.autoscaling, night["group"], instant - LATE)
    night["now"] = instant
    argv = job_argv(night, instant)
    clients.calls.clear()
    code = run(argv, clients)
    writes = clients.writes
    clients.calls.clear()
    # 2 only for a shortfall: with no runner between these instants, a stage can find less in
    # effect than it needs (a reservation asked for now is still pending).
    assert run(argv, clients) in (0, 2) and clients.writes == 0, f"second run at {instant} wrote"
    asg = clients.autoscaling
    (group,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[night["group"]])[
        "AutoScalingGroups"
    ]
    actions = {
        a["ScheduledActionName"]
        for a in asg.describe_scheduled_actions(AutoScalingGroupName=night["group"])[
            "ScheduledUpdateGroupActions"
        ]
    }
    pool = asg.describe_warm_pool(AutoScalingGroupName=night["group"])
    calendar = clients.dynamodb.get_item(TableName=night["room"], Key={"pk": {"S": "calendar"}})
    return {
        "code": code,
        "writes": writes,
        "group": (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]),
        "first": FIRST in actions,
        "restore": RESTORE in actions,
        "pool": (pool.get("WarmPoolConfiguration") or {}).get("MinSize"),
        "lcu": night["alb"].requested,
        "room": ELECTION.key in calendar["Item"]["events"]["M"],
    }


def test_the_job_keeps_the_whole_window_and_lets_aws_restore(night) -> None:
    e = ELECTION
    second, minute, utc = timedelta(seconds=1), timedelta(minutes=1), e.restore_at.tzinfo
    step = {s.value: s.at for s in reversed(e.min_steps)}  # the first step to each MinSize
    nov8 = datetime(2028, 11, 8, tzinfo=utc)
    # (instant, group min/desired/max, first stage action, restore action, pool, LCUs, room)
    timeline = [
        ("window - 1 s", e.raise_at - second, (6, 6, 120), True, True, 18, 100, True),
        # The window opens at 17:40 local, with the first stage's raise 1 h ahead.
        ("window", e.raise_at, (6, 6, 120), True, True, 18, 100, True),
        # The reservation's first step: 2 h + the runner's 5 min before the 01:00 stage.
        ("first LCU step", e.lcu_steps[0].at, (6, 6, 120), True, True, 18, 152, True),
        # AWS runs the first stage 90 s late: the job raises the group itself meanwhile.
        ("first stage", step[8], (8, 8, 120), True, True, 18, 272, True),
        # The reservation's one decrease of the night: at 02:47Z, five minutes after the last
        # minute it could not have reached alone, the load has grown the load balancer to what
        # the peak needs (it scales 5 % every 5 minutes here: slow_alb).
        ("peak stage", step[69], (69, 69, 120), False, True, 18, 100, True),
        ("inside", nov8 + 4 * 60 * minute, (69, 69, 120), False, True, 18, 100, True),
        # Stepping down lowers MinSize only: desired is target tracking's (moto has none).
        ("step down", step[63] + 3 * minute, (63, 69, 120), False, True, 18, 100, True),
        ("end", e.occurrence.end, (15, 69, 120), False, True, 18, 100, True),
        ("end + 17 min", e.occurrence.end + 17 * minute, (11, 69, 120), False, True, 18, 100,
         True),
        ("restore", e.restore_at, (8, 69, 120), False, True, 18, 100, True),
        # AWS has not run the restore yet (it may be 120 s late): the job leaves it alone.
        ("restore + 30 s", e.restore_at + 30 * second, (8, 69, 120), False, True, 18, 100,
         True),
        # AWS ran it: min back to 6, desired left to target tracking; the night is over.
        ("restore + 3 min", e.restore_at + 3 * minute, (6, 69, 120), False, False, 12, 100,
         False),
        ("next day", e.restore_at + 24 * 60 * minute, (6, 69, 120), False, False, 12, 100,
         False),
    ]  # fmt: skip
    for label, instant, group, first, restore, pool, lcu, room in timeline:
        seen = at(night, instant)
        want = {
            "group": group,
            "first": first,
            "restore": restore,
            "pool": pool,
            "lcu": lcu,
            "room": room,
        }
        assert {k: seen[k] for k in want} == want, label
        assert seen["code"] in (1 if seen["writes"] else 0, 2), label


def test_a_raise_never_lowers_a_busier_group(night) -> None:
    """A group at 90/100/120 before the window (an operator, or demand) keeps its 100 in
    service: the raise sets the plan's min, never desired; a max raised to 150 stands through
    the restore and the next raise."""
    asg = night["clients"].autoscaling
    asg.update_auto_scaling_group(
        AutoScalingGroupName=night["group"], MinSize=90, DesiredCapacity=100, MaxSize=120
    )
    at(night, ELECTION.raise_at - timedelta(hours=2))
    seen = at(night, ELECTION.min_steps[0].at + timedelta(minutes=5))  # AWS ran the first stage
    assert seen["group"][1:] == (100, 120) and not seen["first"]
    asg.update_auto_scaling_group(
        AutoScalingGroupName=night["group"], MaxSize=150, DesiredCapacity=140
    )
    at(night, ELECTION.occurrence.start + timedelta(hours=1))  # the hourly run sees it
    after = at(night, ELECTION.restore_at + timedelta(minutes=5))  # AWS ran the restore
    assert after["group"] == (6, 140, 150), "the restore hands min back and cuts nobody"
    inauguration = plans_at("2029-01-01T00:00:00Z")[0]
    at(night, inauguration.raise_at - timedelta(hours=2))
    seen = at(night, inauguration.min_steps[0].at + timedelta(minutes=5))
    assert seen["group"][1:] == (140, 150), "a MaxSize of 120 would have cut it to 120"


def test_a_small_events_reservation_never_drops_below_the_standing_level(night) -> None:
    inauguration = plans_at("2029-01-01T00:00:00Z")[0]
    assert inauguration.capacity_units >= 100  # prod's standing level
    assert inauguration.reserve_alb_at is not None
    seen = at(night, inauguration.reserve_alb_at + timedelta(minutes=1))
    assert seen["lcu"] == inauguration.lcu_steps[0].value
    night["alb"].request.units = night["alb"].provisioned = 100
    after = at(night, inauguration.restore_at + timedelta(days=1))
    assert after["lcu"] == 100, "back to the standing level, never 0"


def test_a_reservation_raised_by_hand_is_not_lowered_while_the_event_holds(night) -> None:
    night["alb"].request.units = night["alb"].provisioned = 600  # an operator: more than the plan
    seen = at(night, ELECTION.occurrence.end + timedelta(minutes=17))
    assert seen["lcu"] == 600
    assert at(night, ELECTION.restore_at + timedelta(minutes=3))["lcu"] == 100


def test_a_moved_events_actions_move_with_it(night) -> None:
    asg = night["clients"].autoscaling
    first = ELECTION.min_steps[0]
    at(night, ELECTION.raise_at - timedelta(days=2))
    asg.put_scheduled_update_group_action(
        AutoScalingGroupName=night["group"],
        ScheduledActionName=FIRST,
        StartTime=first.at - timedelta(hours=5),
        MinSize=first.value,
        MaxSize=120,
    )
    seen = at(night, ELECTION.raise_at - timedelta(days=2) + timedelta(hours=1))
    assert seen["writes"] == 1
    listed = asg.describe_scheduled_actions(AutoScalingGroupName=night["group"])
    (action,) = [
        a for a in listed["ScheduledUpdateGroupActions"] if a["ScheduledActionName"] == FIRST
    ]
    assert action["StartTime"] == first.at


def test_throttling_is_retried_not_reported(night) -> None:
    """Standard retry mode, 8 retries: three throttled reads in a row still succeed."""
    clients: Clients = night["clients"]
    retries = clients.autoscaling.meta.config.retries
    assert (retries["mode"], retries["total_max_attempts"]) == ("standard", 9)
    throttled = {"left": 3}

    def throttle(**_: Any) -> AWSResponse | None:
        if throttled["left"] == 0:
            return None
        throttled["left"] -= 1
        return AWSResponse("https://autoscaling", 400, {}, RawBody(THROTTLED_QUERY))

    clients.autoscaling.meta.events.register(
        "before-send.auto-scaling.DescribeAutoScalingGroups", throttle
    )
    seen = at(night, ELECTION.raise_at - timedelta(hours=1))
    assert throttled["left"] == 0 and seen["code"] == 1


def test_a_failing_layer_is_reported_and_the_others_still_run(night, capsys) -> None:
    """A crash used to exit 1 ("changes applied") and skip the room calendar queued after it."""
    from botocore.parsers import ResponseParserError

    clients: Clients = night["clients"]

    def broken(**_: Any) -> None:
        raise ResponseParserError("Unable to parse response (no element found)")

    clients.autoscaling.meta.events.register("before-call.auto-scaling.DescribeWarmPool", broken)
    argv = job_argv(night, ELECTION.raise_at)
    assert run(argv, clients) == 2
    err = capsys.readouterr().err
    assert "error: warm_pool web-asg: AWS call failed: Unable to parse response" in err
    assert "Traceback" not in err
    calendar = clients.dynamodb.get_item(TableName=night["room"], Key={"pk": {"S": "calendar"}})
    assert ELECTION.key in calendar["Item"]["events"]["M"], "the room layer still ran"
    assert run([*argv, "--verbose"], clients) == 2
    assert "Traceback" in capsys.readouterr().err

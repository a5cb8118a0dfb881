"""The pre-scale job against moto's server on 127.0.0.1 (ALB reservations via Stubber)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from functions.prescale.night_plan import NightPlan
from planning.calendar import load_calendar
from planning.event_plan import night_plan, plan_actions, plan_events
from planning.settings import load_stack_settings
from rehearsal import model
from scripts import prescale as job_module
from scripts.prescale import Services, run
from tests.helpers import client, slow_alb

BEFORE = "2028-10-01T00:00:00Z"  # debates and election ahead
ELECTION_NIGHT = "2028-11-08T03:00:00Z"  # election under way
ALB = "arn:aws:elasticloadbalancing:ca-central-1:123456789012:loadbalancer/app/web/0123456789abcdef"
PROD = slow_alb(load_stack_settings("prod"))
"""The reservation lever needs a night that outpaces the load balancer (tests.helpers)."""


@pytest.fixture(autouse=True)
def _slow_alb(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job plans with the same slow load balancer as PROD."""

    def slow(stack: str):
        return slow_alb(load_stack_settings(stack))

    monkeypatch.setattr(job_module, "load_stack_settings", slow)


FIRST_STAGE = "floodgate-us-general-election-20281107-stage-1"


def plans_at(now: str):
    return plan_events(load_calendar(), PROD, "prod", datetime.fromisoformat(now))


def owned_actions(clients, group: str) -> dict[str, dict]:
    actions = clients.autoscaling.describe_scheduled_actions(AutoScalingGroupName=group)
    return {
        a["ScheduledActionName"]: a
        for a in actions["ScheduledUpdateGroupActions"]
        if a["ScheduledActionName"].startswith("floodgate-")
    }


def args(*extra: str, now: str = BEFORE, group: str = "web-asg") -> list[str]:
    return ["--stack", "prod", "--asg-name", group, "--now", now, *extra]


def test_first_run_creates_every_planned_action(clients, web_group, capsys) -> None:
    assert run(args(), clients) == 1
    names = set(owned_actions(clients, web_group))
    expected = {a.name for p in plans_at(BEFORE) for a in plan_actions(p)}
    assert names == expected
    election = next(p for p in plans_at(BEFORE) if p.key == "us-general-election-20281107")
    actions = owned_actions(clients, web_group)
    # MinSize only: AWS raises desired to it, and a busier group keeps its size.
    peak = [actions[a.name] for a in plan_actions(election) if a.min_size == 69]
    assert peak and all((a["MinSize"], a["MaxSize"]) == (69, 120) for a in peak)
    assert not any("DesiredCapacity" in a for a in actions.values())
    first = actions[FIRST_STAGE]  # 19:30 local's stage, 20 min ahead
    assert (first["StartTime"], first["MinSize"]) == (datetime(2028, 11, 8, 0, 10, tzinfo=UTC), 8)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["layer"] for line in lines} == {"schedule"}
    assert all(line["result"] == "applied" for line in lines)


def test_second_run_makes_no_writes(clients, web_group) -> None:
    assert run(args(), clients) == 1
    clients.calls.clear()
    assert run(args(), clients) == 0
    assert clients.writes == 0
    assert set(clients.calls) == {
        "DescribeAutoScalingGroups",
        "DescribeScheduledActions",
        "DescribeWarmPool",
    }


def test_dry_run_changes_nothing_and_prints_a_table(clients, web_group, capsys) -> None:
    assert run(args("--dry-run"), clients) == 1
    assert owned_actions(clients, web_group) == {}
    assert clients.writes == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["layer", "action", "target", "detail"]
    raise_row = " ".join(out.split(FIRST_STAGE, 1)[1].split())  # the detail wraps under itself
    assert raise_row.startswith("MaxSize 120, MinSize 8, StartTime 2028-11-08T00:10:00Z")
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "{" not in out, "details as key value pairs, not JSON"


def test_the_dry_run_names_a_load_balancer_not_its_arn(clients, web_group, alb, capsys) -> None:
    alb.add_response("describe_capacity_reservation", reservation(100), {"LoadBalancerArn": ALB})
    assert run(args("--dry-run", "--alb-arn", ALB, now="2028-11-07T22:56:00Z"), clients) == 1
    out = capsys.readouterr().out
    assert ALB not in out and "app/web/0123456789abcdef" in out
    widths = {len(line) for line in out.splitlines()}
    assert max(widths) <= 100, "no row padded to an ARN's width, none past 100 columns"


def test_stale_owned_actions_go_and_foreign_ones_stay(clients, web_group) -> None:
    for name in ("floodgate-cancelled-debate-20281020-raise", "team-nightly-batch"):
        clients.autoscaling.put_scheduled_update_group_action(
            AutoScalingGroupName=web_group,
            ScheduledActionName=name,
            StartTime=datetime(2028, 10, 20, tzinfo=UTC),
            MinSize=8,
        )
    run(args(), clients)
    actions = clients.autoscaling.describe_scheduled_actions(AutoScalingGroupName=web_group)
    names = {a["ScheduledActionName"] for a in actions["ScheduledUpdateGroupActions"]}
    assert "floodgate-cancelled-debate-20281020-raise" not in names
    assert "team-nightly-batch" in names


def test_a_drifted_action_is_put_back(clients, web_group) -> None:
    run(args(), clients)
    clients.autoscaling.put_scheduled_update_group_action(
        AutoScalingGroupName=web_group,
        ScheduledActionName=FIRST_STAGE,
        StartTime=datetime(2028, 11, 8, 0, 10, tzinfo=UTC),
        MinSize=10,
        MaxSize=120,
        DesiredCapacity=10,
    )
    clients.calls.clear()
    assert run(args(), clients) == 1
    assert clients.calls["PutScheduledUpdateGroupAction"] == 1
    assert owned_actions(clients, web_group)[FIRST_STAGE]["MinSize"] == 8


def test_an_owned_action_that_sets_desired_is_not_taken_as_in_sync(clients, web_group) -> None:
    """Catches DesiredCapacity left out of the comparison: an action in AWS with the plan's time,
    MinSize and MaxSize but a DesiredCapacity of 8 would cut a group serving 30 to 8 when AWS
    runs it ("DesiredCapacity: the desired capacity is the initial capacity of the Auto Scaling
    group after the scheduled action runs", PutScheduledUpdateGroupAction API reference)."""
    run(args(), clients)
    clients.autoscaling.put_scheduled_update_group_action(
        AutoScalingGroupName=web_group,
        ScheduledActionName=FIRST_STAGE,
        StartTime=datetime(2028, 11, 8, 0, 10, tzinfo=UTC),
        MinSize=8,
        MaxSize=120,
        DesiredCapacity=8,
    )
    clients.calls.clear()
    assert run(args(), clients) == 1
    assert clients.calls["PutScheduledUpdateGroupAction"] == 1, "the action is put again"


@pytest.mark.parametrize(("ahead", "put"), [(30, False), (90, True)])
def test_an_action_due_within_a_minute_is_left_to_the_backstop(
    clients, web_group, ahead, put
) -> None:
    """Catches the minute's margin dropped: an action put 30 s before its time may reach AWS
    after it, which refuses a start time in the past; 90 s ahead it is put. (00:10Z: the
    election's first stage.)"""
    now = datetime(2028, 11, 8, 0, 10, tzinfo=UTC) - timedelta(seconds=ahead)
    run(args(now=now.isoformat()), clients)
    assert (FIRST_STAGE in owned_actions(clients, web_group)) is put


def test_during_an_event_a_low_group_is_raised_to_the_stages_min(
    clients, web_group, capsys
) -> None:
    """22:00 local: the 22:00 stage's 57 is due (asked for at 21:40); 69 comes at 22:10. Six
    in service when the stage needs 57 is a shortfall, reported (exit 2) as it is repaired."""
    assert run(args(now=ELECTION_NIGHT), clients) == 2
    err = capsys.readouterr().err
    assert "shortfall us-general-election-20281107: instances 6 in effect, the running " in err
    (group,) = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[web_group])[
        "AutoScalingGroups"
    ]
    assert (group["MinSize"], group["DesiredCapacity"]) == (57, 57)


def test_during_an_event_capacity_is_never_lowered(clients, web_group) -> None:
    clients.autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=web_group, MinSize=90, DesiredCapacity=100
    )
    clients.autoscaling.put_warm_pool(AutoScalingGroupName=web_group, MinSize=30)  # plan: 18
    run(args(now=ELECTION_NIGHT), clients)
    (group,) = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[web_group])[
        "AutoScalingGroups"
    ]
    assert (group["MinSize"], group["DesiredCapacity"]) == (90, 100)
    assert clients.calls["UpdateAutoScalingGroup"] == 1  # only the test's own call
    pool = clients.autoscaling.describe_warm_pool(AutoScalingGroupName=web_group)
    assert pool["WarmPoolConfiguration"]["MinSize"] == 30


def sizes(clients, group: str) -> tuple[int, int, int]:
    (found,) = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
        "AutoScalingGroups"
    ]
    return found["MinSize"], found["DesiredCapacity"], found["MaxSize"]


DEBATE_LEAD = "2028-10-04T00:45:00Z"
"""The vice-presidential debate starts 01:00Z; its 18 is asked for at 00:40Z (the window opens)."""


def test_a_group_below_the_stage_but_busier_is_raised_to_the_stage_keeping_its_desired(
    clients, web_group
) -> None:
    """Catches a raise that writes desired down to the stage's MinSize, and one skipped because
    desired is already above the stage: MinSize 6 with 24 in service, the stage wants 18."""
    clients.autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=web_group, DesiredCapacity=24
    )
    run(args(now=DEBATE_LEAD), clients)
    assert sizes(clients, web_group) == (18, 24, 120)


@pytest.mark.parametrize(
    ("now", "stage"),
    [
        (DEBATE_LEAD, 18),  # the lead: 20 min before the debate starts
        ("2028-10-04T05:10:00Z", 8),  # the cooldown: the debate ended 05:00Z, restore 06:00Z
    ],
)
def test_a_missed_raise_is_repaired_in_the_lead_and_the_cooldown_not_only_the_event(
    clients, web_group, now, stage
) -> None:
    """Catches a repair window shrunk to the event itself (start..end): a group found at the
    fleet's 6 before the start or after the end, inside raise..restore, is raised to the stage."""
    run(args(now=now), clients)
    assert sizes(clients, web_group) == (stage, stage, 120)


def test_warm_pool_is_sized_for_the_coming_event(clients, web_group) -> None:
    before_election = "2028-10-20T00:00:00Z"  # debates over; the election is next
    run(args(now=before_election), clients)
    pool = clients.autoscaling.describe_warm_pool(AutoScalingGroupName=web_group)
    assert pool["WarmPoolConfiguration"]["MinSize"] == plans_at(before_election)[0].warm_pool == 18


def test_waiting_room_calendar_is_written_once(clients, web_group, room_table) -> None:
    run(args("--room-table", room_table), clients)
    events = clients.dynamodb.get_item(TableName=room_table, Key={"pk": {"S": "calendar"}})["Item"][
        "events"
    ]["M"]
    election = events["us-general-election-20281107"]["M"]
    assert election["mode"] == {"S": "armed"}
    assert (election["starts_at"]["S"], election["ends_at"]["S"]) == (
        "2028-11-07T22:00:00Z",
        "2028-11-08T10:00:00Z",
    )
    clients.calls.clear()
    assert run(args("--room-table", room_table), clients) == 0
    assert clients.writes == 0


def reservation(units: int, decreases: int = 2, code: str = "provisioned") -> dict:
    return {
        "MinimumLoadBalancerCapacity": {"CapacityUnits": units},
        "DecreaseRequestsRemaining": decreases,
        "CapacityReservationState": [
            {"AvailabilityZone": "ca-central-1a", "State": {"Code": code}}
        ],
    }


@pytest.fixture
def alb(clients):
    """moto has no ALB capacity reservations: stub them on the (call-counting) elbv2 client."""
    stubber = Stubber(clients.elbv2)
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def test_reservation_is_requested_hours_ahead_of_its_stage(clients, web_group, alb) -> None:
    """17:56 local: the pass asks for the 20:00 stage's 152 LCUs (2 h + 5 min ahead)."""
    alb.add_response("describe_capacity_reservation", reservation(100), {"LoadBalancerArn": ALB})
    alb.add_response(
        "modify_capacity_reservation",
        reservation(152),
        {"LoadBalancerArn": ALB, "MinimumLoadBalancerCapacity": {"CapacityUnits": 152}},
    )
    assert run(args("--alb-arn", ALB, now="2028-11-07T22:56:00Z"), clients) == 1


def test_reservation_is_released_to_the_standing_level_after(clients, web_group, alb) -> None:
    after = "2028-11-09T00:00:00Z"
    alb.add_response("describe_capacity_reservation", reservation(490), {"LoadBalancerArn": ALB})
    alb.add_response(
        "modify_capacity_reservation",
        reservation(100),
        {"LoadBalancerArn": ALB, "MinimumLoadBalancerCapacity": {"CapacityUnits": 100}},
    )
    assert run(args("--alb-arn", ALB, now=after), clients) == 1


def test_no_decrease_left_today_defers_the_release(clients, web_group, alb, capsys) -> None:
    after = "2028-11-09T00:00:00Z"
    alb.add_response(
        "describe_capacity_reservation", reservation(490, decreases=0), {"LoadBalancerArn": ALB}
    )
    assert run(args("--alb-arn", ALB, now=after), clients) != 2  # schedules still get made
    assert "two decreases a day" in capsys.readouterr().out
    assert clients.calls["ModifyCapacityReservation"] == 0


def test_no_reservation_change_while_one_is_pending(clients, web_group, alb, capsys) -> None:
    alb.add_response(
        "describe_capacity_reservation", reservation(100, code="pending"), {"LoadBalancerArn": ALB}
    )
    assert run(args("--alb-arn", ALB, now="2028-11-07T22:56:00Z"), clients) != 2
    assert "still pending" in capsys.readouterr().out
    assert clients.calls["ModifyCapacityReservation"] == 0


def test_reservation_in_place_is_left_alone(clients, web_group, alb) -> None:
    alb.add_response("describe_capacity_reservation", reservation(539), {"LoadBalancerArn": ALB})
    assert run(args("--alb-arn", ALB, now=ELECTION_NIGHT), clients) == 2  # the group is short
    assert clients.calls["ModifyCapacityReservation"] == 0


def test_bad_outputs_file_exits_2(tmp_path, capsys) -> None:
    (tmp_path / "out.json").write_text("{not json")
    assert run(["--stack", "prod", "--outputs", str(tmp_path / "out.json")]) == 2
    assert "unreadable JSON" in capsys.readouterr().err


def test_missing_group_name_exits_2(tmp_path, capsys) -> None:
    (tmp_path / "out.json").write_text(json.dumps({"alb_arn": ALB}))
    assert run(["--stack", "prod", "--outputs", str(tmp_path / "out.json")]) == 2
    assert "asg_name missing" in capsys.readouterr().err


def test_unknown_group_exits_2_naming_it(clients, capsys) -> None:
    assert run(args(group="nope"), clients) == 2
    assert "autoscaling group 'nope' not found" in capsys.readouterr().err
    assert clients.writes == 0


def test_help_documents_every_option(capsys) -> None:
    with pytest.raises(SystemExit):
        run(["--help"])
    out = capsys.readouterr().out
    for option in ("--stack", "--outputs", "--asg-name", "--alb-arn", "--room-table",
                   "--dry-run", "--now", "Exit codes"):  # fmt: skip
        assert option in out


def test_warm_pool_gets_a_prepared_capacity_cap(clients, web_group) -> None:
    """Without the cap AWS keeps max - desired (120 - 6 = 114) instances prepared."""
    clients.autoscaling.put_warm_pool(AutoScalingGroupName=web_group, MinSize=12)
    run(args(now="2028-10-20T00:00:00Z"), clients)
    pool = clients.autoscaling.describe_warm_pool(AutoScalingGroupName=web_group)
    assert pool["WarmPoolConfiguration"]["MaxGroupPreparedCapacity"] == 6 + 18


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--now", ""], "--now: empty"),
        (["--now", "2028-10-01"], "--now: '2028-10-01' has no offset"),
        (["--outputs", "LIST"], "must be a JSON object of stack outputs (got list)"),
        (["--outputs", "NUMBER"], "asg_name must be a string (got 7)"),
        (["--alb-arn", "web-alb"], "alb_arn 'web-alb': must be an Application Load Balancer"),
        (["--alb-arn", ALB.replace("ca-central-1", "us-east-1")], "is in us-east-1; the stack"),
        (["--room-table", ""], "room_table '': must be a DynamoDB table name"),
        (["--asg-name", "a:b"], "asg_name 'a:b': must be an Auto Scaling group name"),
    ],
)
def test_bad_flags_are_clear_errors_naming_the_flag(tmp_path, capsys, argv, message) -> None:
    files = {"LIST": "[1, 2]", "NUMBER": '{"asg_name": 7}'}
    for i, arg in enumerate(argv):
        if arg in files:
            path = tmp_path / f"{arg}.json"
            path.write_text(files[arg], encoding="utf-8")
            argv[i] = str(path)
    assert run(["--stack", "prod", "--asg-name", "web", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "FLOODGATE_NOW" not in err


def test_a_dry_run_that_could_not_read_a_layer_never_says_in_sync(clients, capsys) -> None:
    """The group cannot be read (and moto answers the warm pool's call with its own traceback
    as the body, as a proxy would with an HTML page): no change was found, the run says it is
    not in sync, and each failure is one short line."""
    assert run(args("--dry-run", group="nope"), clients) == 2
    captured = capsys.readouterr()
    assert "in sync: no changes" not in captured.out
    assert "not in sync" in captured.out and "2 failure(s); exit 2" in captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "Traceback" not in captured.err
    assert all(len(line) < 300 for line in captured.err.splitlines())


def test_a_foreign_error_page_is_cut_to_its_status_and_first_line() -> None:
    from botocore.exceptions import ClientError

    page = "<html>\n<head><title>502 Bad Gateway</title></head>\n" + "<p>x</p>\n" * 500
    error = ClientError(
        {"Error": {"Code": "502", "Message": page}, "ResponseMetadata": {"HTTPStatusCode": 502}},
        "DescribeWarmPool",
    )
    short = job_module.short_error(error)
    assert short.startswith("HTTP 502: ") or "(502)" in short
    assert "\n" not in short and len(short) <= job_module.ERROR_CHARS + len("HTTP 502: ")
    assert job_module.short_error(RuntimeError("plain")) == "plain"


def test_a_warm_pool_change_shows_every_field_it_puts(clients, web_group, capsys) -> None:
    """The pool's size already right, its ceiling wrong: the dry run shows the ceiling."""
    clients.autoscaling.put_warm_pool(AutoScalingGroupName=web_group, MinSize=12)
    run(args("--dry-run", now="2028-10-20T00:00:00Z", group=web_group), clients)
    out = " ".join(capsys.readouterr().out.split())  # a long detail wraps under itself
    row = out.split("warm_pool resize", 1)[1]
    assert "prepared_from None" in row and "prepared_to 24" in row


def test_the_workflow_verifies_ahead_and_nothing_on_the_night_waits_for_it() -> None:
    """GitHub runs scheduled workflows best-effort (delayed at busy times, sometimes dropped):
    the job verifies and repairs twice a day, away from the top of the hour; the runner in AWS
    acts, and the plan's one-interval head start is the runner's rate, not the workflow's."""
    workflow = Path(__file__).resolve().parents[2] / ".github/workflows/prescale.yml"
    (cron,) = re.findall(r'cron: "([^"]+)"', workflow.read_text(encoding="utf-8"))
    minute, hour, *rest = cron.split()
    assert minute not in ("0", "*") and "," in hour and rest == ["*", "*", "*"]
    assert PROD.prescale.run_every_minutes * 60 > model.RUNNER_PHASE_S


def runner_schedule(aws: str, plan_input: str, state: str = "ENABLED") -> Any:
    scheduler = client("scheduler", aws)
    scheduler.create_schedule(
        Name="floodgate-prod-prescale",
        ScheduleExpression="rate(5 minutes)",
        FlexibleTimeWindow={"Mode": "OFF"},
        State=state,
        Target={"Arn": "arn:aws:lambda:ca-central-1:123456789012:function:floodgate-prod-prescale",
                "RoleArn": "arn:aws:iam::123456789012:role/scheduler", "Input": plan_input},
    )  # fmt: skip
    return scheduler


@pytest.fixture
def outputs(tmp_path) -> Path:
    """The stack outputs the workflow hands the job: the group and the runner's schedule."""
    path = tmp_path / "outputs.json"
    path.write_text(
        json.dumps({"asg_name": "web-asg", "prescale_schedule": "floodgate-prod-prescale"})
    )
    return path


def test_a_runner_with_a_stale_plan_gets_the_current_one(
    aws, clients, web_group, outputs, capsys
) -> None:
    """Deployed in July, the runner's plan has no election (120 days ahead): the job, days
    before, hands it the current plan, so the night's LCUs, pool and backstop are the runner's."""
    stale = night_plan(plans_at("2028-06-01T00:00:00Z"), PROD, "prod")
    scheduler = runner_schedule(aws, stale.to_json())
    services = Services(clients, scheduler, client("sqs", aws))
    assert run([*args(), "--outputs", str(outputs)], services) == 1
    current = NightPlan.from_json(
        scheduler.get_schedule(Name="floodgate-prod-prescale")["Target"]["Input"]
    )
    assert "us-general-election-20281107" in {e.key for e in current.events}
    line = next(json.loads(s) for s in capsys.readouterr().out.splitlines() if '"runner"' in s)
    assert "us-general-election-20281107" in line["detail"]["lacks"]
    assert run([*args(), "--outputs", str(outputs)], services) == 0, "in sync: nothing twice"


def test_a_replanned_runner_keeps_every_other_setting_of_its_schedule(
    aws, clients, web_group, outputs
) -> None:
    """Catches a field dropped from what UpdateSchedule is sent: "if you do not set an optional
    field in your request, that field will be set to its system-default value after the update"
    (EventBridge Scheduler API reference, UpdateSchedule). Replacing a stale plan must change
    the input and nothing else: time zone, description, flexible window, state, end date."""
    stale = night_plan(plans_at("2028-06-01T00:00:00Z"), PROD, "prod")
    scheduler = runner_schedule(aws, stale.to_json(), state="DISABLED")
    settings = {
        "ScheduleExpressionTimezone": "America/Toronto",
        "Description": "floodgate prod pre-scale runner",
        "FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 2},
        "EndDate": datetime(2030, 1, 1, tzinfo=UTC),
    }
    before = scheduler.get_schedule(Name="floodgate-prod-prescale")
    scheduler.update_schedule(
        Name="floodgate-prod-prescale", ScheduleExpression=before["ScheduleExpression"],
        State="DISABLED", Target=before["Target"], **settings,
    )  # fmt: skip
    run([*args(), "--outputs", str(outputs)], Services(clients, scheduler))
    after = scheduler.get_schedule(Name="floodgate-prod-prescale")
    assert after["Target"]["Input"] != stale.to_json(), "the plan was replaced"
    for key, value in {**settings, "State": "DISABLED", "ScheduleExpression": "rate(5 minutes)",
                       "GroupName": "default"}.items():  # fmt: skip
        assert after.get(key) == value, key


def test_a_dry_run_with_a_failed_reservation_exits_2(clients, web_group, alb) -> None:
    """Catches the dry run dropping the problems it plans: a reservation AWS reports failed is a
    failure to report (exit 2) even when nothing is asked again."""
    failed = reservation(152, code="failed")
    alb.add_response("describe_capacity_reservation", failed, {"LoadBalancerArn": ALB})
    assert run(args("--dry-run", "--alb-arn", ALB, now="2028-11-07T22:56:00Z"), clients) == 2
    assert clients.calls["ModifyCapacityReservation"] == 0


def test_a_disabled_runner_is_reported_not_undone(aws, clients, web_group, outputs, capsys) -> None:
    current = night_plan(plans_at(BEFORE), PROD, "prod")
    scheduler = runner_schedule(aws, current.to_json(), state="DISABLED")
    run(args(), clients)  # the actions in place first
    assert run([*args(), "--outputs", str(outputs)], Services(clients, scheduler)) == 2
    assert "its schedule is DISABLED: nothing acts on the night" in capsys.readouterr().err
    assert scheduler.get_schedule(Name="floodgate-prod-prescale")["State"] == "DISABLED"


def test_invocations_scheduler_could_not_deliver_are_reported(
    aws, clients, web_group, tmp_path, capsys
) -> None:
    sqs = client("sqs", aws)
    url = sqs.create_queue(QueueName="floodgate-prod-prescale-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"asg_name": web_group, "prescale_dlq_url": url}))
    assert run([*args(), "--outputs", str(path)], Services(clients, None, sqs)) == 2
    assert "1 runner invocation(s) Scheduler could not deliver" in capsys.readouterr().err

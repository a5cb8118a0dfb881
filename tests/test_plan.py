"""The offline plan: tree and key settings on stdout, a diffable JSON document on disk."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from planning.settings import SettingsError, load_stack_settings
from scripts import plan
from scripts.offline_cloud import SECRET, OfflineRun, is_secret, run_offline, stack_config
from tests.helpers import stack_run, with_setting


def test_plan_prints_tree_and_key_settings(tmp_path, capsys) -> None:
    assert plan.main(["--stack", "prod", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fleet            min 6 / max 120, warm pool 12 stopped" in out
    assert "LCU reservation  100" in out
    assert "WAF rate limit   2000 req per IP per 300 s" in out
    assert "failover codes   500, 502, 503, 504" in out
    assert "Portal floodgate-prod" in out
    assert "  Edge floodgate-prod" in out
    assert "1 x aws:cloudfront/distribution:Distribution" in out
    assert (tmp_path / "plan-prod.json").is_file()
    rehearsed = out.split("Rehearsal, each event's own curve")[1].split("\n\n")[0]
    assert "  us-general-election-20281107: within budget" in rehearsed
    assert len(rehearsed.strip().splitlines()) == 1 + out.count("EDT  ") + out.count("EST  ")
    flat = " ".join(out.split())  # lines wrap within 100 columns
    assert "needed 46 instances; max with a zone lost 80 (holds)" in flat


def test_the_tree_is_stable_names_resources_and_omits_empty_components(monkeypatch) -> None:
    """Two runs print the same tree; with no event within the horizon Prescale holds the runner
    and no scheduled action; a component that declares nothing is left out."""
    from scripts.offline_cloud import OfflineRun, Registration, run_offline, stack_config

    monkeypatch.setenv("FLOODGATE_NOW", "2031-06-01T00:00:00Z")  # no event within 120 days
    trees = [plan.render_tree(run_offline("prod", stack_config("prod"))) for _ in range(2)]
    assert trees[0] == trees[1]
    assert any(line.strip() == "Prescale floodgate-prod" for line in trees[0])
    assert not any("aws:autoscaling/schedule:Schedule" in line for line in trees[0])
    assert any(
        "x aws:cloudfront/distribution:Distribution: floodgate-prod" in line for line in trees[0]
    )
    empty = Registration("urn:c", "floodgate:prescale:Prescale", "idle", None, False, {})
    assert plan.render_tree(OfflineRun("prod", [empty])) == []


def test_beyond_the_horizon_the_plan_names_the_next_event_and_the_command_that_plans_it(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("FLOODGATE_NOW", "2026-12-04T00:00:00Z")  # 332 days before the next
    assert plan.main(["--stack", "prod", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    key = "canada-immigration-levels-plan-2027-20271101"
    assert "  no events inside the horizon" in out
    assert f"next event, beyond the horizon: {key} (2027-11-01 14:00 EDT)" in " ".join(out.split())
    command = next(line for line in out.splitlines() if "plan it: make plan" in line)
    assert command.strip() == "plan it: make plan STACK=prod NOW=2027-10-25T18:00:00Z"
    monkeypatch.setenv("FLOODGATE_NOW", command.rsplit("NOW=", 1)[1])
    assert plan.main(["--stack", "prod", "--out", str(tmp_path)]) == 0
    assert f"\n  {key}  2027-11-01 14:00 EDT" in capsys.readouterr().out  # planned: a table row
    dev = load_stack_settings("dev")  # the calendar's events apply to prod and staging
    assert plan.next_event_lines("dev", dev, datetime(2026, 12, 4, tzinfo=UTC)) == [
        "next event: none on the calendar for dev in the next 1830 days"
    ]


def test_an_event_the_fleet_cannot_carry_breaks_the_budget_in_the_plan(prod_config) -> None:
    from planning.calendar import load_calendar
    from planning.clock import now
    from planning.event_plan import plan_events
    from rehearsal.verdict import event_verdict
    from tests.helpers import settings_with

    small = settings_with(prod_config, fleet__max_size=20, fleet__warm_pool__min_size=4)
    (election,) = [
        p
        for p in plan_events(load_calendar(), small, "prod", now())
        if p.occurrence.name == "us-general-election"
    ]
    verdict = event_verdict(election, small)
    assert verdict.startswith("BREAKS BUDGET: ")
    # What a max of 20 cannot serve is the physical bound (no room lets them in, so it is not
    # judged as kept out); the line it leaves waits longer than the budget allows.
    assert "longest queueing" in verdict and "> 240 min" in verdict


def test_plan_json_has_the_documented_shape(tmp_path) -> None:
    plan.main(["--stack", "dev", "--out", str(tmp_path)])
    document = json.loads((tmp_path / "plan-dev.json").read_text())
    assert set(document) == {"stack", "project", "resources", "planned_at"}
    assert (document["stack"], document["project"]) == ("dev", "floodgate")
    urns = {r["urn"] for r in document["resources"]}
    for resource in document["resources"]:
        assert set(resource) == {"urn", "type", "name", "parent", "aliases", "inputs"}
        assert resource["parent"] is None or resource["parent"] in urns
    assert [r["urn"] for r in document["resources"]] == sorted(urns)


def test_inputs_use_engine_names_and_mask_secrets() -> None:
    document = stack_run("prod").plan_document()
    alb = next(r for r in document["resources"] if r["type"] == "aws:lb/loadBalancer:LoadBalancer")
    assert "dropInvalidHeaderFields" in alb["inputs"]
    rule = next(r for r in document["resources"] if r["type"] == "aws:lb/listenerRule:ListenerRule")
    # The condition is secret as a whole; only the header values in it are masked (by mark).
    (condition,) = rule["inputs"]["conditions"]
    assert condition["httpHeader"]["httpHeaderName"] == "X-Floodgate-Origin-Verify"
    assert all(is_secret(v) and v != SECRET for v in condition["httpHeader"]["values"])
    assert "offline-" not in json.dumps(document), "no secret value appears anywhere"


def test_two_plans_are_byte_identical() -> None:
    first = run_offline("prod", stack_config("prod")).plan_json()
    second = run_offline("prod", stack_config("prod")).plan_json()
    assert first == second


def test_unknown_stack_exits_2_with_the_reason(tmp_path, capsys) -> None:
    assert plan.main(["--stack", "nope", "--out", str(tmp_path)]) == 2
    assert "stack 'nope'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_invalid_settings_fail_before_any_resource_is_declared(prod_config) -> None:
    with_setting(prod_config, "fleet.max_size", 1)
    partial = OfflineRun(stack="prod")
    with pytest.raises(SettingsError, match=r"fleet\.max_size"):
        run_offline("prod", prod_config, into=partial)
    assert partial.registrations == []


def test_a_diff_against_a_plan_of_another_instant_says_so(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FLOODGATE_NOW", "2028-10-01T00:00:00Z")
    plan.main(["--stack", "dev", "--out", str(tmp_path / "base")])
    base = tmp_path / "base" / "plan-dev.json"
    capsys.readouterr()
    plan.main(["--stack", "dev", "--out", str(tmp_path / "same"), "--diff", str(base)])
    assert "warning" not in capsys.readouterr().err
    monkeypatch.setenv("FLOODGATE_NOW", "2028-11-01T00:00:00Z")
    plan.main(["--stack", "dev", "--out", str(tmp_path / "later"), "--diff", str(base)])
    err = capsys.readouterr().err
    assert "was planned at 2028-10-01T00:00:00Z, this plan at 2028-11-01T00:00:00Z" in err


def test_the_plan_says_what_in_aws_carries_each_lever(monkeypatch, tmp_path, capsys) -> None:
    """During election night: 12 actions still to come, 11 far enough for `pulumi up` to
    declare, the one due within create_ahead_s (03:10) left to the runner."""
    monkeypatch.setenv("FLOODGATE_NOW", "2028-11-08T03:00:00Z")
    assert plan.main(["--stack", "prod", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    election = " ".join(out.split("us-general-election-20281107:")[1].split())
    assert "MinSize: 12 Auto Scaling scheduled actions (pulumi up declares 11, the runner 1)" in (
        election
    )
    assert "LCUs, warm pool 18, room (armed), backstop: the runner Lambda, every 5 min" in election


def test_the_plan_marks_added_nights_and_lists_the_dropped_ones(tmp_path) -> None:
    from datetime import UTC, datetime

    from planning.calendar import parse_calendar, skipped
    from planning.event_plan import plan_events
    from planning.settings import load_stack_settings

    prod, now = load_stack_settings("prod"), datetime(2028, 10, 1, tzinfo=UTC)
    calendar = parse_calendar({"events": [{
        "name": "budget", "time_zone": "America/Toronto", "start": "2028-10-05T14:00:00",
        "duration_h": 4, "peak_multiple": 3, "rule": "FREQ=WEEKLY;COUNT=2",
        "rdates": ["2028-10-20T14:00:00"], "exdates": ["2028-10-12T14:00:00"]}]})  # fmt: skip
    plans = plan_events(calendar, prod, "prod", now)
    gone = skipped(calendar, "prod", now, datetime(2029, 1, 1, tzinfo=UTC))
    lines = plan.event_table(plans, prod, now, gone)
    assert [p.key for p in plans] == ["budget-20281005", "budget-20281020"]
    assert any(line.startswith("budget-20281020  2028-10-20 14:00 EDT RDATE") for line in lines)
    assert lines[-1] == "not planned: budget-20281012 (2028-10-12 14:00 EDT): EXDATE"

"""`make rehearse`: curve files, bad input, the budget verdict, the JSON and the charts."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import pytest

from planning.calendar import CalendarError, parse_calendar
from planning.settings import RehearsalSettings, Settings
from planning.shapes import SHAPES
from rehearsal.curves import SCENARIOS, CurveError, read_curve
from rehearsal.simulate import Result, Series
from rehearsal.verdict import breaches, exit_code, summary
from scripts import rehearse

GOOD = """timestamp,concurrent_users
2016-11-08T20:00:00-05:00,17000
2016-11-08T21:00:00-05:00,60000
2016-11-08T23:00:00-05:00,200000
2016-11-09T02:00:00-05:00,40000
"""


def write(tmp_path: Path, text: str, name: str = "night.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_curve_is_read_and_interpolated(tmp_path, prod: Settings) -> None:
    start, users = read_curve(write(tmp_path, GOOD), prod, 10)
    # The same instant as 01:00 UTC, kept in the file's own offset (the night's local time).
    assert start.isoformat() == "2016-11-08T20:00:00-05:00"
    assert start.astimezone(UTC).isoformat() == "2016-11-09T01:00:00+00:00"
    assert len(users) == 6 * 360 + 1
    assert users[0] == 17000 and users[360] == 60000 and users[3 * 360] == 200000
    assert users[180] == pytest.approx((17000 + 60000) / 2)


def test_requests_per_minute_become_users(tmp_path, prod: Settings) -> None:
    rpm = "timestamp,requests_per_minute\n2016-11-08T20:00:00Z,51000\n2016-11-08T20:10:00Z,102000\n"
    _, users = read_curve(write(tmp_path, rpm), prod, 60)
    # 51,000 requests a minute at 0.05 req/s per user = 17,000 users.
    assert users[0] == pytest.approx(17000) and users[-1] == pytest.approx(34000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty"),
        ("when,users\n2016-11-08T20:00:00Z,1\n", "row 1: header"),
        ("timestamp,concurrent_users,requests_per_minute\nx,1,2\n", "exactly one of"),
        (GOOD.replace("2016-11-08T21:00:00-05:00", "9 pm"), "row 3: timestamp '9 pm'"),
        (GOOD.replace("2016-11-08T21:00:00-05:00", "2016-11-08T21:00:00"), "row 3: timestamp"),
        (GOOD.replace(",200000", ",-5"), "row 4: concurrent_users '-5' must be a number >= 0"),
        (GOOD.replace(",200000", ",lots"), "row 4: concurrent_users 'lots'"),
        (GOOD.replace(",200000", ",nan"), "row 4"),
        (GOOD.replace("2016-11-08T23:00:00", "2016-11-08T20:30:00"), "row 4: timestamp"),
        (GOOD.replace("2016-11-08T23:00:00", "2016-11-08T21:00:00"), "row 4: timestamp"),
        (GOOD.replace(",40000", ",40000,7"), "row 5: 3 columns, header has 2"),
        ("timestamp,concurrent_users\n2016-11-08T20:00:00Z,1\n", "at least two rows"),
    ],
)
def test_a_bad_curve_is_refused_with_its_row(tmp_path, prod, text, expected) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CurveError) as error:
        read_curve(path, prod, 10)
    assert str(path) in str(error.value) and expected in str(error.value)


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff" + GOOD,  # a spreadsheet's UTF-8 export starts with a byte order mark
        GOOD.replace("timestamp,concurrent_users", " Timestamp , Concurrent_Users"),
        GOOD.replace("\n2016-11-08T23", "\n\n , \n2016-11-08T23") + "\n\n",
    ],
    ids=["byte-order-mark", "header-case-and-spaces", "blank-rows"],
)
def test_a_curve_saved_by_a_spreadsheet_reads_as_the_plain_file(tmp_path, prod, text) -> None:
    """Catches a BOM or a header's case refused, and a blank row that ends the night early."""
    assert read_curve(write(tmp_path, text), prod, 10) == read_curve(
        write(tmp_path, GOOD, "a"), prod, 10
    )


def test_a_curve_with_nobody_on_the_site_at_a_minute_is_read(tmp_path, prod) -> None:
    """Catches a zero count (the site empty, or down, at a minute) refused as not >= 0."""
    _, users = read_curve(write(tmp_path, GOOD.replace(",17000", ",0")), prod, 10)
    assert users[0] == 0 and users[180] == pytest.approx(30000)


def test_a_curve_across_the_fall_back_hour_is_read_in_real_time(tmp_path, prod) -> None:
    """Catches timestamps compared by wall clock, not instant, where the UTC offset changes."""
    # 2016-11-06 01:30 EDT, then 01:00 EST half an hour later (clocks went back at 02:00 EDT).
    text = (
        "timestamp,concurrent_users\n"
        "2016-11-06T01:30:00-04:00,1000\n"
        "2016-11-06T01:00:00-05:00,4000\n"
    )
    start, users = read_curve(write(tmp_path, text), prod, 60)
    assert start.astimezone(UTC).isoformat() == "2016-11-06T05:30:00+00:00"
    assert len(users) == 31 and users[15] == pytest.approx(2500) and users[-1] == 4000


def test_a_missing_curve_file_is_exit_2(tmp_path, capsys) -> None:
    code = rehearse.main(
        ["--stack", "dev", "--curve", str(tmp_path / "nope.csv"), "--out", str(tmp_path)]
    )
    assert code == 2
    assert "nope.csv: no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--stack", "nosuch"], "stack 'nosuch'"),
        (["--stack", "prod", "--scenario", "tsunami"], "--scenario 'tsunami': allowed: event,"),
        (["--stack", "prod", "--event", "olympics"], "--event 'olympics': no occurrence"),
        (["--stack", "prod", "--scenario", "event", "--curve", "x.csv"], "not both"),
        (["--stack", "dev", "--scenario", "event"], "stack dev has no event"),
    ],
)
def test_bad_input_is_exit_2_before_anything_runs(tmp_path, capsys, argv, expected) -> None:
    assert rehearse.main([*argv, "--out", str(tmp_path)]) == 2
    assert expected in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_replayed_night_writes_json_and_its_chart(tmp_path, capsys) -> None:
    code = rehearse.main(
        ["--stack", "dev", "--curve", str(write(tmp_path, GOOD)), "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    document = json.loads((tmp_path / "rehearsal-dev.json").read_text())
    pairs = {(r["scenario"], r["policy"]) for r in document["results"]}
    assert pairs == {("replay", p) for p in ("configured", "reactive", "static-peak", "floor")}
    # dev's fleet cannot carry 200,000 people: the verdict says so and the exit code is 1.
    assert code == 1 and document["breaches"] and "PEOPLE FAIL OR WAIT" in out
    chart = tmp_path / "rehearsal-dev-replay.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 20_000


def test_every_scenario_and_policy_is_in_the_table_and_json(tmp_path, capsys) -> None:
    code = rehearse.main(
        ["--stack", "prod", "--event", "us-general-election", "--no-charts", "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    document = json.loads((tmp_path / "rehearsal-prod.json").read_text())
    assert document["event"] == "us-general-election-20281107"
    played = [s for s in SCENARIOS if s != "edge-uncached"]  # prod counts on no public page
    assert len(document["results"]) == len(played) * 4
    for scenario in played:
        assert f"  {scenario}  " in out or f"  {scenario} " in out
    assert code in ((1, 3) if document["breaches"] else (0,))
    for breach in document["breaches"]:
        assert breach.split(":")[0] in played
        assert f"  {breach}" in out


def _result(**measures: float) -> Result:
    base = dict.fromkeys(
        (
            "raw_5xx",
            "failed_worst_pct",
            "failing_min",
            "wait_p95_min",
            "longest_queue_min",
            "kept_out_beyond_bound_pct",
            "cost_vs_floor",
            "queue_api_peak_pct",
        ),
        0.0,
    )
    return Result("night", "configured", {**base, **measures}, Series())


def test_the_verdict_names_scenario_measure_value_and_limit() -> None:
    budget = RehearsalSettings()
    limit = budget.max_kept_out_pct
    assert breaches([_result(kept_out_beyond_bound_pct=limit)], budget) == []
    (breach,) = breaches([_result(kept_out_beyond_bound_pct=77.04)], budget)
    assert str(breach) == (
        "night: kept out beyond the bound 77.0 % > 5.0 % (rehearsal.max_kept_out_pct)"
    )
    other = Result("night", "reactive", {"raw_5xx": 9.0}, Series())
    assert breaches([other], budget) == []  # only the configured stack is judged
    assert summary([]) == "within budget"
    assert summary([breach]) == "PEOPLE FAIL OR WAIT: 1 limit(s) in night"
    assert exit_code([breach]) == 1


def test_the_verdict_tells_people_from_cost_and_the_exit_code_says_which() -> None:
    """Cost is judged on the nights a plan is priced by (its forecast, the real 2016 night, the
    forecast's errors), at 2.5x on the half-forecast night; not on an incident or a stress night.
    A night over on cost alone exits 3; anyone failing or waiting beyond the budget exits 1."""
    budget = RehearsalSettings()
    dear = {"cost_vs_floor": 2.4}
    nights = ("event", "2016", "half-forecast", "double-forecast", "stress", "zone-loss")
    priced = [Result(s, "configured", _result(**dear).measures, Series()) for s in nights]
    found = breaches(priced, budget)
    assert [(b.scenario, b.kind) for b in found] == [
        ("event", "cost"), ("2016", "cost"), ("double-forecast", "cost")
    ]  # fmt: skip
    assert summary(found) == "OVER BUDGET ON COST: 3 limit(s) in 2016, double-forecast, event"
    assert exit_code(found) == 3
    half = Result("half-forecast", "configured", _result(cost_vs_floor=2.51).measures, Series())
    assert [b.measure for b in breaches([half], budget)] == ["max_cost_vs_floor_below_forecast"]
    failing = Result("event", "configured", _result(failed_worst_pct=0.11).measures, Series())
    both = breaches([failing, *priced[:1]], budget)
    assert summary(both).startswith("PEOPLE FAIL OR WAIT: 1 limit(s) in event; OVER BUDGET ON")
    assert exit_code(both) == 1


def test_an_incident_night_is_judged_on_how_soon_failures_end() -> None:
    """slow-origin: failures the first minutes cannot avoid (no metric shows the change sooner)
    count by how many minutes in a row they last, not by their worst 15 minutes."""
    budget = RehearsalSettings()
    worst = {"failed_worst_pct": 8.0}
    slow = Result("slow-origin", "configured", _result(**worst, failing_min=10).measures, Series())
    assert breaches([slow], budget) == []
    slow.measures["failing_min"] = 11
    assert [b.measure for b in breaches([slow], budget)] == ["max_incident_minutes"]
    zone = Result("zone-loss", "configured", _result(**worst, failing_min=11).measures, Series())
    assert [b.measure for b in breaches([zone], budget)] == ["max_failed_worst_pct"]


def test_every_scenario_is_judged_not_only_the_first(prod: Settings) -> None:
    """Catches the verdict stopping at the first unjudged policy, never reaching scenario two."""
    # rehearse_all's order: each scenario's configured, reactive, static-peak, then floor.
    budget = prod.rehearsal
    night = [
        Result(scenario, policy, _result().measures, Series())
        for scenario in ("event", "zone-loss")
        for policy in ("configured", "reactive", "static-peak", "floor")
    ]
    night[4].measures["raw_5xx"] = budget.max_raw_5xx + 1  # zone-loss, configured
    assert [(b.scenario, b.measure) for b in breaches(night, budget)] == [
        ("zone-loss", "max_raw_5xx")
    ]


def test_an_event_names_a_known_shape() -> None:
    event = {
        "name": "vote",
        "time_zone": "UTC",
        "start": "2028-11-07T18:00:00",
        "duration_h": 10,
        "peak_multiple": 20,
    }
    assert parse_calendar({"events": [{**event, "shape": "election-night"}]}).events[0].shape == (
        "election-night"
    )
    with pytest.raises(CalendarError, match=r"events\[vote\]\.shape: must be one of"):
        parse_calendar({"events": [{**event, "shape": "tsunami"}]})


def test_the_election_night_shape_follows_2016() -> None:
    shape = SHAPES["election-night"]
    # 18:00 start, 10 h: quiet at 18:00, results from 20:00, the peak at 23:00, down by 04:00.
    assert shape.level(0.0) == 0 and shape.level(0.2) == pytest.approx(0.05)
    assert shape.level(0.5) == 1.0 == max(shape.level(i / 100) for i in range(111))
    assert shape.level(1.0) < 0.15 and shape.level(1.2) == 0

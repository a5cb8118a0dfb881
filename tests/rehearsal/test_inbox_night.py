"""The rehearsal plays the inbox: the configured stack's submissions against the back office's
drain, in the results, the table, the JSON and the chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from planning.clock import now
from planning.event_plan import event_curve
from planning.inbox import backlog
from planning.settings import load_stack_settings
from rehearsal.chart import draw
from rehearsal.curves import PAD, scenario_nights
from rehearsal.simulate import rehearse_all
from scripts.rehearse import choose_event, document, inbox_table


@pytest.fixture(scope="module")
def election():
    s = load_stack_settings("prod")
    plan = choose_event(s, "prod", now(), "us-general-election")
    nights = scenario_nights(["event"], plan, s, s.admission.step_s)
    return s, plan, nights, rehearse_all(nights, s, ("configured", "reactive"))


def test_only_the_configured_stack_has_an_inbox(election) -> None:
    _, _, _, results = election
    by_policy = {r.policy: r for r in results}
    assert by_policy["configured"].inbox is not None
    assert by_policy["reactive"].inbox is None, "reactive's writes go to the fleet"


def test_the_night_s_backlog_is_the_plan_s(election) -> None:
    """The rehearsal's `event` night is the plan's curve: the same submissions and backlog as
    `make plan` prints for the night (a minute of the rehearsal is six 10-second steps)."""
    s, plan, _, results = election
    played = next(r for r in results if r.policy == "configured").inbox
    planned = backlog(event_curve(plan, s, 60, PAD), s)
    assert played is not None
    assert played.submitted == pytest.approx(planned.submitted, rel=0.01)
    assert played.most_waiting == pytest.approx(planned.most_waiting, rel=0.01)
    assert round(played.longest_wait_min) == round(planned.longest_wait_min)
    assert played.clears_min == pytest.approx(planned.clears_min, abs=1)
    assert played.most_waiting > 0, "election night outruns prod's 10/s back office"


def test_the_table_json_and_chart_show_the_backlog(election, tmp_path: Path, monkeypatch) -> None:
    s, plan, nights, results = election
    (header, row) = inbox_table(results)
    assert header.split()[:2] == ["scenario", "submitted"] and row.startswith("event")
    played = next(r for r in results if r.policy == "configured").inbox
    assert played is not None
    assert f"{played.longest_wait_min:,.0f} min" in row, "the table's wait is the plan's"
    rows: Any = document("prod", plan.key, s, results, [], 0.0)["results"]
    configured = next(r for r in rows if r["policy"] == "configured")
    assert configured["inbox"]["most_waiting"] > 0
    assert all("inbox" not in r for r in rows if r["policy"] != "configured")
    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: drawn.append(fig))
    draw(nights[0], results, "event", tmp_path / "event.png")
    (fig,) = drawn
    labels = {line.get_label() for axis in fig.axes for line in axis.get_lines()}
    assert "submissions waiting (inbox)" in labels

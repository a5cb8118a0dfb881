"""The rehearsal's verdict: does the configured stack keep the settings' `rehearsal:` budget?

Two kinds of limit, told apart in the summary and the exit code: `people` (someone fails, waits
too long or is kept out) on every night, and `cost` (the night over the demand-following floor)
on the nights a plan is priced by: its own forecast, the real-world nights (`2016`, a replayed
curve) and the forecast's errors. Zone loss, a slow origin, 3x the forecast and the unannounced
evening crowds are judged on people only: what they cost is reported, not budgeted. Failures
count in the night's worst 15 minutes, except on an incident night (INCIDENTS), judged on how
many minutes in a row they last.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from planning.event_plan import EventPlan
from planning.settings import RehearsalSettings, Settings
from rehearsal.curves import scenario_nights
from rehearsal.simulate import Result, rehearse_all

Kind = Literal["people", "cost"]
# fmt: off
BUDGET: tuple[tuple[str, str, str, str, Kind], ...] = (
    # measure, settings key, label, format, kind
    ("raw_5xx", "max_raw_5xx", "raw 5xx", "{:,.0f}", "people"),
    ("failed_worst_pct", "max_failed_worst_pct", "failed in the worst 15 min", "{:.2f} %", "people"),  # noqa: E501
    ("failing_min", "max_incident_minutes", "minutes failing", "{:.0f}", "people"),
    ("wait_p95_min", "max_p95_wait_minutes", "p95 wait", "{:.1f} min", "people"),
    ("longest_queue_min", "max_queue_minutes", "longest queueing", "{:.0f} min", "people"),
    ("kept_out_beyond_bound_pct", "max_kept_out_pct", "kept out beyond the bound", "{:.1f} %", "people"),  # noqa: E501
    ("queue_api_peak_pct", "max_queue_api_pct", "queue API load", "{:.0f} % of capacity", "people"),
    ("cost_vs_floor", "max_cost_vs_floor", "cost / floor", "{:.2f}x", "cost"),
)
# fmt: on
PRICED = ("event", "2016", "double-forecast", "replay")
"""Nights judged on cost at `max_cost_vs_floor`."""
INCIDENTS = ("slow-origin", "alb-slow")
"""Nights judged on how soon failures end (`max_incident_minutes`), not on their worst 15
minutes."""
BELOW_FORECAST = ("half-forecast",)
"""Nights judged on cost at `max_cost_vs_floor_below_forecast`: capacity planned for twice the
crowd that came."""
POLICY = "configured"
"""The budget judges the stack as configured; the other policies are there to compare."""
EXIT_PEOPLE, EXIT_COST = 1, 3
"""`make rehearse` exit codes: people fail or wait beyond the budget (whatever the cost); only
the cost is over (2 is bad input)."""


@dataclass(frozen=True)
class Breach:
    scenario: str
    measure: str
    label: str
    value: str
    limit: str
    kind: Kind = "people"

    def __str__(self) -> str:
        return (
            f"{self.scenario}: {self.label} {self.value} > {self.limit} (rehearsal.{self.measure})"
        )


def limit_key(key: str, scenario: str) -> str | None:
    """The settings key that limits `key`'s measure on `scenario`, or None when that night is
    not judged on it (cost outside the priced nights)."""
    if key in ("max_failed_worst_pct", "max_incident_minutes"):
        return key if (key == "max_incident_minutes") == (scenario in INCIDENTS) else None
    if key != "max_cost_vs_floor":
        return key
    if scenario in BELOW_FORECAST:
        return "max_cost_vs_floor_below_forecast"
    return key if scenario in PRICED else None


def breaches(results: Iterable[Result], budget: RehearsalSettings) -> list[Breach]:
    """Every measure of the configured policy that exceeds its limit, scenario by scenario."""
    found = []
    for result in results:
        if result.policy != POLICY:
            continue
        for measure, key, label, fmt, kind in BUDGET:
            judged = limit_key(key, result.scenario)
            if judged is None:
                continue
            value, limit = result.measures[measure], float(getattr(budget, judged))
            if value > limit + 1e-9:
                found.append(
                    Breach(
                        result.scenario, judged, label, fmt.format(value), fmt.format(limit), kind
                    )
                )
    return found


def summary(found: list[Breach]) -> str:
    """One line per kind broken (people first), or "within budget"."""
    if not found:
        return "within budget"
    lines = []
    for kind, title in (("people", "PEOPLE FAIL OR WAIT"), ("cost", "OVER BUDGET ON COST")):
        mine = [b for b in found if b.kind == kind]
        if mine:
            scenarios = sorted({b.scenario for b in mine})
            lines.append(f"{title}: {len(mine)} limit(s) in {', '.join(scenarios)}")
    return "; ".join(lines)


def exit_code(found: list[Breach]) -> int:
    """0 within budget, EXIT_PEOPLE when anyone fails or waits beyond it, else EXIT_COST."""
    if any(b.kind == "people" for b in found):
        return EXIT_PEOPLE
    return EXIT_COST if found else 0


def event_verdict(plan: EventPlan, settings: Settings) -> str:
    """The `event` scenario under the configured policy only: one line for `make plan`."""
    nights = scenario_nights(["event"], plan, settings, settings.admission.step_s)
    found = breaches(rehearse_all(nights, settings, (POLICY,)), settings.rehearsal)
    if not found:
        return "within budget"
    return "BREAKS BUDGET: " + "; ".join(f"{b.label} {b.value} > {b.limit}" for b in found)
